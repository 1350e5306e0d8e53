"""Front door: ``bench/bench_telemetry.py --quick`` runs all three parts and writes its report region.

The bench starts host mode, diod and heartbeat workers itself (issue 13, acceptance item 5). Timings are
never asserted — only that every part produced numbers, that the ring really stored the records the
client sent (its cursor file's ``next``), that diod's exported file holds exactly records × record size
bytes, that the heartbeat workers really wrote, that an idle ring reserves none of its capacity, and
that ``--report`` rewrites its own region in place, keeping the rest of the file.

Run as a script rather than through ``doit bench`` until dodo.py's ``task_bench`` lists it.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import replaced_region, stale_report

REPO = Path(__file__).resolve().parents[2]
START, END = "<!-- bench:telemetry:start -->", "<!-- bench:telemetry:end -->"
NUM = r"[0-9][0-9,]*(?:\.[0-9]+)?"
DIOD = "/usr/sbin/diod"


def table_rows(region: str, header_start: str) -> list[list[str]]:
    """The body rows of the markdown table whose header row starts with ``header_start``."""
    lines = region.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[at + 2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    return rows


@pytest.mark.slow
def test_bench_telemetry_quick_measures_all_three_parts(tmp_path):
    if not os.path.exists(DIOD):
        pytest.skip("diod not installed (Debian package diod); run toolchain/setup.sh")
    report = stale_report(tmp_path, START, END)
    proc = subprocess.run([sys.executable, "bench/bench_telemetry.py", "--quick", "--report", str(report)],
                          cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=90)
    out = proc.stdout
    assert proc.returncode == 0, out[-6000:]

    # Part 1: the ring stored what the queen sent (cursor next), diod's file holds exactly the records.
    ring = re.search(r"^part 1: ring /worker/(worker-\d+)/cursor: cursor=0 oldest=(\d+) next=(\d+) .*"
                     r"queen records sent (\d+), ring rseq advanced (\d+)$", out, re.M)
    assert ring, out[-3000:]
    next_rseq, sent, advanced = int(ring.group(3)), int(ring.group(4)), int(ring.group(5))
    assert next_rseq > 1000 and sent > 1000
    assert advanced >= sent                  # plus the heartbeat worker's own records
    assert int(ring.group(2)) > 1            # the unarmed ring wrapped rather than refusing
    diod = re.search(r"^part 1: diod file: size=(\d+) records=(\d+) record_bytes=(\d+)$", out, re.M)
    assert diod, out[-3000:]
    size, records, record_bytes = map(int, diod.groups())
    assert records > 1000 and record_bytes > 0
    assert size == records * record_bytes

    # Part 2: the workers were attached and wrote heartbeats.
    loads = {int(n): int(stored) for n, stored in
             re.findall(r"^part 2: (\d+) worker\(s\): .* heartbeats stored=(\d+);", out, re.M)}
    assert set(loads) == {1, 8}, out[-3000:]
    assert loads[1] >= 1 and loads[8] >= 8
    assert re.search(r"^part 2: 8 worker\(s\): .* sessions total=9 queen=1 worker=8 ", out, re.M), out[-3000:]

    # Part 3: idle rings hold nothing, and a worker costs far less than one ring's capacity.
    mem = re.search(r"^part 3: 100 idle workers spawned: .*?([0-9,]+) bytes per worker .* ring bytes used (\d+);",
                    out, re.M)
    assert mem, out[-3000:]
    assert int(mem.group(2)) == 0
    assert 0 < int(mem.group(1).replace(",", "")) < 65536 // 4

    region = replaced_region(report, START, END)
    assert "--quick" not in region and str(REPO) not in region and str(tmp_path) not in region

    appends = table_rows(region, "| records per Twrite |")
    assert [row[0] for row in appends] == ["1", "16"], region
    spread = rf"{NUM}× \({NUM}–{NUM}\)"                        # median (min–max) of the slice ratios
    for row in appends:
        assert len(row) == 9, row
        for cell in row[2:5]:                                   # NineDoor, diod, floor records/s
            assert re.fullmatch(NUM, cell), row
        assert re.fullmatch(spread, row[5]) and re.fullmatch(spread, row[6]), row
        assert re.fullmatch(rf"{NUM} / {NUM} / {NUM}", row[7]), row
        assert re.fullmatch(r"(met|not met)( \(the floor reaches [0-9.]+×\))?", row[8]), row

    latency = table_rows(region, "| heartbeat workers |")
    assert [row[0] for row in latency] == ["1", "8"], region
    for row in latency:
        assert len(row) == 11, row
        for cell in row[2:6] + [row[7]]:
            assert re.fullmatch(NUM, cell), row
        assert re.fullmatch(rf"{NUM} / {NUM}", row[9]), row
    assert latency[0][10] == "—"
    assert latency[1][10] in ("met", "not met", "n/a (no steady sample)")

    memory = table_rows(region, "| workers spawned |")
    assert len(memory) == 1 and memory[0][0] == "100", region
    assert re.fullmatch(NUM, memory[0][1]) and memory[0][3] == "0", memory
    assert re.fullmatch(NUM + " %", memory[0][2]), memory


def test_bench_records_are_valid_frames_of_one_size_with_increasing_seq():
    """What part 1 sends both servers: Frame v1 items the ring accepts, all the same size (diod's file
    size check relies on it), each ``seq`` new (a reused one would be a duplicate the ring does not store)."""
    from nine_door import frame_v1

    sys.path.insert(0, str(REPO / "bench"))
    try:
        import bench_telemetry
    finally:
        sys.path.remove(str(REPO / "bench"))
    records = bench_telemetry.Records()
    data = records.take(5) + records.take(3)
    frames, accepted, error = frame_v1.split_frames(data)
    assert error is None and accepted == len(data) == 8 * records.size
    assert [frame.seq for frame, _ in frames] == list(range(bench_telemetry.SEQ0, bench_telemetry.SEQ0 + 8))
    assert all(frame_v1.encode(frame) == raw and len(raw) == records.size for frame, raw in frames)
