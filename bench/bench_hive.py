#!/usr/bin/env python3
"""``cohsh hive`` (issue 21): update latency (ctl write → visible in the event stream) and server CPU.

One system per run (``--runs``): host mode as a subprocess (``python3 -m root_task.host --no-serial
--console-port 0 --9p-port P``), ``cohsh hive`` as a second subprocess (``python3 -m cohsh --9p-port P
--ticket-secret … hive --listen 127.0.0.1:0``, default 250 ms collector period, ring budget 64), and in this process a
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
the collector's mean tick time and the event-stream bytes/s; the ratios are vs the 0-worker window.

Spreads (``bench_spread``): a latency ratio is the median of the per-write ratios (a ctl write's hive
event against the same write's 9P poll; a page action against the poll of that round's ctl write in
the same direction), min–max over all writes of all ``--runs``. Each CPU window is cut into ``SLICES``
consecutive slices and slice i with workers is divided by slice i without: the two cannot alternate,
since that would mean killing and respawning every worker per slice, so ``--runs`` (each a fresh
system) is what puts machine drift into the spread. Nothing here asserts a timing. ``--report PATH``
rewrites the ``bench:hive`` region of that file.

Usage: ``python3 bench/bench_hive.py [--quick] [--workers N] [--rounds R] [--window S] [--runs N]
[--report docs/benchmarks.md]``
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
from bench_spread import fmt_ratio, slice_ratio  # noqa: E402
from cohsh.hive import sse  # noqa: E402
from cohsh.hive.auth import COOKIE_NAME  # noqa: E402
from cohsh.pool import Pool, PoolPolicy  # noqa: E402
from nine_door import tickets  # noqa: E402
from nine_door.client import Client, SocketStreamTransport  # noqa: E402

START, END = "<!-- bench:hive:start -->", "<!-- bench:hive:end -->"
QUEEN_SECRET = "bootstrap"                  # configs/root_task.toml
MAX_WORKERS = 1024                          # configs/root_task.toml system.max_workers
SPAWN = '{"spawn":"heartbeat","ticks":1000000,"budget":{"ttl_s":3600,"ops":1000000}}'
SLICES = 3                                  # each CPU window is cut into this many slices
PEER = "peer: 9P poll of /worker"


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
    rows: dict[str, list[float]] = {"ctl write → hive event": [], "page action → hive event": [], PEER: []}
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
                rows[PEER].append(time.monotonic() - t0)
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
                rows[PEER].append(time.monotonic() - t0)
            else:
                post_action(hive_port, token, {"action": "kill", "worker": wid})
            if not stream.wait(lambda: wid in stream.removed, 10):
                raise RuntimeError(f"{wid} never left the event stream")
            rows[f"{'ctl write' if via == 'ctl' else 'page action'} → hive event"].append(stream.removed[wid] - t0)
    return rows


def cpu_slice(stream: Stream, hive_pid: int, host_pid: int, seconds: float) -> dict:
    """What the hive and the host-mode server spent over ``seconds``, and what the stream carried:
    raw sums, so slices add up (:func:`window_stats`) and divide one by one (:func:`slice_series`)."""
    with stream.cond:
        b0, t0n = stream.bytes, len(stream.ticks)
    c0, h0, w0 = cpu_s(hive_pid), cpu_s(host_pid), time.monotonic()
    time.sleep(seconds)
    c1, h1, w1 = cpu_s(hive_pid), cpu_s(host_pid), time.monotonic()
    with stream.cond:
        ticks = stream.ticks[t0n:]
        b1 = stream.bytes
    return {"wall": w1 - w0, "cpu": c1 - c0, "host_cpu": h1 - h0, "ticks": ticks, "bytes": b1 - b0,
            "workers": stream.count}


def cpu_window(stream: Stream, hive_pid: int, host_pid: int, seconds: float) -> list[dict]:
    """One CPU window as ``SLICES`` consecutive slices, so its ratios come with a spread."""
    return [cpu_slice(stream, hive_pid, host_pid, seconds / SLICES) for _ in range(SLICES)]


def window_stats(slices: list[dict]) -> dict:
    """The table's values for a window: every slice of every run together."""
    wall = sum(s["wall"] for s in slices)
    ticks = [t for s in slices for t in s["ticks"]]
    return {"cpu": sum(s["cpu"] for s in slices) / wall * 100,
            "host_cpu": sum(s["host_cpu"] for s in slices) / wall * 100,
            "tick_ms": statistics.mean(ticks) if ticks else float("nan"), "hz": len(ticks) / wall,
            "bytes_s": sum(s["bytes"] for s in slices) / wall, "workers": slices[-1]["workers"]}


def slice_series(slices: list[dict]) -> dict[str, list[float]]:
    """Per slice: hive CPU %, mean tick ms (NaN when no tick fell in the slice) and stream bytes/s."""
    return {"cpu": [s["cpu"] / s["wall"] * 100 for s in slices],
            "tick_ms": [statistics.mean(s["ticks"]) if s["ticks"] else float("nan") for s in slices],
            "bytes_s": [s["bytes"] / s["wall"] for s in slices]}


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
                "live": live, "spawn_s": spawn_s}
    finally:
        for proc in (hive, host):
            if proc is None:
                continue
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def merge(runs: list[dict]) -> dict:
    """All runs as one result: slices and latency samples concatenated, so every ratio's spread is
    over all of them (the lists stay aligned: the same slice or write index in every run's part)."""
    def joined(key: str) -> dict[str, list[float]]:
        return {name: [v for run in runs for v in run[key][name]] for name in runs[0][key]}

    return {"idle": [s for run in runs for s in run["idle"]], "loaded": [s for run in runs for s in run["loaded"]],
            "lat_small": joined("lat_small"), "lat_loaded": joined("lat_loaded"),
            "live": min(run["live"] for run in runs), "spawn_s": statistics.median(run["spawn_s"] for run in runs)}


