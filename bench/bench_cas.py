#!/usr/bin/env python3
"""CAS push and fetch (SPEC §13) vs copying the same bytes to and from a diod export, same client, same run.

* NineDoor — host mode (``python3 -m root_task.host``) with a schema-1.3 test IR: ``cas.enable``,
  ``chunk_bytes`` = 8168 (the largest that fits one Twrite at msize 8192). **Push** is
  ``cas_tool.remote.push`` of a packed payload (per chunk: Twalk, Tgetattr, Tlopen, Twrite, Tclunk;
  then the manifest, whose commit re-hashes the whole payload on the server). **Fetch** is
  ``cas_tool.remote.fetch`` (manifest, then each chunk: Twalk, Tlopen, Tread…, Tclunk; the payload is
  written to a file and its SHA-256 checked).
* diod — ``/usr/sbin/diod`` exporting a temp directory; **push** = Tlopen of an empty exported file and
  Twrite of the same bytes in the same 8168-byte pieces at their offsets; **fetch** = Tlopen and Tread
  ``iounit`` pieces into a local file. Same ``nine_door.client.Client`` over TCP for both servers, and
  both pipelined up to 32 requests in flight (``cas_tool.remote.Pipe``).

Each slice uses a fresh random payload (content addressing would otherwise skip committed chunks), and
NineDoor and diod alternate in ``SLICES`` slices so background load hits both; the best slice's MB/s is
reported with the ratio NineDoor ÷ diod (goal ≥ 1.0×). ``--report`` rewrites the bench:cas region.

Usage: ``python3 bench/bench_cas.py [--mib N] [--quick] [--report docs/benchmarks.md]``
"""
from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import hashlib  # noqa: E402

from bench_ninep import ALL_CPUS, DIOD, RawBurst, connect, diod_cmd, free_port, pin  # noqa: E402
from bench_spread import fmt_ratio, slice_ratio  # noqa: E402
from bench_report import report_region  # noqa: E402
from bench_telemetry import Server, start_floor  # noqa: E402
from cas_tool import packdir, remote  # noqa: E402
from coh_rtc.testing import TICKET_SECRETS, write_ir  # noqa: E402
from nine_door import messages as m  # noqa: E402
from nine_door import tickets  # noqa: E402

START, END = "<!-- bench:cas:start -->", "<!-- bench:cas:end -->"
CHUNK = 8168
SLICES = 3
GOAL = 1.0
WINDOW = 32             # requests in flight for diod, as cas-tool uses tags_per_session (32) with NineDoor


def ninedoor(tmp: str) -> Server:
    ir = write_ir(tmp, {"cas.enable": True, "cas.store.chunk_bytes": CHUNK}, schema="1.3")
    port = free_port()
    server = Server("NineDoor", [sys.executable, "-m", "root_task.host", "--ir", str(ir), "--no-serial",
                                 "--console-port", "0", "--9p-port", str(port)], port)
    server.wait_ready()
    return server


def diod_push(client, path: str, data: bytes) -> None:
    """The same bytes in the same 8168-byte pieces, pipelined like cas-tool (WINDOW Twrites per burst)."""
    fid = client.open(path, m.O_WRONLY)
    try:
        writes = [m.Twrite(client.next_tag(), fid, offset, data[offset:offset + CHUNK])
                  for offset in range(0, len(data), CHUNK)]
        for reply, request in zip(remote.Pipe(client, WINDOW).run(writes), writes):
            if reply.count != len(request.data):
                raise RuntimeError("diod short write")
    finally:
        client.clunk(fid)


def diod_fetch(client, path: str, out: str, size: int) -> int:
    """Treads of ``iounit`` at every offset, WINDOW per burst, into a local file."""
    fid = client.open(path, m.O_RDONLY)
    total = 0
    try:
        reads = [m.Tread(client.next_tag(), fid, offset, client.iounit) for offset in range(0, size, client.iounit)]
        with open(out, "wb") as handle:
            for reply in remote.Pipe(client, WINDOW).run(reads):
                handle.write(reply.data)
                total += len(reply.data)
    finally:
        client.clunk(fid)
    return total


# --- read throughput (issue 20): 8 KiB Treads on open files, the same bytes on every server -----------
READ_FILES = 8          # committed chunks read per burst (NineDoor), or pieces of one file (diod, floor)


