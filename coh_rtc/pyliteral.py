"""Deterministic Python source for literals (dicts with sorted keys, one item per line).

``repr`` of a nested dict is one long line and ``pprint`` wraps by width; generated files should be
diff-friendly and identical on every machine, so this formatter fixes the layout itself.
"""

from __future__ import annotations

from typing import Any

_INDENT = "    "


def py_literal(value: Any, level: int = 0) -> str:
    """Python source for ``value`` (dict, list, tuple, str, int, bool, None), keys sorted."""
    pad = _INDENT * (level + 1)
    end = _INDENT * level
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = "".join(f"{pad}{k!r}: {py_literal(value[k], level + 1)},\n" for k in sorted(value))
        return "{\n" + items + end + "}"
    if isinstance(value, (list, tuple)):
        open_, close = ("[", "]") if isinstance(value, list) else ("(", ")")
        if not value:
            return open_ + close
        items = "".join(f"{pad}{py_literal(v, level + 1)},\n" for v in value)
        return open_ + "\n" + items + end + close
    if value is None or isinstance(value, (bool, int, str)):
        return repr(value)
    raise TypeError(f"cannot emit {type(value).__name__} as a literal")
