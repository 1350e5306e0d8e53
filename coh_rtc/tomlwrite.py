"""Writing IR documents back as TOML.

Used to round-trip a resolved manifest into an IR (``resolved_to_document``) and by tests that build
IRs from Python dicts. The writer emits one dotted key per leaf (``secure9p.tcp_listener.port = 564``)
and arrays of tables as inline arrays, which TOML treats exactly like table headers (SPEC §14.1).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from .fields import IR_TREE, Leaf, Table, TableArray, schema_key

_BARE = re.compile(r"[A-Za-z0-9_-]+")


def _key(name: str) -> str:
    return name if _BARE.fullmatch(name) else json.dumps(name)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        if all(isinstance(v, dict) for v in value) and value:
            return "[\n" + "".join(f"  {_value(v)},\n" for v in value) + "]"
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def dumps(document: dict[str, Any]) -> str:
    """TOML text for ``document``: dotted keys for nested tables, inline arrays of tables."""
    lines: list[str] = []

    def walk(node: dict[str, Any], prefix: str) -> None:
        for key, value in node.items():
            path = f"{prefix}.{_key(key)}" if prefix else _key(key)
            if isinstance(value, dict) and value:
                walk(value, path)
            else:
                lines.append(f"{path} = {_value(value)}")

    walk(document, "")
    return "\n".join(lines) + "\n"


def resolved_to_document(
    resolved: dict[str, Any], ticket_secrets: dict[str, str], auth_token: str | None = None
) -> dict[str, Any]:
    """An IR document equivalent to ``resolved``: keys newer than its schema and derived keys are
    dropped, tickets get their secrets back from ``ticket_secrets`` and the console its token from
    ``auth_token`` (the manifest holds only hashes; ``None`` leaves the default token)."""
    schema = resolved["root_task"]["schema"]

    def walk(spec: Table, data: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, child in spec.children.items():
            if key not in data or schema_key(child.since) > schema_key(schema):
                continue
            if isinstance(child, Leaf):
                if not child.derived:
                    out[key] = data[key]
            elif isinstance(child, Table):
                out[key] = walk(child, data[key])
            else:
                out[key] = [_item(key, child, item) for item in data[key]]
        return out

    def _item(key: str, spec: TableArray, item: dict[str, Any]) -> dict[str, Any]:
        if key == "tickets":
            return {"role": item["role"], "secret": ticket_secrets[item["role"]]}
        return walk(spec.item, item)

    document = walk(IR_TREE, resolved)
    if auth_token is not None:
        document["console"]["auth_token"] = auth_token
    return document


def write_document(path: str | Path, document: dict[str, Any]) -> Path:
    """Write ``document`` as TOML to ``path`` (creating parent directories); returns the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(dumps(document), encoding="utf-8")
    return target
