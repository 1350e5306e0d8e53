#!/usr/bin/env python3
"""A thousand workers (SPEC §8, issue 15): server cost per request as live workers grow, spawn time,
and what one worker costs in memory.

For each count of live heartbeat workers (16, 256, 1 024; ``--quick``: 16, 64) a fresh host-mode system
runs as a subprocess (``python3 -m root_task.host --no-serial``, sharding at width 2, ``cbor_v1``), so its
CPU time is its own (``/proc/<pid>/stat``: the root task's process; the workers are other processes):

* **spawn**: N spawn lines written by one queen session; the clock stops when ``/proc/9p/sessions`` shows
  N attached worker sessions (every worker forked, started, attached over its own channel).
* **server CPU per append / per walk**: K Frame v1 appends to one worker's ring through the canonical path,
  then K walks through random workers' ``/shard/<label>/worker/<id>/telemetry`` (a sixth name past the
  file, so each is resolved in full and none comes from the session's walk memo), one request at a
  time. The root task's CPU time over each window, minus its idle rate over the same length (the N
  workers' own heartbeats, measured just before), divided by K; the median of the windows. Flat means
  no cost grows with N.
* **memory per worker**: USS and PSS of the workers (``/proc/<pid>/smaps_rollup``, up to 64 sampled).

Growth ratios (``bench_spread``): the system with the fewest workers stays up while each larger one is
measured, and the two take turns window by window (``WINDOWS`` per workload, the first of each turn
alternating), so machine drift hits both; "vs 16" is the median of window i of N ÷ window i of 16, with
its min–max over all windows of all ``--runs`` (each run: fresh systems).

The peer for the spawn time is the fresh-interpreter launcher (``--no-fork-server``, one ``python -m``
per worker, as before the fork server): one system of each kind, both up, spawning 32 workers in
``PEER_BATCHES`` alternating batches; the ratio is spawns/s of each batch against the other kind's batch
of the same turn. Usage: ``python3 bench/bench_shards.py [--quick] [--runs N] [--report docs/benchmarks.md]``.
Nothing here asserts a timing.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

from bench_report import report_region  # noqa: E402
from bench_spread import Spread, fmt_ratio, slice_ratio  # noqa: E402
from svg_plot import line_chart  # noqa: E402
from coh_rtc.testing import TICKET_SECRETS, write_ir  # noqa: E402
from nine_door import frame_v1, messages as m, tickets  # noqa: E402
from nine_door.client import Client, SocketStreamTransport  # noqa: E402
from nine_door.messages import O_APPEND, O_RDONLY, O_WRONLY  # noqa: E402
from nine_door.shards import shard_label  # noqa: E402
from qemu.launch import free_port  # noqa: E402
from root_task.memstat import average_kb, children  # noqa: E402

START, END = "<!-- bench:shards:start -->", "<!-- bench:shards:end -->"
PLOT = "plots/shards_cost.svg"          # beside the report
SPAWN = b'{"spawn":"heartbeat","ticks":1000000}\n'
CLK_TCK = os.sysconf("SC_CLK_TCK")
WINDOWS = 3                             # CPU windows per workload and system, taking turns with the base
PEER_BATCHES = 4                        # spawn peer: the two launchers take turns this many times
KINDS = ("append", "walk")


class HostSystem:
    """``root_task.host`` as a subprocess with a queen 9P client."""

    def __init__(self, ir: Path, fork_server: bool = True) -> None:
        self.port = free_port()
        args = [sys.executable, "-m", "root_task.host", "--no-serial", "--ir", str(ir),
                "--console-port", str(free_port()), "--9p-port", str(self.port)]
        if not fork_server:
            args.append("--no-fork-server")
        self.proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while True:
            try:
                sock = socket.create_connection(("127.0.0.1", self.port), timeout=30)
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("host mode did not start")
                time.sleep(0.1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.client = Client(SocketStreamTransport(sock))
        self.client.version(8192)
        self.client.attach("queen", tickets.mint(TICKET_SECRETS["queen"], "queen"))
        self.spawned = 0

    def cpu_s(self) -> float:
        with open(f"/proc/{self.proc.pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def attached_workers(self) -> int:
        fid = self.client.open("/proc/9p/sessions", O_RDONLY)
        try:
            first = self.client.read(fid, 0, 8000).split(b"\n", 1)[0].decode()
        finally:
            self.client.clunk(fid)
        return int(first.split(" worker=")[1].split()[0])

    def spawn(self, n: int, timeout: float = 120.0) -> float:
        """Seconds to spawn ``n`` more workers and see all of them (and the earlier ones) attached."""
        ctl = self.client.open("/queen/ctl", O_WRONLY | O_APPEND)
        target = self.spawned + n
        started = time.monotonic()
        for start in range(0, n, 64):
            batch = SPAWN * min(64, n - start)
            self.client.write(ctl, 0, batch)
        self.client.clunk(ctl)
        while self.attached_workers() < target:
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"{n} workers did not attach within {timeout} s")
            time.sleep(0.02)
        self.spawned = target
        return time.monotonic() - started

    def worker_memory(self) -> tuple[float, float]:
        """Mean USS and PSS (MiB) of the workers: the children of the host's child, the fork server."""
        workers = [pid for server in children(self.proc.pid) for pid in children(server)]
        uss, pss = average_kb(workers)
        return uss / 1024, pss / 1024

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def server_cpu_us(system: HostSystem, ops: int, run) -> float:
    """Root-task CPU per op (µs) for ``run()``, net of the idle rate over the same wall time."""
    idle_start, t0 = system.cpu_s(), time.monotonic()
    time.sleep(1.0)
    idle_rate = (system.cpu_s() - idle_start) / (time.monotonic() - t0)
    cpu0, t0 = system.cpu_s(), time.monotonic()
    run()
    wall = time.monotonic() - t0
    return max(0.0, (system.cpu_s() - cpu0 - idle_rate * wall)) / ops * 1e6


