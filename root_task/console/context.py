"""Everything a console session depends on, in one object (SPEC §10).

Why a context object: serial and TCP sessions share one dispatcher, and that dispatcher needs the same
handful of collaborators (NineDoor, IR limits, the shared attach throttle, clocks, counters, the log
append hook, the audit sink). Bundling them keeps the session testable with fakes and keeps the
adapters (``serial.py``, ``tcp.py``) free of policy.

Construction::

    ctx = ConsoleContext.for_root_task(task)          # PID 1 / host mode (root_task.boot.RootTask)
    ctx = ConsoleContext(door=door, config=ConsoleConfig.from_runtime(runtime_config),
                         throttle=Throttle(), clock=clock, pump=pump, audit=print)

The console never re-implements the namespace: :meth:`ConsoleContext.open_bridge` opens a NineDoor
session over the console bridge binding and wraps it in the 9P client; every file verb goes through it.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing at boot (docs/build.md)
if TYPE_CHECKING:
    from typing import Any

from nine_door.clock import SystemClock
from nine_door.vocabulary import MAX_MSIZE, MAX_WALK_DEPTH, ROLE_ALIASES, ROLE_LABELS, canonical_role
from root_task.console.parser import ConsoleLimits
from root_task.console.throttle import Throttle

__all__ = ["ConsoleConfig", "ConsoleContext", "ROLE_ALIASES", "ROLE_LABELS", "canonical_role"]

# SHA-256 of the demo placeholder "changeme": the default of unit tests that build a ConsoleConfig
# directly. A running system always takes console.auth_token_sha256 from the resolved manifest.
_PLACEHOLDER_TOKEN_SHA256 = "057ba03d6c44104863dc7361fe4578965d1887360f90a0895882e58a6248fc86"


@dataclass(frozen=True)
class ConsoleConfig:
    """The IR values the console reads (``console.*`` plus a few ``secure9p``/``cas`` values).

    ``auth_token_sha256`` is all the TCP console keeps of its token: the image carries no token text,
    and ``AUTH`` compares SHA-256 digests in constant time (``tcp.py``).
    """

    auth_token_sha256: str = _PLACEHOLDER_TOKEN_SHA256
    idle_timeout_s: float = 300.0
    auth_timeout_s: float = 5.0
    max_sessions: int = 4
    limits: ConsoleLimits = ConsoleLimits()
    walk_depth: int = MAX_WALK_DEPTH
    msize: int = MAX_MSIZE
    cas_root: str | None = None
    role_enabled: Mapping[str, bool] = field(
        default_factory=lambda: {label: True for label in ROLE_LABELS})
    ticket_secrets: Mapping[str, str] = field(default_factory=dict)
    serial_echo: bool = True

    @classmethod
    def from_resolved(cls, resolved: Mapping[str, Any],
                      ticket_secrets: Mapping[str, str] | None = None) -> "ConsoleConfig":
        """Strict reads: the resolved manifest has every key (defaults live in coh_rtc/fields.py)."""
        console = resolved["console"]
        s9p = resolved["secure9p"]
        cas = resolved["cas"]
        limits = console["limits"]
        return cls(
            auth_token_sha256=str(console["auth_token_sha256"]),
            idle_timeout_s=float(console["idle_timeout_s"]),
            max_sessions=int(console["tcp"]["max_sessions"]),
            limits=ConsoleLimits(**{name: int(limits[name]) for name in ConsoleLimits.__dataclass_fields__}),
            walk_depth=int(s9p["walk_depth"]),
            msize=int(s9p["msize"]),
            cas_root=str(cas["store"]["root"]) if cas["enable"] else None,
            role_enabled={label: bool(resolved["roles"][label]["enable"]) for label in ROLE_LABELS},
            ticket_secrets=dict(ticket_secrets or {}),
        )

    @classmethod
    def from_runtime(cls, runtime: Any) -> "ConsoleConfig":
        """From ``root_task.config.RuntimeConfig`` (anything with ``resolved`` and ``ticket_secrets``)."""
        return cls.from_resolved(runtime.resolved, getattr(runtime, "ticket_secrets", {}))


@dataclass
class NetStats:
    """TCP console counters, for the optional ``netstats`` verb (SPEC §10.5)."""

    tcp_sessions: int = 0
    tcp_total: int = 0
    frames_rx: int = 0
    frames_tx: int = 0
    auth_failures: int = 0


@dataclass(frozen=True)
class Bridge:
    """One console-bridge NineDoor session and the 9P client speaking over it."""

    session: Any
    client: Any

    @property
    def session_id(self) -> str | None:
        for attr in ("session_id", "sid", "id"):
            value = getattr(self.session, attr, None)
            if isinstance(value, int):
                return str(value)
        return None

    def close(self) -> None:
        try:
            self.session.close()
        except Exception:  # noqa: BLE001 - closing a dead session must never take the console down
            pass


class TicketRefusal(Exception):
    """A §4.5 refusal, carrying the console detail (``denied``, ``invalid-claims``, ``expired`` …)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


