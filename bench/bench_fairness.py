#!/usr/bin/env python3
"""Console PING latency while 9P clients pipeline 64 KiB bursts (issue: fairness, SPEC §2.4).

SPEC §2.4 bounds every source of the root task's event pump to at most 64 work items per iteration so
that no source can starve another. This bench measures that from the outside; each run (``--runs``):

* the system runs in host mode as a subprocess — ``python3 -m root_task.host --no-serial
  --console-port C --9p-port P`` on free loopback ports;
* the operator console is the TCP console (SPEC §10.4: 4-byte little-endian length prefix including
  itself; ``AUTH changeme`` → ``OK AUTH``); ``ping`` answers ``PONG`` then ``OK PING reply=pong``, and
  the round trip is the time from sending the ``ping`` frame to receiving the ``OK PING`` frame;
* for each load (0, 8 and 64 9P connections by default) every connection is its own process (the GIL)
  that does Tversion + Tattach as ``queen`` (aname = a queen ticket, secret ``bootstrap``), then loops:
  one ``sendall`` of ~64 KiB of pipelined Twalk root→["proc","boot"] + Tclunk pairs, then it reads all
  the replies (counting them, and the Rlerror ones) before the next burst;
* once all connections of a load are attached, after a short warm-up, the console is pinged
  ``--pings`` times, ``--interval`` apart; the load keeps running for at least ``--seconds``;
* each load's seconds and pings are split over ``--slices`` slices, and the loads take turns slice by
  slice (0, 8, 64, then 64, 8, 0, …), so machine drift hits the idle and the loaded PINGs alike.

Reported per load, over all its slices of all ``--runs`` (each run: a fresh host-mode system): PING
median / p95 (nearest rank) / max in ms, the loaded median ÷ the idle median (``bench_spread``: the
median of slice i's loaded PING median ÷ slice i's idle one, with their min–max), 9P replies received
(and per second), Rlerror replies, and the server's CPU use over the windows (utime+stime ÷ wall, 100 %
= one core). The issue's target — PING median ≤ 50 ms under the 8- and 64-connection loads — is
reported as met / not met; nothing here asserts a timing.

Usage: ``python3 bench/bench_fairness.py [--seconds S] [--slices N] [--runs N] [--quick] [--report docs/benchmarks.md]``
(``--report`` rewrites the bench:fairness region of that file, appending it if missing.)
"""
from __future__ import annotations

import argparse
import datetime as _dt
import math
import multiprocessing as mp
import os
import platform
import queue
import select
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

from bench_ninep import cpu_s, free_port, wait_port  # noqa: E402
from bench_report import report_region  # noqa: E402
from bench_spread import fmt_ratio, slice_ratio  # noqa: E402
from nine_door import codec, tickets  # noqa: E402
from nine_door import messages as m  # noqa: E402
from nine_door.client import Client, SocketStreamTransport  # noqa: E402

START, END = "<!-- bench:fairness:start -->", "<!-- bench:fairness:end -->"
TOKEN = "changeme"                 # configs/root_task.toml [console] auth_token
QUEEN_SECRET = "bootstrap"         # configs/root_task.toml queen ticket secret
TARGET_MS = 50.0                   # the target: PING median under load
TARGET_LOADS = (8, 64)             # loads the target applies to
BURST_BYTES = 64 * 1024
WALK_PATH = ("proc", "boot")
WALK_FID = 1000
WARMUP_S = 0.3                     # after every connection attached, before the first ping
SETTLE_S = 0.5                     # after a loaded slice, so the server has closed its connections
READY_TIMEOUT_S = 30.0             # all connections of one load must attach within this
PING_TIMEOUT_S = 10.0              # one ping round trip longer than this counts as starved
STOP_TIMEOUT_S = 15.0              # workers must return this long after being told to stop
POLL_S = 0.25                      # workers check the stop flag at least this often


# --- console client (main process) ----------------------------------------------------------------
def frame(text: str) -> bytes:
    data = text.encode()
    return struct.pack("<I", len(data) + 4) + data


