"""``doit build | regen | check_generated | fuzz | bench | bench_boot | demo`` as the README names them."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from .conftest import IMAGE, REPO, run_doit

BENCHMARKS = REPO / "docs" / "benchmarks.md"


def test_doit_build_makes_the_image_and_a_second_run_is_up_to_date():
    run_doit("build", timeout=600).check()
    for path in IMAGE:
        assert path.is_file() and path.stat().st_size > 0
    second = run_doit("build").check()
    assert re.search(r"^-- build$", second.output, re.M), second.output  # "--": doit found it up to date
    assert "[image]" not in second.output


def test_doit_regen_then_check_generated_agree():
    regen = run_doit("regen").check()
    assert re.search(r"^(\.|--) +regen$", regen.output, re.M), regen.output
    check = run_doit("check_generated").check()
    assert re.search(r"^\. +check_generated$", check.output, re.M), check.output


def test_doit_fuzz_quick_runs_the_decoder_fuzzer_and_the_parser_properties():
    run = run_doit("fuzz", "--quick", env={"SECURE9P_FUZZ_ITERS": ""}).check()
    line = re.search(r"^secure9p-fuzz: iterations=(\d+) .* failures=0$", run.output, re.M)
    assert line and line.group(1) == "2000", run.output
    assert re.search(r"^\d+ passed", run.output, re.M), run.output


def _docs_unchanged(before: bytes) -> None:
    assert BENCHMARKS.read_bytes() == before, "a quick benchmark run rewrote docs/benchmarks.md"


@pytest.mark.slow
def test_doit_bench_quick_writes_its_report_elsewhere(tmp_path):
    before = BENCHMARKS.read_bytes()
    report = tmp_path / "bench.md"
    run_doit("bench", "--quick", "--report", str(report), timeout=300).check()
    text = report.read_text()
    assert "<!-- bench:ninep:start -->" in text and "NineDoor" in text, text
    assert "| floor ÷ diod |" in text and "floor_9p.py" in text, text           # the Python floor peer
    for plot in ("ninep_sessions.svg", "shards_cost.svg"):                      # plots beside the report
        assert (tmp_path / "plots" / plot).read_text().startswith("<svg"), plot
    _docs_unchanged(before)


@pytest.mark.slow
@pytest.mark.qemu
def test_doit_bench_boot_quick_boots_once_and_writes_its_report_elsewhere(tmp_path):
    before = BENCHMARKS.read_bytes()
    report = tmp_path / "boot.md"
    run = run_doit("bench_boot", "--quick", "--report", str(report), timeout=300).check()
    assert len(re.findall(r"^boot 1/1 ", run.output, re.M)) >= 1, run.output
    assert not re.search(r"^boot 2/", run.output, re.M), run.output
    text = report.read_text()
    assert "<!-- bench:boot:start -->" in text and "`Cohesix console ready`" in text, text
    _docs_unchanged(before)


@pytest.mark.slow
@pytest.mark.qemu
def test_doit_demo_boots_attaches_and_runs_the_demo_script():
    run = run_doit("demo", timeout=300).check()
    assert "OK ATTACH role=queen" in run.output, run.output
    assert "heartbeat" in run.output, run.output
    assert "OK QUIT" in run.output, run.output


@pytest.mark.slow
def test_doit_mutants_plants_a_bug_and_reports_it_caught():
    run = run_doit("mutants", "--only", "tick-ms-ignored", timeout=300).check()
    assert re.search(r"^caught +tick-ms-ignored ", run.output, re.M), run.output
    assert re.search(r"^1/1 mutations caught", run.output, re.M), run.output
