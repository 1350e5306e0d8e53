#!/usr/bin/env python3
"""GPU jobs (SPEC §9, issue 16): job round trip for the mock backend and through the bridge, and the
reference matmul against numpy on the same inputs.

* **Round trip, submit → OK** — host mode as a subprocess (``python3 -m root_task.host --no-serial --ir
  <test IR>``), a queen session over 9P TCP, one GPU worker leasing ``GPU-0``. Each job is the §9.3
  self-test payload under a new id, written to ``/gpu/GPU-0/job``; the clock stops when its ``OK`` line
  arrives on an open read fid of the worker's telemetry (the fan-out, §9.3). ``mock``: the server runs
  the job inside the Twrite, so the OK is there before the Rwrite. ``bridge``: ``gpu-bridge-host --mock
  --connect`` (a second process) reads ``/gpu/bridge/jobs``, runs the job and reports it; its idle poll
  (2 ms doubling to 50 ms) is part of what is measured. p50/p95 over ``--jobs`` jobs each.
* **matmul arithmetic** — the same random binary32 inputs for each size n×n×n: the reference
  (:mod:`nine_door.gpu.arith`: every product and sum rounded to binary32, sequential over p), numpy
  ``A @ B`` in float32 (BLAS: another summation order), and numpy with the reference's order (float32
  outer products accumulated over p, one rounding per product and per sum). Reported: MFLOP/s (2n³
  flops), numpy's speed as a ratio of the reference's, and whether the result bytes are identical to
  the reference (else how many of the n² elements differ). The reference is the definition; a library
  may only replace it where the bytes are identical.

Usage: ``python3 bench/bench_gpu.py [--quick] [--jobs N] [--report docs/benchmarks.md]``
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
from coh_rtc.testing import TICKET_SECRETS, write_ir  # noqa: E402
from nine_door import messages as m  # noqa: E402
from nine_door import tickets  # noqa: E402
from nine_door.client import Client, SocketStreamTransport  # noqa: E402
from nine_door.gpu import arith  # noqa: E402

START, END = "<!-- bench:gpu:start -->", "<!-- bench:gpu:end -->"
SELFTEST_B64 = "AACAPwAAAEAAAEBAAACAQAAAIEEAAKBBAADwQQAAIEI="
SELFTEST_HASH = "sha256:e7011a16a15eedff7eaa3321509f336d786248946170ac997aa2205326c2afe3"
QUEEN = tickets.mint(TICKET_SECRETS["queen"], "queen")


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


def round_trips(backend: str, jobs: int) -> list[float]:
    """Submit → OK latencies (ms) of ``jobs`` self-test jobs on GPU-0 of a fresh host-mode system."""
    with tempfile.TemporaryDirectory() as tmp:
        ir = write_ir(tmp, {"gpu.backend": backend, "secure9p.tcp_listener.enable": True})
        port = free_port()
        server = subprocess.Popen([sys.executable, "-m", "root_task.host", "--no-serial", "--console-port", "0",
                                   "--9p-port", str(port), "--ir", str(ir)], cwd=REPO,
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        bridge = None
        try:
            wait_port(port, server)
            q = connect(port)
            if backend == "bridge":
                bridge = subprocess.Popen([sys.executable, "-m", "gpu_bridge.cli", "--mock", "--connect",
                                           f"127.0.0.1:{port}", "--ticket", QUEEN], cwd=REPO,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                wait_until(lambda: "GPU-0" in q.listdir("/gpu"), 30)
            q.append("/queen/ctl", b'{"spawn":"gpu","lease":{"gpu_id":"GPU-0","mem_mb":1024,"streams":1,'
                                   b'"ttl_s":3600},"budget":{"ops":1000000}}')
            ring = q.open("/worker/worker-1/telemetry", m.O_RDONLY)
            job = q.open("/gpu/GPU-0/job", m.O_WRONLY)
            pending = b""
            latencies = []
            for i in range(jobs):
                job_id = f"bench-{i}"
                done = f'"job":"{job_id}","state":"OK"'.encode()
                line = (f'{{"job":"{job_id}","kernel":"vadd","grid":[1,1,1],"block":[1,1,1],'
                        f'"bytes_hash":"{SELFTEST_HASH}","payload_b64":"{SELFTEST_B64}"}}\n').encode()
                started = time.perf_counter()
                q.write(job, 0, line)
                while done not in pending:
                    chunk = q.read(ring, 0, q.iounit)
                    if not chunk:
                        time.sleep(0.0005)
                    pending = pending[-4096:] + chunk
                latencies.append((time.perf_counter() - started) * 1000)
                pending = pending.split(done, 1)[1]
            q.close()
            return latencies
        finally:
            for proc in (bridge, server):
                if proc is not None:
                    proc.terminate()
                    proc.wait(10)


def pct(values: list[float], p: int) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def matmul_row(n: int, repeats: int) -> dict:
    import numpy as np

    rng = random.Random(n)
    a = [rng.uniform(-1, 1) for _ in range(n * n)]
    b = [rng.uniform(-1, 1) for _ in range(n * n)]
    payload = arith.matmul_payload(n, n, n, a, b)
    parsed = arith.parse("matmul", payload)
    an = np.frombuffer(payload[12:12 + 4 * n * n], dtype="<f4").reshape(n, n)
    bn = np.frombuffer(payload[12 + 4 * n * n:], dtype="<f4").reshape(n, n)

    def sequential():
        acc = np.zeros((n, n), dtype=np.float32)
        for p in range(n):
            acc = acc + np.outer(an[:, p], bn[p, :]).astype(np.float32)   # float32 product, then float32 sum
        return acc

    def best(fn) -> tuple[float, object]:
        times, result = [], None
        for _ in range(repeats):
            t0 = time.perf_counter()
            result = fn()
            times.append(time.perf_counter() - t0)
        return min(times), result

    t_ref, ref = best(lambda: arith.execute("matmul", payload))
    t_blas, blas = best(lambda: (an @ bn).astype("<f4").tobytes())
    t_seq, seq = best(lambda: sequential().astype("<f4").tobytes())
    del parsed

    def differs(other: bytes) -> int:
        return sum(1 for i in range(0, len(ref), 4) if ref[i:i + 4] != other[i:i + 4])

    flops = 2 * n ** 3
    return {"n": n, "ref": flops / t_ref / 1e6, "blas": flops / t_blas / 1e6, "seq": flops / t_seq / 1e6,
            "blas_ratio": t_ref / t_blas, "seq_ratio": t_ref / t_seq, "blas_diff": differs(blas),
            "seq_diff": differs(seq), "cells": n * n}


def identical(diff: int, cells: int) -> str:
    return "identical" if diff == 0 else f"**differs in {diff}/{cells}**"


def render(rt: dict[str, list[float]], rows: list[dict], jobs: int) -> str:
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [START, "## GPU jobs (bench/bench_gpu.py)", "",
             f"{now}, {platform.machine()}, Python {platform.python_version()}; host mode as a subprocess, "
             f"{jobs} self-test jobs per backend, each timed from its Twrite on `/gpu/GPU-0/job` to its `OK` "
             "line on the worker's telemetry.", "",
             "| backend | p50 ms | p95 ms | mean ms |", "|---|---|---|---|"]
    for name, values in rt.items():
        lines.append(f"| {name} | {statistics.median(values):.3f} | {pct(values, 95):.3f} | "
                     f"{statistics.fmean(values):.3f} |")
    if "mock" in rt and "bridge" in rt:
        ratio = statistics.median(rt["bridge"]) / statistics.median(rt["mock"])
        lines += ["", f"The bridge's round trip (a second process polling the jobs stream, two `job_status` "
                      f"writes) is {ratio:.1f}× the mock's median."]
    lines += ["", "matmul n×n×n on the same random binary32 inputs (best of the repeats); "
                  "ratio = reference time ÷ numpy time; bytes compared with the reference:", "",
              "| n | reference MFLOP/s | numpy `A @ B` MFLOP/s (ratio) | bytes | numpy sequential MFLOP/s (ratio) | bytes |",
              "|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['n']} | {row['ref']:.2f} | {row['blas']:.1f} ({row['blas_ratio']:.0f}×) | "
                     f"{identical(row['blas_diff'], row['cells'])} | {row['seq']:.1f} ({row['seq_ratio']:.0f}×) | "
                     f"{identical(row['seq_diff'], row['cells'])} |")
    lines += ["", "BLAS sums in another order, so its bytes are not the §9.3 result; numpy in the "
                  "reference's order (one float32 rounding per product and per sum) is, and could replace "
                  "the loop where numpy exists (the guest has none, the bridge may).", END]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few jobs, small matrices (same code path)")
    parser.add_argument("--jobs", type=int, default=0, help="jobs per backend (default 300; --quick 30)")
    parser.add_argument("--report", type=Path, help="rewrite the bench:gpu region of this file")
    args = parser.parse_args(argv)
    jobs = args.jobs or (30 if args.quick else 300)
    rt = {backend: round_trips(backend, jobs) for backend in ("mock", "bridge")}
    sizes = (8, 16) if args.quick else (8, 16, 32, 64)
    rows = [matmul_row(n, 1 if args.quick else 3) for n in sizes]
    region = render(rt, rows, jobs)
    print(region)
    report_region(args.report, START, END, region)
    return 0


if __name__ == "__main__":
    sys.exit(main())
