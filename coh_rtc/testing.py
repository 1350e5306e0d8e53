"""Test helper: write small IR files from Python values.

    from coh_rtc.testing import write_ir
    path = write_ir(tmp_path, {"secure9p.msize": 4096, "roles.worker-gpu.enable": False})
    path = write_ir(tmp_path, schema="1.2", sharding__enable=True)     # "__" stands for "."

The base document is today's system (schema 1.0, TCP console on 31337, the three default tickets);
a dotted key set to ``None`` is removed from it.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Mapping

from .tomlwrite import write_document

BASE_DOCUMENT: dict[str, Any] = {
    "root_task": {"schema": "1.0"},
    "system": {"arch": "aarch64", "tick_ms": 5},
    "console": {"auth_token": "changeme", "tcp": {"enable": True, "port": 31337}},
    "tickets": [
        {"role": "queen", "secret": "bootstrap"},
        {"role": "worker-heartbeat", "secret": "worker"},
        {"role": "worker-gpu", "secret": "worker-gpu"},
    ],
}


def apply_overrides(document: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``document`` with dotted-key ``overrides`` applied (``None`` deletes the key)."""
    out = copy.deepcopy(document)
    for dotted, value in overrides.items():
        *parents, leaf = dotted.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        if value is None:
            node.pop(leaf, None)
        else:
            node[leaf] = value
    return out


def write_ir(
    directory: str | Path,
    overrides: Mapping[str, Any] | None = None,
    *,
    schema: str | None = None,
    name: str = "root_task.toml",
    base: Mapping[str, Any] | None = None,
    **keyword_overrides: Any,
) -> Path:
    """Write ``base`` (default :data:`BASE_DOCUMENT`) with overrides to ``directory/name``."""
    merged: dict[str, Any] = dict(overrides or {})
    merged.update({k.replace("__", "."): v for k, v in keyword_overrides.items()})
    if schema is not None:
        merged["root_task.schema"] = schema
    document = apply_overrides(dict(base or BASE_DOCUMENT), merged)
    return write_document(Path(directory) / name, document)
