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
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from bench_ninep import DIOD, connect, diod_cmd, free_port  # noqa: E402
from bench_report import report_region  # noqa: E402
from bench_telemetry import Server  # noqa: E402
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


def run(args) -> dict:
    size = int(args.mib * (1 << 20))
    best: dict[str, dict[str, float]] = {"push": {}, "fetch": {}}
    servers: list[Server] = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            nd = ninedoor(tmp)
            servers.append(nd)
            nclient = connect({"port": nd.port, "uname": "", "aname": tickets.mint(TICKET_SECRETS["queen"], "queen")})
            dclient = None
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
                print(f"slice {epoch}: " + ", ".join(f"{op} {who} {v / 1e6:.2f} MB/s" for op, row in best.items()
                                                      for who, v in row.items()), flush=True)
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
    return {"best": best, "size": size, "diod_version": diod_version}


def _note(best: dict, who: str, push: float, fetch: float) -> None:
    best["push"][who] = max(best["push"].get(who, 0.0), push)
    best["fetch"][who] = max(best["fetch"].get(who, 0.0), fetch)


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
             "| Operation | NineDoor CAS MB/s | diod copy MB/s | ratio (goal ≥ 1.0×) |", "|---|---|---|---|"]
    for op in ("push", "fetch"):
        row = result["best"][op]
        nd, dd = row.get("NineDoor", 0.0), row.get("diod")
        ratio = f"{nd / dd:.2f}×" if dd else "n/a"
        lines.append(f"| {op} | {nd / 1e6:.2f} | {dd / 1e6:.2f} | {ratio} |" if dd else
                     f"| {op} | {nd / 1e6:.2f} | not run | n/a |")
    lines += ["", "Regenerate: `doit bench` (or `python3 bench/bench_cas.py --report docs/benchmarks.md`).", "", END]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mib", type=float, default=4.0)
    parser.add_argument("--slices", type=int, default=SLICES)
    parser.add_argument("--quick", action="store_true", help="1 MiB, 1 slice")
    parser.add_argument("--report", type=Path)
    args = parser.parse_args()
    if args.quick:
        args.mib, args.slices = 1.0, 1
    result = run(args)
    text = region(result, args)
    print(text)
    report_region(args.report, START, END, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
