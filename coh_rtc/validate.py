"""Step 2 of the compiler: validation (SPEC §14.1–§14.3, red lines R2–R4 and R6).

Validation runs in two passes, and both only *collect* diagnostics:

1. :func:`check_structure` walks the TOML document against the field tree of ``fields.py``. Each table's
   converter rejects unknown keys, enforces types, schema gating and static bounds, and runs the checks
   that need nothing but the field itself (secret charset, CAS root shape, the signing key file). It
   returns the *accepted* values (invalid ones removed) so the resolver can still build a model.
2. :func:`check_relations` runs on the resolved :class:`~coh_rtc.model.IR` and checks rules that tie
   fields together (ports, gates, walk depth, ring memory, mounts, ticket coverage). A rule whose inputs
   were themselves rejected in pass 1 is skipped, so one mistake yields one diagnostic.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from nine_door.vocabulary import schema_at_least

from .diagnostics import Diagnostic
from .fields import (
    IR_TREE,
    LATEST_SCHEMA,
    REQUIRED,
    ROLE_LABELS,
    SCHEMAS,
    Leaf,
    Table,
    TableArray,
)
from .locate import LineIndex
from .model import IR
from .secrets import resolve_secret

RESERVED_ROOTS: tuple[str, ...] = ("/proc", "/log", "/queen", "/worker", "/shard", "/gpu")
_PRINTABLE = re.compile(r"[\x21-\x7e]*")
_CAS_ROOT_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_PUBKEY = re.compile(rb"[0-9a-f]{64}\n?")

_TYPE_NAMES: tuple[tuple[type, str], ...] = (
    (bool, "boolean"),
    (int, "integer"),
    (float, "float"),
    (str, "string"),
    (list, "array"),
    (dict, "table"),
)


def toml_type(value: Any) -> str:
    """TOML's name for the type of a parsed value (``integer``, ``table``, ``datetime`` …)."""
    for py, name in _TYPE_NAMES:
        if isinstance(value, py):
            return name
    return type(value).__name__  # datetime / date / time


def render_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass
class Checked:
    """Outcome of the structural pass: accepted values, rejected paths, diagnostics."""

    schema: str  # the file's schema, or the latest one when it is missing/unsupported
    schema_valid: bool
    values: dict[str, Any]
    invalid: set[str] = field(default_factory=set)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (field path, problem)

    def error(self, path: str, problem: str) -> None:
        self.problems.append((path, problem))
        self.invalid.add(path)

    def rejected(self, *paths: str) -> bool:
        """True when any of ``paths`` (or one of their enclosing tables) was rejected."""
        for path in paths:
            probe = path
            while probe:
                if probe in self.invalid:
                    return True
                cut = max(probe.rfind("."), probe.rfind("["))
                probe = probe[:cut] if cut > 0 else ""
        return False


# ------------------------------------------------------------------------------------------------
# pass 1: structure
# ------------------------------------------------------------------------------------------------


def check_structure(
    document: dict[str, Any], ir_directory: Path, environ: Mapping[str, str] | None = None
) -> Checked:
    """Pass 1; secret references are resolved against ``environ`` (default ``os.environ``)."""
    schema, schema_valid, schema_problem = _read_schema(document)
    checked = Checked(schema=schema, schema_valid=schema_valid, values={})
    if schema_problem:
        checked.error("root_task.schema", schema_problem)
    checked.values = _table(IR_TREE, document, "", checked)
    _check_local_rules(checked, ir_directory, os.environ if environ is None else environ)
    return checked


