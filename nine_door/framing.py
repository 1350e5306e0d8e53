"""9P framing for stream and message transports (SPEC §3.10, §3.12, §3.14).

Why its own module: framing decides where one frame ends and the next begins and when a stream can no
longer be trusted; decoding decides what a whole frame means. Keeping them apart (as hugelgupf/p9 does)
lets the TCP listener track frame boundaries without touching the codec, and gives framing failures one
typed error, :class:`FramingError`, that says *why* the framing was lost and *where*.

- :class:`FrameReader`: the session's incremental splitter (whole frames, oversize frames reported with
  their tag and never buffered).
- :class:`FrameBoundaries`: a counter the TCP listener runs over the raw stream, ahead of the session (where
  the input is not whole frames at a boundary: those the session counts itself as it executes them), so
  it can hand the session at most N frames at a time (fairness, SPEC §2.4) and knows the exact byte where
  a bad size field starts (everything before it is executed and answered before the close).
- :func:`split_batch`: message transports, 1..N whole frames per message.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from nine_door.errors import FramingLost
from nine_door.messages import HEADER_SIZE, MAX_FRAME

_U32 = struct.Struct("<I")
# A frame's size field at an offset: ``size_field(buf, pos)[0]``. One reader for every layer that looks
# at frame boundaries (this module, the session's whole-frame cut, the listener's one-frame check).
size_field = _U32_UNPACK = _U32.unpack_from

# FramingError.reason values
SIZE_TOO_SMALL = "size-too-small"      # size field < 7 (cannot even hold the header)
SIZE_TOO_LARGE = "size-too-large"      # size field > 1 MiB
NOT_ON_BOUNDARY = "not-on-boundary"    # a message transport message ends inside a frame
EMPTY_MESSAGE = "empty-message"


class FramingError(FramingLost):
    """Framing lost: ``reason`` (one of the constants above) and, where known, the offending ``size``.

    A subclass of :class:`nine_door.errors.FramingLost`, so code that only needs "close the transport"
    keeps catching that.
    """

    def __init__(self, reason: str, size: int | None = None, detail: str = "") -> None:
        super().__init__(detail or (reason if size is None else f"{reason}: frame size {size}"))
        self.reason = reason
        self.size = size


@dataclass(frozen=True, slots=True)
class Oversize:
    """A frame with ``msize < size ≤ 1 MiB`` that was read and discarded (reply EMSGSIZE)."""

    tag: int
    size: int


FrameEvent = bytes | Oversize


def _check_size(size: int) -> None:
    if size < HEADER_SIZE:
        raise FramingError(SIZE_TOO_SMALL, size, f"frame size {size} < {HEADER_SIZE}")
    if size > MAX_FRAME:
        raise FramingError(SIZE_TOO_LARGE, size, f"frame size {size} > 1 MiB")


def frame_size(prefix: bytes) -> int | None:
    """The declared size of the frame starting at ``prefix``, or None if < 4 bytes are known.

    Raises :class:`FramingError` for sizes that can never be a frame (< 7 or > 1 MiB).
    """
    if len(prefix) < 4:
        return None
    size = _U32_UNPACK(prefix)[0]
    _check_size(size)
    return size


class FrameReader:
    """Incremental frame splitter for stream transports (SPEC §3.10).

    ``push(data)`` buffers bytes; ``pop()`` returns the next event (a whole frame as ``bytes``,
    or :class:`Oversize` once an oversize frame has been fully discarded) or ``None`` when more
    bytes are needed. ``feed(data)`` does both and returns every complete event.

    ``msize`` may be changed at any time (after Tversion); it applies to frames not yet popped,
    which is why the pop-one-at-a-time form exists. Oversize frames are never buffered, so a
    1 MiB frame costs no memory. :class:`FramingError` is raised from ``pop``/``feed`` when the
    next size field is < 7 or > 1 MiB; the reader is unusable afterwards.
    """

    def __init__(self, msize: int = 8192) -> None:
        self.msize = msize
        # ``bytes`` while whole chunks are consumed (frames are then sliced out with one copy);
        # a ``bytearray`` only while a partial frame waits for more data (amortised appends).
        self._buf: bytes | bytearray = b""
        self._pos = 0
        self._discard = 0                # bytes of an oversize frame still to drop
        self._discard_event: Oversize | None = None
        self._lost: FramingError | None = None

    @property
    def idle(self) -> bool:
        """Nothing buffered, nothing being discarded and framing intact: a chunk that is exactly one
        whole frame within msize would be returned as it is (``Session.feed``'s fast path)."""
        return self._pos >= len(self._buf) and not self._discard and self._lost is None

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned (excluding discarded oversize bytes)."""
        return len(self._buf) - self._pos

    def push(self, data: bytes) -> None:
        buf, pos = self._buf, self._pos
        self._pos = 0
        if pos >= len(buf):
            self._buf = bytes(data)           # nothing pending: adopt the chunk (no copy for bytes)
        elif type(buf) is bytearray:
            del buf[:pos]
            buf += data
        else:
            self._buf = bytearray(buf[pos:]) + data

    def pop(self) -> FrameEvent | None:
        if self._lost is not None:
            raise self._lost
        buf = self._buf
        if self._discard:
            take = min(self._discard, len(buf) - self._pos)
            self._pos += take
            self._discard -= take
            if self._discard:
                return None
            event, self._discard_event = self._discard_event, None
            return event
        pos = self._pos
        avail = len(buf) - pos
        if avail < 4:
            return None
        size = _U32_UNPACK(buf, pos)[0]
        if size < HEADER_SIZE or size > MAX_FRAME:
            try:
                _check_size(size)
            except FramingError as exc:
                self._lost = exc
                raise
        if size > self.msize:
            if avail < HEADER_SIZE:
                return None
            tag = buf[pos + 5] | (buf[pos + 6] << 8)
            self._discard = size
            self._discard_event = Oversize(tag, size)
            return self.pop()
        if avail < size:
            return None
        self._pos = pos + size
        frame = buf[pos:pos + size]
        return frame if type(frame) is bytes else bytes(frame)

    def feed(self, data: bytes) -> list[FrameEvent]:
        self.push(data)
        out: list[FrameEvent] = []
        while (event := self.pop()) is not None:
            out.append(event)
        return out


class FrameBoundaries:
    """Counts frame boundaries of a byte stream without buffering frames (only a partial size field).

    Why: the TCP listener must bound how many frames one connection executes per pump iteration and must
    answer the frames before a framing loss. The session's :class:`FrameReader` sees exactly the bytes
    this tracker let through, so both agree on every boundary (oversize frames are skipped by their size
    field in both).
    """

    __slots__ = ("_left", "_head")

    def __init__(self) -> None:
        self._left = 0          # bytes of the current frame not yet seen (after its size field)
        self._head = b""        # the first 1..3 bytes of a size field split across chunks

    @property
    def idle(self) -> bool:
        """At a frame boundary with nothing held: the next chunk starts with a size field."""
        return not self._left and not self._head

    def advance(self, chunk, max_frames: int) -> tuple[int, int, FramingError | None]:
        """Walk ``chunk`` until ``max_frames`` frames completed, the chunk ends, or a bad size field.

        Returns ``(cut, frames, lost)``: ``cut`` is how many bytes of the chunk to hand on now (whole
        frames, plus the start of an incomplete frame when fewer than ``max_frames`` completed);
        ``frames`` counts the frames that *end* inside ``chunk[:cut]``; ``lost`` is set when a bad size
        field starts at ``chunk[cut]`` (or straddles into it): nothing from there on may be handed on,
        and the transport must close once the frames before it are answered. A plain tuple, not a
        dataclass: this runs once per received chunk, i.e. once per round trip.
        """
        pos, end, frames = 0, len(chunk), 0
        left, head = self._left, self._head
        try:
            while frames < max_frames and pos < end:
                if left:
                    take = end - pos if end - pos < left else left
                    pos += take
                    left -= take
                    if not left:
                        frames += 1
                    continue
                start = pos
                if not head and end - pos >= 4:   # the usual case: a size field inside the chunk
                    size = _U32_UNPACK(chunk, pos)[0]
                    if size < HEADER_SIZE or size > MAX_FRAME:
                        try:
                            _check_size(size)
                        except FramingError as exc:
                            return start, frames, exc
                    if end - pos >= size:         # and the whole frame: one step
                        pos += size
                        frames += 1
                    else:
                        pos += 4
                        left = size - 4
                    continue
                need = 4 - len(head)
                if end - pos < need:
                    head += bytes(chunk[pos:end])
                    pos = end
                    break
                prefix = head + bytes(chunk[pos:pos + need]) if head else chunk[pos:pos + 4]
                size = _U32_UNPACK(prefix)[0]
                if size < HEADER_SIZE or size > MAX_FRAME:
                    try:
                        _check_size(size)
                    except FramingError as exc:
                        head, left = b"", 0
                        return start, frames, exc
                head = b""
                pos += need
                left = size - 4
            return pos, frames, None
        finally:
            self._left, self._head = left, head


def split_batch(message: bytes) -> list[bytes]:
    """Split one transport message into its 1..N whole frames (SPEC §3.12, §3.14).

    Raises :class:`FramingError` when the message is empty, a size field is < 7 or > 1 MiB, or
    the bytes do not end on a frame boundary. Whether the frames fit the negotiated msize is the
    server's decision (EMSGSIZE per frame), not a framing failure.
    """
    message = bytes(message)
    if not message:
        raise FramingError(EMPTY_MESSAGE, None, "empty transport message")
    frames = []
    pos = 0
    end = len(message)
    while pos < end:
        size = frame_size(message[pos:pos + 4])
        if size is None or pos + size > end:
            raise FramingError(NOT_ON_BOUNDARY, size, "transport message does not end on a frame boundary")
        frames.append(message[pos:pos + size])
        pos += size
    return frames
