"""TCP console framing (SPEC §10.4): ``u32 total_len`` (LE, includes its own 4 bytes) + UTF-8 payload.

Shared by the root task's TCP console and cohsh's TCP client, so the format has one implementation.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

HEADER = struct.Struct("<I")
MIN_LEN = 4
MAX_LEN = 8192
DISCARD_LIMIT = 1 << 20  # frames up to 1 MiB are skipped; larger ones lose the framing


def encode_frame(text: str) -> bytes:
    payload = text.encode("utf-8")
    return HEADER.pack(len(payload) + 4) + payload


@dataclass(frozen=True)
class Frame:
    """One complete frame's payload bytes."""

    payload: bytes


@dataclass(frozen=True)
class Oversize:
    """A frame with ``8192 < total_len <= 1 MiB``: its payload was read and discarded."""

    total_len: int


@dataclass(frozen=True)
class Lost:
    """``total_len < 4`` or ``> 1 MiB``: the stream can no longer be parsed."""

    total_len: int


FrameEvent = Frame | Oversize | Lost


class FrameDecoder:
    """Incremental decoder: feed any byte chunks, get whole frame events back in order."""

    def __init__(self, max_len: int = MAX_LEN) -> None:
        self._buf = bytearray()
        self._max_len = max_len
        self._discard = 0  # bytes of an oversize frame still to skip
        self._lost = False

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[FrameEvent]:
        if self._lost:
            return []
        self._buf += data
        events: list[FrameEvent] = []
        while True:
            if self._discard:
                skip = min(self._discard, len(self._buf))
                del self._buf[:skip]
                self._discard -= skip
                if self._discard:
                    return events
            if len(self._buf) < 4:
                return events
            (total,) = HEADER.unpack_from(self._buf)
            if total < MIN_LEN or total > DISCARD_LIMIT:
                self._lost = True
                self._buf.clear()
                events.append(Lost(total))
                return events
            if total > self._max_len:
                del self._buf[:4]
                self._discard = total - 4
                events.append(Oversize(total))
                continue
            if len(self._buf) < total:
                return events
            events.append(Frame(bytes(self._buf[4:total])))
            del self._buf[:total]
