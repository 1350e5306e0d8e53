"""The NIC tap's wire (qemu/launch.py ``NicTap``): frames between QEMU's net filters and a host process.

QEMU's ``filter-mirror``/``filter-redirector`` speak one format on their chardevs (net/filter-mirror.c,
vnet headers off): a 4-byte big-endian length, then that many bytes of Ethernet frame. The decoder is
hostile-input safe in the sense the host side needs: a length QEMU could never send (0, or over
:data:`MAX_FRAME`) means the stream is out of step, and it says so instead of buffering forever.
"""
from __future__ import annotations

import socket
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

MAX_FRAME = 69632          # QEMU's NET_BUFSIZE (4096 + 65536): no filter ever sends a longer frame
_LEN = struct.Struct("!I")


class TapWireError(ValueError):
    """The byte stream is not a sequence of length-prefixed frames (a length of 0 or over MAX_FRAME)."""


def encode_frame(frame: bytes) -> bytes:
    """One frame as the tap wire carries it; refuses what QEMU would refuse to read back."""
    if not 0 < len(frame) <= MAX_FRAME:
        raise TapWireError(f"frame of {len(frame)} bytes: the tap carries 1..{MAX_FRAME}")
    return _LEN.pack(len(frame)) + frame


class TapDecoder:
    """Incremental decoder: feed any split of the stream, get whole frames in order."""

    def __init__(self) -> None:
        self._buf = bytearray()

    @property
    def pending(self) -> int:
        """Bytes held for an incomplete frame."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        frames: list[bytes] = []
        offset = 0
        buf = self._buf
        while len(buf) - offset >= 4:
            (length,) = _LEN.unpack_from(buf, offset)
            if not 0 < length <= MAX_FRAME:
                del buf[:offset]
                raise TapWireError(f"frame length {length} at stream offset {offset}: out of step")
            if len(buf) - offset - 4 < length:
                break
            frames.append(bytes(buf[offset + 4:offset + 4 + length]))
            offset += 4 + length
        del buf[:offset]
        return frames


def _connect(path: Path | str, timeout: float) -> socket.socket:
    """QEMU's chardev server socket exists once QEMU has started; retry briefly until then."""
    deadline = time.monotonic() + timeout
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(str(path))
            return sock
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class Injector:
    """Writes frames into the guest NIC's receive path (the redirector's ``indev``)."""

    def __init__(self, path: Path | str, timeout: float = 10.0) -> None:
        self._sock = _connect(path, timeout)
        self.sent = 0

    def send(self, frame: bytes) -> None:
        self._sock.sendall(encode_frame(frame))
        self.sent += 1

    def send_many(self, frames: list[bytes]) -> None:
        """One write for many frames: a flood must not be paced by the host's syscalls."""
        self._sock.sendall(b"".join(encode_frame(f) for f in frames))
        self.sent += len(frames)

    def send_encoded(self, blob: bytes, count: int) -> None:
        """``count`` frames already encoded back to back (a flood resends one prepared burst)."""
        self._sock.sendall(blob)
        self.sent += count

    def close(self) -> None:
        self._sock.close()


@dataclass
class Mirror:
    """Reads the copies of guest-bound frames in a thread and keeps the newest ``keep`` of them.

    QEMU writes the copies synchronously from its main loop, so the reader must never stop draining
    (a full socket would stall the guest's network): it runs until :meth:`close`, whatever it is asked.
    """

    path: Path | str
    keep: int = 4096
    seen: int = 0
    recent: deque = field(default_factory=deque)
    error: str | None = None

    def __post_init__(self) -> None:
        self.recent = deque(maxlen=self.keep)
        self._lock = threading.Lock()
        self._sock = _connect(self.path, 10.0)
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="tap-mirror", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        decoder = TapDecoder()
        while not self._closed:
            try:
                data = self._sock.recv(1 << 16)
            except OSError as exc:
                if not self._closed:
                    self.error = str(exc)
                return
            if not data:
                return
            try:
                frames = decoder.feed(data)
            except TapWireError as exc:
                self.error = str(exc)
                return
            with self._lock:
                self.seen += len(frames)
                self.recent.extend(frames)

    def take(self) -> list[bytes]:
        """The frames kept since the last call (oldest first), and forget them."""
        with self._lock:
            frames = list(self.recent)
            self.recent.clear()
        return frames

    def close(self) -> None:
        self._closed = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        self._thread.join(2)
