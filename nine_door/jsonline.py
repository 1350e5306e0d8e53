"""Strict JSON-line parsing for every JSON line the server accepts (SPEC §6.1).

Why not plain ``json.loads``: it silently keeps the last of duplicate keys, turns ``1.0``/``1e3`` into
numbers that compare equal to integers, treats ``true`` as an int subclass and accepts ``NaN``. The SPEC
rejects all of those with EINVAL, so this module makes each of them a :class:`JsonLineError`.

Why strings are checked here: the line itself is valid UTF-8, but a ``\\ud800`` escape decodes to a lone
surrogate, a ``str`` that cannot be encoded back to UTF-8. Every later use (paths, log lines, replies)
would fail on it, so every string of the parsed value, keys included, is checked once, at this boundary.
"""
from __future__ import annotations

from collections.abc import Iterable

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing at boot (docs/build.md)
if TYPE_CHECKING:
    from typing import Any

U63_MAX = 2**63 - 1


class JsonLineError(ValueError):
    """The line is not acceptable JSON for its schema (always EINVAL on the wire)."""


class _NonInteger:
    """Stand-in for a number written with a fraction or exponent; never passes an int check."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def _pairs_no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise JsonLineError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _reject_constant(name: str) -> Any:
    raise JsonLineError(f"non-standard constant {name}")


def parse_object(line: str) -> dict[str, Any]:
    """Parse one line holding exactly one JSON object; duplicates, NaN and trailing data are errors."""
    import json  # imported on first use: the first /queen/ctl write pays for it, not the boot

    try:
        value = json.loads(line, object_pairs_hook=_pairs_no_duplicates, parse_float=_NonInteger,
                           parse_constant=_reject_constant)
    except JsonLineError:
        raise
    except (ValueError, RecursionError) as exc:
        raise JsonLineError(f"malformed JSON: {exc}") from None
    if not isinstance(value, dict):
        raise JsonLineError("line is not a JSON object")
    if "\\u" in line:          # only an escape can produce a lone surrogate from valid UTF-8
        _check_encodable(value)
    return value


def _check_encodable(value: Any) -> None:
    """Every string (keys too) must encode as UTF-8: lone surrogates from escapes are rejected."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise JsonLineError("string is not encodable as UTF-8 (lone surrogate)") from None
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def check_keys(obj: dict[str, Any], allowed: Iterable[str], required: Iterable[str] = ()) -> None:
    """Closed key sets: unknown key or missing required key → error."""
    allowed_set = set(allowed)
    for key in obj:
        if key not in allowed_set:
            raise JsonLineError(f"unknown key {key!r}")
    for key in required:
        if key not in obj:
            raise JsonLineError(f"missing key {key!r}")


def get_int(obj: dict[str, Any], key: str, lo: int, hi: int) -> int:
    """A JSON integer (not bool, not a fraction/exponent form) within ``lo..hi``."""
    value = obj[key]
    if type(value) is not int:
        raise JsonLineError(f"{key} must be an integer")
    if not lo <= value <= hi:
        raise JsonLineError(f"{key} out of range {lo}..{hi}")
    return value


def get_str(obj: dict[str, Any], key: str, allow_empty: bool = False) -> str:
    """A JSON string, non-empty unless stated (SPEC §6.1)."""
    value = obj[key]
    if not isinstance(value, str):
        raise JsonLineError(f"{key} must be a string")
    if not value and not allow_empty:
        raise JsonLineError(f"{key} must not be empty")
    return value


def get_obj(obj: dict[str, Any], key: str) -> dict[str, Any]:
    value = obj[key]
    if not isinstance(value, dict):
        raise JsonLineError(f"{key} must be an object")
    return value
