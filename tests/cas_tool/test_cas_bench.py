"""bench/bench_cas.py --quick: both servers run, the fetched bytes are checked by the bench itself, and
the bench:cas region of the report carries the push and fetch rows and the read-throughput rows, each
ratio with its spread."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_bench_cas_quick_writes_its_region(tmp_path):
    report = tmp_path / "bench.md"
    report.write_text("# Benchmarks\n\nkept text\n")
    out = subprocess.run([sys.executable, "bench/bench_cas.py", "--quick", "--report", str(report)], cwd=REPO,
                         capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stdout + out.stderr
    text = report.read_text()
    assert "kept text" in text and "<!-- bench:cas:start -->" in text and "<!-- bench:cas:end -->" in text
    ratio = r"[0-9.]+× \([0-9.]+–[0-9.]+\)"                    # median of slices (min–max)
    for op in ("push", "fetch"):
        assert re.search(rf"^\| {op} \| [0-9.]+ \| [0-9.]+ \| {ratio} \|$", text, re.M), text
    for flight in ("1", "8"):                                 # 8 KiB read throughput, 3 servers
        assert re.search(rf"^\| {flight} \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \| {ratio} (met|not met) \| {ratio} \|$",
                         text, re.M), text
