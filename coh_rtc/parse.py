"""Step 1 of the compiler: read the IR file and parse it with ``tomllib``.

Parsing yields the plain TOML document plus a :class:`~coh_rtc.locate.LineIndex`, because every later
diagnostic must carry the line of its key. Unreadable files and TOML syntax errors are reported as
file-level diagnostics (field ``-``), never as exceptions from the standard library.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .diagnostics import FILE_LEVEL, Diagnostic, IRError
from .locate import LineIndex, index_lines

_TOML_LINE = re.compile(r"\(at line (\d+), column \d+\)")


@dataclass(frozen=True)
class ParsedIR:
    """A parsed IR: the name used in diagnostics, its directory, the document and the line index."""

    display_name: str
    directory: Path
    basename: str
    source: bytes
    document: dict[str, Any]
    index: LineIndex


def parse_ir(path: str | Path) -> ParsedIR:
    """Read and parse ``path``; raise :class:`IRError` with one file-level diagnostic on failure."""
    display = str(path)
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        reason = exc.strerror or exc.__class__.__name__
        raise IRError([Diagnostic(0, FILE_LEVEL, f"cannot read file: {reason}", display)]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise IRError([Diagnostic(0, FILE_LEVEL, "cannot read file: not valid UTF-8", display)]) from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        m = _TOML_LINE.search(message)
        line = int(m.group(1)) if m else 0
        raise IRError([Diagnostic(line, FILE_LEVEL, f"invalid TOML: {message}", display)]) from None
    return ParsedIR(
        display_name=display,
        directory=p.parent,
        basename=p.name,
        source=raw,
        document=document,
        index=index_lines(text),
    )
