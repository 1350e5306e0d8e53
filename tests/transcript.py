"""The SPEC §2.3 boot transcript, as the tests expect to see it."""
from __future__ import annotations

import re

from qemu.harness import transcript_markers

MANIFEST = re.compile(r"^manifest schema=1\.[0-3] sha256=[0-9a-f]{64}$")


def expected_markers(addr: str, console_port: int | None, ninep_port: int | None) -> list[str]:
    lines = ["Cohesix boot: root-task online", "<manifest>", "event-pump: init timer", "event-pump: init ipc",
             "spawned user-component endpoint 1", "tick 1", "PING 1", "PONG 1", "tick 2", "tick 3",
             "event-pump: init ninedoor", "event-pump: init serial"]
    if console_port is not None or ninep_port is not None:
        lines.append("event-pump: init net")
    if console_port is not None:
        lines.append(f"[net-console] TCP console listening on {addr}:{console_port}")
    if ninep_port is not None:
        lines.append(f"[ninedoor] 9P listening on {addr}:{ninep_port}")
    lines.append("Cohesix console ready")
    return lines


def assert_transcript(serial: str, addr: str, console_port: int | None, ninep_port: int | None) -> None:
    seen = transcript_markers(serial)
    expected = expected_markers(addr, console_port, ninep_port)
    assert len(seen) == len(expected), f"transcript mismatch:\n{seen}\nexpected:\n{expected}"
    for got, want in zip(seen, expected):
        if want == "<manifest>":
            assert MANIFEST.match(got), got
        else:
            assert got == want
    boot_part = serial.split("Cohesix console ready", 1)[0]
    assert boot_part.count("PING 1") == 1 and boot_part.count("PONG 1") == 1
