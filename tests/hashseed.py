"""Run one side of a reproducibility test in its own interpreter with a chosen ``PYTHONHASHSEED``.

Why: two runs in one process share one string-hash seed, so an output whose order comes from a ``set``
or a ``dict`` of strings built in hash order is the same both times and the test cannot see it. Two
processes with different seeds (1 and 2) do see it (issue 18: ``list(set(...))`` in image/stage.py
passed an in-process "build twice" test and failed across processes).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SEEDS = ("1", "2")


def run_seeded(argv: list[str], seed: str, cwd: Path = REPO, timeout: float = 600) -> subprocess.CompletedProcess:
    """``python <argv>`` with ``PYTHONHASHSEED=seed``; a failing command is an assertion error."""
    env = {**os.environ, "PYTHONHASHSEED": seed}
    proc = subprocess.run([sys.executable, *argv], cwd=cwd, env=env, capture_output=True, timeout=timeout)
    assert proc.returncode == 0, (f"{argv} (PYTHONHASHSEED={seed}) exited {proc.returncode}:\n"
                                  f"{proc.stdout.decode(errors='replace')[-3000:]}"
                                  f"{proc.stderr.decode(errors='replace')[-3000:]}")
    return proc


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` by relative path (what two runs must agree on, byte for byte)."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def run_seeded_pair(argvs: list[list[str]], cwd: Path = REPO, timeout: float = 600) -> None:
    """Run ``argvs[i]`` with ``SEEDS[i]``, both at once (half the wall time; the same tree for both)."""
    procs = [subprocess.Popen([sys.executable, *argv], cwd=cwd, env={**os.environ, "PYTHONHASHSEED": seed},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
             for argv, seed in zip(argvs, SEEDS)]
    for argv, seed, proc in zip(argvs, SEEDS, procs):
        out, _ = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, (f"{argv} (PYTHONHASHSEED={seed}) exited {proc.returncode}:\n"
                                      f"{out.decode(errors='replace')[-4000:]}")


def differing(a: dict[str, bytes], b: dict[str, bytes]) -> list[str]:
    """Paths present in one tree only or with other bytes (the assertion message of a failed test)."""
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
