"""Step 3 of the compiler: resolution (SPEC §14.1, §15.2).

Fills every key the field tree knows: the value given in the IR if it was accepted, else the default
when the file's schema includes the key, else the legacy value (a "—" legacy means the default). The
result is a nested dict keyed by TOML names (:func:`resolve_data`), from which both the typed
:class:`~coh_rtc.model.IR` and the resolved manifest are made; the manifest is derived from the dict, not
from the model, so a key added to ``fields.py`` reaches the manifest (and the guest) with no other edit. Collections
are put in total order here (tickets by role, observability lists sorted) so emission never has to
sort anything; mounts keep their IR order because later mounts win (SPEC §5.6).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from .fields import IR_TREE, NO_LEGACY, REQUIRED, Leaf, Table, TableArray
from .model import IR, build
from .validate import schema_at_least


def resolve_data(values: dict[str, Any], schema: str) -> dict[str, Any]:
    """Resolve accepted ``values`` (from the structural pass) for ``schema``: every key filled."""
    data = _table(IR_TREE, values, schema)
    data["root_task"]["schema"] = schema
    data["tickets"] = sorted(data["tickets"], key=lambda t: t["role"])
    return data


def resolve(values: dict[str, Any], schema: str) -> IR:
    """Resolve accepted ``values`` into the typed model."""
    return build(IR, resolve_data(values, schema))


def _table(spec: Table, values: dict[str, Any], schema: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, child in spec.children.items():
        given = values.get(key)
        if isinstance(child, Leaf):
            out[key] = _leaf(child, key in values, given, schema)
        elif isinstance(child, Table):
            if child.optional and given is None:
                out[key] = None
            else:
                out[key] = _table(child, given or {}, schema)
        else:
            out[key] = _items(child, given or [], schema)
    return out


def _leaf(spec: Leaf, present: bool, given: Any, schema: str) -> Any:
    if present:
        value = given
    elif spec.derived or spec.default is REQUIRED:
        return None
    elif schema_at_least(schema, spec.since) or spec.legacy is NO_LEGACY:
        value = spec.default
    else:
        value = spec.legacy
    if spec.kind == "str_list":
        return tuple(sorted(value))
    return value


def _items(spec: TableArray, items: list[Any], schema: str) -> list[dict[str, Any]]:
    """Complete items only: an item missing a required key was already reported."""
    required = [k for k, c in spec.item.children.items() if isinstance(c, Leaf) and c.default is REQUIRED]
    return [_table(spec.item, item, schema) for item in items if item and all(k in item for k in required)]


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def manifest_dict(data: dict[str, Any]) -> dict[str, Any]:
    """The resolved manifest (SPEC §15.2) from :func:`resolve_data`'s dict: every key present, optional
    tables that were not given omitted, lists as JSON arrays, and no secret text: each ticket becomes
    ``{"role", "secret_sha256"}`` and ``console.auth_token`` becomes ``console.auth_token_sha256``."""
    out = _json_ready(data)
    out["tickets"] = [{"role": t["role"], "secret_sha256": _sha256(t["secret"])} for t in data["tickets"]]
    console = out["console"]
    console["auth_token_sha256"] = _sha256(console.pop("auth_token"))
    return out


def _json_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    return value


def manifest_bytes(resolved: dict[str, Any]) -> bytes:
    """Canonical bytes: ``json.dumps(obj, indent=2, sort_keys=True) + "\\n"``, ASCII-escaped."""
    return (json.dumps(resolved, indent=2, sort_keys=True, ensure_ascii=True) + "\n").encode("ascii")


def manifest_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
