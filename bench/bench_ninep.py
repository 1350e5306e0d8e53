#!/usr/bin/env python3
"""NineDoor vs diod vs the Python floor over loopback TCP: same client, same run, ratios (issue 20).

Three servers run as subprocesses on 127.0.0.1 and are driven by the same client code:

* NineDoor — ``python3 -m root_task.host --no-serial --console-port 0 --9p-port P`` (host mode always
  offers the 9P listener); attach ``uname="queen"``, ``aname=<queen ticket>`` (secret ``bootstrap``);
* diod — ``/usr/sbin/diod -f -n -N -d 0 -L stderr -l 127.0.0.1:P -e DIR`` exporting a temp directory
  that holds ``proc/boot`` with the bytes NineDoor serves at ``/proc/boot``; attach ``uname="root"``,
  ``aname=DIR``;
* floor — ``bench/floor_9p.py``: epoll, recv, a canned reply, send and no protocol work; what ratio a
  Python server could reach at best (see its docstring). ``NineDoor ÷ floor`` is how much of it NineDoor keeps.

Workloads (each for ``--seconds`` per server and row, split into alternating slices so background load
hits all servers alike; sessions are processes, one connection each):

* one request in flight, ``nine_door.client.Client`` (a real Python client, as cohsh uses):
  ``walk_clunk`` (Twalk /proc/boot + Tclunk), ``walk`` (+ Tgetattr between), ``read`` (Twalk + Tlopen +
  Tread 4 KiB + Tclunk); one op = 2, 3 or 4 sequential round trips;
* pipelined ×16, raw client (requests encoded once, replies checked by header: type and tag, no decode):
  ``walk_p`` — 16 Twalk in one send, then their 16 replies, then 16 Tgetattr, then 16 Tclunk; no request
  of a burst depends on another of the same burst, so diod's thread pool may execute them concurrently;
  at 1, 4, 16 and 64 sessions: the sessions sweep and its cost-growth plot (``docs/plots/ninep_sessions.svg``).

One-session rows pin the server and the client to one CPU (in this VM a cross-core round trip costs ~4×
a same-core one, and which placement the scheduler picks flips results run to run); multi-session rows
pin nothing. Each cell reports, per server, the median slice's ops/s and server CPU per op (utime+stime
of the server process, all threads); each ratio is the median of the per-slice ratios (slice i of one
server against slice i of the other) with its min–max over all slices of all ``--runs``.

Usage: ``python3 bench/bench_ninep.py [--seconds S] [--runs R] [--quick] [--report docs/benchmarks.md]``
"""
from __future__ import annotations

import argparse
import datetime as _dt
import multiprocessing as mp
import os
import platform
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nine_door import codec, tickets  # noqa: E402
from nine_door import messages as m  # noqa: E402
from nine_door.client import Client, SocketStreamTransport  # noqa: E402
from bench_report import report_region  # noqa: E402
# fmt_ratio and slice_ratio live in bench_spread; imported here for this bench and re-exported for its callers
from bench_spread import fmt_ratio, slice_ratio  # noqa: E402,F401
from svg_plot import line_chart  # noqa: E402

START, END = "<!-- bench:ninep:start -->", "<!-- bench:ninep:end -->"
PLOT = "plots/ninep_sessions.svg"   # beside the report
DIOD = "/usr/sbin/diod"
PATH = ("proc", "boot")
READ_COUNT = 4096
DEPTH = 16                      # outstanding requests in the pipelined rows
LEAD_S = 0.08                   # workers connect/attach, then all start at the same instant
SLICES = 3                      # each cell: the servers alternate in 3 slices per run
SESSIONS = (1, 4, 16, 64)       # the sessions sweep
CLK_TCK = os.sysconf("SC_CLK_TCK")
ALL_CPUS = os.sched_getaffinity(0)
PEERS = ("NineDoor", "diod", "floor")

# (key, label, sessions, goal vs diod or None)
ONE_IN_FLIGHT = [
    ("walk_clunk", "walk+clunk", 1, 1.2),
    ("walk", "walk+getattr+clunk", 1, 1.2),
    ("read", "walk+lopen+read 4 KiB+clunk", 1, 1.2),
]
# The sessions sweep: pipelined ×DEPTH per session, so the rows measure the servers, not the client
# processes' wake-ups; its 1-session row is the "pipelined ×16" goal, its 4 and 16 the sessions goal.
SWEEP = [("walk_p", f"walk+getattr+clunk, pipelined ×{DEPTH}", n, {1: 4.0, 4: 2.0, 16: 2.0}.get(n))
         for n in SESSIONS]


