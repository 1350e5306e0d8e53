"""``doit qemu`` boots the real guest on the terminal (a pty here), and ``--pcap`` reaches QEMU.

The bug this guards: doit's ``Interactive`` ran its argument list through a shell, so ``bash`` alone
ran; under a terminal that is a root shell prompt, without one an instant exit 0.
"""
from __future__ import annotations

import socket
import struct
import time

import pexpect
import pytest

from .conftest import REPO, doit_path

pytestmark = [pytest.mark.qemu, pytest.mark.slow]
READY = "Cohesix console ready"
PROMPT = "cohesix> "
PCAP_MAGIC = (0xA1B2C3D4, 0xD4C3B2A1)


def free_port() -> int:
    with socket.socket() as sock:  # test-only; doit qemu takes a fixed port like a user would give it
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def frame(text: str) -> bytes:
    data = text.encode()
    return struct.pack("<I", len(data) + 4) + data


def read_frame(sock: socket.socket) -> str:
    head = b""
    while len(head) < 4:
        chunk = sock.recv(4 - len(head))
        assert chunk, "console closed"
        head += chunk
    (total,) = struct.unpack("<I", head)
    body = b""
    while len(body) < total - 4:
        chunk = sock.recv(total - 4 - len(body))
        assert chunk, "console closed"
        body += chunk
    return body.decode()


def test_doit_qemu_boots_the_image_on_the_terminal_and_captures_the_nic(tmp_path):
    port, pcap = free_port(), tmp_path / "doit-qemu.pcap"
    child = pexpect.spawn(doit_path(), ["qemu", "--pcap", str(pcap), "--console-port", str(port),
                                        "--9p-port", str(free_port())],
                          cwd=str(REPO), encoding="utf-8", codec_errors="replace", timeout=180, echo=False)
    child.delaybeforesend = None
    try:
        child.expect_exact(READY, timeout=180)
        child.expect_exact(PROMPT, timeout=10)
        child.send("ping\n")                          # the serial console on this terminal answers
        child.expect_exact("OK PING reply=pong", timeout=10)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:  # the forward is there
            sock.sendall(frame("AUTH changeme"))
            assert read_frame(sock) == "OK AUTH"
            sock.sendall(frame("quit"))
            assert read_frame(sock) == "OK QUIT"
        time.sleep(0.5)                               # let the last segments reach the capture
        child.send("\x01x")                           # Ctrl-A x: QEMU quits, doit returns its status
        child.expect(pexpect.EOF, timeout=20)
    finally:
        if child.isalive():
            child.terminate(force=True)
        child.close()
    assert child.exitstatus == 0, child.before
    data = pcap.read_bytes()
    assert struct.unpack("<I", data[:4])[0] in PCAP_MAGIC
    assert len(data) > 24 + 16 * 4, "the capture holds no frames of the TCP console session"