class Population:
    """A fresh host-mode system with ``n`` live heartbeat workers and its two workloads, ready to be
    timed one window at a time (so it can take turns with another population)."""

    def __init__(self, n: int, ops: int, ir: Path) -> None:
        self.n, self.ops = n, ops
        self.system = HostSystem(ir)
        try:
            self.spawn_s = self.system.spawn(n)
            time.sleep(1.5)                   # every worker past its first heartbeat
            client = self.system.client
            target = f"/shard/{shard_label('worker-1', 2)}/worker/worker-1/telemetry"
            self.ring = client.open(target, O_WRONLY | O_APPEND)
        except BaseException:
            self.system.close()
            raise
        rng = random.Random(n)
        self.paths = []
        for _ in range(ops):
            worker_id = f"worker-{rng.randint(1, n)}"
            self.paths.append(("shard", shard_label(worker_id, 2), "worker", worker_id, "telemetry", "-"))

    def append(self) -> None:
        client = self.system.client
        for seq in range(1, self.ops + 1):
            client.write(self.ring, 0, frame_v1.encode(frame_v1.Frame(seq=seq, ts=0, kind=7, payload=b"bench")))

    def walk(self) -> None:
        # A name past the file makes every walk a partial one (5 qids, ENOTDIR on the 6th): the full
        # resolution through shard, directory and ring each time, never answered from the session's
        # walk memo (which remembers complete walks only) — else 16 workers would be all memo hits
        # and 1 024 mostly misses, and the table would measure the memo, not the lookups.
        client = self.system.client
        spare = 1 << 20                       # never bound: a partial walk binds no fid
        for names in self.paths:
            reply = client.rpc(m.Twalk(client.next_tag(), client.root, spare, names))
            assert len(reply.qids) == 5

    def window(self, kind: str) -> float:
        """Root-task CPU µs per request of one window of ``kind`` ("append" or "walk")."""
        return server_cpu_us(self.system, self.ops, getattr(self, kind))

    def close(self) -> None:
        self.system.close()


def take_turns(base: Population, other: Population) -> dict[str, dict[str, list[float]]]:
    """Per workload, ``WINDOWS`` windows of each population, alternating (base first, then other first,
    …): CPU time is counted in 10 ms clock ticks and the idle rate of many heartbeating workers is
    itself measured, so one window is noisy, and windows side by side see the same machine."""
    out: dict[str, dict[str, list[float]]] = {kind: {"base": [], "other": []} for kind in KINDS}
    for kind in KINDS:
        for i in range(WINDOWS):
            order = (("base", base), ("other", other)) if i % 2 == 0 else (("other", other), ("base", base))
            for side, population in order:
                out[kind][side].append(population.window(kind))
    return out


