"""QEMU tests boot the real image: the session makes sure it is this tree's image, and says which it booted.

Before the first QEMU test the session checks ``out/`` against the tree (tests/qemu/image_current.py:
manifest vs files, and the source hash of every shipped guest ``.pyc`` vs the tree's source). A missing
or stale image is rebuilt once (``python -m image.build --out out``, what ``doit build`` runs) and
checked again; an image that still does not match, or a build that fails, fails every QEMU test.
Only a missing tool skips: ``qemu-system-aarch64`` or the fetched guest pieces (``toolchain/setup.sh``),
named in the reason -- and under ``CI=true`` / ``doit test`` that skip is itself a failure
(tests/conftest.py).
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from qemu.harness import QemuGuest

from .image_current import ImageCheck, check_image

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "out"
LOG_DIR = OUT / "test-logs"
GUEST_ROOT = OUT / "cache" / "guest-root"

_STATE: dict[str, object] = {}


def _prepare_image() -> tuple[str | None, str | None, ImageCheck | None]:
    """(skip reason, failure, check): verify out/, rebuilding it once when missing or stale."""
    if shutil.which("qemu-system-aarch64") is None:
        return "qemu-system-aarch64 not installed; run toolchain/setup.sh", None, None
    check = check_image(OUT)
    if check.current:
        return None, None, check
    if not (GUEST_ROOT / ".cohesix-lock-sha256").is_file():
        return (f"fetched guest pieces missing ({GUEST_ROOT}); run toolchain/setup.sh"), None, check
    proc = subprocess.run([sys.executable, "-m", "image.build", "--out", str(OUT)], cwd=REPO,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        return None, f"image build failed (exit {proc.returncode}):\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}", check
    rebuilt = check_image(OUT)
    if not rebuilt.current:
        return None, f"image does not match the tree after a rebuild: {rebuilt.describe()}", rebuilt
    rebuilt.note = f"rebuilt because: {'; '.join(check.problems[:3])}"
    return None, None, rebuilt


def pytest_collection_modifyitems(config, items):
    qemu_items = [item for item in items if "tests/qemu" in str(item.path).replace("\\", "/")]
    if not qemu_items:
        return
    skip, failure, check = _prepare_image()
    _STATE.update(skip=skip, failure=failure, check=check)
    for item in qemu_items:
        item.add_marker(pytest.mark.qemu)
        if skip:
            item.add_marker(pytest.mark.skip(reason=skip))


def pytest_report_collectionfinish(config, start_path, items):
    check, failure, skip = _STATE.get("check"), _STATE.get("failure"), _STATE.get("skip")
    if failure:
        return f"qemu image: NOT USABLE, every QEMU test fails: {str(failure).splitlines()[0]}"
    if skip:
        return f"qemu image: not checked, QEMU tests skip: {skip}"
    if isinstance(check, ImageCheck):
        note = f" [{check.note}]" if check.note else ""
        return f"qemu image: {check.describe()}{note}"
    return None


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    check = _STATE.get("check")
    if isinstance(check, ImageCheck) and _STATE.get("failure") is None and not _STATE.get("skip"):
        terminalreporter.write_line(f"qemu tests booted: {check.out / 'Image'} sha256={check.kernel_sha256} "
                                    f"+ {check.out / 'rootfs.cpio'} sha256={check.payload_sha256}")


@pytest.fixture(autouse=True)
def _image_is_this_tree():
    """Fail (not skip) every QEMU test when the image could not be made current."""
    failure = _STATE.get("failure")
    if failure:
        pytest.fail(str(failure), pytrace=False)


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
