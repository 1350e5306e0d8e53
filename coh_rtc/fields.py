"""The IR field reference (SPEC §14.2) as data.

One tree of :class:`Table`/:class:`Leaf`/:class:`TableArray` nodes describes every key the IR accepts:
its type, the schema version that introduced it, its default and its legacy value, and its static
bounds. The structural validator, the resolver (defaults/legacy) and the TOML re-emitter all walk this
same tree, so a new field is added in exactly one place. Checks that depend on other fields (ranges
bounded by ``msize`` or ``console.limits.line``, ports, paths, gates) live in ``validate.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

from nine_door.vocabulary import (
    CONSOLE_TCP_PORT,
    MAX_MSIZE,
    MAX_WALK_DEPTH,
    NINEP_TCP_PORT,
    ROLE_LABELS,
    schema_key,
)

SCHEMAS: tuple[str, ...] = ("1.0", "1.1", "1.2", "1.3")
LATEST_SCHEMA = SCHEMAS[-1]

PROC_9P_NODES: tuple[str, ...] = ("sessions", "outstanding", "short_writes")
PROC_INGEST_FIELDS: tuple[str, ...] = ("p50_ms", "p95_ms", "backpressure", "dropped", "queued")
U63_MAX = 2**63 - 1


class _Required:
    """Sentinel default: the key must be given (``missing required key``)."""

    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()
NO_LEGACY: Any = None  # "—" in the Legacy column: the default applies (the feature is off anyway)


@dataclass(frozen=True)
class Leaf:
    """One scalar key (or array of strings, ``kind="str_list"``)."""

    kind: str  # "str" | "int" | "bool" | "str_list"
    since: str = "1.0"
    default: Any = REQUIRED
    legacy: Any = NO_LEGACY
    minimum: int | None = None
    maximum: int | None = None
    choices: tuple[Any, ...] | None = None
    derived: bool = False  # computed by the compiler (e.g. pubkey_hex); never accepted from the IR


@dataclass(frozen=True)
class Table:
    """A TOML table whose key set is closed (unknown keys are errors)."""

    children: dict[str, "Node"]
    since: str = "1.0"
    optional: bool = False  # absent from the resolved manifest when not given (cas.store.sign)


@dataclass(frozen=True)
class TableArray:
    """An array of tables (``[[tickets]]`` or ``tickets = [{...}]``); absent means empty."""

    item: Table
    since: str = "1.0"


Node = Union[Leaf, Table, TableArray]


def _int(lo: int | None, hi: int | None, default: Any = REQUIRED, since: str = "1.0", legacy: Any = NO_LEGACY) -> Leaf:
    return Leaf("int", since=since, default=default, legacy=legacy, minimum=lo, maximum=hi)


def _bool(default: bool, since: str = "1.0", legacy: Any = NO_LEGACY) -> Leaf:
    return Leaf("bool", since=since, default=default, legacy=legacy)


def _choice(choices: tuple[str, ...], default: Any = REQUIRED, since: str = "1.0", legacy: Any = NO_LEGACY) -> Leaf:
    return Leaf("str", since=since, default=default, legacy=legacy, choices=choices)


IR_TREE = Table(
    {
        "root_task": Table({"schema": Leaf("str")}),
        "system": Table(
            {
                "arch": _choice(("aarch64",)),
                "machine": _choice(("virt",), default="virt"),
                "tick_ms": _int(1, 1000, default=5),
                "max_workers": _int(1, 4096, default=1024),
            }
        ),
        "secure9p": Table(
            {
                "msize": _int(512, MAX_MSIZE, default=MAX_MSIZE),
                "walk_depth": _int(1, MAX_WALK_DEPTH, default=MAX_WALK_DEPTH),
                "tcp_listener": Table(
                    {"enable": _bool(False), "port": _int(1, 65535, default=NINEP_TCP_PORT)}
                ),
                "tags_per_session": _int(1, 1024, default=32, since="1.1", legacy=1),
                "batch_frames": _bool(True, since="1.1", legacy=False),
                "short_write_policy": Table(
                    {
                        "enable": _bool(True, since="1.1", legacy=False),
                        "backoff_ms": _int(1, 10000, default=5, since="1.1", legacy=5),
                    },
                    since="1.1",
                ),
            }
        ),
        "roles": Table(
            {
                "queen": Table({"enable": _bool(True)}),
                "worker-heartbeat": Table(
                    {
                        "enable": _bool(True),
                        "default_budget": Table(
                            {"ops": _int(1, U63_MAX, default=10000), "ttl_s": _int(1, U63_MAX, default=300)}
                        ),
                    }
                ),
                "worker-gpu": Table(
                    {
                        "enable": _bool(True),
                        "default_budget": Table({"ops": _int(1, U63_MAX, default=64)}),
                    }
                ),
            }
        ),
        "tickets": TableArray(
            Table({"role": _choice(ROLE_LABELS), "secret": Leaf("str")})  # secret ref + rule: validate.py
        ),
        "namespace": Table(
            {"mounts": TableArray(Table({"service": Leaf("str"), "at": Leaf("str")}))}
        ),
        "console": Table(
            {
                "serial": _bool(True),
                "auth_token": Leaf("str", default="changeme"),  # secret ref + rule: validate.py
                "idle_timeout_s": _int(30, 86400, default=300),
                "tcp": Table(
                    {
                        "enable": _bool(False),
                        "port": _int(1, 65535, default=CONSOLE_TCP_PORT),
                        "max_sessions": _int(1, 16, default=4),
                    }
                ),
                "limits": Table(
                    {
                        "line": _int(64, 4096, default=256),
                        # "others 1..line": the upper bound is checked in validate.py
                        "role": _int(1, 4096, default=16),
                        "ticket": _int(1, 4096, default=224),
                        "path": _int(1, 4096, default=96),
                        "json": _int(1, 4096, default=192),
                        "id": _int(1, 4096, default=32),
                        "echo": _int(1, 4096, default=128),
                    }
                ),
            }
        ),
        "gpu": Table({"backend": _choice(("none", "mock", "bridge"), default="mock")}),
        "telemetry": Table(
            {
                # lower bound msize and power of two: validate.py
                "ring_bytes_per_worker": _int(None, 16777216, default=65536, since="1.2", legacy=65536),
                "frame_schema": _choice(("text", "cbor_v1"), default="text", since="1.2", legacy="text"),
                "memory_budget_bytes": _int(
                    1048576, 1073741824, default=67108864, since="1.2", legacy=67108864
                ),
            },
            since="1.2",
        ),
        "sharding": Table(
            {
                "enable": _bool(False, since="1.2", legacy=False),
                "scheme": Table(
                    {
                        "kind": _choice(("hex_prefix",), default="hex_prefix", since="1.2"),
                        "width": Leaf("int", since="1.2", default=2, choices=(1, 2)),
                    },
                    since="1.2",
                ),
                "legacy_worker_alias": _bool(True, since="1.2"),
            },
            since="1.2",
        ),
        "client_policies": Table(
            {
                "cohsh": Table(
                    {
                        "pool": Table(
                            {
                                "control": _int(1, 16, default=2, since="1.2", legacy=2),
                                "telemetry": _int(1, 16, default=4, since="1.2", legacy=4),
                            },
                            since="1.2",
                        )
                    },
                    since="1.2",
                ),
                "retry": Table(
                    {
                        "short_write": Table(
                            {
                                "max_retries": _int(0, 16, default=3, since="1.2", legacy=3),
                                "backoff_ms": _int(1, 10000, default=5, since="1.2", legacy=5),
                            },
                            since="1.2",
                        )
                    },
                    since="1.2",
                ),
            },
            since="1.2",
        ),
        "observability": Table(
            {
                "proc_9p": Leaf(
                    "str_list", since="1.2", default=PROC_9P_NODES, legacy=(), choices=PROC_9P_NODES
                ),
                "proc_ingest": Table(
                    {
                        "fields": Leaf(
                            "str_list",
                            since="1.2",
                            default=PROC_INGEST_FIELDS,
                            legacy=(),
                            choices=PROC_INGEST_FIELDS,
                        ),
                        # "0 or 100..60000": validate.py
                        "watch_interval_ms": _int(0, 60000, default=1000, since="1.2", legacy=0),
                    },
                    since="1.2",
                ),
            },
            since="1.2",
        ),
        "cas": Table(
            {
                "enable": _bool(False, since="1.3", legacy=False),
                "store": Table(
                    {
                        "root": Leaf("str", since="1.3", default="/updates"),  # pattern: validate.py
                        "chunk_bytes": _int(64, None, default=4096, since="1.3"),  # msize envelope: validate.py
                        "hash": _choice(("sha256",), default="sha256", since="1.3"),
                        "sign": Table(
                            {
                                "algo": _choice(("ed25519",), default="ed25519", since="1.3"),
                                "pubkey_path": Leaf("str", since="1.3"),
                                "pubkey_hex": Leaf("str", since="1.3", derived=True),
                            },
                            since="1.3",
                            optional=True,
                        ),
                    },
                    since="1.3",
                ),
                "delta": Table({"enable": _bool(False, since="1.3", legacy=False)}, since="1.3"),
            },
            since="1.3",
        ),
    }
)


@dataclass(frozen=True)
class FieldRow:
    """A flattened row of the field reference, for docs and tests."""

    path: str
    leaf: Leaf = field(compare=False)


def leaf_rows(node: Node = IR_TREE, prefix: str = "") -> list[FieldRow]:
    """Every leaf of the tree with its dotted path (array items as ``name[]``)."""
    rows: list[FieldRow] = []
    if isinstance(node, Leaf):
        return [FieldRow(prefix, node)]
    if isinstance(node, TableArray):
        return leaf_rows(node.item, prefix + "[]")
    for key, child in node.children.items():
        rows.extend(leaf_rows(child, f"{prefix}.{key}" if prefix else key))
    return rows
