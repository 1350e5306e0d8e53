#!/usr/bin/env python3
"""NineDoor vs diod (Debian) over loopback TCP: same client, same run, ratios (issue: 9P bench).

Both servers run as subprocesses on 127.0.0.1 and are driven by the SAME client code,
``nine_door.client.Client`` over ``SocketStreamTransport``:

* NineDoor — ``python3 -m root_task.host --no-serial --console-port 0 --9p-port P`` (host mode always
  offers the 9P listener); attach ``uname="queen"``, ``aname=<queen ticket>`` (secret ``bootstrap``);
* diod — ``/usr/sbin/diod -f -n -N -d 0 -L stderr -l 127.0.0.1:P -e DIR`` exporting a temp directory
  that holds ``proc/boot`` with the bytes NineDoor serves at ``/proc/boot``; attach ``uname="root"``,
  ``aname=DIR``.

Workloads (each for ``--seconds`` per server and row, split into alternating NineDoor/diod slices so
background load hits both alike; the best slice's ops/s is reported; sessions are processes, one
connection each):

* ``walk``  — Twalk root→["proc","boot"] + Tgetattr + Tclunk (one op = 3 round trips sequentially);
* ``read``  — Twalk + Tlopen + Tread 4 KiB + Tclunk of ``/proc/boot`` (one op = 4 round trips);
* ``×8`` pipelined variants — the same ops, 8 at a time on 8 fids, phase by phase: 8 Twalk in one
  send, then the 8 replies, then 8 Tgetattr (or Tlopen, Tread), then 8 Tclunk. No request in a batch
  depends on another of the same batch, so a server that executes one connection's requests
  concurrently (diod's thread pool) is measured fairly too.

Also records server CPU per op (utime+stime of the server process over the window, all threads), and
runs bench/bench_codec.py for the codec table. ``--report`` rewrites the bench:ninep region of
docs/benchmarks.md (creating the file if missing).

Usage: ``python3 bench/bench_ninep.py [--seconds S] [--report docs/benchmarks.md]``
"""
from __future__ import annotations

import argparse
import datetime as _dt
import multiprocessing as mp
import os
import platform
import shutil
import socket
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

START, END = "<!-- bench:ninep:start -->", "<!-- bench:ninep:end -->"
DIOD = "/usr/sbin/diod"
PATH = ("proc", "boot")
READ_COUNT = 4096
DEPTH = 8                       # outstanding requests in the pipelined variants
LEAD_S = 0.08                   # workers connect/attach, then all start at the same instant
SLICES = 3                      # each cell: NineDoor and diod alternate in 3 slices; best slice wins
CLK_TCK = os.sysconf("SC_CLK_TCK")
ALL_CPUS = os.sched_getaffinity(0)

WORKLOADS = [  # (key, label, sessions)
    ("walk", "walk+getattr+clunk", 1),
    ("walk", "walk+getattr+clunk", 4),
    ("read", "walk+lopen+read 4 KiB+clunk", 1),
    ("read", "walk+lopen+read 4 KiB+clunk", 4),
    ("walk_p", f"walk+getattr+clunk, pipelined ×{DEPTH}", 1),
    ("walk_p", f"walk+getattr+clunk, pipelined ×{DEPTH}", 4),
    ("read_p", f"walk+lopen+read+clunk, pipelined ×{DEPTH}", 1),
    ("read_p", f"walk+lopen+read+clunk, pipelined ×{DEPTH}", 4),
]


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
    delay = start_at - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    if key == "walk":
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
        fids = list(range(100, 100 + DEPTH))
        tag = client.next_tag
        while time.monotonic() < end:
            _batch(client, [m.Twalk(tag(), root, f, PATH) for f in fids])
            if key == "walk_p":
                _batch(client, [m.Tgetattr(tag(), f, m.GETATTR_BASIC) for f in fids])
            else:
                _batch(client, [m.Tlopen(tag(), f, m.O_RDONLY) for f in fids])
                for rep in _batch(client, [m.Tread(tag(), f, 0, READ_COUNT) for f in fids]):
                    if len(rep.data) != expect:
                        raise RuntimeError("short read")
            _batch(client, [m.Tclunk(tag(), f) for f in fids])
            ops += DEPTH
    client.close()
    return ops


