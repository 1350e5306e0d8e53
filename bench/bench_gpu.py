#!/usr/bin/env python3
"""GPU jobs (SPEC §9, issue 16): job round trip for the mock backend and through the bridge, and the
reference matmul against numpy on the same inputs.

* **Round trip, submit → OK** — host mode as a subprocess (``python3 -m root_task.host --no-serial --ir
  <test IR>``), a queen session over 9P TCP, one GPU worker leasing ``GPU-0``. Each job is the §9.3
  self-test payload under a new id, written to ``/gpu/GPU-0/job``; the clock stops when its ``OK`` line
  arrives on an open read fid of the worker's telemetry (the fan-out, §9.3). ``mock``: the server runs
  the job inside the Twrite, so the OK is there before the Rwrite. ``bridge``: ``gpu-bridge-host --mock
  --connect`` (a second process) reads ``/gpu/bridge/jobs``, runs the job and reports it; its idle poll
  (2 ms doubling to 50 ms) is part of what is measured. p50/p95 over ``--jobs`` jobs each. Both systems
  run at once and take turns in ``SLICES`` slices of jobs (mock first, then bridge first, …), so machine
  drift hits both; the ratio is bridge ÷ mock of each slice's median (``bench_spread``).
* **matmul arithmetic** — the same random binary32 inputs for each size n×n×n: the reference
  (:mod:`nine_door.gpu.arith`: every product and sum rounded to binary32, sequential over p), numpy
  ``A @ B`` in float32 (BLAS: another summation order), and numpy with the reference's order (float32
  outer products accumulated over p, one rounding per product and per sum). Reported: MFLOP/s (2n³
  flops), numpy's speed as a ratio of the reference's, and whether the result bytes are identical to
  the reference (else how many of the n² elements differ). The reference is the definition; a library
  may only replace it where the bytes are identical. After one untimed call each, the three take turns
  ``REPEATS`` times; the ratio is the median of the per-repeat ratios (reference time ÷ numpy time of
  the same repeat).

Every ratio is ``median× (min–max)`` over its slices or repeats of all ``--runs`` (each run: fresh
systems, fresh repeats).

Usage: ``python3 bench/bench_gpu.py [--quick] [--jobs N] [--runs N] [--report docs/benchmarks.md]``
(``--report`` rewrites the ``bench:gpu`` region of that file, appending it if missing).
Nothing here asserts a timing.
"""
from __future__ import annotations

import argparse
import datetime as _dt
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

from bench_ninep import free_port, wait_port  # noqa: E402
from bench_report import report_region  # noqa: E402
from bench_spread import fmt_ratio, slice_ratio  # noqa: E402
from coh_rtc.testing import TICKET_SECRETS, write_ir  # noqa: E402
from nine_door import messages as m  # noqa: E402
from nine_door import tickets  # noqa: E402
from nine_door.client import Client, SocketStreamTransport  # noqa: E402
from nine_door.gpu import arith  # noqa: E402

START, END = "<!-- bench:gpu:start -->", "<!-- bench:gpu:end -->"
SELFTEST_B64 = "AACAPwAAAEAAAEBAAACAQAAAIEEAAKBBAADwQQAAIEI="
SELFTEST_HASH = "sha256:e7011a16a15eedff7eaa3321509f336d786248946170ac997aa2205326c2afe3"
QUEEN = tickets.mint(TICKET_SECRETS["queen"], "queen")
BACKENDS = ("mock", "bridge")
SLICES = 3          # round trips: the two systems take turns this many times per run
REPEATS = 3         # matmul: reference, BLAS and sequential numpy take turns this many times per run


def connect(port: int) -> Client:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client = Client(SocketStreamTransport(sock))
    client.version(8192)
    client.attach("queen", QUEEN)
    return client


