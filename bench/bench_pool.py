#!/usr/bin/env python3
"""Session pool appends/s (SPEC §11.7, issue 14): the pool vs the same appends one by one vs p9fs.

One run, one server: host mode as a subprocess (``python3 -m root_task.host --no-serial --console-port 0
--9p-port P`` on a free loopback port), and in this process, alternating row by row over ``--rounds``
rounds so background load hits every row alike:

* **pool, batch k** — ``cohsh.pool.Pool.append_many("/log/queen.log", records, batch=k)``: one record
  (``bench-<i>\\n``) per Twrite, up to the server's ``tags_per_session`` in flight on one telemetry
  session, ``k`` Twrite frames per transport write (the batched Twrite builder); k = 4 is ``pool
  bench``'s default;
* **one by one, same client** — ``Pool.append(path, record)`` per record: the same pool, session and
  open fid, one Twrite and its reply at a time;
* **p9fs, one by one** — PyPI ``p9fs`` (its py9p client): attach queen with the same ticket, walk and
  ``Tlopen(O_WRONLY|O_APPEND)`` ``log/queen.log`` once, then one ``_write`` per record;
* **pool → cbor_v1 ring** — ``append_many`` to ``/worker/worker-1/telemetry`` (unarmed, so it wraps and
  never answers short): records become Frame v1 items, packed whole into Twrites of ≤ iounit bytes, one
  Twrite in flight (a ring may answer short, §3.13 rule 3).

Reported per row: appends/s (median and best round), server CPU µs per append (utime+stime of the
host-mode process over all rounds ÷ appends), and the goal of the issue — pool (batch 4, median)
≥ 50 000 appends/s and ≥ 5× one by one — as met / not met. Nothing here asserts a timing.

Usage: ``python3 bench/bench_pool.py [--quick] [--rounds N] [--report docs/benchmarks.md]``
(``--report`` rewrites the ``bench:pool`` region of that file, appending it if missing).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

from bench_ninep import cpu_s, free_port, wait_port  # noqa: E402
from bench_spread import fmt_ratio, slice_ratio  # noqa: E402
from bench_report import report_region  # noqa: E402
from cohsh.pool import Pool  # noqa: E402
from nine_door import tickets  # noqa: E402

START, END = "<!-- bench:pool:start -->", "<!-- bench:pool:end -->"
QUEEN_SECRET = "bootstrap"            # configs/root_task.toml queen ticket secret
LOG = "/log/queen.log"
RING = "/worker/worker-1/telemetry"
GOAL_RATE = 50_000
GOAL_RATIO = 5.0

FULL = {"pool": 30_000, "one": 4_000, "p9fs": 2_000, "ring": 20_000, "rounds": 3}
QUICK = {"pool": 3_000, "one": 400, "p9fs": 200, "ring": 2_000, "rounds": 1}


def host_cmd(port: int) -> list[str]:
    return [sys.executable, "-m", "root_task.host", "--no-serial", "--console-port", "0", "--9p-port", str(port)]


def records(tag: str, n: int) -> list[bytes]:
    return [f"{tag}-{i}\n".encode() for i in range(1, n + 1)]


class P9fsAppender:
    """p9fs (py9p) as a plain one-request-at-a-time 9P client appending to the log."""

    FID = 100

    def __init__(self, port: int, ticket: str) -> None:
        import p9fs

        self.fs = p9fs.P9FileSystem("127.0.0.1", port, "queen", aname=ticket, version="9P2000.L",
                                    skip_instance_cache=True)
        client = self.fs.client
        client._walk(client.ROOT, self.FID, ["log", "queen.log"])
        client._lopen(self.FID, os.O_WRONLY | os.O_APPEND)

    def run(self, data: list[bytes]) -> None:
        write = self.fs.client._write
        for record in data:
            write(self.FID, 0, record)


def measure(rows: dict, pid: int, name: str, n: int, fn) -> None:
    cpu0 = cpu_s(pid)
    started = time.perf_counter()
    fn()
    elapsed = time.perf_counter() - started
    cpu1 = cpu_s(pid)
    row = rows.setdefault(name, {"rates": [], "ops": 0, "cpu": 0.0})
    row["rates"].append(n / elapsed)
    row["ops"] += n
    row["cpu"] += cpu1 - cpu0


def run(args) -> tuple[list[tuple[str, dict]], dict]:
    sizes = QUICK if args.quick else FULL
    rounds = args.rounds or sizes["rounds"]
    port = free_port()
    server = subprocess.Popen(host_cmd(port), cwd=REPO, stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rows: dict[str, dict] = {}
    info: dict = {}
    try:
        wait_port(port, server)
        ticket = tickets.mint(QUEEN_SECRET, "queen")
        pool = Pool("127.0.0.1", port, ticket=ticket, env={}).open()
        pool.write("/queen/ctl", '{"spawn":"heartbeat","ticks":1000000}')
        info = {"window": pool.window, "batch_frames": pool.info.batch_frames, "msize": pool.msize,
                "schema": pool.frame_schema}
        try:
            p9 = P9fsAppender(port, ticket)
        except Exception as exc:  # noqa: BLE001 - reported as n/a, never fatal
            p9 = None
            info["p9fs_error"] = f"{exc.__class__.__name__}: {exc}"
        pool.append_many(LOG, records("warm", 500))            # warm-up: connections, fid, allocator
        for r in range(rounds):
            measure(rows, server.pid, "pool, batch 4", sizes["pool"],
                    lambda: pool.append_many(LOG, records(f"p4r{r}", sizes["pool"]), batch=4))
            measure(rows, server.pid, "pool, batch 16", sizes["pool"],
                    lambda: pool.append_many(LOG, records(f"p16r{r}", sizes["pool"]), batch=16))
            one = records(f"oner{r}", sizes["one"])
            measure(rows, server.pid, "one by one, same client", sizes["one"],
                    lambda: [pool.append(LOG, rec) for rec in one])
            if p9 is not None:
                p9_data = records(f"p9r{r}", sizes["p9fs"])
                measure(rows, server.pid, "p9fs, one by one", sizes["p9fs"], lambda: p9.run(p9_data))
            measure(rows, server.pid, "pool → cbor_v1 ring (packed, 1 Twrite in flight)", sizes["ring"],
                    lambda: pool.append_many(RING, records(f"ringr{r}", sizes["ring"])))
            print(f"round {r + 1}/{rounds}: " + ", ".join(
                f"{name} {row['rates'][-1]:,.0f}/s" for name, row in rows.items()), flush=True)
        pool.close()
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
    info["rounds"] = rounds
    info["sizes"] = sizes
    return list(rows.items()), info


def render(rows: list[tuple[str, dict]], info: dict, command: str) -> str:
    date = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    by_name = dict(rows)
    one = statistics.median(by_name["one by one, same client"]["rates"])
    pool4 = statistics.median(by_name["pool, batch 4"]["rates"])
    lines = [
        START,
        f"Appends to `/log/queen.log` through a session pool, one run ({date}, {os.cpu_count()} cores, "
        f"{platform.machine()}, Python {platform.python_version()}; host mode as a subprocess on 127.0.0.1, "
        f"client in the bench process, nothing pinned; {info['rounds']} round(s), rows alternating; "
        f"server `tags_per_session` = {info['window']}, `batch_frames` = "
        f"{str(info['batch_frames']).lower()}, msize {info['msize']}, ring schema {info['schema']}):",
        "",
        "| client | appends per round | appends/s (median) | appends/s (best) | × one by one (median of rounds, min–max) | "
        "server CPU µs/append |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in rows:
        median = statistics.median(row["rates"])
        spread = slice_ratio({"a": row["rates"], "b": by_name["one by one, same client"]["rates"]}, "a", "b")
        lines.append(f"| {name} | {row['ops'] // len(row['rates']):,} | {median:,.0f} | "
                     f"{max(row['rates']):,.0f} | {fmt_ratio(spread)} | {row['cpu'] / row['ops'] * 1e6:.1f} |")
    if "p9fs, one by one" not in by_name:
        lines.append(f"| p9fs, one by one | n/a ({info.get('p9fs_error', 'not installed')}) | | | | |")
    rate_ok = "met" if pool4 >= GOAL_RATE else "not met"
    ratio_ok = "met" if pool4 >= GOAL_RATIO * one else "not met"
    lines += [
        "",
        f"Goal (issue 14, judged on the median of `pool, batch 4`, the `pool bench` default): "
        f"≥ {GOAL_RATE:,} appends/s — **{rate_ok}** ({pool4:,.0f}/s); ≥ {GOAL_RATIO:g}× one by one — "
        f"**{ratio_ok}** ({pool4 / one:.1f}×).",
        "",
        f"Command: `{command}`. Each append is one Twrite of `<tag>-<i>\\n` (a log line, all-or-nothing, "
        "never short). The pool keeps up to `tags_per_session` Twrites in flight on one telemetry session "
        "and sends `batch` frames per `sendall`; one by one pays a full loopback round trip per append "
        "(client → server pump → reply → client). The server is one CPython thread: its CPU per append "
        "bounds the pool's rate on this machine (1 / server µs), and the client and server share the "
        f"{os.cpu_count()} cores with whatever else runs. The ring row packs whole Frame v1 items into "
        "each Twrite (at most iounit bytes) with one Twrite in flight, the discipline the pool uses for "
        "every node that may answer short; its appends/s count records, not Twrites.",
        END,
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts, one round (same code path)")
    parser.add_argument("--rounds", type=int, default=0, help="rounds (default 3; --quick 1)")
    parser.add_argument("--report", type=Path, help="rewrite the bench:pool region of this file")
    args = parser.parse_args(argv)
    rows, info = run(args)
    command = "python3 bench/bench_pool.py" + (" --quick" if args.quick else "") + (
        f" --rounds {args.rounds}" if args.rounds else "") + (" --report docs/benchmarks.md" if args.report else "")
    region = render(rows, info, command)
    print(region)
    report_region(args.report, START, END, region)
    return 0


if __name__ == "__main__":
    sys.exit(main())