def measure(pool: mp.pool.Pool, target: dict, key: str, sessions: int, seconds: float,
            expect: int) -> tuple[float, int, float]:
    """One slice: (ops/s summed over sessions, ops, server CPU seconds)."""
    # One session: client and server share one CPU. In a VM a cross-core round trip pays an idle
    # wake-up (~4x slower here), and which placement the scheduler picks flips run to run.
    cpus = {min(ALL_CPUS)} if sessions == 1 else ALL_CPUS
    pin(target["pid"], cpus)
    start_at = time.monotonic() + LEAD_S
    pending = [pool.apply_async(worker, (target, key, start_at, seconds, expect, cpus))
               for _ in range(sessions)]
    time.sleep(max(0.0, start_at - time.monotonic()))
    cpu0 = cpu_s(target["pid"])
    ops = sum(p.get(timeout=seconds + 30) for p in pending)
    cpu1 = cpu_s(target["pid"])
    pin(target["pid"], ALL_CPUS)
    return ops / seconds, ops, cpu1 - cpu0


def measure_cell(pool, targets: dict, key: str, sessions: int, seconds: float,
                 expect: int) -> dict:
    """Alternate the servers over SLICES slices of seconds/SLICES each, so background load hits
    both alike; per server: (best slice ops/s, server CPU µs/op over all slices)."""
    slices = {name: [] for name in targets}
    for _ in range(SLICES):
        for name, target in targets.items():
            slices[name].append(measure(pool, target, key, sessions, seconds / SLICES, expect))
    return {name: (max(r[0] for r in res),
                   sum(r[2] for r in res) / max(1, sum(r[1] for r in res)) * 1e6)
            for name, res in slices.items()}


# --- report -------------------------------------------------------------------------------------
def codec_table() -> str:
    out = subprocess.run([sys.executable, str(REPO / "bench" / "bench_codec.py")],
                         capture_output=True, text=True, check=True).stdout
    return out.rstrip()


