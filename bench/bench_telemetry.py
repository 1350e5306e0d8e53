#!/usr/bin/env python3
"""Telemetry data plane: ring appends vs diod, ingest latency under 64 heartbeats, memory per idle ring.

Issue 13, acceptance item 5. Three measurements in one run, each reported against a peer or a floor
measured in the same run; nothing here asserts a timing (goals are reported as met / not met):

1. **Pipelined appends.** The same client code — ``nine_door.client.Client`` over
   ``SocketStreamTransport`` (``bench_ninep.connect``) plus raw Twrite frames built with
   ``nine_door.codec`` / ``nine_door.messages``, ``--depth`` Twrites in one send, then their replies
   (bench_ninep's pipelined pattern) — appends the same CBOR Frame v1 records (``nine_door.frame_v1``:
   same size, same count per Twrite) to

   * NineDoor in host mode (``python3 -m root_task.host --no-serial --console-port 0 --9p-port P``, the
     shipped IR: schema 1.2, ``cbor_v1`` rings of 65536 bytes), attached as ``queen`` with a queen
     ticket, into ``/worker/<id>/telemetry`` of a heartbeat worker it spawned. The queen is its own
     writer with a strictly increasing ``seq`` (SPEC §7.1: a resent ``seq`` would be a duplicate and
     store nothing). The ring is unarmed, so it wraps and never pushes back;
   * diod (``/usr/sbin/diod -f -n -N -d 0 -L stderr -l 127.0.0.1:P -e DIR``), Tlopen
     ``O_WRONLY|O_APPEND`` on an empty file of the exported directory (diod honours O_APPEND: the
     offset is ignored and every write lands at the end).

   NineDoor and diod alternate in ``SLICES`` slices; the best slice's records/s is reported with the
   ratio NineDoor ÷ diod (goal ≥ 1.5×) and the server CPU per record (utime+stime of the server
   process, all threads, over all slices). As in bench_ninep's 1-session rows, the client and the
   server under test are pinned to one CPU. Checks: the ring's cursor file says ``next`` moved by at
   least the number of records sent, and the diod file is exactly records × record size bytes. Where
   NineDoor's time goes is measured in-process in the same run: ``Session.feed`` of the same pipelined
   Twrites, ``frame_v1.split_frames`` of the same records alone, and a same-size ``/log/queen.log`` append.
2. **Ingest latency.** A fresh host-mode server per load spawns ``N`` heartbeat workers through
   ``/queen/ctl`` (real Python processes, one CBOR heartbeat a second each, over their in-VM-style
   channels), waits until ``/proc/9p/sessions`` shows ``worker=N``, lets the 256-sample window fill with
   steady-state writes, then samples ``/proc/ingest/p50_ms`` and ``/proc/ingest/p95_ms``; a sample is
   *steady* when at least 256 heartbeats were stored after the last worker attached. Loads: 1 worker
   (the floor; its window also holds the server's first telemetry write, measured alone) and 64 (goal:
   p95 ≤ 2 ms, judged on the worst steady sample). Afterwards the queen times a few one-record Twrites
   of its own over TCP (client-observed round trip, an upper bound of the server's figure), then kills
   the workers through ``/queen/ctl``.
3. **Memory per idle ring.** In-process: ``NineDoor`` from the shipped configuration
   (``root_task.generated.bootstrap``) with ``NullLauncher`` (starts nothing), a console-bridge queen
   session through ``InProcessTransport``; spawning ``--workers`` heartbeat workers through
   ``/queen/ctl`` is measured with ``tracemalloc`` (bytes still allocated after ``gc.collect()``, per
   worker: directory, ring, cursor node, worker record, the spawn's log line). The same is measured for a
   few rings written until they wrap, to show what a ring costs once it holds data.

Usage: ``python3 bench/bench_telemetry.py [--quick] [--seconds S] [--report docs/benchmarks.md]``
(``--report`` rewrites the bench:telemetry region of that file, appending it if missing.)
"""
from __future__ import annotations

import argparse
import datetime as _dt
import gc
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

from bench_fairness import percentile  # noqa: E402
from bench_report import report_region  # noqa: E402
from bench_ninep import (ALL_CPUS, DIOD, _batch, connect, cpu_s, diod_cmd, floor_cmd,  # noqa: E402
                         free_port, ninedoor_cmd, pin, wait_port)
from bench_spread import fmt_ratio, slice_ratio  # noqa: E402
from nine_door import frame_v1, tickets  # noqa: E402
from nine_door import messages as m  # noqa: E402

START, END = "<!-- bench:telemetry:start -->", "<!-- bench:telemetry:end -->"
QUEEN_SECRET = "bootstrap"          # configs/root_task.toml queen ticket secret
SLICES = 3                          # part 1: NineDoor and diod alternate; best slice shown
SEQ0 = 1 << 16                      # first queen seq: seq stays a 5-byte CBOR head up to 2^32 (fixed size)
TS = 1_700_000_000_000              # fixed producer time (a 9-byte head, like any real now_ms)
PAYLOAD = b"bench-telemetry record"  # kind 0: UTF-8 text
APPEND_GOAL = 1.5                   # issue 13: ring appends ≥ 1.5× diod
P95_GOAL_MS = 2.0                   # issue 13: p95 ≤ 2 ms with 64 heartbeat workers (host run mode)
MAX_WRITES_PER_SLICE = 2_000_000    # count bound of one slice (the time bound ends it long before)
SPAWN_TICKS = 100_000               # heartbeat worker budget (one tick per heartbeat)
READY_TIMEOUT_S = 90.0              # all workers of a load attached within this
LATENCY_WINDOW = 256                # §12: p50/p95 over the last 256 telemetry writes
PROBE_INTERVAL_S = 0.02            # part 2: between the queen's round-trip probes
STOP_TIMEOUT_S = 15.0               # server (and its workers) gone within this of SIGTERM