def read_throughput(targets: dict, seconds: float, slices: int) -> dict:
    """MB/s of Treads of CHUNK bytes (msize 8192: the largest) on already-open files, the same bytes
    everywhere: NineDoor reads READ_FILES committed chunks (one open fid each, offset 0), diod and the
    floor the same bytes as one file at offsets i × CHUNK. Two forms: one Tread in flight, and the
    READ_FILES Treads in one burst (raw client: replies checked by type, tag and exact size). Client and
    server pinned to one CPU, as bench_ninep's one-session rows; servers alternate slice by slice."""
    reply_size = 11 + CHUNK
    rates: dict[str, dict[str, list[float]]] = {"one": {}, "burst": {}}
    me = os.sched_getaffinity(0)
    one_cpu = {min(ALL_CPUS)}
    try:
        os.sched_setaffinity(0, one_cpu)
        for _ in range(slices):
            for name, (pid, client, reads) in targets.items():
                pin(pid, one_cpu)
                try:
                    burst = RawBurst(client.transport.sock,
                                     [m.Tread(i + 1, fid, offset, CHUNK) for i, (fid, offset) in enumerate(reads)],
                                     reply_size)
                    for form in ("one", "burst"):
                        done, end = 0, time.monotonic() + seconds / slices / 2
                        t0 = time.perf_counter()
                        while time.monotonic() < end:
                            if form == "burst":
                                burst.run()
                            else:
                                for fid, offset in reads:
                                    if len(client.read(fid, offset, CHUNK)) != CHUNK:
                                        raise RuntimeError(f"{name}: short read")
                            done += len(reads) * CHUNK
                        rates[form].setdefault(name, []).append(done / (time.perf_counter() - t0))
                finally:
                    pin(pid, ALL_CPUS)
    finally:
        os.sched_setaffinity(0, me)
    return rates


def read_targets(nd, nclient, dd, dclient, tmp: str, data: bytes, epoch: int, servers: list) -> dict:
    """Open the files read_throughput reads: NineDoor's committed chunks of ``epoch``, diod's copy of
    the same bytes, and the floor serving them."""
    pieces = [data[i * CHUNK:(i + 1) * CHUNK] for i in range(READ_FILES)]
    if any(len(piece) != CHUNK for piece in pieces):
        raise RuntimeError(f"the payload holds fewer than {READ_FILES} whole chunks")
    targets = {"NineDoor": (nd.pid, nclient, [
        (nclient.open(f"/updates/{epoch}/chunks/{hashlib.sha256(piece).hexdigest()}"), 0) for piece in pieces])}
    same = os.path.join(tmp, "export", "read-bytes")
    Path(same).write_bytes(b"".join(pieces))
    if dclient is not None:
        fid = dclient.open("/read-bytes")
        targets["diod"] = (dd.pid, dclient, [(fid, i * CHUNK) for i in range(READ_FILES)])
    floor, fclient = start_floor(same, servers)
    fid = fclient.open("/read-bytes")
    targets["floor"] = (floor.pid, fclient, [(fid, i * CHUNK) for i in range(READ_FILES)])
    return targets


def run(args) -> dict:
    size = int(args.mib * (1 << 20))
    best: dict[str, dict[str, float]] = {"push": {}, "fetch": {}}
    servers: list[Server] = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            nd = ninedoor(tmp)
            servers.append(nd)
            nclient = connect({"port": nd.port, "uname": "", "aname": tickets.mint(TICKET_SECRETS["queen"], "queen")})
            dclient = dd = None
            diod_version = "diod not run"
            export = os.path.join(tmp, "export")
            os.makedirs(export)
            if os.path.exists(DIOD):
                port = free_port()
                dd = Server("diod", diod_cmd(port, export), port)
                servers.append(dd)
                dd.wait_ready()
                dclient = connect({"port": port, "uname": "root", "aname": export})
                ver = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "diod"], capture_output=True, text=True)
                diod_version = f"diod {ver.stdout.strip() or '(unknown version)'}"
            rng = random.Random(1417)
            for epoch in range(1, args.slices + 1):
                data = rng.randbytes(size)
                payload = os.path.join(tmp, f"payload{epoch}")
                Path(payload).write_bytes(data)
                pack = os.path.join(tmp, f"pack{epoch}")
                packdir.pack(data, epoch, CHUNK, pack)
                t0 = time.perf_counter()
                remote.push(pack, nclient)
                push_s = time.perf_counter() - t0
                t0 = time.perf_counter()
                _, got = remote.fetch(nclient, epoch, os.path.join(tmp, f"back{epoch}"))
                fetch_s = time.perf_counter() - t0
                if Path(tmp, f"back{epoch}").read_bytes() != data:
                    raise RuntimeError("NineDoor fetch returned other bytes")
                _note(best, "NineDoor", size / push_s, size / fetch_s)
                if dclient is not None:
                    name = f"copy{epoch}"
                    open(os.path.join(export, name), "wb").close()
                    t0 = time.perf_counter()
                    diod_push(dclient, f"/{name}", data)
                    push_s = time.perf_counter() - t0
                    t0 = time.perf_counter()
                    got = diod_fetch(dclient, f"/{name}", os.path.join(tmp, f"dback{epoch}"), size)
                    fetch_s = time.perf_counter() - t0
                    if got != size or Path(export, name).read_bytes() != data:
                        raise RuntimeError("diod copy differs")
                    _note(best, "diod", size / push_s, size / fetch_s)
                print(f"slice {epoch}: " + ", ".join(f"{op} {who} {v[-1] / 1e6:.2f} MB/s"
                                                      for op, row in best["slices"].items()
                                                      for who, v in row.items()), flush=True)
            reads = read_throughput(read_targets(nd, nclient, dd, dclient, tmp, data, epoch,
                                                 servers), args.read_seconds, args.slices)
            for form, rows in reads.items():
                print(f"read ({form}): " + ", ".join(f"{who} {statistics.median(v) / 1e6:.1f} MB/s"
                                                     for who, v in rows.items()), flush=True)
            nclient.close()
            if dclient is not None:
                dclient.close()
        except Exception:
            for server in servers:
                print(f"--- {server.name} stderr ---\n{server.stderr_tail()}", file=sys.stderr)
            raise
        finally:
            for server in servers:
                server.stop()
    return {"best": best, "size": size, "diod_version": diod_version, "reads": reads}