# --- servers ------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {proc.args}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"port {port} never accepted")


def cpu_s(pid: int) -> float:
    """utime + stime of a whole process (all threads), seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def ninedoor_cmd(port: int) -> list[str]:
    return [sys.executable, "-m", "root_task.host", "--no-serial", "--console-port", "0",
            "--9p-port", str(port)]


def floor_cmd(port: int, data_file: str) -> list[str]:
    return [sys.executable, str(REPO / "bench" / "floor_9p.py"), "--port", str(port), "--file", data_file]


def diod_cmd(port: int, export: str) -> list[str]:
    return [DIOD, "-f", "-n", "-N", "-d", "0", "-L", "stderr", "-l", f"127.0.0.1:{port}",
            "-e", export]


# --- client side (runs in worker processes) -------------------------------------------------
def connect(target: dict) -> Client:
    sock = socket.create_connection(("127.0.0.1", target["port"]), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client = Client(SocketStreamTransport(sock))
    client.version(8192)
    client.attach(target["uname"], target["aname"])
    return client


def _batch(client: Client, requests: list) -> list:
    """Send all requests in one write, then read every reply; Rlerror/mismatch → error."""
    transport = client.transport
    transport.send(b"".join(codec.encode(r) for r in requests))
    replies = [codec.decode_reply(transport.recv()) for _ in requests]
    by_tag = {r.tag: r for r in replies}          # a concurrent server may answer out of order
    for req in requests:
        rep = by_tag.get(req.tag)
        if rep is None or isinstance(rep, m.Rlerror):
            raise RuntimeError(f"{type(req).__name__} tag {req.tag} failed: {rep}")
    return [by_tag[r.tag] for r in requests]


_HDR = struct.Struct("<IBH")


class RawBurst:
    """Requests encoded once and sent in one write; replies read and checked by header only.

    Why: in the pipelined and many-session rows the client's decode would otherwise be most of a round
    trip and hide the servers' difference. A reply must have the request's type + 1 and one of the
    burst's tags (any order: diod answers concurrently); anything else — Rlerror included — fails.
    Tags repeat from burst to burst, which 9P allows once a tag's reply has arrived."""

    def __init__(self, sock: socket.socket, requests: list, reply_size: int | None = None) -> None:
        self.sock = sock
        self.data = b"".join(codec.encode(r) for r in requests)
        self.want = {r.tag: codec.encode(r)[4] + 1 for r in requests}
        self.reply_size = reply_size            # every reply's exact frame size, when known (Rread)
        self._buf = b""

    def run(self) -> None:
        self.sock.sendall(self.data)
        want, buf, pos, seen = self.want, self._buf, 0, 0
        while seen < len(want):
            if len(buf) - pos < 7 or len(buf) - pos < _HDR.unpack_from(buf, pos)[0]:
                chunk = self.sock.recv(262144)
                if not chunk:
                    raise RuntimeError("server closed the connection")
                buf = buf[pos:] + chunk
                pos = 0
                continue
            size, mtype, tag = _HDR.unpack_from(buf, pos)
            if want.get(tag) != mtype:
                raise RuntimeError(f"reply type {mtype} for tag {tag}")
            if self.reply_size is not None and size != self.reply_size:
                raise RuntimeError(f"reply of {size} bytes for tag {tag}, expected {self.reply_size}")
            pos += size
            seen += 1
        self._buf = buf[pos:]


def pipelined_requests(root: int) -> list[list]:
    """One op of the pipelined rows: DEPTH Twalks from ``root``, then DEPTH Tgetattrs, then DEPTH Tclunks
    of the walked fids, each list one burst."""
    fids = range(100, 100 + DEPTH)
    return [[m.Twalk(i + 1, root, f, PATH) for i, f in enumerate(fids)],
            [m.Tgetattr(i + 1, f, m.GETATTR_BASIC) for i, f in enumerate(fids)],
            [m.Tclunk(i + 1, f) for i, f in enumerate(fids)]]