def read_frame(sock: socket.socket) -> str:
    def exactly(n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("console closed")
            buf += chunk
        return buf

    (total,) = struct.unpack("<I", exactly(4))
    return exactly(total - 4).decode()


class Console:
    """An authenticated TCP console session (SPEC §10.4)."""

    def __init__(self, port: int, deadline_s: float = 20.0) -> None:
        self.port = port
        self.sock = self._connect(deadline_s)

    def _connect(self, deadline_s: float) -> socket.socket:
        deadline = time.monotonic() + deadline_s
        while True:
            try:
                sock = socket.create_connection(("127.0.0.1", self.port), timeout=PING_TIMEOUT_S)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(frame(f"AUTH {TOKEN}"))
        reply = read_frame(sock)
        if reply != "OK AUTH":
            sock.close()
            raise RuntimeError(f"console AUTH refused: {reply!r}")
        return sock

    def ping(self) -> float:
        """One round trip in seconds: ``ping`` sent → ``OK PING`` received (``PONG`` comes first)."""
        t0 = time.perf_counter()
        self.sock.sendall(frame("ping"))
        for _ in range(8):  # bounded: PONG, then the ack
            line = read_frame(self.sock)
            if line.startswith("OK PING"):
                return time.perf_counter() - t0
            if line.startswith("ERR"):
                raise RuntimeError(f"console refused ping: {line!r}")
        raise RuntimeError("no OK PING after 8 frames")

    def reconnect(self) -> None:
        self.close()
        self.sock = self._connect(10.0)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


# --- 9P load workers (child processes) ------------------------------------------------------------
_STOP = None   # mp.Event: set by the main process to end the current load
_READY = None  # mp.Queue: a worker puts its pid once attached


def _init_worker(stop, ready) -> None:
    global _STOP, _READY
    _STOP, _READY = stop, ready


def make_burst(root: int) -> tuple[bytes, int]:
    """Twalk root→WALK_PATH as WALK_FID + Tclunk WALK_FID, repeated to just under BURST_BYTES.

    Both requests of a pair name WALK_FID, so they run in arrival order (SPEC §3.12); tags are unique
    within the burst, and every reply is read before the next burst reuses them."""
    frames: list[bytes] = []
    size = tag = 0
    while True:
        pair = codec.encode(m.Twalk(tag, root, WALK_FID, WALK_PATH)) + codec.encode(m.Tclunk(tag + 1, WALK_FID))
        if size + len(pair) > BURST_BYTES:
            break
        frames.append(pair)
        size += len(pair)
        tag += 2
    return b"".join(frames), tag


def load_worker(port: int, aname: str, hard_deadline: float) -> dict:
    """One 9P connection: attach, then 64 KiB bursts until told to stop (or hard_deadline)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=READY_TIMEOUT_S)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    result = {"replies": 0, "errors": 0, "bursts": 0, "frames_per_burst": 0, "failure": None}
    try:
        client = Client(SocketStreamTransport(sock))
        client.version(8192)
        client.attach("queen", aname)
        data, frames = make_burst(client.root)
        result["frames_per_burst"] = frames
        _READY.put(os.getpid())
        sock.settimeout(20.0)                 # sendall only; the server reads while it has no input
        buf = bytearray()
        while not _STOP.is_set() and time.monotonic() < hard_deadline:
            sock.sendall(data)
            got = 0
            while got < frames:
                if _STOP.is_set() or time.monotonic() >= hard_deadline:
                    return result            # abandon the rest of this burst's replies
                readable, _, _ = select.select([sock], [], [], POLL_S)
                if not readable:
                    continue
                chunk = sock.recv(1 << 16)
                if not chunk:
                    raise ConnectionError("9P server closed the connection")
                buf += chunk
                pos, have = 0, len(buf)
                while have - pos >= 7:
                    size = int.from_bytes(buf[pos:pos + 4], "little")
                    if size < 7:
                        raise ConnectionError(f"bad reply size {size}")
                    if have - pos < size:
                        break
                    if buf[pos + 4] == m.RLERROR:
                        result["errors"] += 1
                    pos += size
                    got += 1
                    result["replies"] += 1
                del buf[:pos]
            result["bursts"] += 1
    except Exception as exc:  # noqa: BLE001 - reported to the main process, which fails the run
        result["failure"] = f"{type(exc).__name__}: {exc}"
    finally:
        sock.close()
    return result


# --- one load ------------------------------------------------------------------------------------
def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


def sample_pings(console: Console, count: int, interval: float, deadline: float) -> tuple[list[float], int]:
    """``count`` pings ``interval`` apart (stops early at ``deadline``); returns (rtts, timeouts)."""
    rtts: list[float] = []
    timeouts = 0
    for _ in range(count):
        if time.monotonic() > deadline:
            break
        try:
            rtts.append(console.ping())
        except (socket.timeout, TimeoutError):
            timeouts += 1
            rtts.append(PING_TIMEOUT_S)
            console.reconnect()
        time.sleep(interval)
    return rtts, timeouts


def run_load(pool, stop, ready, console: Console, server_pid: int, port: int, aname: str, conns: int,
             seconds: float, pings: int, args) -> dict:
    """One slice of one load: ``conns`` connections bursting for ``seconds`` while ``pings`` PINGs run."""
    stop.clear()
    while True:  # drain stale ready tokens
        try:
            ready.get_nowait()
        except queue.Empty:
            break
    hard_deadline = time.monotonic() + seconds + READY_TIMEOUT_S + 60.0
    pending = [pool.apply_async(load_worker, (port, aname, hard_deadline)) for _ in range(conns)]
    try:
        attached = 0
        ready_by = time.monotonic() + READY_TIMEOUT_S
        while attached < conns:
            for p in pending:
                if p.ready():
                    res = p.get()
                    raise RuntimeError(f"a 9P load connection ended before the load began: {res['failure']}")
            if time.monotonic() > ready_by:
                raise TimeoutError(f"only {attached}/{conns} 9P connections attached in {READY_TIMEOUT_S:g} s")
            try:
                ready.get(timeout=0.2)
                attached += 1
            except queue.Empty:
                pass
        t0 = time.monotonic()
        cpu0 = cpu_s(server_pid)
        time.sleep(WARMUP_S if conns else 0.0)
        rtts, timeouts = sample_pings(console, pings, args.interval,
                                      t0 + seconds + 30.0 + pings * PING_TIMEOUT_S)
        left = t0 + seconds - time.monotonic()
        if left > 0:
            time.sleep(left)
        cpu1 = cpu_s(server_pid)
        t1 = time.monotonic()
    finally:
        stop.set()
    results = [p.get(timeout=STOP_TIMEOUT_S) for p in pending]
    failures = [r["failure"] for r in results if r["failure"]]
    if failures:
        raise RuntimeError(f"{len(failures)} 9P load connection(s) failed, first: {failures[0]}")
    return summarize(conns, [x * 1000.0 for x in rtts], timeouts, results, cpu1 - cpu0, t1 - t0)


def summarize(conns: int, rtts_ms: list[float], timeouts: int, results: list[dict], cpu: float,
              window: float) -> dict:
    """A load's numbers from its raw counts: one slice's, or all its slices' (:func:`combine`)."""
    ordered = sorted(rtts_ms)
    replies = sum(r["replies"] for r in results)
    return {
        "conns": conns,
        "rtts_ms": ordered,
        "pings": len(ordered),
        "timeouts": timeouts,
        "median": statistics.median(ordered),
        "p95": percentile(ordered, 0.95),
        "max": ordered[-1],
        "replies": replies,
        "replies_s": replies / window,
        "errors": sum(r["errors"] for r in results),
        "bursts": sum(r["bursts"] for r in results),
        "frames_per_burst": max((r["frames_per_burst"] for r in results), default=0),
        "cpu_s": cpu,
        "cpu": cpu / window,
        "window": window,
    }


def combine(slices: list[dict]) -> dict:
    """One load's row over all its slices of all runs; ``slice_medians`` keeps each slice's PING median
    (in slice order) for the ratio against the idle load."""
    row = summarize(slices[0]["conns"], [x for s in slices for x in s["rtts_ms"]], sum(s["timeouts"] for s in slices),
                    slices, sum(s["cpu_s"] for s in slices), sum(s["window"] for s in slices))
    row["slices"] = len(slices)
    row["slice_medians"] = [s["median"] for s in slices]
    return row


def ratio_to_idle(row: dict, idle: dict) -> str:
    """PING median ÷ the idle median, slice by slice; — for the idle load itself."""
    if row is idle:
        return "—"
    return fmt_ratio(slice_ratio({"load": row["slice_medians"], "idle": idle["slice_medians"]}, "load", "idle"))


# --- report --------------------------------------------------------------------------------------
def verdict(row: dict) -> str:
    if row["conns"] not in TARGET_LOADS:
        return "—"
    return "met" if row["median"] <= TARGET_MS else "not met"


def render(rows: list[dict], args, command: str) -> str:
    date = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    idle = next(r for r in rows if r["conns"] == 0)
    fpb = max((r["frames_per_burst"] for r in rows), default=0)
    lines = [
        START,
        f"Operator-console PING round trip while 9P clients pipeline bursts, {args.runs} run(s) ({date}, "
        f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}; host mode "
        f"on 127.0.0.1; {args.seconds:g} s and {args.pings} pings {args.interval * 1000:g} ms apart per load "
        f"and run, split over {args.slices} slices, the loads taking turns slice by slice; pings start once "
        f"all connections attached). Each 9P connection is its own process: Tversion + Tattach as "
        f"queen, then repeatedly one ~64 KiB write of {fpb} pipelined frames (Twalk /proc/boot + Tclunk "
        "pairs) and all their replies. PING = `ping` frame sent → `OK PING` frame received on the TCP "
        "console; median, p95 (nearest-rank) and max over all pings of all slices; median ÷ idle = the "
        "median of slice i's PING median ÷ the idle load's in slice i, (min–max) over all slices of all "
        "runs; server CPU = utime+stime of the host-mode process over the windows (100 % = one core).",
        "",
        "| 9P connections | pings | PING median ms | PING p95 ms | PING max ms | median ÷ idle, per slice | "
        "9P replies | 9P replies/s | Rlerror | server CPU | target median ≤ 50 ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ratio = ratio_to_idle(r, idle)
        pings = f"{r['pings']}" + (f" ({r['timeouts']} timed out)" if r["timeouts"] else "")
        lines.append(f"| {r['conns']} | {pings} | {r['median']:.2f} | {r['p95']:.2f} | {r['max']:.2f} | "
                     f"{ratio} | {r['replies']:,} | {r['replies_s']:,.0f} | {r['errors']:,} | "
                     f"{r['cpu'] * 100:.0f} % | {verdict(r)} |")
    lines += [
        "",
        f"Command: `{command}`. The load processes, the console client and the server share the "
        f"machine's {os.cpu_count()} cores, so under load the PING time includes waiting for a CPU as "
        "well as waiting for the event pump; the listener executes at most 64 9P frames per pump "
        "iteration over all connections (16 per connection per slice, SPEC §2.4, "
        "nine_door/tcp_listener.py), and the console is served in the same iteration's `net` slot.",
        END,
    ]
    return "\n".join(lines)


# --- main ----------------------------------------------------------------------------------------
def parse_loads(text: str) -> list[int]:
    loads = [int(x) for x in text.split(",") if x.strip()]
    if not loads or any(n < 0 or n > 64 for n in loads):
        raise argparse.ArgumentTypeError("loads are 0..64 connections (the listener admits 64)")
    return loads


def slice_order(loads: list[int], i: int) -> list[int]:
    """The loads in slice ``i``: in order, then reversed, and so on, so no load always follows another."""
    return loads if i % 2 == 0 else loads[::-1]


def share(total: int, parts: int, i: int) -> int:
    """Part ``i`` of ``total`` split as evenly as possible into ``parts`` (at least 1)."""
    return max(1, total // parts + (1 if i < total % parts else 0))


def one_run(pool, stop, ready, args, run: int) -> dict[int, list[dict]]:
    """A fresh host-mode system; every load's slices, the loads taking turns slice by slice."""
    server = None
    console = None
    errlog = tempfile.TemporaryFile()
    slices: dict[int, list[dict]] = {conns: [] for conns in args.loads}
    try:
        ninep_port = free_port()
        console_port = free_port()
        for _ in range(20):
            if console_port != ninep_port:
                break
            console_port = free_port()
        cmd = [sys.executable, "-m", "root_task.host", "--no-serial", "--console-port", str(console_port),
               "--9p-port", str(ninep_port)]
        print(f"starting host mode: 9P port {ninep_port}, console port {console_port}", flush=True)
        server = subprocess.Popen(cmd, cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=errlog)
        wait_port(ninep_port, server)
        console = Console(console_port)
        console.ping()                                   # warm the console path once
        aname = tickets.mint(QUEEN_SECRET, "queen")
        for i in range(args.slices):
            seconds, pings = args.seconds / args.slices, share(args.pings, args.slices, i)
            for conns in slice_order(args.loads, i):
                print(f"load {conns} 9P connections: running {seconds:.2g} s, {pings} pings", flush=True)
                row = run_load(pool, stop, ready, console, server.pid, ninep_port, aname, conns, seconds, pings, args)
                slices[conns].append(row)
                print(f"load {conns} 9P connections: ping median {row['median']:.2f} ms p95 {row['p95']:.2f} ms "
                      f"max {row['max']:.2f} ms ({row['pings']} pings, {row['timeouts']} timed out); "
                      f"9p_replies={row['replies']} ({row['replies_s']:,.0f}/s, {row['bursts']} bursts of "
                      f"{row['frames_per_burst']} frames, {row['errors']} Rlerror); server cpu "
                      f"{row['cpu'] * 100:.0f} % [run {run + 1}, slice {i + 1}/{args.slices}]", flush=True)
                if conns:
                    time.sleep(SETTLE_S)
        return slices
    except BaseException:
        if server is not None:
            state = "running" if server.poll() is None else f"exited with {server.returncode}"
            errlog.seek(0)
            tail = errlog.read()[-4000:].decode(errors="replace")
            print(f"bench failed; host mode {state}; its stderr tail:\n{tail}", file=sys.stderr)
        raise
    finally:
        stop.set()
        if console is not None:
            console.close()
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=5)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=5)
        errlog.close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=None,
                        help="load window per load and run, split over its slices (default 4; quick 1)")
    parser.add_argument("--pings", type=int, default=None,
                        help="PINGs per load and run, split over its slices (default 40; quick 10)")
    parser.add_argument("--interval", type=float, default=0.025, help="seconds between PINGs (default 0.025)")
    parser.add_argument("--loads", type=parse_loads, default=None,
                        help="comma-separated 9P connection counts (default 0,8,64; quick 0,8)")
    parser.add_argument("--slices", type=int, default=None,
                        help="slices per load and run, the loads taking turns (default 3; quick 2)")
    parser.add_argument("--runs", type=int, default=1, help="fresh host-mode systems, one after another (default 1)")
    parser.add_argument("--quick", action="store_true", help="1 s per load, 10 pings, loads 0 and 8, 2 slices")
    parser.add_argument("--report", type=Path, help="rewrite the bench:fairness region of this file")
    args = parser.parse_args(argv)
    if args.seconds is None:
        args.seconds = 1.0 if args.quick else 4.0
    if args.pings is None:
        args.pings = 10 if args.quick else 40
    if args.loads is None:
        args.loads = [0, 8] if args.quick else [0, 8, 64]
    if args.slices is None:
        args.slices = 2 if args.quick else 3
    if 0 not in args.loads:
        args.loads = [0, *args.loads]     # the ratios need the idle median of the same run
    args.loads = list(dict.fromkeys(args.loads))     # one row per load: a repeated load would pair wrongly
    args.seconds = max(0.1, min(args.seconds, 120.0))
    args.pings = max(1, min(args.pings, 1000))
    args.interval = max(0.0, min(args.interval, 1.0))
    args.slices = max(1, min(args.slices, args.pings))
    args.runs = max(1, args.runs)

    command = (f"python3 bench/bench_fairness.py --seconds {args.seconds:g} --pings {args.pings} "
               f"--interval {args.interval:g} --loads {','.join(map(str, args.loads))} --slices {args.slices}"
               + (f" --runs {args.runs}" if args.runs > 1 else ""))

    ctx = mp.get_context("fork")
    stop, ready = ctx.Event(), ctx.Queue()
    # The pool is forked before the server and the console exist, so no worker holds their sockets.
    pool = ctx.Pool(max(1, max(args.loads)), initializer=_init_worker, initargs=(stop, ready))
    slices: dict[int, list[dict]] = {conns: [] for conns in args.loads}
    try:
        for run in range(args.runs):
            for conns, more in one_run(pool, stop, ready, args, run).items():
                slices[conns] += more
    finally:
        pool.terminate()
        pool.join()

    rows = [combine(slices[conns]) for conns in args.loads]
    idle = next(r for r in rows if r["conns"] == 0)
    for r in rows:
        print(f"summary: {r['conns']} connections: median {r['median']:.2f} ms, p95 {r['p95']:.2f} ms, "
              f"median/idle {ratio_to_idle(r, idle)}, target {verdict(r)}", flush=True)
    region = render(rows, args, command)
    print(region)
    report_region(args.report, START, END, region)
    return 0


if __name__ == "__main__":
    sys.exit(main())
