"""Serial adapter (SPEC §10.3, §2.3): pipes for stdin/stdout, the pump driven by hand."""
from __future__ import annotations

import os

import pytest

from root_task.console.serial import PROMPT, SerialConsole
from root_task.pump import EventPump

from .fakes import FakeDoor, make_ctx


class Rig:
    def __init__(self, **cfg) -> None:
        self.pump = EventPump()
        self.door = FakeDoor()
        self.ctx = make_ctx(self.door, **cfg)
        self.in_r, self.in_w = os.pipe()
        self.out_r, self.out_w = os.pipe()
        os.set_blocking(self.out_r, False)
        self.console = SerialConsole(self.pump, self.ctx, self.in_r, self.out_w)
        self.console.start()

    def type(self, data: bytes) -> str:
        os.write(self.in_w, data)
        for _ in range(3):
            self.pump.run_once(max_wait=0.05)
        return self.read()

    def read(self) -> str:
        out = b""
        while True:
            try:
                chunk = os.read(self.out_r, 65536)
            except BlockingIOError:
                return out.decode()
            if not chunk:
                return out.decode()
            out += chunk

    def close(self) -> None:
        self.console.stop()
        self.pump.close()
        for fd in (self.in_r, self.in_w, self.out_r, self.out_w):
            os.close(fd)


@pytest.fixture
def rig():
    r = Rig()
    yield r
    r.close()


def test_start_prints_prompt(rig):
    assert rig.read() == PROMPT == "cohesix> "


def test_ping_with_echo_and_prompt(rig):
    rig.read()
    assert rig.type(b"ping\n") == "ping\nPONG\nOK PING reply=pong\ncohesix> "


def test_backspace_echo(rig):
    rig.read()
    assert rig.type(b"pinx\x7fg\n") == "pinx\b \bg\nPONG\nOK PING reply=pong\ncohesix> "


def test_empty_line_reprints_prompt(rig):
    rig.read()
    assert rig.type(b"\n") == "\ncohesix> "
    assert rig.type(b"   \r\n") == "   \ncohesix> "


def test_line_too_long(rig):
    rig.read()
    out = rig.type(b"x" * 300 + b"\n")
    assert out.endswith("ERR PARSE reason=policy detail=line-too-long\ncohesix> ")


def test_attach_audit_printed_after_reply_then_quit_detaches(rig):
    rig.read()
    out = rig.type(b"attach queen\n")
    assert out == ("attach queen\nOK ATTACH role=queen\naudit console.attach conn_id=serial role=queen\n"
                   "cohesix> ")
    out = rig.type(b"quit\n")
    assert out == "quit\nOK QUIT\ncohesix> "
    assert rig.type(b"log\n").endswith("ERR LOG reason=policy detail=unauthenticated\ncohesix> ")


def test_unsolicited_audit_reprints_prompt_and_partial_input(rig):
    rig.read()
    rig.console.print_unsolicited("audit tcp.conn.open conn_id=1 peer=127.0.0.1:5555")
    assert rig.read() == "\naudit tcp.conn.open conn_id=1 peer=127.0.0.1:5555\ncohesix> "
    rig.type(b"pi")
    rig.console.print_unsolicited("audit tcp.auth.ok conn_id=1")
    assert rig.read() == "\naudit tcp.auth.ok conn_id=1\ncohesix> pi"
    assert rig.type(b"ng\n").endswith("PONG\nOK PING reply=pong\ncohesix> ")


def test_eof_unregisters_reader(rig):
    rig.read()
    os.close(rig.in_w)
    rig.in_w = os.open(os.devnull, os.O_WRONLY)
    for _ in range(3):
        rig.pump.run_once(max_wait=0.05)
    assert rig.console._eof


def test_unpollable_input_file_is_read_to_eof(tmp_path):
    """Host mode with stdin redirected from a file (epoll refuses regular files)."""
    script = tmp_path / "in.txt"
    script.write_bytes(b"ping\nattach queen\n")
    pump = EventPump()
    ctx = make_ctx(FakeDoor())
    out_r, out_w = os.pipe()
    fd = os.open(script, os.O_RDONLY)
    console = SerialConsole(pump, ctx, fd, out_w, echo=False)
    console.start()
    for _ in range(5):
        pump.run_once(max_wait=0.01)
    console.stop()
    os.close(out_w)
    out = os.read(out_r, 65536).decode()
    os.close(out_r)
    os.close(fd)
    pump.close()
    assert out == ("cohesix> PONG\nOK PING reply=pong\ncohesix> OK ATTACH role=queen\n"
                   "audit console.attach conn_id=serial role=queen\ncohesix> ")
    assert console._eof