# --- records ------------------------------------------------------------------------------------
class Records:
    """Frame v1 items of one fixed size with strictly increasing ``seq``: the encoded template with the
    4-byte big-endian ``seq`` patched in (checked against ``frame_v1.encode`` at construction)."""

    def __init__(self, seq0: int = SEQ0) -> None:
        template = frame_v1.encode(frame_v1.Frame(seq=seq0, ts=TS, kind=frame_v1.KIND_TEXT, payload=PAYLOAD))
        head = b"\x63seq\x1a" + seq0.to_bytes(4, "big")
        at = template.index(head) + 5
        self.prefix, self.suffix = template[:at], template[at + 4:]
        self.size = len(template)
        self.next_seq = seq0
        for seq in (seq0, seq0 + 1, (1 << 32) - 1):
            assert self.make(seq) == frame_v1.encode(
                frame_v1.Frame(seq=seq, ts=TS, kind=frame_v1.KIND_TEXT, payload=PAYLOAD)), seq

    def make(self, seq: int) -> bytes:
        return self.prefix + seq.to_bytes(4, "big") + self.suffix

    def take(self, count: int) -> bytes:
        seq = self.next_seq
        self.next_seq += count
        if self.next_seq >= 1 << 32:
            raise RuntimeError("seq left the 5-byte range")
        return b"".join([self.prefix + s.to_bytes(4, "big") + self.suffix for s in range(seq, seq + count)])


# --- processes ----------------------------------------------------------------------------------
class Server:
    """A server subprocess whose stderr goes to a temporary file (its tail is printed on failure)."""

    def __init__(self, name: str, cmd: list[str], port: int) -> None:
        self.name = name
        self.port = port
        self.errlog = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(cmd, cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=self.errlog)
        self.pid = self.proc.pid

    def wait_ready(self) -> None:
        wait_port(self.port, self.proc, timeout=30.0)

    def stderr_tail(self) -> str:
        self.errlog.seek(0)
        return self.errlog.read()[-3000:].decode(errors="replace")

    def stop(self) -> None:
        """SIGTERM (host mode then stops its workers), SIGKILL after STOP_TIMEOUT_S; then any child
        process the server left behind (same pid and start time as seen before) is killed by pid."""
        kids = children(self.pid)
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        deadline = time.monotonic() + 5.0
        left = [k for k in kids if alive(*k)]
        while left and time.monotonic() < deadline:
            time.sleep(0.1)
            left = [k for k in kids if alive(*k)]
        for pid, start in left:
            if alive(pid, start):
                try:
                    os.kill(pid, 9)
                except OSError:
                    pass
        if left:
            print(f"{self.name}: killed {len(left)} leftover worker process(es)", flush=True)
        self.errlog.close()


