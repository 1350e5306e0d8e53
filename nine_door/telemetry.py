"""Telemetry rings and their cursor files (SPEC §7.1–§7.4), and the ingest counters of §12.

Why a module of its own: a ring is the one node kind with real data-plane rules (record splitting per
schema, per-writer duplicate detection, armed/unarmed admission, eviction, stale reads, short writes),
and its cursor file is only meaningful next to it. The rest of the server sees three things:
``RingNode.write`` (through the file interface), ``CursorNode`` and :class:`IngestStats`.

Memory: a ring is a deque of the records it holds, nothing more. Nothing is reserved at spawn, so a
1 024-worker configuration with 64 KiB rings costs what the workers actually wrote, not 64 MiB up front.

Admission (§7.2), per record of one Twrite, in order:

* ``cbor_v1``: a frame whose ``seq`` is ≤ its writer's last accepted ``seq`` is a duplicate: counted as
  written (the Twrite's count includes it) and not stored, so a client may resend after a lost reply;
* unarmed (cursor 0): evict the oldest records until it fits (wrap; counted as dropped and reported by
  the wrap line);
* armed: evict only consumed records (``rseq < cursor``); if it still does not fit, stop. The Twrite is
  answered with the bytes admitted so far (a short write on a record boundary); 0 bytes is allowed only
  when ``secure9p.short_write_policy.enable`` (else EAGAIN, nothing committed) — decided by the server,
  which owns the policy (``NineDoor.ring_write``).
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing at boot (docs/build.md)

from .errors import EINVAL, EMSGSIZE, ERANGE, NineError
from .nodes import QTAPPEND, Node, SnapshotNode, _split_on_lf

if TYPE_CHECKING:  # pragma: no cover
    from .session import Session

SCHEMA_TEXT = "text"
SCHEMA_CBOR = "cbor_v1"
LATENCY_SAMPLES = 256        # §12: p50/p95 over the last 256 telemetry writes
U64_MAX = (1 << 64) - 1


@dataclass(frozen=True, slots=True)
class Record:
    """One record of a Twrite: the bytes stored, the bytes of the Twrite it stands for (a text record
    completed with ``\\n`` stores one byte more than it consumed) and, for ``cbor_v1``, its ``seq``."""

    data: bytes
    consumed: int
    seq: int | None = None


@dataclass
class Admission:
    """What one Twrite did to a ring."""

    count: int = 0               # bytes of the Twrite committed (stored or acknowledged duplicates)
    stored: int = 0              # records stored
    duplicates: int = 0          # cbor_v1 records acknowledged but not stored (§7.1)
    evicted_unconsumed: int = 0  # records evicted while unarmed (wrap → dropped)
    evicted_bytes: int = 0
    blocked: bool = False        # armed ring full: stopped before the end of the Twrite


class IngestStats:
    """§12 counters: fixed-size state only (integers and one preallocated sample ring), so keeping
    them costs no allocation per request. ``queued`` is not counted here: it is the sum over live rings,
    computed when ``/proc/ingest/queued`` is opened."""

    __slots__ = ("backpressure", "dropped", "short_total", "short_zero", "bytes_deferred",
                 "_samples", "_next", "_filled")

    def __init__(self) -> None:
        self.backpressure = 0       # telemetry Twrites answered short (incl. 0) or EAGAIN
        self.dropped = 0            # records evicted unconsumed + discarded server records
        self.short_total = 0        # /proc/9p/short_writes: Rwrites with count < requested
        self.short_zero = 0
        self.bytes_deferred = 0
        self._samples = [0] * LATENCY_SAMPLES   # latency of telemetry writes, nanoseconds
        self._next = 0
        self._filled = 0

    def note_short(self, requested: int, count: int) -> None:
        if count < requested:
            self.short_total += 1
            self.short_zero += count == 0
            self.bytes_deferred += requested - count

    def note_latency(self, nanoseconds: int) -> None:
        self._samples[self._next] = nanoseconds
        self._next = (self._next + 1) % LATENCY_SAMPLES
        if self._filled < LATENCY_SAMPLES:
            self._filled += 1

    def percentile_ms(self, p: int) -> str:
        """Nearest-rank percentile (the ``ceil(p/100 × N)``-th smallest) with exactly three decimals."""
        n = self._filled
        if n == 0:
            return "0.000"
        ordered = sorted(self._samples[:n])
        rank = -(-p * n // 100)                  # ceil(p × N / 100) in integers
        return f"{ordered[max(rank, 1) - 1] / 1e6:.3f}"


class RingHandle:
    """An open telemetry ring: the rseq of the next record this open reads."""

    __slots__ = ("pos",)

    def __init__(self, pos: int) -> None:
        self.pos = pos


@dataclass(eq=False)
class RingNode(Node):
    """A worker's telemetry ring (SPEC §7): records with server-assigned ``rseq``, a cursor that arms it.

    Records are lines (``text``) or CBOR Frame v1 items (``cbor_v1``). Readers hold a position (an rseq)
    and receive whole records; reads never move the cursor.
    """

    capacity: int = 65536
    schema: str = SCHEMA_TEXT
    records: deque = field(default_factory=deque)  # of bytes
    first_rseq: int = 1                            # rseq of records[0] (== next_rseq when empty)
    next_rseq: int = 1
    used: int = 0
    cursor: int = 0                                # committed cursor; 0 = unarmed (§7.4)
    writer_seq: dict = field(default_factory=dict)  # writer identity → last accepted Frame v1 seq
    # wrap-line accounting (SPEC §5.5: at most one line per ring per 10 s, counts accumulated)
    pending_wrap_records: int = 0
    pending_wrap_bytes: int = 0
    last_wrap_log_s: float | None = None

    qid_type = QTAPPEND
    ingest = True

    def size(self) -> int:
        return self.used

    @property
    def oldest_rseq(self) -> int:
        return self.first_rseq

    @property
    def armed(self) -> bool:
        return self.cursor >= 1

    @property
    def queued(self) -> int:
        """Unconsumed records retained (``rseq ≥ cursor``)."""
        return self.next_rseq - max(self.first_rseq, self.cursor)

    # -- the file interface ---------------------------------------------------------------------
    def open(self, access: int, caller: "Session", path: tuple[str, ...]) -> RingHandle:
        return RingHandle(self.cursor if self.armed else self.first_rseq)

    def read(self, handle: RingHandle, offset: int, count: int, caller: "Session") -> bytes:
        """Whole records from the open's position (the offset is ignored: a record stream, §7.3).

        A position older than the oldest record is answered ERANGE once, with the stale line, and
        moved to the oldest record."""
        if handle.pos < self.first_rseq:
            requested, handle.pos = handle.pos, self.first_rseq
            caller.door.log_append(f"telemetry cursor stale worker={self.owner} requested={requested} "
                                   f"oldest={self.first_rseq}")
            raise NineError(ERANGE, "records were evicted")
        data, handle.pos = self.read_from(handle.pos, count)
        return data

    def write(self, handle: object, offset: int, data: bytes, caller: "Session") -> int:
        return caller.door.ring_write(caller, self, data)

    # -- records --------------------------------------------------------------------------------
    def split_records(self, data: bytes) -> list[Record]:
        """The Twrite's records.

        ``text``: UTF-8 (else EINVAL), one record per line, a final fragment completed with ``\\n``.
        ``cbor_v1``: Frame v1 items back to back; an invalid first item is EINVAL, an invalid or truncated
        item after a valid one ends the records there (admitting them all answers a short count at that
        boundary, §7.1).
        A record larger than the ring is EMSGSIZE (nothing is committed).
        """
        records = _split_frames(data) if self.schema == SCHEMA_CBOR else _split_text(data)
        for record in records:
            if len(record.data) > self.capacity:
                raise NineError(EMSGSIZE, f"record of {len(record.data)} bytes exceeds ring capacity")
        return records

    def admit(self, records: list[Record], writer: str | None, now_ns: int) -> Admission:
        """Store ``records`` in order under the §7.2 rules; ``writer`` keys the duplicate rule
        (None: a server-generated record, exempt)."""
        result = Admission()
        last_seq = self.writer_seq.get(writer, 0) if writer is not None else 0
        for record in records:
            if record.seq is not None and writer is not None and record.seq <= last_seq:
                result.count += record.consumed
                result.duplicates += 1
                continue
            if not self._make_room(len(record.data), result):
                result.blocked = True
                break
            self.records.append(record.data)
            self.used += len(record.data)
            self.next_rseq += 1
            result.count += record.consumed
            result.stored += 1
            if record.seq is not None and writer is not None:
                last_seq = record.seq
        if writer is not None and last_seq:
            self.writer_seq[writer] = last_seq
        if result.stored:
            self.touch(now_ns)
        self.pending_wrap_records += result.evicted_unconsumed
        self.pending_wrap_bytes += result.evicted_bytes
        return result

    def _make_room(self, size: int, result: Admission) -> bool:
        """Evict oldest records until ``size`` fits: any record while unarmed, only consumed records
        (``rseq < cursor``) while armed. False when an armed ring cannot make room."""
        records = self.records
        while self.used + size > self.capacity and records:
            if self.armed and self.first_rseq >= self.cursor:
                return False
            old = records.popleft()
            self.used -= len(old)
            if not self.armed:
                result.evicted_unconsumed += 1
                result.evicted_bytes += len(old)
            self.first_rseq += 1
        return self.used + size <= self.capacity

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

    # -- cursor (§7.4) --------------------------------------------------------------------------
    def cursor_line(self) -> bytes:
        return f"cursor={self.cursor} oldest={self.first_rseq} next={self.next_rseq}\n".encode()

    def commit_cursor(self, value: int) -> int | None:
        """Apply a cursor write; returns the requested value when it was clamped to ``oldest`` (the
        caller logs the stale line), else None. EINVAL beyond ``next`` or below the cursor."""
        if value > self.next_rseq:
            raise NineError(EINVAL, f"cursor {value} is beyond next={self.next_rseq}")
        if value < self.cursor:
            raise NineError(EINVAL, f"cursor {value} would regress from {self.cursor}")
        if value == 0:
            return None                      # 0 while unarmed: a no-op
        clamped = value < self.first_rseq
        self.cursor = self.first_rseq if clamped else value
        return value if clamped else None


@dataclass(eq=False)
class CursorNode(SnapshotNode):
    """``<worker dir>/cursor`` (§7.4): reads a one-line snapshot taken at Tlopen (``RingNode.cursor_line``),
    a write replaces the value."""

    ring: RingNode | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self.render = self.ring.cursor_line

    def write(self, handle: object, offset: int, data: bytes, caller: "Session") -> int:
        value = parse_cursor_value(data)
        clamped = self.ring.commit_cursor(value)
        if clamped is not None:
            caller.door.log_append(f"telemetry cursor stale worker={self.owner} requested={clamped} "
                                   f"oldest={self.ring.first_rseq}")
        self.touch(caller.door.now_ns())
        return len(data)


def parse_cursor_value(data: bytes) -> int:
    """A decimal u64 with an optional trailing ``\\n`` and nothing else (§7.4), else EINVAL."""
    text = data[:-1] if data.endswith(b"\n") else data
    if not text or len(text) > 20 or not text.isdigit():   # bytes.isdigit: ASCII 0-9 only
        raise NineError(EINVAL, "cursor value is not a decimal u64")
    value = int(text)
    if value > U64_MAX:
        raise NineError(EINVAL, "cursor value exceeds u64")
    return value


def _split_text(data: bytes) -> list[Record]:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        raise NineError(EINVAL, "telemetry data is not UTF-8") from None
    records = [Record(line, len(line)) for line in _split_on_lf(data)]
    if records and not data.endswith(b"\n"):
        records[-1] = Record(records[-1].data, len(records[-1].data) - 1)   # completed with \n
    return records


def _split_frames(data: bytes) -> list[Record]:
    from .frame_v1 import split_frames  # cbor2 is loaded only by an IR that asks for cbor_v1

    frames, accepted, error = split_frames(data)
    if error is not None and not frames:
        raise NineError(EINVAL, f"not a CBOR Frame v1 item: {error}")
    records = [Record(raw, len(raw), frame.seq) for frame, raw in frames]
    assert sum(r.consumed for r in records) == accepted
    return records