def _read_schema(document: dict[str, Any]) -> tuple[str, bool, str | None]:
    root = document.get("root_task")
    if not isinstance(root, dict):
        return LATEST_SCHEMA, False, None if root is not None else "missing required key"
    if "schema" not in root:
        return LATEST_SCHEMA, False, "missing required key"
    value = root["schema"]
    if not isinstance(value, str):
        return LATEST_SCHEMA, False, f"expected string, got {toml_type(value)}"
    if value not in SCHEMAS:
        return LATEST_SCHEMA, False, f'unsupported schema "{value}" (expected one of {", ".join(SCHEMAS)})'
    return value, True, None


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _table(spec: Table, data: dict[str, Any], prefix: str, checked: Checked) -> dict[str, Any]:
    """The converter for one table: closed key set, gating, then each child by its kind."""
    accepted: dict[str, Any] = {}
    for key, value in data.items():
        path = _join(prefix, key)
        child = spec.children.get(key)
        if child is None or (isinstance(child, Leaf) and child.derived):
            checked.error(path, "unknown key")
            continue
        if path == "root_task.schema":
            if checked.schema_valid:
                accepted[key] = value
            continue
        if not schema_at_least(checked.schema, child.since):
            checked.error(path, f'requires root_task.schema >= "{child.since}"')
            continue
        if isinstance(child, Leaf):
            ok, clean = _leaf(child, value, path, checked)
            if ok:
                accepted[key] = clean
        elif isinstance(child, Table):
            if not isinstance(value, dict):
                checked.error(path, f"expected table, got {toml_type(value)}")
                continue
            accepted[key] = _table(child, value, path, checked)
        else:
            if not isinstance(value, list):
                checked.error(path, f"expected array, got {toml_type(value)}")
                continue
            accepted[key] = _table_array(child, value, path, checked)
    # keys that are absent: required leaves are errors; absent (non-optional) tables are descended so
    # that their own required leaves are reported too.
    for key, child in spec.children.items():
        path = _join(prefix, key)
        if key in data or not schema_at_least(checked.schema, child.since):
            continue
        if isinstance(child, Leaf) and child.default is REQUIRED and not child.derived:
            if path != "root_task.schema":  # reported by _read_schema
                checked.error(path, "missing required key")
        elif isinstance(child, Table) and not child.optional and key not in data:
            nested = _table(child, {}, path, checked)
            if nested:
                accepted[key] = nested
    return accepted


def _table_array(spec: TableArray, items: list[Any], path: str, checked: Checked) -> list[Any]:
    accepted: list[Any] = []
    for idx, item in enumerate(items):
        item_path = f"{path}[{idx}]"
        if not isinstance(item, dict):
            checked.error(item_path, f"expected table, got {toml_type(item)}")
            accepted.append(None)  # keep indices aligned with the source
            continue
        accepted.append(_table(spec.item, item, item_path, checked))
    return accepted


def _leaf(spec: Leaf, value: Any, path: str, checked: Checked) -> tuple[bool, Any]:
    if spec.kind == "str_list":
        return _str_list(spec, value, path, checked)
    expected = {"str": str, "int": int, "bool": bool}[spec.kind]
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        checked.error(path, f"expected {toml_type(expected())}, got {toml_type(value)}")
        return False, None
    problem = _bounds(spec, value)
    if problem:
        checked.error(path, problem)
        return False, None
    return True, value


def _bounds(spec: Leaf, value: Any) -> str | None:
    if spec.choices is not None and value not in spec.choices:
        return "must be one of " + ", ".join(render_value(c) for c in spec.choices)
    if spec.minimum is not None and value < spec.minimum:
        return f"{value} is below minimum {spec.minimum}"
    if spec.maximum is not None and value > spec.maximum:
        return f"{value} exceeds maximum {spec.maximum}"
    return None


def _str_list(spec: Leaf, value: Any, path: str, checked: Checked) -> tuple[bool, Any]:
    if not isinstance(value, list):
        checked.error(path, f"expected array, got {toml_type(value)}")
        return False, None
    seen: set[str] = set()
    ok = True
    for idx, item in enumerate(value):
        item_path = f"{path}[{idx}]"
        if not isinstance(item, str):
            checked.error(item_path, f"expected string, got {toml_type(item)}")
            ok = False
        elif spec.choices is not None and item not in spec.choices:
            checked.error(item_path, "must be one of " + ", ".join(spec.choices))
            ok = False
        elif item in seen:
            checked.error(item_path, f'duplicate value "{item}"')
            ok = False
        else:
            seen.add(item)
    return ok, tuple(value) if ok else None


def _printable_problem(value: str, maximum: int) -> str | None:
    """`1..maximum printable ASCII characters (0x21–0x7E)` for secrets and the console token."""
    if len(value) < 1:
        return f"{len(value)} is below minimum 1"
    if len(value) > maximum:
        return f"{len(value)} exceeds maximum {maximum}"
    if not _PRINTABLE.fullmatch(value):
        return "must contain only printable ASCII characters (0x21-0x7E)"
    return None


def component_problem(path: str, absolute: bool) -> str | None:
    """SPEC §3.4 component rules applied to an IR path (R4)."""
    if absolute and not path.startswith("/"):
        return "must be an absolute path"
    parts = (path[1:] if absolute else path).split("/")
    if ".." in parts:
        return "contains disallowed '..'"
    if "." in parts:
        return "contains disallowed '.'"
    if "" in parts or any("\x00" in p for p in parts):
        return "contains an empty component"
    return None


def _check_secret(table: dict[str, Any], key: str, path: str, maximum: int, checked: Checked,
                  ir_directory: Path, environ: Mapping[str, str]) -> None:
    """Resolve a secret reference in place, then apply the literal rule to the resolved text."""
    resolved = resolve_secret(table[key], ir_directory, environ)
    problem = resolved.problem or _printable_problem(resolved.text or "", maximum)
    if problem:
        checked.error(path, problem)
        del table[key]
    else:
        table[key] = resolved.text