def _note(best: dict, who: str, push: float, fetch: float) -> None:
    """Keep the best rate per operation and server, and every slice's rate (for the ratio's spread)."""
    for op, rate in (("push", push), ("fetch", fetch)):
        best[op][who] = max(best[op].get(who, 0.0), rate)
        best.setdefault("slices", {}).setdefault(op, {}).setdefault(who, []).append(rate)


def region(result: dict, args) -> str:
    when = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    lines = [START, "",
             f"CAS push and fetch (issue 17, acceptance 4), one run ({when}, {os.cpu_count()} cores, "
             f"{platform.machine()}, Python {platform.python_version()}, {result['diod_version']}). A "
             f"{result['size'] / (1 << 20):g} MiB random payload per slice, chunk_bytes {CHUNK}, the same client "
             "(`nine_door.client.Client` over TCP, up to 32 requests in flight for both): NineDoor in host mode "
             "through `cas_tool.remote.push`/`fetch` (per chunk walk, getattr, open, write or read, clunk, "
             "pipelined; the manifest commit re-hashes the payload; fetch verifies SHA-256), against copying the "
             "same bytes in the same pieces to and from one file exported by diod (one open, then pipelined "
             f"Twrites/Treads); {args.slices} alternating slices, best shown. NineDoor pays five requests per "
             "chunk where the copy pays one.", "",
             "| Operation | NineDoor CAS MB/s (best) | diod copy MB/s (best) | ratio, median of slices (min–max); goal ≥ 1.0× |", "|---|---|---|---|"]
    for op in ("push", "fetch"):
        row = result["best"][op]
        nd, dd = row.get("NineDoor", 0.0), row.get("diod")
        ratio = fmt_ratio(slice_ratio(result["best"]["slices"][op], "NineDoor", "diod"))
        lines.append(f"| {op} | {nd / 1e6:.2f} | {dd / 1e6:.2f} | {ratio} |" if dd else
                     f"| {op} | {nd / 1e6:.2f} | not run | n/a |")
    reads = result["reads"]
    lines += ["", f"Read throughput (issue 20): Treads of {CHUNK} bytes (msize 8192) on open files, the same bytes "
              f"on every server — NineDoor: {READ_FILES} committed chunks, one fid each, offset 0; diod and the "
              f"Python floor (`bench/floor_9p.py`): one file of the same {READ_FILES} × {CHUNK} bytes at their "
              "offsets. One Tread in flight (`Client.read`), or all "
              f"{READ_FILES} in one burst (raw client: replies checked by type, tag and size); client and server "
              f"pinned to one CPU; {args.slices} alternating slice(s) of {args.read_seconds / args.slices / 2:.2g} s "
              "per form; MB/s: median slice; ratio: median of per-slice ratios (min–max).", "",
              "| Treads in flight | NineDoor MB/s | diod MB/s | floor MB/s | NineDoor ÷ diod (goal ≥ 1.0×) | "
              "floor ÷ diod |", "|---|---|---|---|---|---|"]
    for form, label in (("one", "1"), ("burst", str(READ_FILES))):
        rows = reads[form]
        cells = [f"{statistics.median(rows[k]) / 1e6:.1f}" if k in rows else "n/a"
                 for k in ("NineDoor", "diod", "floor")]
        ratio = slice_ratio(rows, "NineDoor", "diod")
        verdict = "" if ratio is None else (" met" if ratio[0] >= GOAL else " not met")
        lines.append(f"| {label} | {' | '.join(cells)} | {fmt_ratio(ratio)}{verdict} | "
                     f"{fmt_ratio(slice_ratio(rows, 'floor', 'diod'))} |")
    lines += ["", "Regenerate: `doit bench` (or `python3 bench/bench_cas.py --report docs/benchmarks.md`).", "", END]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mib", type=float, default=4.0)
    parser.add_argument("--slices", type=int, default=SLICES)
    parser.add_argument("--read-seconds", type=float, default=3.0, help="read throughput: seconds per server")
    parser.add_argument("--quick", action="store_true", help="1 MiB, 1 slice, 0.6 s of reads")
    parser.add_argument("--report", type=Path)
    args = parser.parse_args()
    if args.quick:
        args.mib, args.slices, args.read_seconds = 1.0, 1, 0.6
    result = run(args)
    text = region(result, args)
    print(text)
    report_region(args.report, START, END, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
