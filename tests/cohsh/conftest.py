"""Fixtures for the cohsh tests: a fake console server speaking the real framing."""
from __future__ import annotations

import pytest

from cohsh_fake_console import FakeConsole


@pytest.fixture
def console():
    server = FakeConsole()
    yield server
    server.close()