def _stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def children(pid: int) -> list[tuple[int, str]]:
    """(pid, start time) of the direct children of ``pid``."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields is not None and int(fields[1]) == pid:
                out.append((int(entry), fields[19]))
    return out


def alive(pid: int, start: str) -> bool:
    fields = _stat(pid)
    return fields is not None and fields[19] == start and fields[0] != "Z"


def start_floor(data_file: str, servers: list[Server]):
    """The Python floor (bench/floor_9p.py) serving ``data_file``, added to ``servers`` (stopped with
    them), and a client attached to it."""
    port = free_port()
    floor = Server("floor", floor_cmd(port, data_file), port)
    servers.append(floor)
    floor.wait_ready()
    return floor, connect({"port": port, "uname": "floor", "aname": ""})


def start_ninedoor(name: str) -> Server:
    port = free_port()
    server = Server(name, ninedoor_cmd(port), port)
    server.wait_ready()
    return server


def queen_client(server: Server):
    return connect({"port": server.port, "uname": "queen", "aname": tickets.mint(QUEEN_SECRET, "queen")})


def text(client, path: str) -> str:
    return client.read_all(path).decode()


def field(line: str, key: str) -> str:
    found = re.search(rf"(?:^|\s){re.escape(key)}=(\S+)", line)
    if not found:
        raise RuntimeError(f"no {key}= in {line!r}")
    return found.group(1)


def ctl(client, lines: list[dict]) -> None:
    data = "".join(json.dumps(obj, separators=(",", ":")) + "\n" for obj in lines).encode()
    done = client.append("/queen/ctl", data)
    if done != len(data):
        raise RuntimeError(f"/queen/ctl took {done} of {len(data)} bytes")


def worker_ids(client) -> list[str]:
    names = [n for n in client.listdir("/worker") if n.startswith("worker-")]
    return sorted(names, key=lambda n: int(n.split("-", 1)[1]))


def wait_sessions(client, workers: int, timeout: float) -> float:
    t0 = time.monotonic()
    deadline = t0 + timeout
    line = ""
    while time.monotonic() < deadline:
        line = text(client, "/proc/9p/sessions")
        if int(field(line, "worker")) == workers:
            return time.monotonic() - t0
        time.sleep(0.1)
    raise TimeoutError(f"waited {timeout:g} s for worker={workers}; last: {line.strip()!r}")


# --- part 1: pipelined appends --------------------------------------------------------------------
def append_slice(client, fid: int, records: Records, per_write: int, depth: int, seconds: float,
                 pid: int) -> tuple[int, float, float]:
    """Pipelined Twrites of ``per_write`` records each, ``depth`` per send, for ``seconds``; returns
    (records, elapsed s, server CPU s). Every Rwrite must count the whole Twrite."""
    tag = client.next_tag
    expect = per_write * records.size
    writes = 0
    cpu0 = cpu_s(pid)
    t0 = time.monotonic()
    end = t0 + seconds
    while time.monotonic() < end and writes < MAX_WRITES_PER_SLICE:
        batch = [m.Twrite(tag(), fid, 0, records.take(per_write)) for _ in range(depth)]
        for reply in _batch(client, batch):
            if reply.count != expect:
                raise RuntimeError(f"Rwrite count {reply.count}, expected {expect}")
        writes += depth
    elapsed = time.monotonic() - t0
    return writes * per_write, elapsed, cpu_s(pid) - cpu0


def part_appends(args, tmp: str) -> dict:
    servers: list[Server] = []
    clients = []
    try:
        nd = start_ninedoor("NineDoor")
        servers.append(nd)
        queen = queen_client(nd)
        clients.append(queen)
        boot = text(queen, "/proc/boot")
        window = int(field(next(l for l in boot.splitlines() if l.startswith("secure9p ")), "tags_per_session"))
        schema = field(next(l for l in boot.splitlines() if l.startswith("telemetry ")), "frame_schema")
        capacity = int(field(next(l for l in boot.splitlines() if l.startswith("telemetry ")),
                             "ring_bytes_per_worker"))
        if schema != "cbor_v1":
            raise RuntimeError(f"the shipped IR's frame_schema is {schema}, not cbor_v1")
        depth = min(args.depth, window)
        ctl(queen, [{"spawn": "heartbeat", "ticks": SPAWN_TICKS}])
        wid = worker_ids(queen)[-1]
        ring_fid = queen.open(f"/worker/{wid}/telemetry", m.O_WRONLY | m.O_APPEND)
        cursor0 = text(queen, f"/worker/{wid}/cursor").strip()
        print(f"part 1: NineDoor pid {nd.pid} port {nd.port}: tags_per_session={window} (depth {depth}), "
              f"frame_schema={schema}, ring {capacity} bytes, appending to /worker/{wid}/telemetry "
              f"({cursor0})", flush=True)

        targets = {"NineDoor": (nd, queen, ring_fid)}
        diod_version = "diod not run"
        if not args.no_diod and os.path.exists(DIOD):
            export = os.path.join(tmp, "export")
            os.makedirs(export)
            sink = os.path.join(export, "telemetry.cbor")
            open(sink, "wb").close()
            port = free_port()
            dd = Server("diod", diod_cmd(port, export), port)
            servers.append(dd)
            dd.wait_ready()
            dclient = connect({"port": port, "uname": "root", "aname": export})
            clients.append(dclient)
            dfid = dclient.open("/telemetry.cbor", m.O_WRONLY | m.O_APPEND)
            targets["diod"] = (dd, dclient, dfid)
            ver = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "diod"], capture_output=True, text=True)
            diod_version = f"diod {ver.stdout.strip() or '(unknown version)'}"
            print(f"part 1: diod pid {dd.pid} port {port}: appending to an empty exported file (O_APPEND)",
                  flush=True)

        floor, fclient = start_floor(os.devnull, servers)
        clients.append(fclient)
        targets["floor"] = (floor, fclient, fclient.open("/telemetry.cbor", m.O_WRONLY | m.O_APPEND))

        records = {name: Records() for name in targets}   # separate seq streams, same sizes
        size = records["NineDoor"].size
        rows = []
        totals = {name: 0 for name in targets}
        me = os.sched_getaffinity(0)
        one = ALL_CPUS if args.no_pin else {min(ALL_CPUS)}
        try:
            os.sched_setaffinity(0, one)
            for per_write in args.per_write:
                if per_write * size > 8192 - m.IOHDRSZ:
                    raise RuntimeError(f"{per_write} records of {size} bytes exceed one Twrite")
                best = {name: 0.0 for name in targets}
                slices = {name: [] for name in targets}
                cell_cpu = {name: [0.0, 0] for name in targets}
                for _ in range(SLICES):
                    for name, (server, client, fid) in targets.items():
                        pin(server.pid, one)
                        try:
                            n, elapsed, used = append_slice(client, fid, records[name], per_write, depth,
                                                            args.seconds / SLICES, server.pid)
                        finally:
                            pin(server.pid, ALL_CPUS)
                        best[name] = max(best[name], n / elapsed)
                        slices[name].append(n / elapsed)
                        cell_cpu[name][0] += used
                        cell_cpu[name][1] += n
                        totals[name] += n
                row = {"per_write": per_write, "depth": depth, "slices": slices,
                       "rate": best, "cpu_us": {k: v[0] / max(1, v[1]) * 1e6 for k, v in cell_cpu.items()}}
                rows.append(row)
                ratio = slice_ratio(slices, "NineDoor", "diod")
                print(f"part 1: {per_write} record(s) of {size} B per Twrite, {depth} in flight: "
                      + "  ".join(f"{k} {best[k]:,.0f} records/s ({row['cpu_us'][k]:.1f} us cpu/record)"
                                  for k in targets)
                      + (f"  ratio {fmt_ratio(ratio)}" if ratio is not None else ""), flush=True)
        finally:
            os.sched_setaffinity(0, me)

        cursor = text(queen, f"/worker/{wid}/cursor").strip()
        dropped = text(queen, "/proc/ingest/dropped").strip()
        next_rseq = int(field(cursor, "next"))
        stored = next_rseq - int(field(cursor0, "next"))
        print(f"part 1: ring /worker/{wid}/cursor: {cursor} ({dropped}); queen records sent "
              f"{totals['NineDoor']}, ring rseq advanced {stored}", flush=True)
        if stored < totals["NineDoor"]:
            raise RuntimeError(f"the ring stored {stored} records, fewer than the {totals['NineDoor']} sent")
        diod_file = None
        if "diod" in targets:
            dclient.clunk(dfid)
            diod_file = os.path.getsize(sink)
            print(f"part 1: diod file: size={diod_file} records={totals['diod']} record_bytes={size}",
                  flush=True)
            if diod_file != totals["diod"] * size:
                raise RuntimeError(f"diod file holds {diod_file} bytes, expected {totals['diod'] * size}")
        ctl(queen, [{"kill": wid}])
        return {"rows": rows, "size": size, "window": window, "capacity": capacity, "cursor": cursor,
                "sent": totals, "diod_version": diod_version, "diod_file": diod_file,
                "stored": stored}
    except BaseException:
        for server in servers:
            state = "running" if server.proc.poll() is None else f"exited with {server.proc.returncode}"
            print(f"part 1 failed; {server.name} {state}; stderr tail:\n{server.stderr_tail()}", file=sys.stderr)
        raise
    finally:
        for client in clients:
            try:
                client.close()
            except OSError:
                pass
        for server in servers:
            server.stop()


def in_process_door():
    """NineDoor from the shipped configuration (root_task.generated.bootstrap), a launcher that starts
    nothing, and a negotiated console-bridge queen client (ticket-less, InProcessTransport)."""
    from nine_door.client import Client, InProcessTransport
    from nine_door.config import NineDoorConfig
    from nine_door.server import ChannelBinding, NineDoor, NullLauncher
    from root_task.generated import bootstrap

    config = NineDoorConfig.from_resolved(bootstrap.RESOLVED, bootstrap.TICKET_SECRETS, "ab" * 32)
    door = NineDoor(config, launcher=NullLauncher())
    session = door.open_session(ChannelBinding(kind="console", origin="serial"))
    client = Client(InProcessTransport(session))
    client.version(8192)
    client.attach("queen", "")
    return door, session, client


def handler_costs(per_writes: list[int], depth: int, seconds: float) -> dict:
    """Server Python per Twrite without TCP (``Session.feed`` of ``depth`` pipelined Twrites, as the
    listener hands them over): a ring append of ``n`` records, ``frame_v1.split_frames`` of the same
    ``n`` records alone, and an append of one line of the same size to ``/log/queen.log`` (no record
    decoding). Bounded by ``seconds`` and a count per measurement."""
    from nine_door import codec

    door, session, client = in_process_door()
    ctl(client, [{"spawn": "heartbeat", "ticks": SPAWN_TICKS}])
    wid = worker_ids(client)[-1]
    ring_fid = client.open(f"/worker/{wid}/telemetry", m.O_WRONLY | m.O_APPEND)
    log_fid = client.open("/log/queen.log", m.O_WRONLY | m.O_APPEND)
    records = Records()

    def run(make_batch, count: int) -> float:
        batches = [make_batch() for _ in range(count)]
        spent = 0.0
        done = 0
        limit = time.monotonic() + seconds
        for batch in batches:
            t0 = time.perf_counter()
            replies = session.feed(batch)
            spent += time.perf_counter() - t0
            done += 1
            if len(replies) != depth or any(r[4] != m.RWRITE for r in replies):
                raise RuntimeError("in-process Twrite refused")
            if time.monotonic() > limit:
                break
        return spent / (done * depth) * 1e6

    def twrites(fid, data_for):
        return lambda: b"".join(codec.encode(m.Twrite(i, fid, 0, data_for())) for i in range(depth))

    out = {"rows": []}
    line = b"x" * (records.size - 1) + b"\n"
    out["log_us"] = run(twrites(log_fid, lambda: line), max(1, 2000 // depth * 2))
    for per_write in per_writes:
        ring_us = run(twrites(ring_fid, lambda: records.take(per_write)), max(1, 32000 // (depth * per_write)))
        sample = records.take(per_write)
        n = max(1, 20000 // per_write)
        t0 = time.perf_counter()
        for _ in range(n):
            frame_v1.split_frames(sample)
        split_us = (time.perf_counter() - t0) / n * 1e6
        out["rows"].append({"per_write": per_write, "ring_us": ring_us, "split_us": split_us})
        print(f"part 1: in-process, {per_write} record(s) per Twrite: ring Twrite {ring_us:.1f} us of server "
              f"Python, of which frame_v1.split_frames {split_us:.1f} us; a same-size /log/queen.log append "
              f"{out['log_us']:.1f} us", flush=True)
    return out


# --- part 2: ingest latency under heartbeat load ---------------------------------------------------
def part_latency(workers: int, args) -> dict:
    server = start_ninedoor(f"host mode ({workers} workers)")
    queen = None
    try:
        queen = queen_client(server)
        t0 = time.monotonic()
        ctl(queen, [{"spawn": "heartbeat", "ticks": SPAWN_TICKS}] * workers)
        ids = worker_ids(queen)
        if len(ids) != workers:
            raise RuntimeError(f"spawned {len(ids)} workers, wanted {workers}")
        ready_s = wait_sessions(queen, workers, READY_TIMEOUT_S)
        first_ms = None
        if workers == 1:
            first_ms = first_write_ms(queen, ids[0])
        print(f"part 2: {workers} heartbeat worker(s) attached {time.monotonic() - t0:.1f} s after the spawn "
              f"(server pid {server.pid}, {len(children(server.pid))} child processes); settling "
              f"{args.settle:g} s", flush=True)
        base = total_writes(queen, ids)                # writes made before every worker was attached
        time.sleep(args.settle)
        samples = []
        cpu0, w0 = cpu_s(server.pid), time.monotonic()
        for i in range(args.samples):
            if i:
                time.sleep(args.sample_interval)
            since = total_writes(queen, ids) - base     # counted first: a lower bound at the reads below
            p50 = float(field(text(queen, "/proc/ingest/p50_ms"), "p50_ms"))
            p95 = float(field(text(queen, "/proc/ingest/p95_ms"), "p95_ms"))
            samples.append((p50, p95, since >= LATENCY_WINDOW))
        cpu = (cpu_s(server.pid) - cpu0) / max(1e-9, time.monotonic() - w0)
        stored = total_writes(queen, ids)
        rtt = probe_round_trips(queen, ids[0], args.probes)
        sessions = text(queen, "/proc/9p/sessions").strip()
        row = {"workers": workers, "samples": samples, "stored": stored, "cpu": cpu, "sessions": sessions,
               "ready_s": ready_s, "window": min(LATENCY_WINDOW, stored), "first_ms": first_ms, "rtt": rtt}
        print(f"part 2: {workers} worker(s): " + ", ".join(f"p50={a:.3f} p95={b:.3f}{' (steady)' if c else ''}"
                                                         for a, b, c in samples)
              + f" ms; heartbeats stored={stored}; server cpu {cpu * 100:.0f} %; queen Twrite round trip "
              f"p50={rtt[0]:.3f} p95={rtt[1]:.3f} ms; {sessions}", flush=True)
        if stored < workers:
            raise RuntimeError(f"only {stored} heartbeats stored by {workers} workers")
        ctl(queen, [{"kill": wid} for wid in ids])
        wait_sessions(queen, 0, 20.0)
        return row
    except BaseException:
        state = "running" if server.proc.poll() is None else f"exited with {server.proc.returncode}"
        print(f"part 2 failed; host mode {state}; stderr tail:\n{server.stderr_tail()}", file=sys.stderr)
        raise
    finally:
        if queen is not None:
            try:
                queen.close()
            except OSError:
                pass
        server.stop()


def probe_round_trips(queen, wid: str, count: int) -> tuple[float, float]:
    """After the samples (so they are not in them): ``count`` one-record Twrites by the queen over TCP into
    ``wid``'s ring, PROBE_INTERVAL_S apart; (p50, p95) of the client-observed round trip in ms. An upper
    bound of the server's "Twrite receipt → Rwrite sent" (it adds the client and loopback TCP)."""
    records = Records()
    fid = queen.open(f"/worker/{wid}/telemetry", m.O_WRONLY | m.O_APPEND)
    rtts = []
    try:
        for _ in range(count):
            data = records.take(1)
            t0 = time.perf_counter()
            if queen.write(fid, 0, data) != len(data):
                raise RuntimeError("probe Twrite was short")
            rtts.append((time.perf_counter() - t0) * 1000)
            time.sleep(PROBE_INTERVAL_S)
    finally:
        queen.clunk(fid)
    rtts.sort()
    return percentile(rtts, 0.50), percentile(rtts, 0.95)


