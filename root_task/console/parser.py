"""Console verb parser (SPEC §10.2, §10.5): one edited line → a :class:`Command` or a :class:`ParseError`.

Why a table: serial and TCP share this parser (§10.1), and the field limits come from the IR
(``console.limits``), so the verb shapes and their limits live in data, not in per-verb code. The parser
knows nothing about sessions or NineDoor; whether a verb is *allowed now* is the session's business.

Tokens are separated by runs of spaces; the verb is case-insensitive. ``echo`` and ``spawn`` take the
rest of the line as one argument (an echo payload or a JSON object may contain spaces).
"""
from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Mapping
from enum import Enum

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing at boot (docs/build.md)
if TYPE_CHECKING:
    from typing import Any


@dataclass(frozen=True)
class ConsoleLimits:
    """IR ``console.limits`` (characters)."""

    line: int = 256
    role: int = 16
    ticket: int = 224
    path: int = 96
    json: int = 192
    id: int = 32
    echo: int = 128

    @classmethod
    def from_mapping(cls, limits: Mapping[str, Any] | None) -> "ConsoleLimits":
        limits = limits or {}
        return cls(**{name: int(limits[name]) for name in cls.__dataclass_fields__ if name in limits})


class Shape(Enum):
    """Argument shapes of the verb table."""

    NONE = "none"          # no arguments
    PATH = "path"          # exactly one path
    ATTACH = "attach"      # role [ticket]
    ECHO = "echo"          # path [payload = rest of line]
    JSON = "json"          # rest of line (required)
    ID = "id"              # exactly one worker id


VERBS: dict[str, Shape] = {
    "help": Shape.NONE, "bi": Shape.NONE, "caps": Shape.NONE, "mem": Shape.NONE, "ping": Shape.NONE,
    "test": Shape.NONE, "netstats": Shape.NONE, "quit": Shape.NONE, "log": Shape.NONE,
    "attach": Shape.ATTACH, "tail": Shape.PATH, "cat": Shape.PATH, "ls": Shape.PATH,
    "echo": Shape.ECHO, "spawn": Shape.JSON, "kill": Shape.ID,
}


@dataclass(frozen=True)
class Command:
    """A parsed verb. ``args`` are the space-separated arguments; ``rest`` is the echo payload / JSON."""

    verb: str
    args: tuple[str, ...] = ()
    rest: str | None = None


@dataclass(frozen=True)
class ParseError:
    """``ERR PARSE reason=policy detail=<detail>``."""

    detail: str


def _split_verb(line: str) -> tuple[str, str]:
    stripped = line.lstrip(" ")
    verb, _, rest = stripped.partition(" ")
    return verb, rest.lstrip(" ")


def parse(line: str, limits: ConsoleLimits = ConsoleLimits()) -> Command | ParseError:
    """Parse one line. Order of checks: length, empty, verb, argument count, argument lengths."""
    if len(line) > limits.line:
        return ParseError("line-too-long")
    if not line.strip(" "):
        return ParseError("empty-line")
    word, rest = _split_verb(line)
    verb = word.lower()
    shape = VERBS.get(verb)
    if shape is None:
        return ParseError("unknown-verb")
    tokens = [t for t in rest.split(" ") if t]
    if shape is Shape.NONE:
        return ParseError("too-many-arguments") if tokens else Command(verb)
    if shape in (Shape.PATH, Shape.ID):
        if not tokens:
            return ParseError("missing-argument")
        if len(tokens) > 1:
            return ParseError("too-many-arguments")
        limit = limits.path if shape is Shape.PATH else limits.id
        return ParseError("argument-too-long") if len(tokens[0]) > limit else Command(verb, (tokens[0],))
    if shape is Shape.ATTACH:
        if not tokens:
            return ParseError("missing-argument")
        if len(tokens) > 2:
            return ParseError("too-many-arguments")
        if len(tokens[0]) > limits.role or (len(tokens) == 2 and len(tokens[1]) > limits.ticket):
            return ParseError("argument-too-long")
        return Command(verb, tuple(tokens))
    if shape is Shape.ECHO:
        if not tokens:
            return ParseError("missing-argument")
        path, _, payload = rest.partition(" ")
        payload = payload.lstrip(" ")
        if len(path) > limits.path or len(payload) > limits.echo:
            return ParseError("argument-too-long")
        return Command(verb, (path,), payload)
    # Shape.JSON
    body = rest.strip(" ")
    if not body:
        return ParseError("missing-argument")
    if len(body) > limits.json:
        return ParseError("argument-too-long")
    return Command(verb, (), body)


def validate_path(path: str, walk_depth: int = 8) -> list[str] | None:
    """Split an absolute console path into walk names, or ``None`` if it breaks §10.2/§3.4.

    ``/`` itself is valid (no names). A trailing ``/`` or ``//`` yields an empty component → invalid.
    """
    if not path.startswith("/"):
        return None
    if path == "/":
        return []
    names = path[1:].split("/")
    if len(names) > walk_depth:
        return None
    for name in names:
        if name in ("", ".", "..") or "\0" in name or len(name.encode("utf-8")) > 255:
            return None
    return names
