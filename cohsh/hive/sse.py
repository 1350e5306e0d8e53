"""Server-sent events framing (the WHATWG ``text/event-stream`` format), both directions.

Why SSE rather than a WebSocket: the page only receives; SSE is plain HTTP that the stdlib server can
stream, the browser's ``EventSource`` reconnects on its own, and no extra library is needed on either
side. :func:`encode` is what the server sends; :func:`EventParser` is the receiving side used by the
tests and ``bench/bench_hive.py`` (it follows the WHATWG parsing rules for the fields we use).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True)
class Event:
    """One dispatched event: ``event`` (default ``message``), ``data`` (lines joined by ``\\n``), ``id``."""

    event: str
    data: str
    id: str | None = None


def _field_value(value: str) -> str:
    if _LINE_BREAK.search(value):
        raise ValueError("event name and id must be a single line")
    return value


def encode(data: str, event: str | None = None, id: str | None = None) -> bytes:
    """One event block: ``id:``/``event:`` lines, one ``data:`` line per line of ``data``, a blank line.
    Any line break in ``data`` (``\\r\\n``, ``\\r``, ``\\n``) starts a new ``data:`` line, so the
    receiver gets the text back with ``\\n`` line breaks."""
    out = []
    if id is not None:
        out.append(f"id: {_field_value(id)}\n")
    if event is not None:
        out.append(f"event: {_field_value(event)}\n")
    for line in _LINE_BREAK.split(data):
        out.append(f"data: {line}\n")
    out.append("\n")
    return "".join(out).encode("utf-8")


def comment(text: str = "") -> bytes:
    """A comment line (keeps idle connections open through proxies; ignored by receivers)."""
    return f": {_LINE_BREAK.sub(' ', text)}\n\n".encode("utf-8")


class EventParser:
    """Incremental parser: :meth:`feed` bytes as they arrive, get the events completed so far.

    WHATWG rules: lines end at CRLF, CR or LF; a blank line dispatches; ``:`` lines are comments;
    ``field: value`` (one leading space of the value removed; no colon → empty value); ``data`` lines
    accumulate with ``\\n``; an event with no data is not dispatched; ``id`` containing NUL is ignored;
    unknown fields are ignored; the last event id persists across events."""

    def __init__(self) -> None:
        self._buf = ""
        self._decoder_tail = b""
        self._event = ""
        self._data: list[str] = []
        self.last_id: str | None = None

    def feed(self, chunk: bytes) -> list[Event]:
        data = self._decoder_tail + chunk
        try:
            text = data.decode("utf-8")
            self._decoder_tail = b""
        except UnicodeDecodeError as exc:
            if exc.start >= len(data) - 3 and exc.reason == "unexpected end of data":
                text, self._decoder_tail = data[:exc.start].decode("utf-8"), data[exc.start:]
            else:
                text, self._decoder_tail = data.decode("utf-8", "replace"), b""
        self._buf += text
        events: list[Event] = []
        while True:
            found = _LINE_BREAK.search(self._buf)
            if found is None:
                break
            if found.group() == "\r" and found.end() == len(self._buf):
                break                   # a CR at the end may be the first half of CRLF
            line, self._buf = self._buf[:found.start()], self._buf[found.end():]
            event = self._line(line)
            if event is not None:
                events.append(event)
        return events

    def _line(self, line: str) -> Event | None:
        if line == "":
            if not self._data:
                self._event = ""
                return None
            event = Event(self._event or "message", "\n".join(self._data), self.last_id)
            self._event, self._data = "", []
            return event
        if line.startswith(":"):
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self.last_id = value
        return None
