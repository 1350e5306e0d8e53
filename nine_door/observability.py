"""Observability files (SPEC §12): ``/proc/9p/*``, ``/proc/ingest/*`` and the ``watch`` server log.

Why the files render from counters the server already keeps: §12 forbids per-request allocation for
them, so the request path only bumps integers (:class:`Outstanding` here, ``IngestStats`` in
``telemetry.py``, the rings' own sizes); all text is made when a file is opened.

Which files exist is the IR's choice (``observability.proc_9p``, ``observability.proc_ingest.fields``,
schema ≥ 1.2); they are queen-only (§5.3), like their directories.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing at boot (docs/build.md)

from .nodes import QTAPPEND, ZONE_PROC_QUEEN, SnapshotNode
from .shards import shard_label

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Callable

    from .server import NineDoor

WATCH_LINES = 64   # §12: only the 64 newest watch lines are retained


class Outstanding:
    """Requests in flight over all sessions (admitted, not yet answered) and the peak ever seen.

    ``current`` only rises by admitting and only falls in :meth:`done`, so its maximum is reached just
    before some ``done`` or now: the peak is recorded there and read as ``max(recorded, current)``.
    That lets the session's per-frame loop admit with a bare ``current += 1`` (a method call per
    frame cost ~500 instructions of the ~25 000 a pipelined request takes)."""

    __slots__ = ("current", "_peak")

    def __init__(self) -> None:
        self.current = 0
        self._peak = 0

    @property
    def peak(self) -> int:
        return self._peak if self._peak > self.current else self.current

    def admit(self, n: int = 1) -> None:
        self.current += n

    def done(self, n: int = 1) -> None:
        if self.current > self._peak:
            self._peak = self.current
        self.current -= n


@dataclass(eq=False)
class ServerLogNode(SnapshotNode):
    """A log only the server appends to (§5.2 "server log"): a snapshot at Tlopen, whole lines, the
    ``retain_lines`` newest kept."""

    retain_lines: int = WATCH_LINES
    lines: deque = field(init=False, repr=False)

    qid_type = QTAPPEND

    def __post_init__(self) -> None:
        super().__post_init__()
        self.lines = deque(maxlen=self.retain_lines)
        self.render = lambda: b"".join(self.lines)

    def append_line(self, line: str, now_ns: int) -> None:
        self.lines.append(line.encode("utf-8") + b"\n")
        self.touch(now_ns)


def _line(text: str) -> bytes:
    return (text + "\n").encode()


def render_sessions(door: "NineDoor") -> bytes:
    """§12: totals, then with sharding one ``shard <label> <n>`` line per label (zeros included), where
    ``n`` counts attached worker sessions whose worker maps to that shard."""
    width = door.ns.shard_width
    per_shard = dict.fromkeys(door.ns.shards, 0)
    queen = worker = 0
    for session in door.sessions.values():
        if session.attached:
            if session.identity.role == "queen":
                queen += 1
            else:
                worker += 1
                if width:
                    per_shard[shard_label(session.identity.worker_id, width)] += 1
    lines = [f"sessions total={queen + worker} queen={queen} worker={worker} shard_count={len(per_shard)}"]
    lines.extend(f"shard {label} {count}" for label, count in per_shard.items())
    return ("\n".join(lines) + "\n").encode()


def render_outstanding(door: "NineDoor") -> bytes:
    gauge = door.outstanding
    return _line(f"outstanding current={gauge.current} peak={gauge.peak} "
                 f"limit={door.config.tags_per_session}")


def render_short_writes(door: "NineDoor") -> bytes:
    stats = door.ingest
    return _line(f"short_writes total={stats.short_total} zero={stats.short_zero} "
                 f"bytes_deferred={stats.bytes_deferred}")


def queued(door: "NineDoor") -> int:
    return sum(worker.ring.queued for worker in door.workers.values())


def watch_line(door: "NineDoor", uptime_ms: int) -> str:
    stats = door.ingest
    return (f"watch ts_ms={uptime_ms} p50_ms={stats.percentile_ms(50)} p95_ms={stats.percentile_ms(95)} "
            f"queued={queued(door)} backpressure={stats.backpressure} dropped={stats.dropped}")


PROC_9P: dict[str, Callable[[NineDoor], bytes]] = {
    "sessions": render_sessions,
    "outstanding": render_outstanding,
    "short_writes": render_short_writes,
}
PROC_INGEST: dict[str, Callable[[NineDoor], bytes]] = {
    "p50_ms": lambda door: _line(f"p50_ms={door.ingest.percentile_ms(50)}"),
    "p95_ms": lambda door: _line(f"p95_ms={door.ingest.percentile_ms(95)}"),
    "backpressure": lambda door: _line(f"backpressure={door.ingest.backpressure}"),
    "dropped": lambda door: _line(f"dropped={door.ingest.dropped}"),
    "queued": lambda door: _line(f"queued={queued(door)}"),
}


def install(door: "NineDoor") -> ServerLogNode | None:
    """Create the configured files under ``/proc``; returns the ``watch`` log when it is configured."""
    config, ns = door.config, door.ns
    if config.proc_9p:
        directory = ns.mkdir(ns.proc, "9p", ZONE_PROC_QUEEN)
        for name in sorted(config.proc_9p):
            ns.add_snapshot(directory, name, lambda render=PROC_9P[name]: render(door), ZONE_PROC_QUEEN)
    if not (config.proc_ingest or config.watch_interval_ms):
        return None
    directory = ns.mkdir(ns.proc, "ingest", ZONE_PROC_QUEEN)
    for name in sorted(config.proc_ingest):
        ns.add_snapshot(directory, name, lambda render=PROC_INGEST[name]: render(door), ZONE_PROC_QUEEN)
    if not config.watch_interval_ms:
        return None
    return ns.attach(directory, ns.new_node(ServerLogNode, "watch", ZONE_PROC_QUEEN, None))