def total_writes(queen, ids: list[str]) -> int:
    """Telemetry records stored so far by the workers (their rings' ``next - 1``: no duplicates here)."""
    return sum(int(field(text(queen, f"/worker/{wid}/cursor"), "next")) - 1 for wid in ids)


def steady_p95(row: dict) -> float | None:
    """Worst p95 over the samples whose window held only writes made once every worker had attached."""
    values = [b for _, b, steady in row["samples"] if steady]
    return max(values) if values else None


def first_write_ms(queen, wid: str) -> float | None:
    """The server's first telemetry write after boot, alone in the latency window: wait (bounded) for the
    worker's first heartbeat, read p95 while the ring holds exactly that one record."""
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        if int(field(text(queen, f"/worker/{wid}/cursor"), "next")) >= 2:
            break
        time.sleep(0.02)
    p95 = float(field(text(queen, "/proc/ingest/p95_ms"), "p95_ms"))
    if int(field(text(queen, f"/worker/{wid}/cursor"), "next")) != 2:
        return None                                     # a second heartbeat came in between
    print(f"part 2: the server's first telemetry write (one sample in the window): {p95:.3f} ms", flush=True)
    return p95


# --- part 3: memory per idle ring ---------------------------------------------------------------
TRACE_FRAMES = 16
#: (source text found in an allocation's traceback, component), first match wins.
COMPONENTS = (
    ("RingNode", "ring (RingNode, its empty deque and writer table)"),
    ("CursorNode", "cursor node"),
    ("create_worker", "worker directory"),
    ("WorkerRecord(", "worker record and budget"),
    ("Budget(", "worker record and budget"),
    ("log_append(", "queen.log spawn line"),
)


