"""Front door: ``doit bench_fairness --quick`` runs the bench, loads the 9P listener and writes its region.

Why through doit: that is the command the README names (tests/frontdoor/conftest.py); the bench starts
host mode and its 9P load processes itself. Timings are never asserted — only that every load produced a row with
numbers, that the loaded run really received 9P replies, and that ``--report`` rewrites its own region
in place, keeping the rest of the file.
"""
from __future__ import annotations

import re

import pytest

from .conftest import replaced_region, run_doit, stale_report

START, END = "<!-- bench:fairness:start -->", "<!-- bench:fairness:end -->"
NUM = r"[0-9][0-9,]*(?:\.[0-9]+)?"


@pytest.mark.slow
def test_bench_fairness_quick_writes_rows_under_real_load(tmp_path):
    report = stale_report(tmp_path, START, END)
    proc = run_doit("bench_fairness", "--quick", "--report", str(report), timeout=120).check()
    out = proc.output

    # The 8-connection load really ran: its workers received 9P replies, none of them errors.
    replies = {int(n): int(r) for n, r in
               re.findall(r"^load (\d+) 9P connections: ping median .*? 9p_replies=(\d+)", proc.output, re.M)}
    assert set(replies) == {0, 8}, out[-3000:]
    assert replies[0] == 0
    assert replies[8] > 0
    assert re.search(r"^load 8 9P connections: .* 0 Rlerror\)", proc.output, re.M), out[-3000:]

    region = replaced_region(report, START, END)
    rows = {}
    for line in region.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0].isdigit():
            rows[int(cells[0])] = cells
    assert set(rows) == {0, 8}, region
    for conns, cells in rows.items():
        # connections, pings, median, p95, max, ratio, replies, replies/s, Rlerror, CPU, verdict
        assert len(cells) == 11, cells
        for cell in cells[2:5]:
            assert re.fullmatch(NUM, cell), cells
        # the ratio to the idle median with its spread over slices; the idle row is the reference
        assert (re.fullmatch(rf"{NUM}× \({NUM}–{NUM}\)", cells[5]) if conns else cells[5] == "—"), cells
        assert re.fullmatch(NUM, cells[6]) and re.fullmatch(NUM, cells[7]), cells
    assert int(rows[8][6].replace(",", "")) > 0
    assert rows[8][10] in ("met", "not met")
    assert rows[0][10] == "—"