@dataclass(frozen=True)
class Claims:
    """What a validated ticket tells the console: the worker subject (None for queen tickets)."""

    subject: str | None


TicketValidator = Callable[[str, str, int], Claims]


def default_ticket_validator(secrets: Mapping[str, str]) -> TicketValidator:
    """§4.5 steps 1–6 via ``nine_door.tickets`` (step 7, the worker record, is NineDoor's attach)."""

    def validate(role: str, ticket: str, now_ms: int) -> Claims:
        from nine_door import tickets

        try:
            result = tickets.check(ticket, secrets.get, role, None, now_ms)
        except tickets.TicketError as exc:
            raise TicketRefusal(_ticket_detail(exc)) from exc
        subject = getattr(result, "subject", None)
        return Claims(subject if subject else None)

    return validate


def _ticket_detail(exc: Exception) -> str:
    detail = str(getattr(exc, "reason", "") or getattr(exc, "detail", "") or exc)
    return detail if detail in ("denied", "invalid-claims", "expired", "unknown-worker") else "denied"


def default_bridge_factory(door: Any, msize: int) -> Callable[[str], Bridge]:
    """Open ``door.open_session(ChannelBinding(kind="console", origin=…))`` with an in-process client."""

    def open_bridge(origin: str) -> Bridge:
        from nine_door.client import Client, InProcessTransport
        from nine_door.server import ChannelBinding

        session = door.open_session(ChannelBinding(kind="console", origin=origin))
        client = Client(InProcessTransport(session))
        try:
            client.version(msize=msize)
        except Exception:
            session.close()
            raise
        return Bridge(session, client)

    return open_bridge


@dataclass(frozen=True)
class ConsoleContext:
    """Dependencies of :class:`root_task.console.session.ConsoleSession` and the adapters."""

    door: Any
    config: ConsoleConfig = ConsoleConfig()
    throttle: Throttle = field(default_factory=Throttle)
    clock: Any = field(default_factory=SystemClock)
    pump: Any = None                                   # EventPump: counters and timers
    audit: Callable[[str], None] = lambda line: None  # serial-only audit sink (SPEC §10.8)
    net: NetStats = field(default_factory=NetStats)
    bridge_factory: Callable[[str], Bridge] | None = None
    ticket_validator: TicketValidator | None = None
    mem_probe: Callable[[], Mapping[str, int]] | None = None

    @classmethod
    def for_root_task(cls, task: Any) -> "ConsoleContext":
        """Wire from ``root_task.boot.RootTask`` (door, pump, clock, shared throttle, audit)."""
        return cls(door=task.door, config=ConsoleConfig.from_runtime(task.config),
                   throttle=getattr(task, "throttle", None) or Throttle(), clock=task.clock,
                   pump=task.pump, audit=task.audit)

    # -- NineDoor ------------------------------------------------------------------------------
    def open_bridge(self, origin: str) -> Bridge:
        factory = self.bridge_factory or default_bridge_factory(self.door, self.config.msize)
        return factory(origin)

    def log_append(self, line: str) -> None:
        """Server line into ``/log/queen.log`` (SPEC §5.5)."""
        append = getattr(self.door, "log_append", None)
        if append is not None:
            append(line)

    def validate_ticket(self, role: str, ticket: str) -> Claims:
        validator = self.ticket_validator or default_ticket_validator(self.config.ticket_secrets)
        return validator(role, ticket, int(self.clock.now_ms()))

    # -- counters ------------------------------------------------------------------------------
    def throttle_now_ms(self) -> int:
        """The throttle's time base. NineDoor's 9P listener shares the throttle and passes
        ``clock.now_ms()``, so the console must use the same clock (epoch ms)."""
        return int(self.clock.now_ms())

    def mem_counters(self) -> dict[str, int]:
        """`mem` verb values; NineDoor introspection is optional, missing values read 0."""
        values = {"workers": 0, "sessions": 0, "telemetry_bytes": 0, "telemetry_capacity": 0,
                  "cas_bytes": 0}
        if self.mem_probe is not None:
            source = dict(self.mem_probe())
        else:   # NineDoor's introspection properties (nine_door/server.py)
            door = self.door
            source = {"workers": getattr(door, "live_workers", 0),
                      "sessions": getattr(door, "attached_sessions", 0),
                      "telemetry_bytes": getattr(door, "telemetry_bytes", 0),
                      "telemetry_capacity": getattr(door, "telemetry_capacity", 0),
                      "cas_bytes": getattr(door, "cas_bytes", 0)}
        for key, value in source.items():
            if key in values and isinstance(value, int):
                values[key] = value
        dropped = 0
        if self.pump is not None:
            dropped = sum(int(c.get("dropped_input_bytes", 0)) for c in self.pump.counters.values())
        values["dropped_input_bytes"] = dropped
        return values