def render(rows, seconds: float, codec_out: str, diod_version: str) -> str:
    date = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    lines = [
        START,
        f"9P over loopback TCP, NineDoor vs diod, one run ({date}, {os.cpu_count()} cores, "
        f"{platform.machine()}, Python {platform.python_version()}, {diod_version}; "
        f"{seconds:g} s per cell and server, as {SLICES} alternating slices, best slice shown; "
        "server CPU = utime+stime of the server process over all slices ÷ ops; client: `nine_door.client.Client` over `SocketStreamTransport`, "
        "one process per session; with 1 session the server and the client are pinned to one CPU, "
        "with 4 nothing is pinned):",
        "",
        "| workload | sessions | NineDoor ops/s | diod ops/s | NineDoor/diod | "
        "NineDoor CPU µs/op | diod CPU µs/op |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, sessions, nd, dd in rows:
        ratio = f"{nd[0] / dd[0]:.2f}×" if dd else "n/a"
        dd_ops = f"{dd[0]:,.0f}" if dd else "n/a"
        dd_cpu = f"{dd[1]:.0f}" if dd else "n/a"
        lines.append(f"| {label} | {sessions} | {nd[0]:,.0f} | {dd_ops} | {ratio} | "
                     f"{nd[1]:.0f} | {dd_cpu} |")
    lines += [
        "",
        f"Commands: `python3 bench/bench_ninep.py --seconds {seconds:g} --report docs/benchmarks.md`; "
        "it starts `python3 -m root_task.host --no-serial --console-port 0 --9p-port <port>` (attach "
        "`queen`, aname = queen ticket) and `/usr/sbin/diod -f -n -N -d 0 -L stderr -l "
        "127.0.0.1:<port> -e <tmpdir>` (`<tmpdir>/proc/boot` holds NineDoor's `/proc/boot` bytes; "
        "attach `root`, aname `<tmpdir>`).",
        "",
        "Codec (`python3 bench/bench_codec.py`, same run):",
        "",
        "```",
        codec_out,
        "```",
        "",
        "How to read this. A ratio is NineDoor ops/s ÷ diod ops/s on the same client in the same run; "
        "the client is pure Python, so both columns include the same client cost, which compresses "
        "the ratio towards 1 whenever the client, not the server, is the bottleneck. The CPU "
        "columns show the server-side cost per op directly: NineDoor is one CPython thread doing "
        "decode → checks (roles, walk depth, fid table) → encode per request, while diod is C with a "
        "worker-thread pool doing real lstat/open/pread syscalls. Pipelining helps NineDoor most "
        "because its per-syscall and per-wakeup overhead is paid once per batch (it executes the "
        "frames of one TCP read in order and sends the replies in one write: three syscalls per "
        "batch, epoll_wait, recv and send; under strace diod also reads a batch at once but writes "
        "each reply separately and makes ~60 futex calls per batch handing requests between "
        "threads). The frames of one read are admitted against `secure9p.tags_per_session` (32 in the "
        "shipped IR; a schema 1.0 IR's window of 1 refuses every frame of a burst but the first, §3.12), "
        "and on the in-VM message channel a multi-frame message is EBUSY unless `batch_frames` is "
        "enabled. With 4 sessions the client processes and "
        f"the server share the machine's {os.cpu_count()} cores, so those rows measure a "
        "CPU-saturated host, not server scaling alone; 1-session rows are pinned to one CPU because "
        "in this VM a cross-core round trip costs ~4× a same-core one (idle wake-up), which otherwise "
        "flips results run to run. On one CPU the client's time adds to both servers' round trips, "
        "so a 1-session ratio moves less than the CPU columns do.",
        "",
        "The server's hot path (issue #4, item 5). Before the changes below the 1-session pipelined "
        "rows were 0.70× and 0.79× (33 and 36 µs of server CPU per op); a profile of that workload "
        "showed about 20 µs/op of Python in decode → checks → dispatch → encode and the rest in the "
        "event loop and the three syscalls per batch. What changed, all without changing a reply: "
        "handlers build their reply frames with `codec.encode_r*` (the same builders `codec.encode` "
        "uses for the R dataclasses) instead of constructing a frozen reply dataclass (0.3–2 µs "
        "each, 2 µs for Rgetattr) and looking up a generic encoder; nodes keep their packed 13-byte "
        "qid, repacked only when the version changes; dispatch is one dict lookup by message class, "
        "and the revoked / un-negotiated / worker-budget gates are one test for a negotiated queen "
        "session; each session memoizes complete walks (the same few paths are walked over and "
        "over), and the memo is dropped whenever the tree, the session's mount table or its "
        "identity changes, so a walk still sees kills, binds and re-attaches at once; `/proc/boot` "
        "renders its fixed lines once (Tgetattr renders the file for its size); the stream reader "
        "slices frames out of the received bytes with one copy; the TCP listener sends the joined "
        "replies straight from that buffer and queues only what the socket does not take. Decode "
        "still produces typed request dataclasses and is exactly as strict.",
        END,
    ]
    return "\n".join(lines)


# --- main ---------------------------------------------------------------------------------------
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="measuring window per cell")
    parser.add_argument("--report", type=Path, help="rewrite the bench:ninep region of this file")
    parser.add_argument("--no-diod", action="store_true", help="measure NineDoor only")
    args = parser.parse_args(argv)

    procs: list[subprocess.Popen] = []
    tmp = tempfile.mkdtemp(prefix="bench-ninep-")
    try:
        port = free_port()
        nd = subprocess.Popen(ninedoor_cmd(port), cwd=REPO, stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(nd)
        wait_port(port, nd)
        targets = {"NineDoor": {"port": port, "pid": nd.pid, "uname": "queen",
                                "aname": tickets.mint("bootstrap", "queen")}}
        probe = connect(targets["NineDoor"])
        boot = probe.read_all("/proc/boot")
        probe.close()
        expect = min(len(boot), READ_COUNT)

        diod_version = "diod not run"
        if not args.no_diod and os.path.exists(DIOD):
            os.makedirs(os.path.join(tmp, "proc"))
            with open(os.path.join(tmp, "proc", "boot"), "wb") as f:
                f.write(boot)
            dport = free_port()
            dd = subprocess.Popen(diod_cmd(dport, tmp), stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs.append(dd)
            wait_port(dport, dd)
            targets["diod"] = {"port": dport, "pid": dd.pid, "uname": "root", "aname": tmp}
            ver = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "diod"],
                                 capture_output=True, text=True)
            diod_version = f"diod {ver.stdout.strip() or '(unknown version)'}"

        rows = []
        with mp.get_context("fork").Pool(4) as pool:
            for key, label, sessions in WORKLOADS:
                res = measure_cell(pool, targets, key, sessions, args.seconds, expect)
                nd_r, dd_r = res["NineDoor"], res.get("diod")
                rows.append((label, sessions, nd_r, dd_r))
                ratio = f"{nd_r[0] / dd_r[0]:.2f}x" if dd_r else "n/a"
                print(f"{label:<44}{sessions:>2}  NineDoor {nd_r[0]:>9,.0f} ops/s "
                      f"({nd_r[1]:.0f} us cpu/op)  diod "
                      f"{(f'{dd_r[0]:>9,.0f} ops/s ({dd_r[1]:.0f} us cpu/op)') if dd_r else 'n/a'}"
                      f"  ratio {ratio}", flush=True)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)

    codec_out = codec_table()
    print(codec_out)
    region = render(rows, args.seconds, codec_out, diod_version)
    print(region)
    report_region(args.report, START, END, region)
    return 0


if __name__ == "__main__":
    sys.exit(main())