def _check_local_rules(checked: Checked, ir_directory: Path, environ: Mapping[str, str]) -> None:
    values = checked.values
    for idx, ticket in enumerate(values.get("tickets", [])):
        if ticket and isinstance(ticket.get("secret"), str):
            _check_secret(ticket, "secret", f"tickets[{idx}].secret", 128, checked, ir_directory, environ)
    console = values.get("console", {})
    if "auth_token" in console:
        _check_secret(console, "auth_token", "console.auth_token", 64, checked, ir_directory, environ)
    store = values.get("cas", {}).get("store", {})
    if "root" in store:
        problem = _cas_root_problem(store["root"])
        if problem:
            checked.error("cas.store.root", problem)
            del store["root"]
    sign = store.get("sign")
    if sign is not None and "pubkey_path" in sign:
        hex_or_problem = _read_pubkey(sign["pubkey_path"], ir_directory)
        if hex_or_problem[0]:
            sign["pubkey_hex"] = hex_or_problem[1]
        else:
            checked.error("cas.store.sign.pubkey_path", hex_or_problem[1])
            del store["sign"]


def _cas_root_problem(root: str) -> str | None:
    problem = component_problem(root, absolute=True)
    if problem:
        return problem
    if root in RESERVED_ROOTS:
        return "reserved path"
    if not _CAS_ROOT_NAME.fullmatch(root[1:]):
        return "must match /[a-z][a-z0-9_-]{0,31}"
    return None


def _read_pubkey(given: str, ir_directory: Path) -> tuple[bool, str]:
    problem = component_problem(given, absolute=False)
    if problem:
        return False, problem
    try:
        data = (ir_directory / given).read_bytes()
    except OSError:
        return False, f"key file not found: {given}"
    if not _PUBKEY.fullmatch(data):
        return False, "key file must hold 64 hex characters"
    return True, data[:64].decode("ascii")


# ------------------------------------------------------------------------------------------------
# pass 2: relations between fields (on the resolved model)
# ------------------------------------------------------------------------------------------------


def check_relations(ir: IR, checked: Checked) -> None:
    """Cross-field rules; adds to ``checked.problems``."""
    _check_network(ir, checked)
    _check_roles_and_tickets(ir, checked)
    _check_console_limits(ir, checked)
    _check_newer_features(ir, checked)
    _check_mounts(ir, checked)


def _check_network(ir: IR, checked: Checked) -> None:
    listener, console_tcp = ir.secure9p.tcp_listener, ir.console.tcp
    if not checked.rejected("secure9p.tcp_listener.port", "console.tcp.port") and listener.port == console_tcp.port:
        checked.error("secure9p.tcp_listener.port", "ports must differ")
    if (
        ir.gpu.backend == "bridge"
        and not listener.enable
        and not checked.rejected("gpu.backend", "secure9p.tcp_listener.enable")
    ):
        checked.error("gpu.backend", 'backend "bridge" requires secure9p.tcp_listener.enable = true')


def _check_roles_and_tickets(ir: IR, checked: Checked) -> None:
    if not ir.roles.queen.enable and not checked.rejected("roles.queen.enable"):
        checked.error("roles.queen.enable", "must be one of true")
    claimed: set[str] = set()
    for idx, ticket in enumerate(checked.values.get("tickets", [])):
        role = (ticket or {}).get("role")
        if role is None:
            continue
        if role in claimed:
            checked.error(f"tickets[{idx}].role", f'duplicate role "{role}"')
        claimed.add(role)
    for label in ROLE_LABELS:
        if checked.rejected(f"roles.{label}.enable"):
            continue
        if label in ir.roles.enabled() and label not in claimed:
            if not any(p.startswith("tickets[") and p.endswith(".role") for p in checked.invalid):
                checked.error("tickets", f'enabled role "{label}" has no [[tickets]] entry')


def _check_console_limits(ir: IR, checked: Checked) -> None:
    limits = ir.console.limits
    if checked.rejected("console.limits.line"):
        return
    for name in ("role", "ticket", "path", "json", "id", "echo"):
        value = getattr(limits, name)
        path = f"console.limits.{name}"
        if value > limits.line and not checked.rejected(path):
            checked.error(path, f"{value} exceeds maximum {limits.line}")