def component(traceback) -> str:
    import linecache

    source = "\n".join(linecache.getline(frame.filename, frame.lineno) for frame in traceback)
    for needle, label in COMPONENTS:
        if needle in source:
            return label
    return "other (ctl parsing, worker id, table growth)"


def part_memory(count: int, full_rings: int) -> dict:
    door, _, client = in_process_door()
    config = door.config
    ctl_fid = client.open("/queen/ctl", m.O_WRONLY | m.O_APPEND)
    line = json.dumps({"spawn": "heartbeat", "ticks": SPAWN_TICKS}, separators=(",", ":")).encode() + b"\n"
    if count + 2 + full_rings > config.max_workers:
        raise RuntimeError(f"max_workers is {config.max_workers}")
    for _ in range(2):                                   # warm-up: first-use caches, imports
        client.write(ctl_fid, 0, line)
    gc.collect()
    tracemalloc.start(TRACE_FRAMES)
    try:
        before = tracemalloc.take_snapshot()
        base = tracemalloc.get_traced_memory()[0]
        for _ in range(count):
            if client.write(ctl_fid, 0, line) != len(line):
                raise RuntimeError("spawn refused")
        gc.collect()
        spawned = tracemalloc.get_traced_memory()[0] - base
        after = tracemalloc.take_snapshot()
        parts: dict[str, int] = {}
        for stat in after.compare_to(before, "traceback"):
            label = component(stat.traceback)
            parts[label] = parts.get(label, 0) + stat.size_diff
        rings = [w.ring for w in list(door.workers.values())[2:2 + count]]
        assert len(rings) == count and all(r.used == 0 and not r.records for r in rings)

        # Contrast: a few more workers whose rings are written until they wrap.
        for _ in range(full_rings):
            client.write(ctl_fid, 0, line)
        ids = list(door.workers)[-full_rings:]
        records = Records()
        per_write = (8192 - m.IOHDRSZ) // records.size
        gc.collect()
        base = tracemalloc.get_traced_memory()[0]
        for wid in ids:
            fid = client.open(f"/worker/{wid}/telemetry", m.O_WRONLY | m.O_APPEND)
            ring = door.workers[wid].ring
            for _ in range(1000):                         # bounded; ends once the ring has wrapped
                client.write(fid, 0, records.take(per_write))
                if ring.first_rseq > 1:
                    break
            client.clunk(fid)
        gc.collect()
        full = (tracemalloc.get_traced_memory()[0] - base) / full_rings
        full_used = sum(door.workers[w].ring.used for w in ids) / full_rings
        full_records = sum(len(door.workers[w].ring.records) for w in ids) / full_rings
    finally:
        tracemalloc.stop()
    top = sorted(parts.items(), key=lambda kv: -kv[1])
    result = {"count": count, "per_worker": spawned / count, "capacity": rings[0].capacity,
              "used": sum(r.used for r in rings), "reserved": door.telemetry_bytes, "top": top,
              "full": full, "full_used": full_used, "full_records": full_records, "full_rings": full_rings,
              "max_workers": config.max_workers}
    print(f"part 3: {count} idle workers spawned: {spawned:,} bytes traced, {result['per_worker']:,.0f} "
          f"bytes per worker ({result['per_worker'] / result['capacity'] * 100:.1f} % of a "
          f"{result['capacity']}-byte ring); ring bytes used {result['used']}; per worker: "
          + ", ".join(f"{k} {v / count:,.0f}" for k, v in top), flush=True)
    print(f"part 3: a ring written until it wrapped: {full:,.0f} bytes traced ({full_records:.0f} records, "
          f"{full_used:,.0f} bytes used)", flush=True)
    return result


