"""The coh-rtc command line: writing, --check drift detection, doc regions, exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from coh_rtc import compile_ir
from coh_rtc.cli import main

from rtc_helpers import CANONICAL_ARGS as CANONICAL
from rtc_helpers import REPO


@pytest.fixture
def in_copy(repo_copy: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(repo_copy)
    return repo_copy


def test_canonical_invocation_writes_everything(in_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(CANONICAL) == 0
    compiled = compile_ir("configs/root_task.toml")
    out = capsys.readouterr().out.splitlines()
    assert out[-1].startswith("coh-rtc: wrote ")
    assert out[-1].endswith(f" files (manifest sha256 {compiled.manifest_sha256})")
    for path, data in compiled.outputs.items():
        assert (in_copy / path).read_bytes() == data
    assert (in_copy / "tests/cli/boot_v0.coh").is_file()


def test_check_passes_on_a_clean_tree(in_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(CANONICAL) == 0
    capsys.readouterr()
    assert main(CANONICAL + ["--check"]) == 0
    assert capsys.readouterr().out == "coh-rtc: check ok\n"


def test_check_detects_a_hand_edited_generated_file(in_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(CANONICAL) == 0
    target = in_copy / "root_task/generated/bootstrap.py"
    target.write_text(target.read_text().replace("'tick_ms': 5", "'tick_ms': 7"))
    capsys.readouterr()
    before = {p: p.read_bytes() for p in in_copy.rglob("*") if p.is_file()}
    assert main(CANONICAL + ["--check"]) == 4
    assert capsys.readouterr().err.splitlines() == ["drift: root_task/generated/bootstrap.py"]
    assert {p: p.read_bytes() for p in in_copy.rglob("*") if p.is_file()} == before  # --check writes nothing


def test_check_reports_missing_outputs(in_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(CANONICAL) == 0
    (in_copy / "out/manifests/root_task_resolved.json.sha256").unlink()
    capsys.readouterr()
    assert main(CANONICAL + ["--check"]) == 4
    assert "drift: out/manifests/root_task_resolved.json.sha256" in capsys.readouterr().err


def test_marked_doc_regions_are_refreshed_and_checked(in_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = in_copy / "docs" / "guide" / "limits.md"
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text("# Limits\n\n<!-- coh-rtc:secure9p_limits:start -->\nstale\n<!-- coh-rtc:secure9p_limits:end -->\ntail\n")
    assert main(CANONICAL) == 0
    snippet = (in_copy / "docs/snippets/secure9p_limits.md").read_text()
    assert doc.read_text() == (
        "# Limits\n\n<!-- coh-rtc:secure9p_limits:start -->\n" + snippet + "<!-- coh-rtc:secure9p_limits:end -->\ntail\n"
    )
    capsys.readouterr()
    assert main(CANONICAL + ["--check"]) == 0
    doc.write_text(doc.read_text().replace("8192 bytes", "9000 bytes"))
    assert main(CANONICAL + ["--check"]) == 4
    assert "drift: docs/guide/limits.md" in capsys.readouterr().err


def test_invalid_ir_exits_1_and_leaves_the_tree_alone(in_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ir = in_copy / "configs/root_task.toml"
    ir.write_text(ir.read_text().replace("msize = 8192", "msize = 9000"))
    before = sorted(p for p in in_copy.rglob("*"))
    assert main(CANONICAL) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == "coh-rtc: 1 error(s)"
    assert err[0].startswith("configs/root_task.toml:") and err[0].endswith(": secure9p.msize: 9000 exceeds maximum 8192")
    assert sorted(p for p in in_copy.rglob("*")) == before


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert main(["configs/root_task.toml"]) == 2  # --out is required
    assert main(["x.toml", "--out", "d", "--bogus"]) == 2
    capsys.readouterr()


def test_unwritable_output_exits_3(in_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = in_copy / "blocked"
    blocker.write_text("a file where a directory is needed\n")
    code = main(["configs/root_task.toml", "--out", "blocked/generated"])
    assert code == 3
    assert capsys.readouterr().err == "coh-rtc: cannot write blocked/generated: Not a directory\n"
    assert not (in_copy / "out").exists()  # directories are made before any file is written


def test_python_dash_m_entry_point(in_copy: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [sys.executable, "-m", "coh_rtc", *CANONICAL, "--check"], cwd=in_copy, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 4  # nothing generated yet in the copy: everything drifts
    assert "drift: root_task/generated/bootstrap.py" in proc.stderr