def _check_newer_features(ir: IR, checked: Checked) -> None:
    schema = ir.schema
    msize, depth = ir.secure9p.msize, ir.secure9p.walk_depth
    msize_ok = not checked.rejected("secure9p.msize")
    depth_ok = not checked.rejected("secure9p.walk_depth")
    if schema_at_least(schema, "1.2"):
        ring = ir.telemetry.ring_bytes_per_worker
        ring_path = "telemetry.ring_bytes_per_worker"
        if not checked.rejected(ring_path):
            if msize_ok and ring < msize:
                checked.error(ring_path, f"{ring} is below minimum {msize}")
            elif ring & (ring - 1):
                checked.error(ring_path, "must be a power of two")
        budget_path = "telemetry.memory_budget_bytes"
        if not checked.rejected(ring_path, budget_path, "system.max_workers"):
            total = ring * ir.system.max_workers
            if total > ir.telemetry.memory_budget_bytes:
                checked.error(
                    budget_path,
                    f"ring memory {total} exceeds telemetry.memory_budget_bytes {ir.telemetry.memory_budget_bytes}",
                )
        if depth_ok and ir.sharding.enable and depth < 5 and not checked.rejected("sharding.enable"):
            checked.error("sharding.enable", "sharding requires secure9p.walk_depth >= 5")
        alias_path = "sharding.legacy_worker_alias"
        if depth_ok and ir.sharding.legacy_worker_alias and depth < 3 and not checked.rejected(alias_path):
            checked.error(alias_path, "legacy alias requires secure9p.walk_depth >= 3")
        client_path = "client_policies.retry.short_write.backoff_ms"
        server_backoff = ir.secure9p.short_write_policy.backoff_ms
        if (
            ir.client_policies.retry.short_write.backoff_ms < server_backoff
            and not checked.rejected(client_path, "secure9p.short_write_policy.backoff_ms")
        ):
            checked.error(client_path, "must be >= secure9p.short_write_policy.backoff_ms")
        watch_path = "observability.proc_ingest.watch_interval_ms"
        watch = ir.observability.proc_ingest.watch_interval_ms
        if 0 < watch < 100 and not checked.rejected(watch_path):
            checked.error(watch_path, f"{watch} is below minimum 100")
    if schema_at_least(schema, "1.3"):
        chunk_path = "cas.store.chunk_bytes"
        envelope = msize - 24
        if msize_ok and not checked.rejected(chunk_path) and ir.cas.store.chunk_bytes > envelope:
            checked.error(chunk_path, f"{ir.cas.store.chunk_bytes} exceeds msize envelope {envelope}")


def enabled_services(ir: IR) -> tuple[str, ...]:
    """Provider names of SPEC §5.6 that exist for this IR (a disabled provider is unknown)."""
    services = ["proc", "log", "queen", "workers"]
    if ir.gpu.backend != "none":
        services.append("gpu")
    if ir.cas.enable:
        services.append("updates")
    return tuple(services)


def _check_mounts(ir: IR, checked: Checked) -> None:
    raw_mounts = checked.values.get("namespace", {}).get("mounts", [])
    services = enabled_services(ir)
    reserved = RESERVED_ROOTS + ((ir.cas.store.root,) if ir.cas.store.root else ())
    depth_limit = None if checked.rejected("secure9p.walk_depth") else ir.secure9p.walk_depth
    targets: list[str] = []
    for idx, mount in enumerate(raw_mounts):
        if not mount:
            continue
        service_path = f"namespace.mounts[{idx}].service"
        service = mount.get("service")
        if service is not None and service not in services:
            checked.error(service_path, "must be one of " + ", ".join(services))
        at = mount.get("at")
        if at is None:
            continue
        problem = _mount_target_problem(at, reserved, depth_limit, targets)
        if problem:
            checked.error(f"namespace.mounts[{idx}].at", problem)
        else:
            targets.append(at)


def _mount_target_problem(at: str, reserved: tuple[str, ...], depth_limit: int | None, earlier: list[str]) -> str | None:
    if at == "/":
        return "reserved path"
    problem = component_problem(at, absolute=True)
    if problem:
        return problem
    depth = len(at[1:].split("/"))
    if depth_limit is not None and depth > depth_limit:
        return f"depth {depth} exceeds secure9p.walk_depth {depth_limit}"
    if any(at == root or at.startswith(root + "/") for root in reserved):
        return "reserved path"
    if at in earlier:
        return "duplicate mount target"
    parent = at.rsplit("/", 1)[0] or "/"
    if parent != "/" and parent not in earlier:
        return "parent does not exist"
    return None


def to_diagnostics(checked: Checked, index: LineIndex, display_name: str) -> list[Diagnostic]:
    return sorted(Diagnostic(index.line_of(path), path, problem, display_name) for path, problem in checked.problems)
