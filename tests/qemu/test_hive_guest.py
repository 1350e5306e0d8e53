"""``cohsh hive`` against a booted guest over the forwarded 9P port (issue 21 acceptance 2).

The guest is built from a test copy of the IR with the 9P TCP listener on (the same IR as
tests/qemu/test_ir_images.py); the hive reads it through a queen session pool on QEMU's forward of
that listener, and a headless Chromium walks the same acceptance path as the host-mode test
(tests/cohsh/test_hive_browser.py): spawn from the page → ``worker-1`` appears and its heartbeat count
rises within 3 s → a ctl error shows its errno text → kill from the page → gone. One boot.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from qemu.ir_image import build_for_ir

from coh_rtc import compile_ir
from cohsh.hive.cli import Hive
from cohsh.pool import Pool, PoolPolicy
from tests.cohsh.test_hive_browser import LOG_DIR, drive, make_browser
from tests.qemu.test_ir_images import boot, make_test_ir

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def listener_image(tmp_path_factory):
    work = tmp_path_factory.mktemp("hive-image")
    ir = make_test_ir(work)
    compiled = compile_ir(ir)
    build_for_ir(ir, work / "out")
    return work / "out", compiled


def test_hive_page_drives_a_booted_guest(guest_factory, listener_image):
    image_dir, compiled = listener_image
    guest = boot(guest_factory, image_dir)
    secret = compiled.ticket_secrets["queen"]

    def make_pool(control: int) -> Pool:
        return Pool("127.0.0.1", guest.ninep_port, secret=secret, env={},
                    policy=PoolPolicy(control=control, telemetry=1))

    hive = Hive(make_pool, "127.0.0.1", 0).start()
    browser, profile = make_browser()
    try:
        drive(browser, hive, "hive-guest.png", spawn_timeout=30.0)
        assert (LOG_DIR / "hive-guest.png").stat().st_size > 1000
    finally:
        browser.quit()
        hive.stop()
        import shutil

        shutil.rmtree(profile, ignore_errors=True)