def new_row(population: Population) -> dict:
    """A table row's accumulator: its windows, and per workload the paired windows of it and the base."""
    uss, pss = population.system.worker_memory()
    return {"n": population.n, "ops": population.ops, "spawn_s": [population.spawn_s], "uss": [uss], "pss": [pss],
            **{kind: [] for kind in KINDS}, "pairs": {kind: {"row": [], "base": []} for kind in KINDS}}


def measure_run(counts: tuple[int, ...], ops: int, ir: Path) -> list[dict]:
    """One run: the smallest population stays up and takes turns with each larger one in turn."""
    base = Population(counts[0], ops, ir)
    try:
        rows = [new_row(base)]
        print(f"{base.n:5d} workers: spawn {base.spawn_s:.2f} s, USS {rows[0]['uss'][0]:.2f} MiB, "
              f"PSS {rows[0]['pss'][0]:.2f} MiB (the base: stays up, takes turns with each larger count)", flush=True)
        for n in counts[1:]:
            other = Population(n, ops, ir)
            try:
                turns = take_turns(base, other)
                row = new_row(other)
            finally:
                other.close()
            for kind in KINDS:
                rows[0][kind] += turns[kind]["base"]
                row[kind] += turns[kind]["other"]
                row["pairs"][kind] = {"row": turns[kind]["other"], "base": turns[kind]["base"]}
            rows.append(row)
            print(f"{n:5d} workers: spawn {other.spawn_s:.2f} s, append {statistics.median(row['append']):.0f} µs "
                  f"({fmt_ratio(growth(row, 'append'))} of {counts[0]}), walk {statistics.median(row['walk']):.0f} µs "
                  f"({fmt_ratio(growth(row, 'walk'))}), USS {row['uss'][0]:.2f} MiB, PSS {row['pss'][0]:.2f} MiB",
                  flush=True)
        return rows
    finally:
        base.close()


def merge_runs(runs: list[list[dict]]) -> list[dict]:
    """Every run's rows as one table: windows and paired windows concatenated, memory and spawn lists too."""
    rows = runs[0]
    for later in runs[1:]:
        for row, more in zip(rows, later):
            for key in ("spawn_s", "uss", "pss", *KINDS):
                row[key] += more[key]
            for kind in KINDS:
                for side in ("row", "base"):
                    row["pairs"][kind][side] += more["pairs"][kind][side]
    for row in rows:
        for kind in KINDS:
            row[f"{kind}_us"] = statistics.median(row[kind])
    return rows


def growth(row: dict, kind: str) -> Spread | None:
    """CPU per request of ``row`` against the base, window by window (None for the base row itself)."""
    return slice_ratio(row["pairs"][kind], "row", "base")


