"""Shared fixtures for the build tests. Tests needing the fetched guest pieces skip without them."""
from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
GUEST_ROOT = REPO / "out/cache/guest-root"


@pytest.fixture
def guest_root() -> Path:
    if not (GUEST_ROOT / ".cohesix-lock-sha256").is_file():
        pytest.skip("out/cache/guest-root absent: run toolchain/setup.sh (guest fetch) first")
    return GUEST_ROOT
