#!/usr/bin/env python3
"""``cohsh hive`` (issue 21): update latency (ctl write → visible in the event stream) and server CPU.

One run, one system: host mode as a subprocess (``python3 -m root_task.host --no-serial --console-port 0
--9p-port P``), ``cohsh hive`` as a second subprocess (``python3 -m cohsh --9p-port P --ticket-secret …
hive --listen 127.0.0.1:0``, default 250 ms collector period, ring budget 64), and in this process a
reader of the hive's event stream (``/events``, parsed with ``cohsh.hive.sse.EventParser`` — what the
page's ``EventSource`` receives) plus a queen session pool for ctl writes.

Latency rows (each a spawn and a kill per round; a ``worker-<n>`` is "visible" when a ``delta`` event
adds or removes it):

* **ctl write → hive event** — the bench writes ``/queen/ctl`` itself through its own pool (as ``cohsh``
  does); the hive notices at its next tick (the queen log's ``spawned``/``revoked`` line or the listing);
* **page action → hive event** — the same spawn/kill posted to the hive's ``/api/action`` (the page's
  path), which runs the next tick at once;
* **peer: 9P poll of /worker** — in the same rounds, a bare 9P client (``nine_door.client``) that
  lists ``/worker`` in a loop from the moment of the ctl write: the fastest any client can see it.

CPU rows: utime+stime of the ``cohsh hive`` process over ``--window`` seconds with 0 workers and with
``--workers`` live heartbeat workers (each appending a Frame v1 per second), as % of one core, with
the collector's mean tick time and the event-stream bytes/s; the ratio is vs the 0-worker row.
Nothing here asserts a timing. ``--report PATH`` rewrites the ``bench:hive`` region of that file.

Usage: ``python3 bench/bench_hive.py [--quick] [--workers N] [--rounds R] [--window S] [--report docs/benchmarks.md]``
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import random
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

from bench_ninep import cpu_s, free_port, wait_port  # noqa: E402
from bench_report import report_region  # noqa: E402
from cohsh.hive import sse  # noqa: E402
from cohsh.hive.auth import COOKIE_NAME  # noqa: E402
from cohsh.pool import Pool, PoolPolicy  # noqa: E402
from nine_door import tickets  # noqa: E402
from nine_door.client import Client, SocketStreamTransport  # noqa: E402

START, END = "<!-- bench:hive:start -->", "<!-- bench:hive:end -->"
QUEEN_SECRET = "bootstrap"                  # configs/root_task.toml
MAX_WORKERS = 1024                          # configs/root_task.toml system.max_workers
SPAWN = '{"spawn":"heartbeat","ticks":1000000,"budget":{"ttl_s":3600,"ops":1000000}}'


class Stream:
    """The hive's event stream, read on a thread: when each worker id was first added / removed."""

    def __init__(self, port: int, token: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock.sendall(f"GET /events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nCookie: {COOKIE_NAME}={token}\r\n\r\n"
                          .encode())
        self.cond = threading.Condition()
        self.present: set[str] = set()
        self.added: dict[str, float] = {}
        self.removed: dict[str, float] = {}
        self.count = 0
        self.bytes = 0
        self.ticks: list[float] = []
        self.closed = False
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        parser = sse.EventParser()
        head = b""
        while b"\r\n\r\n" not in head:
            head += self.sock.recv(65536)
        _, rest = head.split(b"\r\n\r\n", 1)
        chunk = rest
        while True:
            now = time.monotonic()
            events = parser.feed(chunk)
            with self.cond:
                self.bytes += len(chunk)
                for event in events:
                    doc = json.loads(event.data)
                    if event.event == "snapshot":
                        self.present = {w["id"] for w in doc["workers"]}
                    for w in doc.get("workers", ()):
                        if w["id"] not in self.present or w["id"] not in self.added:
                            self.added.setdefault(w["id"], now)
                        self.present.add(w["id"])
                    for wid in doc.get("removed", ()):
                        self.present.discard(wid)
                        self.removed.setdefault(wid, now)
                    self.count = doc.get("count", self.count)
                    if "tick_ms" in doc and event.event == "delta":
                        self.ticks.append(doc["tick_ms"])
                self.cond.notify_all()
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                chunk = b""
            if not chunk:
                with self.cond:
                    self.closed = True
                    self.cond.notify_all()
                return

    def wait(self, predicate, timeout: float) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: predicate() or self.closed, timeout) and not self.closed


def queen_client(port: int) -> Client:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    client = Client(SocketStreamTransport(sock))
    client.version(8192)
    client.attach("queen", tickets.mint(QUEEN_SECRET, "queen"))
    return client


