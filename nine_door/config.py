"""NineDoor's view of the resolved IR (SPEC §14.2), as one frozen value.

Why a separate dataclass: the server only needs a dozen resolved values, and building them once from the
RESOLVED dict (written by coh_rtc into ``root_task/generated/bootstrap.py``) keeps dictionary lookups out
of the request path. The same constructor serves the VM (bootstrap module) and host mode (in-memory
compile), so the two cannot drift.

Reads are strict (``resolved["a"]["b"]``, no defaulting dict reads): the resolved manifest has every
key, defaults and legacy values are applied by coh-rtc alone (``coh_rtc/fields.py``), so a missing key
is a KeyError naming it, not a silently different default. The field defaults of the dataclass below
exist for unit tests that build a NineDoorConfig directly; ``from_resolved`` never falls back to them.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing at boot (docs/build.md)
if TYPE_CHECKING:
    from typing import Any

from nine_door.vocabulary import MAX_MSIZE, MAX_WALK_DEPTH, NINEP_TCP_PORT, ROLE_LABELS

LEGACY_RING_BYTES = 65536  # SPEC §7.1: before schema 1.2 every ring is text, 65536 bytes


@dataclass(frozen=True)
class BudgetDefaults:
    """Default budget fields for spawns (SPEC §6.2); ``None`` = unbounded."""

    ttl_s: int | None = None
    ops: int | None = None


@dataclass(frozen=True)
class StaticMount:
    """One IR ``namespace.mounts`` entry: provider ``service`` visible at ``at`` (SPEC §5.6)."""

    service: str
    at: str


@dataclass(frozen=True)
class NineDoorConfig:
    """Everything NineDoor reads from the IR; built by :meth:`from_resolved`."""

    schema: str = "1.0"
    manifest_sha256: str = "0" * 64
    msize: int = MAX_MSIZE
    walk_depth: int = MAX_WALK_DEPTH
    tags_per_session: int = 1
    batch_frames: bool = False
    short_write_enable: bool = False
    short_write_backoff_ms: int = 5
    max_workers: int = 1024
    role_enabled: Mapping[str, bool] = field(
        default_factory=lambda: {"queen": True, "worker-heartbeat": True, "worker-gpu": True})
    heartbeat_budget: BudgetDefaults = BudgetDefaults(ttl_s=300, ops=10000)
    gpu_default_ops: int = 64
    mounts: tuple[StaticMount, ...] = ()
    tcp_listener_enable: bool = False
    tcp_listener_port: int = NINEP_TCP_PORT
    console_tcp_enable: bool = False
    gpu_backend: str = "none"
    ring_bytes_per_worker: int = LEGACY_RING_BYTES
    frame_schema: str = "text"
    sharding_enable: bool = False               # sharding.* (SPEC §8; /proc/boot's sharding line)
    sharding_width: int = 2
    legacy_worker_alias: bool = True
    proc_9p: tuple[str, ...] = ()               # observability.proc_9p (SPEC §12)
    proc_ingest: tuple[str, ...] = ()           # observability.proc_ingest.fields
    watch_interval_ms: int = 0                  # observability.proc_ingest.watch_interval_ms
    cas_enable: bool = False                    # cas.* (SPEC §13; legacy: disabled before schema 1.3)
    cas_root: str = "/updates"
    cas_chunk_bytes: int = 4096
    cas_delta_enable: bool = False
    cas_pubkey_hex: str | None = None           # cas.store.sign.pubkey_hex (derived by coh-rtc), if signing
    ticket_secrets: Mapping[str, str] = field(default_factory=dict)

    @property
    def any_tcp_listener(self) -> bool:
        """Whether the `/proc/boot` `net` line is shown (SPEC §5.4)."""
        return self.tcp_listener_enable or self.console_tcp_enable

    @classmethod
    def from_resolved(cls, resolved: Mapping[str, Any], ticket_secrets: Mapping[str, str],
                      manifest_sha256: str) -> "NineDoorConfig":
        """Build from the RESOLVED dict (docs/internals.md); every key must be present."""
        s9p = resolved["secure9p"]
        sw = s9p["short_write_policy"]
        tcp = s9p["tcp_listener"]
        roles = resolved["roles"]
        hb = roles["worker-heartbeat"]["default_budget"]
        telemetry = resolved["telemetry"]  # legacy values (text, 65536) before schema 1.2
        return cls(
            schema=str(resolved["root_task"]["schema"]),
            manifest_sha256=manifest_sha256,
            msize=int(s9p["msize"]),
            walk_depth=int(s9p["walk_depth"]),
            tags_per_session=int(s9p["tags_per_session"]),
            batch_frames=bool(s9p["batch_frames"]),
            short_write_enable=bool(sw["enable"]),
            short_write_backoff_ms=int(sw["backoff_ms"]),
            max_workers=int(resolved["system"]["max_workers"]),
            role_enabled={label: bool(roles[label]["enable"]) for label in ROLE_LABELS},
            heartbeat_budget=BudgetDefaults(ttl_s=int(hb["ttl_s"]), ops=int(hb["ops"])),
            gpu_default_ops=int(roles["worker-gpu"]["default_budget"]["ops"]),
            mounts=tuple(StaticMount(str(m["service"]), str(m["at"])) for m in resolved["namespace"]["mounts"]),
            tcp_listener_enable=bool(tcp["enable"]),
            tcp_listener_port=int(tcp["port"]),
            console_tcp_enable=bool(resolved["console"]["tcp"]["enable"]),
            gpu_backend=str(resolved["gpu"]["backend"]),
            ring_bytes_per_worker=int(telemetry["ring_bytes_per_worker"]),
            frame_schema=str(telemetry["frame_schema"]),
            sharding_enable=bool(resolved["sharding"]["enable"]),
            sharding_width=int(resolved["sharding"]["scheme"]["width"]),
            legacy_worker_alias=bool(resolved["sharding"]["legacy_worker_alias"]),
            proc_9p=tuple(resolved["observability"]["proc_9p"]),
            proc_ingest=tuple(resolved["observability"]["proc_ingest"]["fields"]),
            watch_interval_ms=int(resolved["observability"]["proc_ingest"]["watch_interval_ms"]),
            cas_enable=bool(resolved["cas"]["enable"]),
            cas_root=str(resolved["cas"]["store"]["root"]),
            cas_chunk_bytes=int(resolved["cas"]["store"]["chunk_bytes"]),
            cas_delta_enable=bool(resolved["cas"]["delta"]["enable"]),
            cas_pubkey_hex=_cas_pubkey(resolved["cas"]["store"]),
            ticket_secrets=dict(ticket_secrets),
        )


def _cas_pubkey(store: Mapping[str, Any]) -> str | None:
    """``cas.store.sign`` is the one optional table of the resolved manifest (absent: no signing)."""
    sign = store["sign"] if "sign" in store else None
    return str(sign["pubkey_hex"]) if sign is not None else None


def coerce_config(config: Any) -> NineDoorConfig:
    """Accept a NineDoorConfig, or a runtime config object that carries one or the RESOLVED pieces.

    The root task's ``RuntimeConfig`` is owned by another module; NineDoor accepts it if it exposes
    ``ninedoor``/``nine_door`` (a NineDoorConfig) or ``resolved``, ``ticket_secrets`` and
    ``manifest_sha256``, so neither side has to import the other's types.
    """
    if isinstance(config, NineDoorConfig):
        return config
    for attr in ("ninedoor", "nine_door"):
        inner = getattr(config, attr, None)
        if isinstance(inner, NineDoorConfig):
            return inner
    resolved = getattr(config, "resolved", None)
    if resolved is not None:
        return NineDoorConfig.from_resolved(resolved, getattr(config, "ticket_secrets", {}),
                                            getattr(config, "manifest_sha256", "0" * 64))
    raise TypeError(f"cannot build a NineDoorConfig from {type(config).__name__}")