def _raw_bursts(client: Client, key: str) -> list[RawBurst]:
    """The bursts of one op of a raw workload, over the client's socket."""
    return [RawBurst(client.transport.sock, requests) for requests in pipelined_requests(client.root)]


def pin(pid: int, cpus: set[int]) -> None:
    """Set the affinity of every thread of ``pid`` (diod is multi-threaded)."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            os.sched_setaffinity(int(tid), cpus)
        except OSError:
            pass


def worker(target: dict, key: str, start_at: float, seconds: float, expect: int,
           cpus: set[int]) -> int:
    os.sched_setaffinity(0, cpus)
    client = connect(target)
    root = client.root
    end = start_at + seconds
    ops = 0
    bursts = _raw_bursts(client, key) if key == "walk_p" else None
    delay = start_at - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    if bursts is not None:
        while time.monotonic() < end:
            for burst in bursts:
                burst.run()
            ops += DEPTH
    elif key == "walk_clunk":
        while time.monotonic() < end:
            client.clunk(client.walk(root, PATH))
            ops += 1
    elif key == "walk":
        while time.monotonic() < end:
            fid = client.walk(root, PATH)
            client.getattr(fid)
            client.clunk(fid)
            ops += 1
    elif key == "read":
        while time.monotonic() < end:
            fid = client.walk(root, PATH)
            client.lopen(fid)
            if len(client.read(fid, 0, READ_COUNT)) != expect:
                raise RuntimeError("short read")
            client.clunk(fid)
            ops += 1
    else:
        raise ValueError(key)
    client.close()
    return ops


def measure(pool: mp.pool.Pool, target: dict, key: str, sessions: int, seconds: float,
            expect: int) -> tuple[float, int, float]:
    """One slice: (ops/s summed over sessions, ops, server CPU seconds)."""
    cpus = {min(ALL_CPUS)} if sessions == 1 else ALL_CPUS
    pin(target["pid"], cpus)
    start_at = time.monotonic() + LEAD_S + 0.002 * sessions
    pending = [pool.apply_async(worker, (target, key, start_at, seconds, expect, cpus))
               for _ in range(sessions)]
    time.sleep(max(0.0, start_at - time.monotonic()))
    cpu0 = cpu_s(target["pid"])
    ops = sum(p.get(timeout=seconds + 60) for p in pending)
    cpu1 = cpu_s(target["pid"])
    pin(target["pid"], ALL_CPUS)
    return ops / seconds, ops, cpu1 - cpu0


def measure_cell(pool, targets: dict, key: str, sessions: int, seconds: float, expect: int,
                 slices: int = SLICES) -> dict[str, list[tuple[float, int, float]]]:
    """The servers alternate over ``slices`` slices of seconds/slices each, so background load hits all
    alike; per server, its slices in order."""
    out: dict[str, list] = {name: [] for name in targets}
    for _ in range(slices):
        for name, target in targets.items():
            out[name].append(measure(pool, target, key, sessions, seconds / slices, expect))
    return out


# --- summary ------------------------------------------------------------------------------------
def summarize(cells: list[dict[str, list]]) -> dict:
    """Cells of one row from all runs → per server (median ops/s, CPU µs/op over all slices) and per
    pair the per-slice ratios' (median, min, max)."""
    slices: dict[str, list] = {}
    for cell in cells:
        for name, res in cell.items():
            slices.setdefault(name, []).extend(res)
    servers = {name: (statistics.median(r[0] for r in res),
                      sum(r[2] for r in res) / max(1, sum(r[1] for r in res)) * 1e6)
               for name, res in slices.items()}

    rates = {name: [r[0] for r in res] for name, res in slices.items()}
    return {"servers": servers, "nd_diod": slice_ratio(rates, "NineDoor", "diod"),
            "nd_floor": slice_ratio(rates, "NineDoor", "floor"), "floor_diod": slice_ratio(rates, "floor", "diod")}


