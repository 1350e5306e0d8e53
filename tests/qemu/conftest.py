"""QEMU tests boot the real image; they need `doit build` outputs and qemu-system-aarch64."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from qemu.harness import QemuGuest
from qemu.launch import DEFAULT_INITRD, DEFAULT_KERNEL

REPO = Path(__file__).resolve().parents[2]
LOG_DIR = REPO / "out" / "test-logs"


def pytest_collection_modifyitems(config, items):
    missing = [str(p) for p in (DEFAULT_KERNEL, DEFAULT_INITRD) if not Path(p).is_file()]
    reason = None
    if missing:
        reason = f"boot image missing ({', '.join(missing)}); run `doit build`"
    elif shutil.which("qemu-system-aarch64") is None:
        reason = "qemu-system-aarch64 not installed; run toolchain/setup.sh"
    for item in items:
        if "tests/qemu" in str(item.fspath):
            item.add_marker(pytest.mark.qemu)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture
def guest_factory(request):
    """Start guests whose serial logs land in out/test-logs/<test name>[-n].log; always stopped."""
    guests: list[QemuGuest] = []

    def make(**kwargs) -> QemuGuest:
        name = request.node.name.replace("/", "_")
        suffix = f"-{len(guests)}" if guests else ""
        guest = QemuGuest(log_path=LOG_DIR / f"{name}{suffix}.log", **kwargs)
        guests.append(guest)
        return guest

    yield make
    for guest in guests:
        guest.stop()
