"""Namespace node kinds (SPEC §5.2) and their content behaviour.

Why one class per kind: every kind has its own read/write contract (snapshot offsets, append-only logs,
line-processed ctl sinks, the telemetry ring's record stream), and keeping each contract in one small
class lets the session layer stay a pure protocol state machine. Nodes know nothing about fids, roles or
sessions; access policy lives in ``namespace.py``.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from .codec import pack_qid
from .errors import EINVAL, EMSGSIZE, NineError

QTDIR = 0x80
QTAPPEND = 0x40
QTFILE = 0x00

# Access zones: what the §5.3 matrix keys on. Nodes carry a zone, policy maps (zone, identity) → rights.
ZONE_PUBLIC = "public"          # /, /proc, /log, /proc/boot
ZONE_LOG = "log"                # /log/queen.log
ZONE_QUEEN = "queen"            # /queen
ZONE_QUEEN_CTL = "queen-ctl"    # /queen/ctl
ZONE_WORKER_ROOT = "worker-root"  # /worker
ZONE_WORKER_DIR = "worker-dir"  # /worker/<id>
ZONE_TELEMETRY = "telemetry"    # /worker/<id>/telemetry

LOG_RETAIN_BYTES = 1 << 20  # /log/queen.log keeps at most 1 MiB (SPEC §5.2)


@dataclass(eq=False)
class Node:
    """Common node state: a boot-unique qid path, a content version and a change time."""

    name: str
    qid_path: int
    zone: str
    mtime_ns: int
    owner: str | None = None          # worker id owning this node (worker zones)
    parent: "DirNode | None" = None
    version: int = 0
    removed: bool = False
    # The 13-byte wire qid, kept current by __post_init__ and touch() (the only place the version
    # changes): every walk step, open and getattr answers it, so it is packed once per version.
    wire_qid: bytes = field(default=b"", init=False, repr=False)

    qid_type = QTFILE
    is_dir = False

    def __post_init__(self) -> None:
        self.wire_qid = pack_qid(self.qid_type, self.version, self.qid_path)

    def qid(self) -> tuple[int, int, int]:
        return (self.qid_type, self.version, self.qid_path)

    def touch(self, now_ns: int) -> None:
        """Record a content change: bump the qid version (mod 2^32) and the change time."""
        self.version = (self.version + 1) & 0xFFFFFFFF
        self.mtime_ns = now_ns
        self.wire_qid = pack_qid(self.qid_type, self.version, self.qid_path)

    def size(self) -> int:
        return 0


@dataclass(eq=False)
class DirNode(Node):
    children: dict[str, Node] = field(default_factory=dict)

    qid_type = QTDIR
    is_dir = True


@dataclass(eq=False)
class SnapshotNode(Node):
    """Read-only text generated when opened (``/proc/boot``)."""

    render: Callable[[], bytes] = field(default=lambda: b"")

    def size(self) -> int:
        return len(self.render())


@dataclass(eq=False)
class LogNode(Node):
    """``/log/queen.log``: append-only UTF-8 lines, whole oldest lines dropped past 1 MiB."""

    retain_bytes: int = LOG_RETAIN_BYTES
    lines: deque = field(default_factory=deque)   # of bytes, each ending with b"\n"
    used: int = 0

    qid_type = QTAPPEND

    def size(self) -> int:
        return self.used

    def content(self) -> bytes:
        return b"".join(self.lines)

    def append_server_line(self, line: str, now_ns: int) -> None:
        self._append([line.encode("utf-8") + b"\n"], now_ns)

    def append_client_data(self, data: bytes, now_ns: int) -> int:
        """Client append: UTF-8 or EINVAL, a final fragment gets a newline, all-or-nothing."""
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            raise NineError(EINVAL, "log data is not UTF-8") from None
        if not data:
            return 0
        self._append(_split_on_lf(data), now_ns)
        return len(data)

    def _append(self, lines: list[bytes], now_ns: int) -> None:
        for line in lines:
            self.lines.append(line)
            self.used += len(line)
        while self.used > self.retain_bytes and len(self.lines) > 1:
            self.used -= len(self.lines.popleft())
        self.touch(now_ns)


@dataclass(eq=False)
class CtlNode(Node):
    """A line-processed control sink; the write handler is supplied by its provider."""

    handler: Callable[..., int] | None = None

    qid_type = QTAPPEND


@dataclass
class RingWrite:
    """Result of a ring append: bytes committed and eviction accounting for the wrap log line."""

    count: int
    records: int
    evicted_records: int
    evicted_bytes: int


@dataclass(eq=False)
class RingNode(Node):
    """A worker's telemetry ring, text schema, unarmed (SPEC §7.1–§7.3 for schema < 1.2).

    Records are lines. Every admitted record gets ``rseq`` = previous + 1; when a record does not fit,
    the oldest records are evicted (wrap). Readers hold a position (an rseq) and receive whole records.
    """

    capacity: int = 65536
    records: deque = field(default_factory=deque)  # of bytes
    first_rseq: int = 1                            # rseq of records[0] (== next_rseq when empty)
    next_rseq: int = 1
    used: int = 0
    # wrap-line accounting (SPEC §5.5: at most one line per ring per 10 s, counts accumulated)
    pending_wrap_records: int = 0
    pending_wrap_bytes: int = 0
    last_wrap_log_s: float | None = None

    qid_type = QTAPPEND

    def size(self) -> int:
        return self.used

    @property
    def oldest_rseq(self) -> int:
        return self.first_rseq

    def split_records(self, data: bytes) -> list[bytes]:
        """Text schema: UTF-8 (else EINVAL), one record per line, a final fragment completed with ``\\n``."""
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            raise NineError(EINVAL, "telemetry data is not UTF-8") from None
        records = _split_on_lf(data)  # records end at \n only (not splitlines' \r, \v, …)
        for record in records:
            if len(record) > self.capacity:
                raise NineError(EMSGSIZE, f"record of {len(record)} bytes exceeds ring capacity")
        return records

    def append(self, records: list[bytes], now_ns: int) -> RingWrite:
        evicted_records = evicted_bytes = 0
        for record in records:
            while self.used + len(record) > self.capacity and self.records:
                old = self.records.popleft()
                self.used -= len(old)
                self.first_rseq += 1
                evicted_records += 1
                evicted_bytes += len(old)
            self.records.append(record)
            self.used += len(record)
            self.next_rseq += 1
        if records:
            self.touch(now_ns)
        self.pending_wrap_records += evicted_records
        self.pending_wrap_bytes += evicted_bytes
        return RingWrite(sum(len(r) for r in records), len(records), evicted_records, evicted_bytes)

    def read_from(self, pos: int, count: int) -> tuple[bytes, int]:
        """Whole records starting at rseq ``pos`` that fit in ``count``; returns (data, new position).

        The caller has already handled a stale position (``pos < oldest``).
        """
        out: list[bytes] = []
        total = 0
        index = pos - self.first_rseq
        while index < len(self.records):
            record = self.records[index]
            if total + len(record) > count:
                if not out:
                    raise NineError(EINVAL, "record larger than count")
                break
            out.append(record)
            total += len(record)
            index += 1
        return b"".join(out), pos + len(out)


def _split_on_lf(data: bytes) -> list[bytes]:
    if not data:
        return []
    parts = data.split(b"\n")
    records = [part + b"\n" for part in parts[:-1]]
    if parts[-1]:
        records.append(parts[-1] + b"\n")
    return records