def post_action(port: int, token: str, body: dict) -> None:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("POST", "/api/action", json.dumps(body), {"Content-Type": "application/json",
                                                           "Cookie": f"{COOKIE_NAME}={token}"})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    if resp.status != 200:
        raise RuntimeError(f"action {body} refused: {resp.status} {data!r}")


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, -(-len(ordered) * p // 100) - 1)] if ordered else float("nan")


def next_id(stream: Stream, counter: list[int]) -> str:
    counter[0] += 1
    return f"worker-{counter[0]}"


def latency_rounds(rounds: int, stream: Stream, pool: Pool, peer: Client, hive_port: int, token: str,
                   counter: list[int]) -> dict[str, list[float]]:
    rows: dict[str, list[float]] = {"ctl write → hive event": [], "page action → hive event": [],
                                    "peer: 9P poll of /worker": []}
    rng = random.Random(21)
    for _ in range(rounds):
        for via in ("ctl", "page"):
            wid = next_id(stream, counter)
            time.sleep(rng.uniform(0, 0.25))      # no phase lock with the collector's period
            t0 = time.monotonic()
            if via == "ctl":
                pool.write("/queen/ctl", SPAWN + "\n")
                while wid not in peer.listdir("/worker"):
                    pass
                rows["peer: 9P poll of /worker"].append(time.monotonic() - t0)
            else:
                post_action(hive_port, token, {"action": "spawn-heartbeat", "ticks": "1000000", "ttl_s": "3600"})
            if not stream.wait(lambda: wid in stream.added, 10):
                raise RuntimeError(f"{wid} never appeared in the event stream")
            rows[f"{'ctl write' if via == 'ctl' else 'page action'} → hive event"].append(stream.added[wid] - t0)
            time.sleep(rng.uniform(0, 0.25))
            t0 = time.monotonic()
            if via == "ctl":
                pool.write("/queen/ctl", json.dumps({"kill": wid}) + "\n")
                while wid in peer.listdir("/worker"):
                    pass
                rows["peer: 9P poll of /worker"].append(time.monotonic() - t0)
            else:
                post_action(hive_port, token, {"action": "kill", "worker": wid})
            if not stream.wait(lambda: wid in stream.removed, 10):
                raise RuntimeError(f"{wid} never left the event stream")
            rows[f"{'ctl write' if via == 'ctl' else 'page action'} → hive event"].append(stream.removed[wid] - t0)
    return rows


def cpu_window(stream: Stream, hive_pid: int, host_pid: int, seconds: float) -> dict:
    with stream.cond:
        b0, t0n = stream.bytes, len(stream.ticks)
    c0, h0, w0 = cpu_s(hive_pid), cpu_s(host_pid), time.monotonic()
    time.sleep(seconds)
    c1, h1, w1 = cpu_s(hive_pid), cpu_s(host_pid), time.monotonic()
    with stream.cond:
        ticks = stream.ticks[t0n:]
        b1 = stream.bytes
    wall = w1 - w0
    return {"cpu": (c1 - c0) / wall * 100, "host_cpu": (h1 - h0) / wall * 100,
            "tick_ms": statistics.mean(ticks) if ticks else float("nan"), "hz": len(ticks) / wall,
            "bytes_s": (b1 - b0) / wall, "workers": stream.count}


def spawn_many(pool: Pool, stream: Stream, n: int, counter: list[int], deadline_s: float) -> int:
    """Spawn up to ``n`` more heartbeat workers, 32 ctl lines per write; the number live when done."""
    target = len(stream.present) + n
    left = n
    start = time.monotonic()
    while left > 0 and time.monotonic() - start < deadline_s:
        k = min(32, left)
        try:
            pool.write("/queen/ctl", (SPAWN + "\n") * k)
        except Exception as exc:           # EBUSY at max_workers, or the host ran out of something
            print(f"spawn stopped after {n - left}: {exc}", flush=True)
            break
        counter[0] += k
        left -= k
    stream.wait(lambda: len(stream.present) >= target, max(10.0, deadline_s - (time.monotonic() - start)))
    return len(stream.present)


def run(args) -> dict:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    host = subprocess.Popen([sys.executable, "-m", "root_task.host", "--no-serial", "--console-port", "0",
                             "--9p-port", str(port)], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    hive = None
    try:
        wait_port(port, host)
        hive = subprocess.Popen([sys.executable, "-m", "cohsh", "--9p-port", str(port), "--ticket-secret",
                                 QUEEN_SECRET, "hive", "--listen", "127.0.0.1:0"], cwd=REPO, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = hive.stdout.readline()
        found = re.search(r"http://127\.0\.0\.1:(\d+)/\?token=(\S+)", line)
        if not found:
            raise RuntimeError(f"cohsh hive did not start: {line!r}")
        hive_port, token = int(found.group(1)), found.group(2)
        stream = Stream(hive_port, token)
        pool = Pool("127.0.0.1", port, secret=QUEEN_SECRET, env={}, policy=PoolPolicy(control=1, telemetry=1))
        peer = queen_client(port)
        counter = [0]
        stream.wait(lambda: stream.ticks, 10)
        idle = cpu_window(stream, hive.pid, host.pid, args.window)
        lat_small = latency_rounds(args.rounds, stream, pool, peer, hive_port, token, counter)
        t0 = time.monotonic()
        live = spawn_many(pool, stream, args.workers, counter, args.spawn_deadline)
        spawn_s = time.monotonic() - t0
        time.sleep(min(5.0, args.window))              # let every ring be visited once
        loaded = cpu_window(stream, hive.pid, host.pid, args.window)
        if live >= MAX_WORKERS:                         # make room for the latency rounds' spawns
            last = max(stream.present, key=lambda w: int(w.rsplit("-", 1)[1]))
            pool.write("/queen/ctl", json.dumps({"kill": last}) + "\n")
            stream.wait(lambda: last not in stream.present, 10)
        lat_loaded = latency_rounds(max(2, args.rounds // 2), stream, pool, peer, hive_port, token, counter)
        peer.close()
        pool.close()
        return {"idle": idle, "loaded": loaded, "lat_small": lat_small, "lat_loaded": lat_loaded,
                "live": live, "asked": args.workers, "spawn_s": spawn_s, "window": args.window,
                "rounds": args.rounds}
    finally:
        for proc in (hive, host):
            if proc is None:
                continue
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def render(res: dict, command: str) -> str:
    date = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    lines = [
        START,
        f"`cohsh hive`, one run ({date}, {os.cpu_count()} cores, {platform.machine()}, Python "
        f"{platform.python_version()}; host mode and `cohsh hive` as subprocesses on 127.0.0.1, the event-stream "
        f"reader and ctl writer in the bench process; collector period 250 ms, ring budget 64 per tick):",
        "",
        "| update path | population | samples | p50 ms | p95 ms | × peer p50 |",
        "|---|---|---|---|---|---|",
    ]
    for label, lat, pop in (("lat_small", res["lat_small"], "0–1 workers"),
                            ("lat_loaded", res["lat_loaded"], f"{res['live'] - 1}–{res['live']} workers")):
        peer = statistics.median(lat["peer: 9P poll of /worker"])
        for name, values in lat.items():
            ms = [v * 1000 for v in values]
            lines.append(f"| {name} | {pop} | {len(ms)} | {pct(ms, 50):.1f} | {pct(ms, 95):.1f} | "
                         f"{statistics.median(values) / peer:.1f}× |")
    idle, loaded = res["idle"], res["loaded"]
    lines += [
        "",
        "| `cohsh hive` with | hive CPU (% of one core) | × idle | mean tick ms | events/s | stream KiB/s | "
        "host-mode server CPU % |",
        "|---|---|---|---|---|---|---|",
        f"| 0 workers | {idle['cpu']:.1f} | 1.0× | {idle['tick_ms']:.1f} | {idle['hz']:.1f} | "
        f"{idle['bytes_s'] / 1024:.1f} | {idle['host_cpu']:.1f} |",
        f"| {loaded['workers']} live heartbeat workers | {loaded['cpu']:.1f} | "
        f"{loaded['cpu'] / max(idle['cpu'], 0.1):.1f}× | {loaded['tick_ms']:.1f} | {loaded['hz']:.1f} | "
        f"{loaded['bytes_s'] / 1024:.1f} | {loaded['host_cpu']:.1f} |",
        "",
        f"Workers asked for: {res['asked']}, live: {res['live']} (spawned in {res['spawn_s']:.1f} s, 32 ctl "
        f"lines per write). CPU windows: {res['window']:g} s each. Latency: {res['rounds']} rounds of "
        "spawn + kill per path with 0–1 workers, half as many under load, each write after a random 0–250 ms pause (so it does not phase-lock with the collector's period). A ctl write made outside the hive "
        "is seen at the collector's next tick (0–250 ms later, plus the tick itself); a page action runs the "
        "tick at once. Per tick the hive reads a bounded set: the queen log's new bytes, one `/worker` "
        "listing, at most 64 rings (one Tread each on a held fid: only the records since the last visit), "
        "the five `/proc/ingest` files and, every 4th tick, `/gpu`; so its CPU grows with the worker count "
        "through the listing and the ring slice, not by reading 1 024 rings per tick.",
        "",
        f"Command: `{command}`.",
        END,
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="32 workers, 2 rounds, 1 s windows (same code path)")
    parser.add_argument("--workers", type=int, default=0, help="live workers for the CPU row (default 1024)")
    parser.add_argument("--rounds", type=int, default=0, help="latency rounds (default 10; --quick 3)")
    parser.add_argument("--window", type=float, default=0, help="CPU window seconds (default 10; --quick 2)")
    parser.add_argument("--spawn-deadline", type=float, default=300.0, help="give up spawning after S seconds")
    parser.add_argument("--report", type=Path, help="rewrite the bench:hive region of this file")
    args = parser.parse_args(argv)
    args.workers = args.workers or (32 if args.quick else 1024)
    args.rounds = args.rounds or (2 if args.quick else 10)
    args.window = args.window or (1.0 if args.quick else 10.0)
    res = run(args)
    command = "python3 bench/bench_hive.py" + (" --quick" if args.quick else "") + (
        f" --workers {args.workers}" if args.workers not in (32, 1024) else "") + (
        " --report docs/benchmarks.md" if args.report else "")
    region = render(res, command)
    print(region)
    report_region(args.report, START, END, region)
    return 0


if __name__ == "__main__":
    sys.exit(main())
