"""Worker records and budgets (SPEC §4.6, §6.3).

Why here and not in the session: ticks and ops are counted per **worker**, shared by all of its
sessions, and revocation has to reach every session of the worker at once. A :class:`WorkerRecord` is
therefore the unit that owns counters, the deadline and the set of attached sessions.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing at boot (docs/build.md)
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

    from .nodes import DirNode
    from .telemetry import RingNode

WORKER_ID_RE = re.compile(r"worker-[1-9][0-9]*\Z")

# Revocation reasons (SPEC §4.6), exact log wording.
REASON_KILLED = "killed by queen"
REASON_TTL = "ticket ttl expired"
REASON_OPS = "operation budget exhausted"
REASON_TICKS = "tick budget exhausted"


def is_worker_id(text: str) -> bool:
    """``worker-<n>``, n ≥ 1 without leading zeros (SPEC §1.3)."""
    return bool(WORKER_ID_RE.match(text))


@dataclass(frozen=True)
class Budget:
    """Three optional u64 limits; ``None`` means unbounded."""

    ticks: int | None = None
    ops: int | None = None
    ttl_s: int | None = None

    def min_with(self, other: "Budget") -> "Budget":
        """Field-wise minimum, treating ``None`` as infinity (effective budget at attach, §4.6)."""
        return Budget(_min(self.ticks, other.ticks), _min(self.ops, other.ops), _min(self.ttl_s, other.ttl_s))


def fmt_limit(value: int | None) -> str:
    """``inf`` for an unbounded field (SPEC §5.5)."""
    return "inf" if value is None else str(value)


def _min(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


@dataclass(eq=False)
class WorkerRecord:
    """One live worker: identity, spawn budget, shared counters, nodes and sessions."""

    worker_id: str
    role: str
    spawn_budget: Budget
    spawn_ms: int
    directory: "DirNode"
    ring: "RingNode"
    ticks_left: int | None = None
    ops_left: int | None = None
    sessions: set[Any] = field(default_factory=set)
    revoked: bool = False

    def __post_init__(self) -> None:
        self.ticks_left = self.spawn_budget.ticks
        self.ops_left = self.spawn_budget.ops

    @property
    def deadline_ms(self) -> int | None:
        """Worker deadline: spawn time + ttl_s (SPEC §4.6)."""
        if self.spawn_budget.ttl_s is None:
            return None
        return self.spawn_ms + self.spawn_budget.ttl_s * 1000

    def apply_ticket_budget(self, ticket_budget: Budget) -> None:
        """Effective budget = min(spawn, ticket): a tighter ticket lowers the shared counters."""
        if ticket_budget.ticks is not None:
            self.ticks_left = _min(self.ticks_left, ticket_budget.ticks)
        if ticket_budget.ops is not None:
            self.ops_left = _min(self.ops_left, ticket_budget.ops)
