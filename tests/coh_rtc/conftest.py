"""Fixtures for the coh_rtc tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from rtc_helpers import REPO, SPEC_EXAMPLE


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    """A scratch tree holding a copy of configs/ and docs/ (never touch the real generated files)."""
    shutil.copytree(REPO / "configs", tmp_path / "configs")
    if (REPO / "docs").is_dir():
        shutil.copytree(REPO / "docs", tmp_path / "docs")
    return tmp_path


@pytest.fixture
def spec_example(tmp_path: Path) -> Path:
    path = tmp_path / "ir" / "root_task.toml"
    path.parent.mkdir()
    path.write_text(SPEC_EXAMPLE, encoding="utf-8")
    return path
