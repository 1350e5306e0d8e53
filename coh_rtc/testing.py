"""Test helpers: write small IR files from Python values, and build resolved configurations.

    from coh_rtc.testing import write_ir, resolved, compile_document
    path = write_ir(tmp_path, {"secure9p.msize": 4096, "roles.worker-gpu.enable": False})
    path = write_ir(tmp_path, schema="1.2", sharding__enable=True)     # "__" stands for "."
    manifest = resolved({"secure9p.msize": 4096})   # the real compiler's output, then overridden
    compiled = compile_document({"secure9p.walk_depth": 4}, runtime=True)

The base document is today's system (schema 1.0, TCP console on 31337, the three default tickets);
a dotted key set to ``None`` is removed from it. Tests build configurations here instead of copying a
resolved manifest by hand, so a key added to ``fields.py`` reaches every test configuration at once.
"""

from __future__ import annotations

import copy
import functools
import tempfile
from pathlib import Path
from typing import Any, Mapping

from nine_door.vocabulary import CONSOLE_TCP_PORT

from .compiler import Compiled, compile_ir, compile_runtime_ir
from .tomlwrite import write_document

BASE_DOCUMENT: dict[str, Any] = {
    "root_task": {"schema": "1.0"},
    "system": {"arch": "aarch64", "tick_ms": 5},
    "console": {"auth_token": "changeme", "tcp": {"enable": True, "port": CONSOLE_TCP_PORT}},
    "gpu": {"backend": "none"},  # tests opt in to the mock GPUs (SPEC's default) where they need them
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


TICKET_SECRETS: dict[str, str] = {t["role"]: t["secret"] for t in BASE_DOCUMENT["tickets"]}


def compile_document(
    overrides: Mapping[str, Any] | None = None,
    *,
    schema: str | None = None,
    runtime: bool = False,
    environ: Mapping[str, str] | None = None,
    **keyword_overrides: Any,
) -> Compiled:
    """Compile the base document with IR overrides (through a temporary file, as a user would);
    ``runtime=True`` also refuses unimplemented features (:func:`coh_rtc.compile_runtime_ir`)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = write_ir(tmp, overrides, schema=schema, **keyword_overrides)
        compile_fn = compile_runtime_ir if runtime else compile_ir
        return compile_fn(path, environ=environ)


@functools.lru_cache(maxsize=1)
def _base_manifest() -> dict[str, Any]:
    return compile_document(runtime=True).resolved


def resolved(overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A fresh copy of the base document's resolved manifest with dotted ``overrides`` applied to the
    *resolved* keys (so a test may set values the IR's schema gate would refuse, e.g. batching on 1.0).
    Every overridden key must already exist: a typo is a KeyError, not a silently new key."""
    out = copy.deepcopy(_base_manifest())
    for dotted, value in (overrides or {}).items():
        *parents, leaf = dotted.split(".")
        node = out
        for part in parents:
            node = node[part]
        if leaf not in node:
            raise KeyError(dotted)
        node[leaf] = value
    return out
