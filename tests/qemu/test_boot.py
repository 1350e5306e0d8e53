"""The real aarch64 guest: SPEC §2.3 transcript, console ping, clean shutdown with QEMU status 0 (C2)."""
from __future__ import annotations

from qemu.launch import GuestPorts
from tests.transcript import assert_transcript


def test_boot_transcript_ping_and_clean_poweroff(guest_factory):
    guest = guest_factory(exit_after=25)
    guest.start()
    lines = guest.command_lines("ping")
    assert lines[-2:] == ["PONG", "OK PING reply=pong"]
    status = guest.wait_exit(timeout=60)
    serial = guest.serial_text
    assert "root-task shutdown" in serial
    assert status == 0
    ports = GuestPorts.from_manifest()
    assert_transcript(serial, "0.0.0.0", ports.console, ports.ninep if ports.ninep_enabled else None)
