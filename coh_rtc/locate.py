"""Source line numbers for dotted IR keys.

``tomllib`` returns plain dicts without positions, but SPEC §14.3 wants every diagnostic to name the
line of the offending key (else of its enclosing table, else 0). This module re-scans the TOML text
(already known to be valid, because tomllib accepted it) with a tiny position-only tokenizer and
records, for every key path, the first line on which it is defined:

* ``[a.b]`` headers record ``a`` and ``a.b``;
* ``[[a]]`` headers are counted per array, so the n-th header records ``a[n]`` (0-based), and later
  ``[a.sub]`` headers attach to the latest element, as in TOML;
* ``k.j = v`` records ``<table>.k`` and ``<table>.k.j``;
* inline tables and arrays are descended: ``t = [{ role = "x" }]`` records ``t``, ``t[0]`` and
  ``t[0].role`` at the lines where each element starts.

Lookups fall back from a path to its parents (``tickets[1].secret`` → ``tickets[1]`` → ``tickets``), which
is exactly "the enclosing table header" rule for missing keys.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_PARENT = re.compile(r"(\.[^.\[\]]+|\[\d+\])$")


@dataclass(frozen=True)
class LineIndex:
    """Maps a dotted key path (``tickets[1].secret``) to the 1-based line where it is defined."""

    lines: dict[str, int]

    def line_of(self, path: str) -> int:
        """Line of ``path``, else of its nearest enclosing key/table, else 0."""
        while path:
            if path in self.lines:
                return self.lines[path]
            trimmed = _PARENT.sub("", path)
            if trimmed == path:
                break
            path = trimmed
        return 0

    def has(self, path: str) -> bool:
        return path in self.lines


def index_lines(text: str) -> LineIndex:
    """Scan ``text`` (valid TOML) and return the line index; on any surprise, keep what was found."""
    scanner = _Scanner(text)
    try:
        scanner.run()
    except (IndexError, ValueError):
        pass
    return LineIndex(dict(scanner.lines))


class _Scanner:
    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0
        self.line = 1
        self.lines: dict[str, int] = {}
        self.aot_last: dict[str, int] = {}

    # -- low-level helpers -------------------------------------------------------------------------
    def peek(self, n: int = 1) -> str:
        return self.s[self.i : self.i + n]

    def advance(self, n: int = 1) -> None:
        chunk = self.s[self.i : self.i + n]
        self.line += chunk.count("\n")
        self.i += n

    def skip_blank(self, newlines: bool) -> None:
        while self.i < len(self.s):
            c = self.s[self.i]
            if c in " \t\r" or (newlines and c == "\n"):
                self.advance()
            elif c == "#":
                end = self.s.find("\n", self.i)
                self.i = len(self.s) if end < 0 else end
            else:
                return

    def record(self, path: str, line: int) -> None:
        self.lines.setdefault(path, line)

    # -- structure --------------------------------------------------------------------------------
    def run(self) -> None:
        table = ""
        while True:
            self.skip_blank(newlines=True)
            if self.i >= len(self.s):
                return
            line = self.line
            if self.peek(2) == "[[":
                self.advance(2)
                keys = self.read_key()
                self.skip_blank(newlines=False)
                self.advance(2)  # ]]
                base = self.header_path(keys[:-1], keys[-1])
                idx = self.aot_last.get(base, -1) + 1
                self.aot_last[base] = idx
                self.record_prefixes(base, line)
                table = f"{base}[{idx}]"
                self.record(table, line)
            elif self.peek() == "[":
                self.advance()
                keys = self.read_key()
                self.skip_blank(newlines=False)
                self.advance()  # ]
                table = self.header_path(keys[:-1], keys[-1], last_is_element=True)
                self.record_prefixes(table, line)
            else:
                self.key_value(table)

    def header_path(self, prefix: list[str], last: str, last_is_element: bool = False) -> str:
        path = ""
        for key in prefix + ([last] if last_is_element else []):
            path = f"{path}.{key}" if path else key
            if path in self.aot_last:
                path = f"{path}[{self.aot_last[path]}]"
        if not last_is_element:
            path = f"{path}.{last}" if path else last
        return path

    def record_prefixes(self, path: str, line: int) -> None:
        parts = re.split(r"(?=\.)|(?=\[)", path)
        acc = ""
        for part in parts:
            acc += part
            self.record(acc.lstrip("."), line)

    def key_value(self, table: str) -> None:
        line = self.line
        keys = self.read_key()
        self.skip_blank(newlines=False)
        self.advance()  # =
        path = table
        for key in keys:
            path = f"{path}.{key}" if path else key
            self.record(path, line)
        self.skip_blank(newlines=False)
        self.value(path)

    def read_key(self) -> list[str]:
        keys: list[str] = []
        while True:
            self.skip_blank(newlines=False)
            c = self.peek()
            if c in ('"', "'"):
                keys.append(self.read_quoted_key(c))
            else:
                m = _BARE_KEY.match(self.s, self.i)
                if not m:
                    raise ValueError("bad key")
                keys.append(m.group(0))
                self.advance(m.end() - self.i)
            self.skip_blank(newlines=False)
            if self.peek() == ".":
                self.advance()
                continue
            return keys

    def read_quoted_key(self, quote: str) -> str:
        self.advance()
        out = []
        while self.peek() != quote:
            if quote == '"' and self.peek() == "\\":
                out.append(self.s[self.i : self.i + 2])
                self.advance(2)
                continue
            out.append(self.peek())
            self.advance()
        self.advance()
        return "".join(out)

    # -- values -----------------------------------------------------------------------------------
    def value(self, path: str) -> None:
        c = self.peek()
        if c == "{":
            self.inline_table(path)
        elif c == "[":
            self.array(path)
        elif self.peek(3) in ('"""', "'''"):
            self.multiline_string(self.peek(3))
        elif c in ('"', "'"):
            self.read_quoted_key(c)
        else:
            while self.i < len(self.s) and self.s[self.i] not in ",]}\n#":
                self.advance()

    def inline_table(self, path: str) -> None:
        self.advance()
        while True:
            self.skip_blank(newlines=True)
            if self.peek() == "}":
                self.advance()
                return
            if self.peek() == ",":
                self.advance()
                continue
            self.key_value(path)

    def array(self, path: str) -> None:
        self.advance()
        idx = 0
        while True:
            self.skip_blank(newlines=True)
            if self.peek() == "]":
                self.advance()
                return
            if self.peek() == ",":
                self.advance()
                continue
            element = f"{path}[{idx}]"
            self.record(element, self.line)
            self.value(element)
            idx += 1

    def multiline_string(self, delim: str) -> None:
        self.advance(3)
        while self.peek(3) != delim:
            if delim == '"""' and self.peek() == "\\":
                self.advance(2)
            else:
                self.advance()
        self.advance(3)
        while self.peek() == delim[0]:  # up to two extra quotes belong to the string
            self.advance()