def latency_lines(lat: dict[str, list[float]], population: str) -> list[str]:
    """One row per update path; × peer is the spread of the per-write ratios (the peer's own row: —)."""
    lines = []
    for name, values in lat.items():
        ms = [v * 1000 for v in values]
        ratio = "—" if name == PEER else fmt_ratio(slice_ratio(lat, name, PEER))
        lines.append(f"| {name} | {population} | {len(ms)} | {pct(ms, 50):.1f} | {pct(ms, 95):.1f} | {ratio} |")
    return lines


def cpu_lines(idle_slices: list[dict], loaded_slices: list[dict], loaded_label: str) -> list[str]:
    """The CPU windows, one measure a row: 0 workers, N workers, and N ÷ 0 slice by slice."""
    idle, loaded = window_stats(idle_slices), window_stats(loaded_slices)
    series = {"idle": slice_series(idle_slices), "loaded": slice_series(loaded_slices)}

    def ratio(key: str) -> str:
        return fmt_ratio(slice_ratio({side: series[side][key] for side in series}, "loaded", "idle"))

    return [
        f"| measure | 0 workers | {loaded_label} | × 0 workers, per slice |",
        "|---|---|---|---|",
        f"| hive CPU (% of one core) | {idle['cpu']:.1f} | {loaded['cpu']:.1f} | {ratio('cpu')} |",
        f"| mean collector tick ms | {idle['tick_ms']:.1f} | {loaded['tick_ms']:.1f} | {ratio('tick_ms')} |",
        f"| events/s | {idle['hz']:.1f} | {loaded['hz']:.1f} | — |",
        f"| event stream KiB/s | {idle['bytes_s'] / 1024:.1f} | {loaded['bytes_s'] / 1024:.1f} | {ratio('bytes_s')} |",
        f"| host-mode server CPU (% of one core) | {idle['host_cpu']:.1f} | {loaded['host_cpu']:.1f} | — |",
    ]


def render(res: dict, args, command: str) -> str:
    date = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    live = res["live"]
    loaded_label = f"{window_stats(res['loaded'])['workers']} live heartbeat workers"
    lines = [
        START,
        f"`cohsh hive`, {args.runs} run(s) ({date}, {os.cpu_count()} cores, {platform.machine()}, Python "
        f"{platform.python_version()}; host mode and `cohsh hive` as subprocesses on 127.0.0.1, the event-stream "
        f"reader and ctl writer in the bench process; collector period 250 ms, ring budget 64 per tick):",
        "",
        "| update path | population | samples | p50 ms | p95 ms | × peer, per write |",
        "|---|---|---|---|---|---|",
        *latency_lines(res["lat_small"], "0–1 workers"),
        *latency_lines(res["lat_loaded"], f"{live - 1}–{live} workers"),
        "",
        *cpu_lines(res["idle"], res["loaded"], loaded_label),
        "",
        f"Workers asked for: {args.workers}, live: {live} (spawned in {res['spawn_s']:.1f} s, 32 ctl "
        f"lines per write). CPU windows: {args.window:g} s each, cut into {SLICES} consecutive slices. Latency: "
        f"{args.rounds} rounds of spawn + kill per path with 0–1 workers, half as many under load, each write "
        "after a random 0–250 ms pause (so it does not phase-lock with the collector's period). Ratios are the "
        "median of per-sample ratios with their min–max over all samples of all runs: × peer, each ctl write's "
        "hive event against the same write's 9P poll (a page action: against the poll of that round's ctl "
        "write in the same direction), so its spread is mostly the collector's 0–250 ms phase; × 0 workers, "
        "slice i of the loaded window against slice i of the idle one (the two cannot alternate without killing and "
        "respawning every worker; hive CPU is counted in 10 ms clock ticks, so a slice where either side's CPU "
        "reads 0 is left out, and the ratio is n/a when all are). A ctl write made outside the hive "
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
    parser.add_argument("--rounds", type=int, default=0, help="latency rounds (default 10; --quick 2)")
    parser.add_argument("--window", type=float, default=0, help="CPU window seconds (default 10; --quick 1)")
    parser.add_argument("--runs", type=int, default=1, help="fresh systems, one after another (default 1)")
    parser.add_argument("--spawn-deadline", type=float, default=300.0, help="give up spawning after S seconds")
    parser.add_argument("--report", type=Path, help="rewrite the bench:hive region of this file")
    args = parser.parse_args(argv)
    args.workers = args.workers or (32 if args.quick else 1024)
    args.rounds = args.rounds or (2 if args.quick else 10)
    args.window = args.window or (1.0 if args.quick else 10.0)
    args.runs = max(1, args.runs)
    res = merge([run(args) for _ in range(args.runs)])
    command = "python3 bench/bench_hive.py" + (" --quick" if args.quick else "") + (
        f" --workers {args.workers}" if args.workers not in (32, 1024) else "") + (
        f" --runs {args.runs}" if args.runs > 1 else "") + (
        " --report docs/benchmarks.md" if args.report else "")
    region = render(res, args, command)
    print(region)
    report_region(args.report, START, END, region)
    return 0


if __name__ == "__main__":
    sys.exit(main())
