"""The sharded worker namespace's label rule and per-shard providers (SPEC §8).

Why labels come from a hash and not from the worker number: ids are never reused and grow without
bound, so a hash spreads any run of ids evenly over the 16 (width 1) or 256 (width 2) shards, and
anyone — the server, a worker, cohsh, the hive view — computes a worker's shard from its id alone.

Why "per-shard provider" means per-shard *state* here: SPEC asks that operations on different shards
never contend on a shared lock. NineDoor runs in the root task's single event loop (root_task/pump.py),
so there are no locks at all; what the rule protects against — one global structure every worker
operation walks or rehashes — is avoided by giving each shard its own directory and its own worker
table, so a spawn, kill or walk touches one shard's dictionaries and nothing whose size grows with the
number of shards or workers elsewhere.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing at boot (docs/build.md)
if TYPE_CHECKING:  # pragma: no cover
    from .nodes import DirNode

WIDTHS = (1, 2)


@lru_cache(maxsize=8192)
def shard_label(worker_id: str, width: int) -> str:
    """§8: the first ``width`` characters of the lowercase hex SHA-256 of the id's UTF-8 bytes.

    Memoized (the 8192 most recently used): access checks ask it on walk steps through shard
    directories."""
    # hashlib is imported here, not at the top: no label is asked for at boot, and importing it (it
    # probes for OpenSSL's _hashlib) costs boot time on the emulated CPU.
    import hashlib

    if width not in WIDTHS:
        raise ValueError(f"shard width must be 1 or 2, not {width!r}")
    return hashlib.sha256(worker_id.encode("utf-8")).hexdigest()[:width]


def all_labels(width: int) -> list[str]:
    """Every label of a width, ascending: ``0``..``f`` or ``00``..``ff``."""
    if width not in WIDTHS:
        raise ValueError(f"shard width must be 1 or 2, not {width!r}")
    return [format(i, f"0{width}x") for i in range(16 ** width)]


def worker_dir_path(worker_id: str, width: int) -> str:
    """A worker's canonical directory: ``/shard/<label>/worker/<id>``, or ``/worker/<id>`` when
    sharding is disabled (``width`` 0)."""
    if not width:
        return f"/worker/{worker_id}"
    return f"/shard/{shard_label(worker_id, width)}/worker/{worker_id}"


@dataclass(eq=False)
class ShardProvider:
    """One shard: its ``/shard/<label>/worker`` directory and the workers it owns."""

    label: str
    worker_dir: "DirNode"
    workers: dict[str, "DirNode"] = field(default_factory=dict)   # worker id -> its directory