def wait_until(predicate, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError("timed out")
        time.sleep(0.02)


class GpuSystem:
    """A fresh host-mode system with ``backend`` on GPU-0 (and for ``bridge``, the bridge process), a
    queen session, one GPU worker leasing GPU-0, its telemetry open for reading and the job file for
    writing: ready to time jobs, a slice at a time."""

    def __init__(self, backend: str, tmp: str) -> None:
        ir = write_ir(tmp, {"gpu.backend": backend, "secure9p.tcp_listener.enable": True})
        port = free_port()
        self.server = subprocess.Popen([sys.executable, "-m", "root_task.host", "--no-serial", "--console-port",
                                        "0", "--9p-port", str(port), "--ir", str(ir)], cwd=REPO,
                                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.bridge: subprocess.Popen | None = None
        self.sent = 0
        self.pending = b""
        try:
            wait_port(port, self.server)
            self.q = q = connect(port)
            if backend == "bridge":
                self.bridge = subprocess.Popen([sys.executable, "-m", "gpu_bridge.cli", "--mock", "--connect",
                                                f"127.0.0.1:{port}", "--ticket", QUEEN], cwd=REPO,
                                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                wait_until(lambda: "GPU-0" in q.listdir("/gpu"), 30)
            q.append("/queen/ctl", b'{"spawn":"gpu","lease":{"gpu_id":"GPU-0","mem_mb":1024,"streams":1,'
                                   b'"ttl_s":3600},"budget":{"ops":1000000}}')
            self.ring = q.open("/worker/worker-1/telemetry", m.O_RDONLY)
            self.job = q.open("/gpu/GPU-0/job", m.O_WRONLY)
        except BaseException:
            self.close()
            raise

    def jobs(self, count: int) -> list[float]:
        """Submit → OK latencies (ms) of ``count`` more self-test jobs, one at a time."""
        q = self.q
        latencies = []
        for _ in range(count):
            job_id = f"bench-{self.sent}"
            self.sent += 1
            done = f'"job":"{job_id}","state":"OK"'.encode()
            line = (f'{{"job":"{job_id}","kernel":"vadd","grid":[1,1,1],"block":[1,1,1],'
                    f'"bytes_hash":"{SELFTEST_HASH}","payload_b64":"{SELFTEST_B64}"}}\n').encode()
            started = time.perf_counter()
            q.write(self.job, 0, line)
            while done not in self.pending:
                chunk = q.read(self.ring, 0, q.iounit)
                if not chunk:
                    time.sleep(0.0005)
                self.pending = self.pending[-4096:] + chunk
            latencies.append((time.perf_counter() - started) * 1000)
            self.pending = self.pending.split(done, 1)[1]
        return latencies

    def close(self) -> None:
        if getattr(self, "q", None) is not None:
            self.q.close()
        for proc in (self.bridge, self.server):
            if proc is not None:
                proc.terminate()
                proc.wait(10)


def round_trips(jobs: int) -> dict[str, list[list[float]]]:
    """Per backend, ``SLICES`` slices of latencies (ms), ``jobs`` in all: both systems run at once and
    take turns slice by slice, the first of each turn alternating, so drift and warm-up hit both."""
    slices: dict[str, list[list[float]]] = {backend: [] for backend in BACKENDS}
    per_slice = max(1, jobs // SLICES)
    with tempfile.TemporaryDirectory() as tmp:
        systems: dict[str, GpuSystem] = {}
        try:
            for backend in BACKENDS:
                directory = Path(tmp) / backend
                directory.mkdir()
                systems[backend] = GpuSystem(backend, str(directory))
            for i in range(SLICES):
                for backend in (BACKENDS if i % 2 == 0 else BACKENDS[::-1]):
                    slices[backend].append(systems[backend].jobs(per_slice))
        finally:
            for system in systems.values():
                system.close()
    return slices


def pct(values: list[float], p: int) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def matmul_times(n: int, repeats: int) -> dict:
    """Seconds per repeat of the reference, numpy ``A @ B`` and numpy in the reference's order on the
    same n×n×n inputs, taking turns; and how many result elements differ from the reference's."""
    import numpy as np

    rng = random.Random(n)
    a = [rng.uniform(-1, 1) for _ in range(n * n)]
    b = [rng.uniform(-1, 1) for _ in range(n * n)]
    payload = arith.matmul_payload(n, n, n, a, b)
    an = np.frombuffer(payload[12:12 + 4 * n * n], dtype="<f4").reshape(n, n)
    bn = np.frombuffer(payload[12 + 4 * n * n:], dtype="<f4").reshape(n, n)

    def sequential():
        acc = np.zeros((n, n), dtype=np.float32)
        for p in range(n):
            acc = acc + np.outer(an[:, p], bn[p, :]).astype(np.float32)   # float32 product, then float32 sum
        return acc

    forms = {"ref": lambda: arith.execute("matmul", payload),
             "blas": lambda: (an @ bn).astype("<f4").tobytes(),
             "seq": lambda: sequential().astype("<f4").tobytes()}
    results = {name: fn() for name, fn in forms.items()}     # untimed: a first call pays for warm-up
    times: dict[str, list[float]] = {name: [] for name in forms}
    for _ in range(repeats):
        for name, fn in forms.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    ref = results["ref"]

    def differs(other: bytes) -> int:
        return sum(1 for i in range(0, len(ref), 4) if ref[i:i + 4] != other[i:i + 4])

    return {"n": n, "cells": n * n, "times": times, "blas_diff": differs(results["blas"]),
            "seq_diff": differs(results["seq"])}


def matmul_row(runs: list[dict]) -> dict:
    """One table row from every run's :func:`matmul_times` of one size: MFLOP/s of the best repeat, and
    each numpy form's speed over the reference's as the spread of the per-repeat ratios."""
    n = runs[0]["n"]
    times = {name: [t for run in runs for t in run["times"][name]] for name in runs[0]["times"]}
    flops = 2 * n ** 3
    best = {name: flops / min(values) / 1e6 for name, values in times.items()}
    return {"n": n, "cells": runs[0]["cells"], **best,
            "blas_ratio": slice_ratio(times, "ref", "blas"), "seq_ratio": slice_ratio(times, "ref", "seq"),
            "blas_diff": max(run["blas_diff"] for run in runs), "seq_diff": max(run["seq_diff"] for run in runs)}


def identical(diff: int, cells: int) -> str:
    return "identical" if diff == 0 else f"**differs in {diff}/{cells}**"


def render(rt: dict[str, list[list[float]]], rows: list[dict], runs: int) -> str:
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    jobs = sum(len(one) for one in rt["mock"])
    per_slice = len(rt["mock"][0])
    lines = [START, "## GPU jobs (bench/bench_gpu.py)", "",
             f"{now}, {platform.machine()}, Python {platform.python_version()}; {runs} run(s), each with both "
             f"backends' host-mode systems running at once and taking turns in {SLICES} slices of {per_slice} "
             f"self-test jobs ({jobs} jobs per backend in all), each timed from its Twrite on `/gpu/GPU-0/job` "
             "to its `OK` line on the worker's telemetry.", "",
             "| backend | p50 ms | p95 ms | mean ms | × mock, per slice |", "|---|---|---|---|---|"]
    medians = {name: [statistics.median(one) for one in slices] for name, slices in rt.items()}
    for name, slices in rt.items():
        values = [v for one in slices for v in one]
        ratio = "—" if name == "mock" else fmt_ratio(slice_ratio(medians, name, "mock"))
        lines.append(f"| {name} | {statistics.median(values):.3f} | {pct(values, 95):.3f} | "
                     f"{statistics.fmean(values):.3f} | {ratio} |")
    lines += ["", "The bridge's round trip is a second process polling the jobs stream and two `job_status` "
                  "writes. × mock: the bridge's median ÷ the mock's median of the same slice; the median of "
                  "those ratios, (min–max) over all slices of all runs.",
              "", f"matmul n×n×n on the same random binary32 inputs, the three forms taking turns {REPEATS} times "
                  "per run after one untimed call each; MFLOP/s of the best repeat; × reference = reference "
                  "time ÷ numpy time of the same repeat, the median of those ratios (min–max) over all repeats "
                  "of all runs; bytes compared with the reference:", "",
              "| n | reference MFLOP/s | numpy `A @ B` MFLOP/s | × reference | bytes | numpy sequential MFLOP/s "
              "| × reference | bytes |",
              "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['n']} | {row['ref']:.2f} | {row['blas']:.1f} | {fmt_ratio(row['blas_ratio'])} | "
                     f"{identical(row['blas_diff'], row['cells'])} | {row['seq']:.1f} | "
                     f"{fmt_ratio(row['seq_ratio'])} | {identical(row['seq_diff'], row['cells'])} |")
    lines += ["", "BLAS sums in another order, so its bytes are not the §9.3 result; numpy in the "
                  "reference's order (one float32 rounding per product and per sum) is, and could replace "
                  "the loop where numpy exists (the guest has none, the bridge may).", END]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few jobs, small matrices (same code path)")
    parser.add_argument("--jobs", type=int, default=0, help="jobs per backend and run (default 300; --quick 30)")
    parser.add_argument("--runs", type=int, default=1, help="fresh systems and repeats, one after another (default 1)")
    parser.add_argument("--report", type=Path, help="rewrite the bench:gpu region of this file")
    args = parser.parse_args(argv)
    jobs = args.jobs or (30 if args.quick else 300)
    runs = max(1, args.runs)
    sizes = (8, 16) if args.quick else (8, 16, 32, 64)
    rt: dict[str, list[list[float]]] = {backend: [] for backend in BACKENDS}
    times: dict[int, list[dict]] = {n: [] for n in sizes}
    for _ in range(runs):
        for backend, slices in round_trips(jobs).items():
            rt[backend].extend(slices)
        for n in sizes:
            times[n].append(matmul_times(n, REPEATS))
    region = render(rt, [matmul_row(times[n]) for n in sizes], runs)
    print(region)
    report_region(args.report, START, END, region)
    return 0


if __name__ == "__main__":
    sys.exit(main())
