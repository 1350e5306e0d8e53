"""NineDoor's view of the resolved IR (SPEC §14.2), as one frozen value.

Why a separate dataclass: the server only needs a dozen resolved values, and building them once from the
RESOLVED dict (written by coh_rtc into ``root_task/generated/bootstrap.py``) keeps dictionary lookups,
defaults and legacy values out of the request path. The same constructor serves the VM (bootstrap
module) and host mode (in-memory compile), so the two cannot drift.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing at boot (docs/build.md)
if TYPE_CHECKING:
    from typing import Any

ROLE_LABELS = ("queen", "worker-heartbeat", "worker-gpu")
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
    msize: int = 8192
    walk_depth: int = 8
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
    tcp_listener_port: int = 564
    console_tcp_enable: bool = False
    gpu_backend: str = "none"
    ring_bytes_per_worker: int = LEGACY_RING_BYTES
    frame_schema: str = "text"
    ticket_secrets: Mapping[str, str] = field(default_factory=dict)

    @property
    def any_tcp_listener(self) -> bool:
        """Whether the `/proc/boot` `net` line is shown (SPEC §5.4)."""
        return self.tcp_listener_enable or self.console_tcp_enable

    @classmethod
    def from_resolved(cls, resolved: Mapping[str, Any], ticket_secrets: Mapping[str, str],
                      manifest_sha256: str) -> "NineDoorConfig":
        """Build from the RESOLVED dict (docs/internals.md); missing sections take SPEC legacy values."""
        schema = str(_get(resolved, "root_task", "schema", default="1.0"))
        s9p = resolved.get("secure9p", {})
        sw = s9p.get("short_write_policy", {})
        tcp = s9p.get("tcp_listener", {})
        roles = resolved.get("roles", {})
        hb = roles.get("worker-heartbeat", {}).get("default_budget", {})
        gpu_budget = roles.get("worker-gpu", {}).get("default_budget", {})
        telemetry = resolved.get("telemetry", {}) if _schema_at_least(schema, "1.2") else {}
        return cls(
            schema=schema,
            manifest_sha256=manifest_sha256,
            msize=int(s9p.get("msize", 8192)),
            walk_depth=int(s9p.get("walk_depth", 8)),
            tags_per_session=int(s9p.get("tags_per_session", 1)),
            batch_frames=bool(s9p.get("batch_frames", False)),
            short_write_enable=bool(sw.get("enable", False)),
            short_write_backoff_ms=int(sw.get("backoff_ms", 5)),
            max_workers=int(_get(resolved, "system", "max_workers", default=1024)),
            role_enabled={label: bool(roles.get(label, {}).get("enable", True)) for label in ROLE_LABELS},
            heartbeat_budget=BudgetDefaults(ttl_s=hb.get("ttl_s", 300), ops=hb.get("ops", 10000)),
            gpu_default_ops=int(gpu_budget.get("ops", 64)),
            mounts=tuple(StaticMount(str(m["service"]), str(m["at"]))
                         for m in _get(resolved, "namespace", "mounts", default=[])),
            tcp_listener_enable=bool(tcp.get("enable", False)),
            tcp_listener_port=int(tcp.get("port", 564)),
            console_tcp_enable=bool(_get(resolved, "console", "tcp", "enable", default=False)),
            gpu_backend=str(_get(resolved, "gpu", "backend", default="none")),
            ring_bytes_per_worker=int(telemetry.get("ring_bytes_per_worker", LEGACY_RING_BYTES)),
            frame_schema=str(telemetry.get("frame_schema", "text")),
            ticket_secrets=dict(ticket_secrets),
        )


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


def _get(d: Mapping[str, Any], *keys: str, default: Any) -> Any:
    for key in keys:
        if not isinstance(d, Mapping) or key not in d:
            return default
        d = d[key]
    return d


def _schema_at_least(schema: str, wanted: str) -> bool:
    def parts(v: str) -> tuple[int, ...]:
        return tuple(int(p) for p in v.split(".") if p.isdigit())
    return parts(schema) >= parts(wanted)