# --- report -------------------------------------------------------------------------------------
def verdict(ok: bool) -> str:
    return "met" if ok else "not met"


def render(p1: dict, p2: list[dict], p3: dict, args, command: str) -> str:
    date = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    lines = [
        START,
        f"Telemetry data plane (issue 13, item 5), one run ({date}, {os.cpu_count()} cores, "
        f"{platform.machine()}, Python {platform.python_version()}, {p1['diod_version']}). "
        f"(1) Pipelined appends of the same CBOR Frame v1 records ({p1['size']} bytes each) by the same "
        "client (`nine_door.client.Client` over TCP, raw Twrite frames, one send per batch of "
        f"{p1['rows'][0]['depth'] if p1['rows'] else args.depth} Twrites, then their replies) into a "
        "worker's `cbor_v1` telemetry ring in host mode (queen writer, unarmed ring: it wraps) and into a "
        f"file exported by diod (Tlopen O_WRONLY|O_APPEND) and into the Python floor (`bench/floor_9p.py`: "
        "each Twrite answered with its full count, nothing stored or checked: what a Python server could reach "
        f"at best); {args.seconds:g} s per row and server as {SLICES} alternating slices; records/s: the best "
        "slice; ratio: the median of the per-slice ratios (min–max); "
        + ("nothing pinned" if args.no_pin else "client and server pinned to one CPU") + "; server CPU = "
        "utime+stime of the server process ÷ records.",
        "",
        "| records per Twrite | Twrites in flight | NineDoor records/s | diod records/s | floor records/s | "
        "NineDoor ÷ diod | floor ÷ diod | CPU µs/record NineDoor / diod / floor | goal ≥ 1.5× |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in p1["rows"]:
        rate, cpu = row["rate"], row["cpu_us"]
        ratio = slice_ratio(row["slices"], "NineDoor", "diod")
        floor_ratio = slice_ratio(row["slices"], "floor", "diod")
        goal = "n/a" if ratio is None else verdict(ratio[0] >= APPEND_GOAL) + (
            f" (the floor reaches {floor_ratio[0]:.2f}×)" if floor_ratio and floor_ratio[0] < APPEND_GOAL else "")
        cells = [f"{rate[k]:,.0f}" if k in rate else "n/a" for k in ("NineDoor", "diod", "floor")]
        cpus = " / ".join(f"{cpu[k]:.1f}" if k in cpu else "n/a" for k in ("NineDoor", "diod", "floor"))
        lines.append(f"| {row['per_write']} | {row['depth']} | {' | '.join(cells)} | {fmt_ratio(ratio)} | "
                     f"{fmt_ratio(floor_ratio)} | {cpus} | {goal} |")
    handler = p1.get("handler")
    if handler:
        lines += [
            "",
            "Where NineDoor's time goes, same run, in-process (`Session.feed` of the same pipelined Twrites, no "
            "TCP): "
            + "; ".join(f"{r['per_write']} record(s) per Twrite: {r['ring_us']:.1f} µs of server Python per Twrite, "
                        f"of which {r['split_us']:.1f} µs is `frame_v1.split_frames` (the strict Frame v1 decode "
                        "of the records)" for r in handler["rows"])
            + f"; appending a line of the same size to `/log/queen.log` (no record decoding) costs "
              f"{handler['log_us']:.1f} µs per Twrite.",
        ]
    lines += [
        "",
        f"Checks of the same run: the ring's cursor file read `{p1['cursor']}` after the queen's "
        f"{p1['sent']['NineDoor']:,} records (the rseq advanced by {p1['stored']:,}, the heartbeat worker's "
        "own records included); "
        + (f"the diod file held {p1['diod_file']:,} bytes = {p1['sent']['diod']:,} records × {p1['size']} bytes."
           if p1["diod_file"] is not None else "diod was not run."),
        "",
        "(2) `/proc/ingest/p50_ms` and `p95_ms` (server-side latency of the last 256 telemetry writes) while "
        "N heartbeat workers run in host mode: a fresh server per load, the workers spawned through "
        "`/queen/ctl` (one Python process each, one CBOR heartbeat a second over its channel); sampled "
        f"{args.samples}× {args.sample_interval:g} s apart after all had attached and {args.settle:g} s more; "
        "a sample is *steady* when at least 256 heartbeats were stored after the last worker attached (its "
        "window holds no start-up write); the goal is judged on the worst steady p95 sample. After the samples, "
        f"the queen times {args.probes} one-record Twrites of its own into a worker's ring over TCP "
        f"({PROBE_INTERVAL_S * 1000:g} ms apart; client-observed, so it includes the client and loopback TCP).",
        "",
        "| heartbeat workers | samples | writes in window | p50 ms (median of samples) | p95 ms (median) | "
        "p95 ms (worst) | p95 ms (worst steady sample) | heartbeats stored | server CPU | "
        "queen Twrite round trip p50 / p95 ms | goal p95 ≤ 2 ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in p2:
        p50s = sorted(a for a, _, _ in row["samples"])
        p95s = sorted(b for _, b, _ in row["samples"])
        steady = steady_p95(row)
        if row["workers"] != max(r["workers"] for r in p2):
            goal = "—"
        else:
            goal = verdict(steady <= P95_GOAL_MS) if steady is not None else "n/a (no steady sample)"
        lines.append(f"| {row['workers']} | {len(row['samples'])} | {row['window']} | {p50s[len(p50s) // 2]:.3f} | "
                     f"{p95s[len(p95s) // 2]:.3f} | {p95s[-1]:.3f} | "
                     f"{f'{steady:.3f}' if steady is not None else 'n/a'} | {row['stored']:,} | "
                     f"{row['cpu'] * 100:.0f} % | {row['rtt'][0]:.3f} / {row['rtt'][1]:.3f} | {goal} |")
    first = next((r["first_ms"] for r in p2 if r.get("first_ms") is not None), None)
    lines += [
        "",
        "The window holds the last min(256, telemetry writes since boot) writes; with 1 worker it still holds "
        "the server's first telemetry write, which also imports `nine_door.frame_v1` (lazily, on the first "
        "`cbor_v1` record)"
        + (f": measured alone in this run at {first:.3f} ms." if first is not None else "."),
    ]
    lines += [
        "",
        f"(3) Memory per idle ring: in-process NineDoor from the shipped configuration with a launcher that "
        f"starts nothing; tracemalloc bytes still allocated after spawning {p3['count']:,} heartbeat workers "
        "through `/queen/ctl`, per worker (directory, ring, cursor node, worker record, the spawn's log "
        f"line); a ring's capacity is {p3['capacity']:,} bytes, max_workers {p3['max_workers']}.",
        "",
        "| workers spawned | bytes per idle worker | share of one ring's capacity | ring bytes used (all idle rings) | "
        "bytes per ring written until it wrapped |",
        "|---|---|---|---|---|",
        f"| {p3['count']:,} | {p3['per_worker']:,.0f} | {p3['per_worker'] / p3['capacity'] * 100:.1f} % | "
        f"{p3['used']:,} | {p3['full']:,.0f} ({p3['full_records']:,.0f} records, {p3['full_used']:,.0f} bytes "
        f"used; mean of {p3['full_rings']}) |",
        "",
        "Per idle worker, by what allocated it (tracemalloc tracebacks): "
        + ", ".join(f"{name} {size / p3['count']:,.0f} B" for name, size in p3["top"]) + ".",
        "",
        f"Command: `{command}`. Timings are ratios within this run and vary run to run; the bench asserts none.",
        END,
    ]
    return "\n".join(lines)


# --- main ---------------------------------------------------------------------------------------
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="1 s per row in part 1, 8 workers in part 2, 100 workers in part 3")
    parser.add_argument("--seconds", type=float, default=None, help="part 1: seconds per row and server (default 3)")
    parser.add_argument("--depth", type=int, default=16, help="part 1: Twrites in flight (capped at tags_per_session)")
    parser.add_argument("--per-write", type=lambda s: [int(x) for x in s.split(",")], default=[1, 16],
                        help="part 1: comma-separated records per Twrite (default 1,16)")
    parser.add_argument("--load", type=int, default=None, help="part 2: heartbeat workers (default 64; quick 8)")
    parser.add_argument("--workers", type=int, default=None, help="part 3: idle workers (default 1000; quick 100)")
    parser.add_argument("--no-diod", action="store_true", help="part 1 on NineDoor only")
    parser.add_argument("--no-pin", action="store_true",
                        help="part 1: do not pin the client and the server to one CPU")
    parser.add_argument("--report", type=Path, help="rewrite the bench:telemetry region of this file")
    args = parser.parse_args(argv)
    if args.seconds is None:
        args.seconds = 1.0 if args.quick else 3.0
    if args.load is None:
        args.load = 8 if args.quick else 64
    if args.workers is None:
        args.workers = 100 if args.quick else 1000
    args.seconds = max(0.3, min(args.seconds, 60.0))
    args.depth = max(1, min(args.depth, 64))
    args.per_write = [max(1, min(n, 128)) for n in args.per_write] or [1]
    args.load = max(1, min(args.load, 64))          # the IR's 1024 allows more; 64 is the load
    args.workers = max(1, min(args.workers, 1000))
    args.settle = 1.5 if args.quick else 5.0        # 64 writes/s refill the 256-sample window in 4 s
    args.samples = 3 if args.quick else 5
    args.probes = 10 if args.quick else 50
    args.sample_interval = 0.5 if args.quick else 1.0

    command = (f"python3 bench/bench_telemetry.py --seconds {args.seconds:g} --depth {args.depth} "
               f"--per-write {','.join(map(str, args.per_write))} --load {args.load} --workers {args.workers}"
               + (" --no-diod" if args.no_diod else "") + (" --no-pin" if args.no_pin else ""))
    print(f"bench_telemetry: {os.cpu_count()} cores; {command}", flush=True)
    tmp = tempfile.mkdtemp(prefix="bench-telemetry-")
    try:
        p1 = part_appends(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    p1["handler"] = handler_costs(args.per_write, p1["rows"][0]["depth"] if p1["rows"] else args.depth, 2.0)
    p2 = [part_latency(n, args) for n in sorted({1, args.load})]
    p3 = part_memory(args.workers, full_rings=4)

    for row in p1["rows"]:
        ratio = slice_ratio(row["slices"], "NineDoor", "diod")
        if ratio is not None:
            print(f"summary: appends, {row['per_write']} record(s)/Twrite: NineDoor/diod {fmt_ratio(ratio)}, "
                  f"floor/diod {fmt_ratio(slice_ratio(row['slices'], 'floor', 'diod'))}, goal "
                  f">= {APPEND_GOAL}x {verdict(ratio[0] >= APPEND_GOAL)}", flush=True)
    top = p2[-1]
    steady = steady_p95(top)
    print(f"summary: p95 with {top['workers']} heartbeat workers: worst steady sample "
          + (f"{steady:.3f} ms, goal <= {P95_GOAL_MS} ms {verdict(steady <= P95_GOAL_MS)}" if steady is not None
             else "n/a (no sample's window was free of start-up writes)"), flush=True)
    print(f"summary: {p3['per_worker']:,.0f} bytes per idle worker ({p3['per_worker'] / p3['capacity'] * 100:.1f} % "
          f"of a {p3['capacity']}-byte ring)", flush=True)
    region = render(p1, p2, p3, args, command)
    print(region)
    report_region(args.report, START, END, region)
    return 0


if __name__ == "__main__":
    sys.exit(main())
