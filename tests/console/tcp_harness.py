"""Real-socket harness: the TCP console on 127.0.0.1:<free port> with an EventPump in a thread."""
from __future__ import annotations

import socket
import struct
import threading
import time
from dataclasses import dataclass

from root_task.console.framing import encode_frame
from root_task.console.tcp import TcpConsoleServer
from root_task.pump import EventPump


def wait_for(predicate, timeout: float = 5.0) -> bool:
    """Poll until ``predicate()`` holds (a liveness bound, never a timing assertion)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


class Harness:
    def __init__(self, ctx) -> None:
        self.ctx = ctx
        self.audits: list[str] = []
        self.pump = EventPump()
        self.server = TcpConsoleServer(self.pump, ctx, "127.0.0.1", 0, audit=self.audits.append)
        self.server.start()
        self.port = self.server.address[1]
        self.thread = threading.Thread(target=self.pump.run, daemon=True)
        self.thread.start()

    def call(self, fn):
        """Run ``fn`` on the loop thread and return its result."""
        box, done = [], threading.Event()

        def run():
            box.append(fn())
            done.set()
        self.pump.call_soon_threadsafe(run)
        assert done.wait(5)
        return box[0]

    def connect(self) -> "Peer":
        return Peer(socket.create_connection(("127.0.0.1", self.port), timeout=5))

    def stop(self) -> None:
        self.call(lambda: self.server.close_all(reason="shutdown"))
        self.pump.call_soon_threadsafe(self.pump.stop)
        self.thread.join(5)
        self.pump.close()

    def audit_for(self, conn_id: int) -> list[str]:
        return [a for a in list(self.audits) if f"conn_id={conn_id} " in a + " "]


@dataclass
class Peer:
    sock: socket.socket

    def __post_init__(self) -> None:
        self.buf = b""

    def send(self, text: str) -> None:
        self.sock.sendall(encode_frame(text))

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv(self) -> str | None:
        """Next frame payload, or None when the server closed the connection."""
        while True:
            if len(self.buf) >= 4:
                (total,) = struct.unpack_from("<I", self.buf)
                if len(self.buf) >= total:
                    payload, self.buf = self.buf[4:total], self.buf[total:]
                    return payload.decode()
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                return None
            if not chunk:
                return None
            self.buf += chunk

    def expect(self, *lines: str) -> None:
        for line in lines:
            assert self.recv() == line

    def stream(self) -> list[str]:
        out = []
        while True:
            line = self.recv()
            assert line is not None, f"closed mid-stream after {out!r}"
            out.append(line)
            if line == "END":
                return out

    def closed(self) -> bool:
        return self.recv() is None

    def close(self) -> None:
        self.sock.close()

    def attach_ping_cat_boot(self) -> None:
        """The C9 core after AUTH: attach as queen, ping, read /proc/boot (both console suites use it)."""
        self.send("ATTACH queen")
        self.expect("OK ATTACH role=queen")
        self.send("PING")
        self.expect("PONG", "OK PING reply=pong")
        self.send("CAT /proc/boot")
        out = self.stream()
        assert out[0].startswith("OK CAT path=/proc/boot data=") and out[1] == "Cohesix boot: root-task online"