def fresh_interpreter_spawn(n: int, ir: Path) -> dict[str, list[float]]:
    """Spawns/s of the fork server and of fresh interpreters, same IR, per batch: one system of each
    kind, both up, spawning ``n`` workers in all in ``PEER_BATCHES`` alternating batches."""
    batch = max(1, n // PEER_BATCHES)
    systems: dict[str, HostSystem] = {}
    rates: dict[str, list[float]] = {"fork": [], "fresh": []}
    try:
        for kind in rates:
            systems[kind] = HostSystem(ir, fork_server=(kind == "fork"))
        for i in range(PEER_BATCHES):
            for kind in (("fork", "fresh") if i % 2 == 0 else ("fresh", "fork")):
                rates[kind].append(batch / systems[kind].spawn(batch))
    finally:
        for system in systems.values():
            system.close()
    return rates


def render(rows: list[dict], peer: tuple[int, dict[str, list[float]]], runs: int, quick: bool) -> str:
    base, big = rows[0], rows[-1]
    vs = f"vs {base['n']:,}, per window"
    lines = [START, "", f"### A thousand workers (`bench/bench_shards.py`{' --quick' if quick else ''})", "",
             f"Measured {_dt.date.today().isoformat()} on {platform.machine()}, {os.cpu_count()} CPUs, "
             f"host run mode as a subprocess, sharding width 2, `cbor_v1` heartbeats at 1 Hz from every worker; "
             f"{runs} run(s). Server CPU is the root task's own CPU time per request, net of its idle rate with "
             "the same workers (their heartbeats), one request at a time from one queen session; the median of "
             f"all windows of {base['ops']:,} requests. The {base['n']}-worker system stays up and takes turns "
             f"with each larger one, {WINDOWS} windows each per workload; {vs}: the median of window i of N ÷ "
             f"window i of {base['n']} (min–max over all windows of all runs). Worker PSS counts the pages a "
             f"worker shares with every process mapping them, the {base['n']}-worker system's included.", "",
             f"| live workers | spawn + attach all | server CPU per append | {vs} | per 5-name walk | {vs} "
             "| worker USS | worker PSS |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {row['n']:,} | {statistics.median(row['spawn_s']):.2f} s | {row['append_us']:.0f} µs "
                     f"| {_growth(row, 'append', base)} | {row['walk_us']:.0f} µs "
                     f"| {_growth(row, 'walk', base)} | {statistics.fmean(row['uss']):.2f} MiB "
                     f"| {statistics.fmean(row['pss']):.2f} MiB |")
    table_end = len(lines)
    count, rates = peer
    forked, fresh = count / statistics.median(rates["fork"]), count / statistics.median(rates["fresh"])
    batch = max(1, count // PEER_BATCHES)
    lines += ["", f"Spawn peer, same run: one system per launcher, both up, each spawning {count} workers in "
              f"{PEER_BATCHES} alternating batches of {batch}; at the median batch's rate {count} take {forked:.2f} s "
              f"with the fork server and {fresh:.2f} s as fresh interpreters (`--no-fork-server`): the fork "
              f"server's spawns/s are **{fmt_ratio(slice_ratio(rates, 'fork', 'fresh'))}** the fresh "
              f"interpreters' (batch i against batch i, min–max over all batches of all runs). "
              f"{big['n']:,} workers took "
              f"{statistics.median(big['spawn_s']):.1f} s (goal ≤ 10 s); CPU per append grew "
              f"{_growth(big, 'append', base)} and per walk {_growth(big, 'walk', base)} from {base['n']} to "
              f"{big['n']:,} workers (goal ≤ 1.2×). On a shared 2-core machine a spread that straddles 1.2× "
              "says the goal is within the noise, not that it is missed.", "", END]
    lines[table_end:table_end] = ["", f"![server CPU per request against live workers]({PLOT})"]
    return "\n".join(lines)


def _growth(row: dict, kind: str, base: dict) -> str:
    """``row ÷ base`` per window as ``median× (min–max)``; — for the base itself. The CPU clock ticks in
    10 ms, so a short (``--quick``) window can read 0, and when every base window did: n/a."""
    if row is base:
        return "—"
    spread = growth(row, kind)
    return fmt_ratio(spread) if spread is not None else "n/a (below the CPU clock's resolution)"


def plot(rows: list[dict]) -> str:
    """Server CPU per request against live workers: flat lines mean no per-worker cost on the path."""
    return line_chart("Server CPU per request vs live workers", "live heartbeat workers (log scale)",
                      "µs of root-task CPU", [row["n"] for row in rows],
                      {"append (Frame v1)": [row["append_us"] for row in rows],
                       "5-name walk": [row["walk_us"] for row in rows]})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="16 and 64 workers, fewer requests")
    parser.add_argument("--runs", type=int, default=1, help="fresh systems, one run after another (default 1)")
    parser.add_argument("--report", type=Path, help="rewrite the bench:shards region of this file")
    args = parser.parse_args(argv)
    counts = (16, 64) if args.quick else (16, 256, 1024)
    ops = 2000 if args.quick else 5000    # quick: still ≥ several 10 ms CPU-clock ticks per measure
    runs = max(1, args.runs)
    peer_n = 8 if args.quick else 32
    with tempfile.TemporaryDirectory() as tmp:
        ir = write_ir(Path(tmp), {"sharding.enable": True, "sharding.scheme.width": 2,
                                  "system.max_workers": 1024, "telemetry.frame_schema": "cbor_v1",
                                  "observability.proc_9p": ["sessions"]}, schema="1.2")
        measured = []
        rates: dict[str, list[float]] = {"fork": [], "fresh": []}
        for _ in range(runs):
            measured.append(measure_run(counts, ops, ir))
            for kind, values in fresh_interpreter_spawn(peer_n, ir).items():
                rates[kind] += values
            print(f"spawn {peer_n}: fork server {fmt_ratio(slice_ratio(rates, 'fork', 'fresh'))} the spawns/s of "
                  "fresh interpreters", flush=True)
        rows = merge_runs(measured)
    report_region(args.report, START, END, render(rows, (peer_n, rates), runs, args.quick))
    if args.report is not None:
        target = (args.report if args.report.is_absolute() else Path.cwd() / args.report).parent / PLOT
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(plot(rows))
        print(f"plot written to {target}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
