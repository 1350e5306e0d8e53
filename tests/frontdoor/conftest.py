"""Front-door tests: every doit task the README names, run through ``.venv/bin/doit`` itself.

Why through doit and not the functions behind it: the README's commands are what a new user types;
``doit qemu`` once booted nothing (doit ran the list through a shell) while every function it called
was tested. These run in the repository (its ``.doit.db``), so an up-to-date build is not rebuilt.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOIT = REPO / ".venv" / "bin" / "doit"
IMAGE = (REPO / "out" / "Image", REPO / "out" / "rootfs.cpio")


def doit_path() -> str:
    if DOIT.is_file():
        return str(DOIT)
    found = shutil.which("doit")
    if not found:
        pytest.skip("doit not installed; run toolchain/setup.sh")
    return found


@dataclass(frozen=True)
class DoitRun:
    returncode: int
    output: str  # stdout and stderr together, as a user sees them

    def check(self) -> "DoitRun":
        assert self.returncode == 0, f"doit failed ({self.returncode}):\n{self.output[-6000:]}"
        return self


def run_doit(*args: str, timeout: float = 300, env: dict | None = None) -> DoitRun:
    """``doit <args>`` from the repository root, stdin closed, output captured."""
    full_env = dict(os.environ, **(env or {}))
    proc = subprocess.run([doit_path(), *args], cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout, env=full_env)
    return DoitRun(proc.returncode, proc.stdout)


def pytest_collection_modifyitems(config, items):
    """Tests marked ``qemu`` boot the real guest: skip them (with the reason) when QEMU is missing."""
    reason = None
    if shutil.which("qemu-system-aarch64") is None:
        reason = "qemu-system-aarch64 not installed; run toolchain/setup.sh"
    for item in items:
        if "tests/frontdoor" in str(item.fspath) and item.get_closest_marker("qemu") and reason:
            item.add_marker(pytest.mark.skip(reason=reason))


def stale_report(tmp_path: Path, start: str, end: str) -> Path:
    """A report holding a stale region between text a bench must keep (see :func:`replaced_region`)."""
    report = tmp_path / "benchmarks.md"
    report.write_text(f"# Benchmarks\n\nbefore\n\n{start}\nstale region\n{end}\n\nafter\n")
    return report


def replaced_region(report: Path, start: str, end: str) -> str:
    """The bench rewrote its own region of a :func:`stale_report` in place, kept the text around it and
    says which machine it measured on; returns the region."""
    text = report.read_text()
    assert text.startswith("# Benchmarks\n\nbefore\n\n") and text.rstrip().endswith("after")
    assert "stale region" not in text
    assert text.count(start) == 1 and text.count(end) == 1
    region = text.split(start, 1)[1].split(end, 1)[0]
    assert re.search(r"\d+ cores", region), region
    return region
