"""The resolved IR as typed frozen dataclasses.

After resolution every field has its final value (given, default or legacy), so code that consumes an
:class:`IR` never has to know about schema versions. Field names follow the TOML keys; keys that are
not Python identifiers (``worker-heartbeat``) carry their TOML name in ``metadata["key"]``.
:func:`build` constructs the model from the nested dict the resolver produces; the resolved manifest
is derived from that dict (``resolve.manifest_dict``), not from the model, so the model only needs the
fields host code reads.
"""

from __future__ import annotations

import dataclasses
import hashlib
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Optional


def _key(name: str) -> Any:
    return field(metadata={"key": name})


@dataclass(frozen=True)
class RootTask:
    schema: str


@dataclass(frozen=True)
class System:
    arch: str
    machine: str
    tick_ms: int
    max_workers: int


@dataclass(frozen=True)
class TcpListener:
    enable: bool
    port: int


@dataclass(frozen=True)
class ShortWritePolicy:
    enable: bool
    backoff_ms: int


@dataclass(frozen=True)
class Secure9p:
    msize: int
    walk_depth: int
    tcp_listener: TcpListener
    tags_per_session: int
    batch_frames: bool
    short_write_policy: ShortWritePolicy


@dataclass(frozen=True)
class QueenRole:
    enable: bool


@dataclass(frozen=True)
class HeartbeatBudget:
    ops: int
    ttl_s: int


@dataclass(frozen=True)
class HeartbeatRole:
    enable: bool
    default_budget: HeartbeatBudget


@dataclass(frozen=True)
class GpuBudget:
    ops: int


@dataclass(frozen=True)
class GpuRole:
    enable: bool
    default_budget: GpuBudget


@dataclass(frozen=True)
class Roles:
    queen: QueenRole
    worker_heartbeat: HeartbeatRole = _key("worker-heartbeat")
    worker_gpu: GpuRole = _key("worker-gpu")

    def enabled(self) -> tuple[str, ...]:
        """Labels of the enabled roles, in SPEC §4.1 order."""
        flags = (("queen", self.queen), ("worker-heartbeat", self.worker_heartbeat), ("worker-gpu", self.worker_gpu))
        return tuple(label for label, role in flags if role.enable)


@dataclass(frozen=True)
class Ticket:
    """A role secret. Only its SHA-256 enters the manifest; the secret itself goes to bootstrap.py."""

    role: str
    secret: str

    @property
    def secret_sha256(self) -> str:
        return hashlib.sha256(self.secret.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Mount:
    service: str
    at: str


@dataclass(frozen=True)
class Namespace:
    mounts: tuple[Mount, ...]


@dataclass(frozen=True)
class ConsoleTcp:
    enable: bool
    port: int
    max_sessions: int


@dataclass(frozen=True)
class ConsoleLimits:
    line: int
    role: int
    ticket: int
    path: int
    json: int
    id: int
    echo: int


@dataclass(frozen=True)
class Console:
    """The console section. The token text never enters the manifest (nor the image): only its
    SHA-256 does (``resolve.manifest_dict``), which is all the TCP console needs to check ``AUTH``."""

    serial: bool
    auth_token: str
    idle_timeout_s: int
    tcp: ConsoleTcp
    limits: ConsoleLimits


@dataclass(frozen=True)
class Gpu:
    backend: str


@dataclass(frozen=True)
class Telemetry:
    ring_bytes_per_worker: int
    frame_schema: str
    memory_budget_bytes: int


@dataclass(frozen=True)
class ShardScheme:
    kind: str
    width: int


@dataclass(frozen=True)
class Sharding:
    enable: bool
    scheme: ShardScheme
    legacy_worker_alias: bool


@dataclass(frozen=True)
class Pool:
    control: int
    telemetry: int


@dataclass(frozen=True)
class CohshPolicy:
    pool: Pool


@dataclass(frozen=True)
class ShortWriteRetry:
    max_retries: int
    backoff_ms: int


@dataclass(frozen=True)
class Retry:
    short_write: ShortWriteRetry


@dataclass(frozen=True)
class ClientPolicies:
    cohsh: CohshPolicy
    retry: Retry


@dataclass(frozen=True)
class ProcIngest:
    fields: tuple[str, ...]
    watch_interval_ms: int


@dataclass(frozen=True)
class Observability:
    proc_9p: tuple[str, ...]
    proc_ingest: ProcIngest


@dataclass(frozen=True)
class CasSign:
    algo: str
    pubkey_path: str
    pubkey_hex: str


@dataclass(frozen=True)
class CasStore:
    root: str
    chunk_bytes: int
    hash: str
    sign: Optional[CasSign]


@dataclass(frozen=True)
class CasDelta:
    enable: bool


@dataclass(frozen=True)
class Cas:
    enable: bool
    store: CasStore
    delta: CasDelta


@dataclass(frozen=True)
class IR:
    """The fully resolved IR (SPEC §14.2 with defaults and legacy values applied)."""

    root_task: RootTask
    system: System
    secure9p: Secure9p
    roles: Roles
    tickets: tuple[Ticket, ...]  # sorted by role
    namespace: Namespace
    console: Console
    gpu: Gpu
    telemetry: Telemetry
    sharding: Sharding
    client_policies: ClientPolicies
    observability: Observability
    cas: Cas

    @property
    def schema(self) -> str:
        return self.root_task.schema


def toml_key(f: dataclasses.Field) -> str:
    return f.metadata.get("key", f.name)


def build(cls: type, data: dict[str, Any]) -> Any:
    """Construct dataclass ``cls`` from a nested dict keyed by TOML names (the resolver's output)."""
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        raw = data.get(toml_key(f))
        kwargs[f.name] = _convert(hints[f.name], raw)
    return cls(**kwargs)


def _convert(hint: Any, raw: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        if raw is None:
            return None
        (inner,) = [a for a in typing.get_args(hint) if a is not type(None)]
        return _convert(inner, raw)
    if origin is tuple:
        (inner, _ellipsis) = typing.get_args(hint)
        return tuple(_convert(inner, item) for item in raw)
    if dataclasses.is_dataclass(hint):
        return build(hint, raw)
    return raw
