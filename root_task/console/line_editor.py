"""Console line discipline (SPEC §10.2, §10.3): bytes in, edited lines (and serial echo) out.

Why one module for serial and TCP: SPEC §10.1 requires both transports to behave identically, so the
same character rules (UTF-8 with invalid bytes dropped, ``\\r`` ignored, backspace/DEL delete, other
control characters dropped, ``\\t`` → space) are applied by :class:`LineEditor` (serial, streaming,
``\\n`` ends a line) and by :func:`clean_payload` (TCP, one frame = one line, ``\\n`` dropped).

Memory is bounded: a line that grows past the limit stops being stored, is remembered as *too long*
and is reported as :class:`TooLong` at its ``\\n`` (serial ``ERR PARSE … detail=line-too-long``).
"""
from __future__ import annotations

import codecs
from dataclasses import dataclass

BACKSPACE = "\x08"
DEL = "\x7f"
ERASE_ECHO = b"\b \b"


@dataclass(frozen=True)
class Line:
    """A complete, edited line (without its terminator)."""

    text: str


@dataclass(frozen=True)
class TooLong:
    """A line that exceeded the limit; it was discarded at its ``\\n``."""

    length: int


LineEvent = Line | TooLong


@dataclass(frozen=True)
class EditResult:
    """What one :meth:`LineEditor.feed` produced: completed lines, and bytes to echo (serial)."""

    events: tuple[LineEvent, ...]
    echo: bytes


def _is_dropped_control(ch: str) -> bool:
    return ord(ch) < 0x20 and ch not in "\t\n\x08"


class LineEditor:
    """Streaming editor for the serial console.

    ``feed`` accepts any byte chunk (multi-byte UTF-8 sequences may be split across chunks). Deleting
    on an empty line does nothing and echoes nothing. Once a line has exceeded ``max_line`` characters
    it stays *too long* until its ``\\n`` (deleting characters does not rescue it, because the excess
    was never stored), and nothing more is echoed for it.
    """

    def __init__(self, max_line: int = 256, echo: bool = True) -> None:
        if max_line < 1:
            raise ValueError("max_line must be >= 1")
        self._max = max_line
        self._echo_enabled = echo
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="ignore")
        self._buf: list[str] = []
        self._overflow = 0  # characters seen beyond the limit (0 = line still within limit)

    @property
    def pending(self) -> str:
        """The partial line typed so far (for re-printing after an unsolicited line)."""
        return "".join(self._buf)

    @property
    def idle(self) -> bool:
        """True when no partial line is buffered."""
        return not self._buf and not self._overflow

    def feed(self, data: bytes) -> EditResult:
        events: list[LineEvent] = []
        echo = bytearray()
        for ch in self._decoder.decode(data):
            if ch == "\n":
                if self._overflow:
                    events.append(TooLong(len(self._buf) + self._overflow))
                else:
                    events.append(Line("".join(self._buf)))
                self._buf.clear()
                self._overflow = 0
                if self._echo_enabled:
                    echo += b"\n"
                continue
            if ch == "\r":
                continue
            if ch in (BACKSPACE, DEL):
                if self._overflow:
                    continue
                if self._buf:
                    self._buf.pop()
                    if self._echo_enabled:
                        echo += ERASE_ECHO
                continue
            if ch == "\t":
                ch = " "
            elif _is_dropped_control(ch):
                continue
            if self._overflow or len(self._buf) >= self._max:
                self._overflow += 1
                continue
            self._buf.append(ch)
            if self._echo_enabled:
                echo += ch.encode("utf-8")
        return EditResult(tuple(events), bytes(echo))


def clean_payload(payload: bytes) -> str:
    """Apply §10.2 to one TCP frame payload: the whole payload is one line, ``\\n``/``\\r`` dropped."""
    out: list[str] = []
    for ch in payload.decode("utf-8", errors="ignore"):
        if ch in (BACKSPACE, DEL):
            if out:
                out.pop()
        elif ch == "\t":
            out.append(" ")
        elif ord(ch) < 0x20:
            continue  # \n, \r and every other control character
        else:
            out.append(ch)
    return "".join(out)


def decoded_length(payload: bytes) -> int:
    """Characters in a frame payload (invalid UTF-8 dropped): what the line limit is measured on."""
    return len(payload.decode("utf-8", errors="ignore"))