# --- where one round trip's time goes (in-process, one thread) ------------------------------------
def round_trip_budget(rounds: int = 20000) -> dict[str, float]:
    """µs per request of walk+getattr+clunk, measured layer by layer in this process, no scheduler in
    between: the loopback socket calls alone (client send, server recv, server send, client recv: the
    syscall floor of any server), the same through NineDoor's event pump + 9P listener + session, the
    session alone (``Session.feed`` of the frame) and the codec's decode alone."""
    sys.path.insert(0, str(REPO / "bench"))
    from bench_telemetry import in_process_door
    from nine_door.tcp_listener import NinePListener
    from root_task.generated import bootstrap
    from root_task.pump import EventPump

    door = in_process_door()[0]
    pump = EventPump()
    listener = NinePListener(pump, door, "127.0.0.1", 0, audit=lambda line: None)
    listener.start()
    client = socket.create_connection(("127.0.0.1", listener.port))
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    pump.run_once(0.5)
    server_sock = next(iter(listener.conns.values())).sock
    session = next(iter(listener.conns.values())).session

    def round_trip(frame: bytes) -> bytes:
        client.sendall(frame)
        pump.run_once(1.0)
        return client.recv(65536)

    round_trip(codec.encode(m.Tversion(m.NOTAG, 8192, "9P2000.L")))
    round_trip(codec.encode(m.Tattach(1, 0, m.NOFID, "queen", tickets.mint(bootstrap.TICKET_SECRETS["queen"], "queen"), 0)))
    frames = [codec.encode(m.Twalk(2, 0, 5, PATH)), codec.encode(m.Tgetattr(3, 5, m.GETATTR_BASIC)),
              codec.encode(m.Tclunk(4, 5))]
    if any(round_trip(f)[4] == m.RLERROR for f in frames):
        raise RuntimeError("round-trip budget: a request failed")

    def per_request(step, items=frames, per_item: int = 1) -> float:
        """Best of 3 of µs per request of ``step`` over ``items`` (``per_item`` requests each)."""
        best = float("inf")
        loops = max(1, rounds // (3 * per_item))
        for _ in range(3):
            t0 = time.perf_counter()
            for _ in range(loops):
                for item in items:
                    step(item)
            best = min(best, (time.perf_counter() - t0) / loops / (len(items) * per_item) * 1e6)
        return best

    def sockets_only(frame: bytes) -> None:
        client.send(frame)
        server_sock.recv(65536)
        server_sock.send(frame)
        client.recv(65536)

    # The pipelined rows' protocol work alone: Session.feed of the bench's bursts (16 Twalk, then 16
    # Tgetattr, then 16 Tclunk), per request — what a server with NineDoor's checks cannot do without.
    bursts = [b"".join(codec.encode(r) for r in requests) for requests in pipelined_requests(0)]
    if any(reply[4] == m.RLERROR for b in bursts for reply in session.feed(b)):
        raise RuntimeError("round-trip budget: a pipelined request failed")

    result = {"sockets": per_request(sockets_only), "ninedoor": per_request(round_trip),
              "session": per_request(session.feed), "decode": per_request(codec.decode),
              "session_pipelined": per_request(session.feed, bursts, DEPTH)}
    client.close()
    pump.run_once(0.1)
    listener.stop()
    pump.close()
    return result


# --- report -------------------------------------------------------------------------------------
def codec_table() -> str:
    out = subprocess.run([sys.executable, str(REPO / "bench" / "bench_codec.py")],
                         capture_output=True, text=True, check=True).stdout
    return out.rstrip()


def goal_text(goal, summary) -> str:
    if goal is None or summary["nd_diod"] is None:
        return "—"
    met = "met" if summary["nd_diod"][0] >= goal else "not met"
    floor = summary["floor_diod"]
    reach = "" if floor is None or floor[0] >= goal else f"; the floor reaches {floor[0]:.2f}×"
    return f"≥ {goal:g}×: {met}{reach}"


def pipelined_headroom(rows, budget: dict) -> list[str]:
    """For each pipelined sessions goal the floor reaches and NineDoor does not: the server CPU per
    request the goal allows (one pump, one core), what the floor's CPU per request already takes without
    protocol work, and what is left for the protocol work against what the session's pipelined work
    costs in-process. Requests = 3 per op (walk, getattr, clunk)."""
    out = []
    for (key, _label, sessions, goal), summary in rows:
        sv = summary["servers"]
        if key != "walk_p" or goal is None or sessions == 1 or summary["nd_diod"] is None \
                or summary["nd_diod"][0] >= goal or "floor" not in sv or "diod" not in sv:
            continue
        allowed = 1e6 / (goal * sv["diod"][0] * 3)
        floor_cpu = sv["floor"][1] / 3
        left = allowed - floor_cpu
        work = budget["session_pipelined"]
        verdict = "more than is left" if work > left else "within what is left"
        out.append(f"{sessions} sessions: {goal:g}× diod allows {allowed:.2f} µs of server time per request "
                   f"on the pump's one core; the floor's CPU already takes {floor_cpu:.2f} µs of it without "
                   f"protocol work, which leaves {left:.2f} µs; NineDoor's protocol work on these bursts "
                   f"(`Session.feed`, in-process) costs {work:.2f} µs per request — {verdict}.")
    return out


def render(rows, args, codec_out: str, diod_version: str, budget: dict) -> str:
    date = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    lines = [
        START,
        f"9P over loopback TCP, NineDoor vs diod vs the Python floor, one invocation ({date}, "
        f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}, {diod_version}; "
        f"{args.runs} run(s) × {SLICES} alternating slices of {args.seconds / SLICES:.2g} s per server and "
        "row). ops/s: the median slice; ratio: the median of the per-slice ratios, (min–max) over all "
        "slices; CPU: utime+stime of the server process over all slices ÷ ops. One session: server and "
        "client pinned to one CPU; more: nothing pinned.",
        "",
        "| workload | client | sessions | NineDoor ops/s | diod ops/s | floor ops/s | NineDoor ÷ diod | "
        "floor ÷ diod | NineDoor ÷ floor | CPU µs/op NineDoor / diod / floor | goal |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (key, label, sessions, goal), summary in rows:
        sv = summary["servers"]
        ops = [f"{sv[name][0]:,.0f}" if name in sv else "n/a" for name in PEERS]
        cpu = " / ".join(f"{sv[name][1]:.0f}" if name in sv else "n/a" for name in PEERS)
        who = "raw" if key == "walk_p" else "Client"
        lines.append(f"| {label} | {who} | {sessions} | {' | '.join(ops)} | {fmt_ratio(summary['nd_diod'])} | "
                     f"{fmt_ratio(summary['floor_diod'])} | {fmt_ratio(summary['nd_floor'])} | {cpu} | "
                     f"{goal_text(goal, summary)} |")
    lines += [
        "",
        f"![ops/s against sessions, {DEPTH} requests in flight per session]({PLOT})",
        "",
        "Where one round trip's time goes (walk+getattr+clunk, in-process, one thread, no scheduler: "
        "`round_trip_budget` in the bench; µs per request, best of 3):",
        "",
        "| layer | µs/request |",
        "|---|---|",
        f"| loopback socket calls alone (client send, server recv + send, client recv) | {budget['sockets']:.1f} |",
        f"| the same through NineDoor (event pump, 9P listener, session) | {budget['ninedoor']:.1f} |",
        f"| of which `Session.feed` (checks, fid table, namespace, reply) | {budget['session']:.1f} |",
        f"| of which `codec.decode` | {budget['decode']:.1f} |",
        f"| pipelined: `Session.feed` of the ×{DEPTH} bursts, per request | {budget['session_pipelined']:.2f} |",
        "",
        *(line for text in pipelined_headroom(rows, budget) for line in (text, "")),
        f"NineDoor's Python costs {budget['ninedoor'] - budget['sockets']:.1f} µs per request on top of the "
        "socket calls. With a client and a server on one CPU, a round trip also pays two context switches "
        "and the client's own time; the floor server shows what is left when the Python is only epoll, "
        "recv, a header parse and send. What the rows mean, what was cut and the floor behind each unmet "
        "goal: docs/performance.md.",
        "",
        f"Commands: `python3 bench/bench_ninep.py --seconds {args.seconds:g} --runs {args.runs} --report "
        "docs/benchmarks.md`; it starts `python3 -m root_task.host --no-serial --console-port 0 --9p-port "
        "<port>` (attach `queen`, aname = queen ticket), `/usr/sbin/diod -f -n -N -d 0 -L stderr -l "
        "127.0.0.1:<port> -e <tmpdir>` (`<tmpdir>/proc/boot` holds NineDoor's `/proc/boot` bytes; attach "
        "`root`, aname `<tmpdir>`) and `python3 bench/floor_9p.py --port <port> --file <tmpdir>/proc/boot`.",
        "",
        "Codec (`python3 bench/bench_codec.py`, same run):",
        "",
        "```",
        codec_out,
        "```",
        END,
    ]
    return "\n".join(lines)


def plot(rows) -> str:
    """ops/s against sessions for each server: where the curve flattens, the server is saturated."""
    sweep = [(sessions, summary) for (key, _l, sessions, _g), summary in rows if key == "walk_p"]
    xs = [n for n, _ in sweep]
    series = {name: [summary["servers"][name][0] for _, summary in sweep]
              for name in PEERS if all(name in summary["servers"] for _, summary in sweep)}
    return line_chart(f"walk+getattr+clunk ops/s vs sessions (×{DEPTH} pipelined)", "sessions (log scale)",
                      "ops/s", xs, series)


# --- main ---------------------------------------------------------------------------------------
def start_servers(tmp: str, no_diod: bool) -> tuple[dict, list[subprocess.Popen], int, str]:
    """NineDoor, then (with /proc/boot's bytes) diod and the floor; returns the targets, the processes,
    the expected read length and diod's version text."""
    procs: list[subprocess.Popen] = []

    def spawn(cmd, cwd=None) -> tuple[subprocess.Popen, int]:
        port = free_port()
        proc = subprocess.Popen(cmd(port), cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        procs.append(proc)
        wait_port(port, proc)
        return proc, port

    nd, port = spawn(ninedoor_cmd, cwd=REPO)
    targets = {"NineDoor": {"port": port, "pid": nd.pid, "uname": "queen",
                            "aname": tickets.mint("bootstrap", "queen")}}
    probe = connect(targets["NineDoor"])
    boot = probe.read_all("/proc/boot")
    probe.close()
    os.makedirs(os.path.join(tmp, "proc"))
    boot_file = os.path.join(tmp, "proc", "boot")
    with open(boot_file, "wb") as f:
        f.write(boot)
    diod_version = "diod not run"
    if not no_diod and os.path.exists(DIOD):
        dd, dport = spawn(lambda p: diod_cmd(p, tmp))
        targets["diod"] = {"port": dport, "pid": dd.pid, "uname": "root", "aname": tmp}
        ver = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "diod"], capture_output=True, text=True)
        diod_version = f"diod {ver.stdout.strip() or '(unknown version)'}"
    fl, fport = spawn(lambda p: floor_cmd(p, boot_file))
    targets["floor"] = {"port": fport, "pid": fl.pid, "uname": "floor", "aname": ""}
    return targets, procs, min(len(boot), READ_COUNT), diod_version


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="measuring window per cell, server and run")
    parser.add_argument("--runs", type=int, default=4, help="repeat every row this many times (fresh order; default 4)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 0.3 s cells, one run")
    parser.add_argument("--report", type=Path, help="rewrite the bench:ninep region of this file")
    parser.add_argument("--no-diod", action="store_true", help="measure NineDoor and the floor only")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.runs = 0.3, 1
    workloads = ONE_IN_FLIGHT + SWEEP
    cells: list[list[dict]] = [[] for _ in workloads]
    tmp = tempfile.mkdtemp(prefix="bench-ninep-")
    procs: list[subprocess.Popen] = []
    try:
        targets, procs, expect, diod_version = start_servers(tmp, args.no_diod)
        with mp.get_context("fork").Pool(max(SESSIONS)) as pool:
            for run in range(args.runs):
                for index, (key, label, sessions, _goal) in enumerate(workloads):
                    cells[index].append(measure_cell(pool, targets, key, sessions, args.seconds, expect))
                    summary = summarize(cells[index][-1:])
                    sv = summary["servers"]
                    print(f"run {run + 1} {label:<42}{sessions:>3}  "
                          + "  ".join(f"{name} {sv[name][0]:>9,.0f} ops/s ({sv[name][1]:.0f} us)"
                                      for name in PEERS if name in sv)
                          + f"  nd/diod {fmt_ratio(summary['nd_diod'])}", flush=True)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)

    rows = [(workload, summarize(cell)) for workload, cell in zip(workloads, cells)]
    budget = round_trip_budget(3000 if args.quick else 30000)
    codec_out = codec_table()
    region = render(rows, args, codec_out, diod_version, budget)
    print(region)
    report_region(args.report, START, END, region)
    if args.report is not None:
        target = (args.report if args.report.is_absolute() else Path.cwd() / args.report).parent / PLOT
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(plot(rows))
        print(f"plot written to {target}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
