"""Live traffic during a fault run, from the real clients: cohsh's session pool appending numbered
records to a worker's telemetry ring over 9P, and cohsh's console client (with reconnection on, as the
interactive shell runs it) sending commands over the TCP console.

Exactly-once, checked with independent counts: the writer numbers its records itself (Frame v1 ``seq`` =
``seq_base + n``, payload ``<label>-<n>``) and resends anything not acknowledged with the same ``seq``
after a loss (the server stores a ``seq`` at most once per writer, SPEC §7.1). The :class:`Ledger` is
the client's side (what was acknowledged); :func:`audit_ring` reads the server's side through a
separate session after the run. An acknowledged record missing there is *lost*, a record held twice is
*doubled*; both must be zero.
"""
from __future__ import annotations

import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from cohsh.pool import Pool, PoolError
from cohsh.transport_tcp import CommandInterrupted, ConsoleClient, TcpPolicy, TransportLost, tcp_connector
from nine_door.frame_v1 import Frame


@dataclass
class Ledger:
    """The writer's own record of what the server acknowledged, in order."""

    label: str
    acked: list[int] = field(default_factory=list)
    acked_at: list[float] = field(default_factory=list)  # monotonic time of each acknowledgement
    unacked: list[int] = field(default_factory=list)   # sent, no answer when the run ended
    failures: Counter = field(default_factory=Counter)  # PoolError reasons seen (each was retried)
    recoveries: int = 0                                  # sessions the pool rebuilt
    resent: int = 0                                      # records resent after them (same seqs)


@dataclass(frozen=True)
class RingAudit:
    """What the server holds of one run's records, against the ledger."""

    stored: int
    lost: int
    doubled: int
    unknown: int        # stored records that were never acknowledged (sent before the run ended)

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.doubled == 0


def audit(ledger: Ledger, payloads: list[bytes]) -> RingAudit:
    """Compare the server's payloads (every record of the ring read back) with the ledger."""
    pattern = re.compile(rb"%s-(\d+)" % re.escape(ledger.label.encode()))
    held = Counter(int(m.group(1)) for p in payloads for m in [pattern.fullmatch(p)] if m)
    acked = set(ledger.acked)
    return RingAudit(stored=sum(held.values()), lost=sum(1 for n in acked if held[n] == 0),
                     doubled=sum(c - 1 for c in held.values() if c > 1),
                     unknown=sum(1 for n in held if n not in acked))


class RingWriter:
    """Appends numbered records to ``ring`` in small batches until stopped (a thread)."""

    def __init__(self, pool: Pool, ring: str, label: str, *, batch: int = 4, period_s: float = 0.04,
                 max_records: int = 600) -> None:
        self.pool, self.ring = pool, ring
        self.ledger = Ledger(label)
        self.batch, self.period_s, self.max_records = batch, period_s, max_records
        self.seq_base = time.time_ns() // 1000       # above every seq this writer identity used before
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"ring-writer-{label}", daemon=True)

    def start(self) -> "RingWriter":
        self._thread.start()
        return self

    def _frames(self, numbers: list[int]) -> list[Frame]:
        now_ms = time.time_ns() // 1_000_000
        return [Frame(seq=self.seq_base + n, ts=now_ms, kind=0, payload=f"{self.ledger.label}-{n}".encode())
                for n in numbers]

    def _run(self) -> None:
        pending: list[int] = []
        following = 1
        while True:
            if not pending:
                if self._stop.is_set() or following > self.max_records:
                    break
                pending = list(range(following, min(following + self.batch, self.max_records + 1)))
                following = pending[-1] + 1
            try:
                result = self.pool.append_many(self.ring, self._frames(pending))
                self.ledger.recoveries += result.recoveries
                self.ledger.resent += result.resent
                self._acked(pending)
                pending = []
            except PoolError as exc:                  # acknowledged leading records are stored; resend the rest
                self.ledger.failures[exc.reason] += 1
                self._acked(pending[:exc.acknowledged])
                pending = pending[exc.acknowledged:]
                if self._stop.wait(0.2) and self._deadline_passed():
                    break
                continue
            self._stop.wait(self.period_s)
        self.ledger.unacked = pending

    def _acked(self, numbers: list[int]) -> None:
        now = time.monotonic()
        self.ledger.acked.extend(numbers)
        self.ledger.acked_at.extend([now] * len(numbers))

    def _deadline_passed(self) -> bool:
        return time.monotonic() > self._finish_by

    def stop(self, finish_within_s: float = 20.0) -> Ledger:
        """Stop after the current batch; a batch still failing gets ``finish_within_s`` to go through."""
        self._finish_by = time.monotonic() + finish_within_s
        self._stop.set()
        self._thread.join(finish_within_s + 15)
        return self.ledger


def read_ring_payloads(pool: Pool, ring: str) -> list[bytes]:
    """Every record from the committed cursor on (then consumed), through the pool's control session."""
    tail = pool.tail(ring, commit=True)
    return [record.payload for record in tail.records if isinstance(record, Frame)]


@dataclass
class ConsoleStats:
    ok: int = 0
    lost: int = 0                 # commands that hit a lost connection
    reconnects_started: int = 0   # "[cohsh][tcp] connection lost" notices
    reconnects_done: int = 0      # a command answered after a loss: the reconnect (and re-ATTACH) completed
    last_ok: float = 0.0


class ConsoleLoop:
    """cohsh's console client in interactive mode (reconnect on), one read-only command after another."""

    def __init__(self, host: str, port: int, token: str, *, policy: TcpPolicy = TcpPolicy(),
                 command: str = "PING", period_s: float = 0.1) -> None:
        self.stats = ConsoleStats()
        self.notices: list[str] = []
        self.client = ConsoleClient(tcp_connector(host, port, timeout_s=policy.ack_timeout_s), token,
                                    reconnect=True, policy=policy, notify=self._notify)
        self.command, self.period_s = command, period_s
        self._broken = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="console-loop", daemon=True)

    def _notify(self, line: str) -> None:
        self.notices.append(line)
        if line.startswith("[cohsh][tcp] connection lost"):
            self.stats.reconnects_started += 1
            self._broken = True

    def start(self) -> "ConsoleLoop":
        self.client.connect()
        reply = self.client.request("ATTACH queen")
        if not reply.ack.startswith("OK ATTACH"):
            raise RuntimeError(f"console attach refused: {reply.ack}")
        self.client.remember_attach("ATTACH queen")
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                reply = self.client.request(self.command, read_only=True)
            except (TransportLost, CommandInterrupted):
                self.stats.lost += 1
                self._broken = True
                self._stop.wait(0.2)
                continue
            if reply.ack.startswith("OK"):
                self.stats.ok += 1
                self.stats.last_ok = time.monotonic()
                if self._broken:
                    self.stats.reconnects_done += 1
                    self._broken = False
            self._stop.wait(self.period_s)

    def cut(self) -> None:
        """Break the client's connection under it (as a middlebox reset would): the next command must
        reconnect, re-authenticate and re-attach."""
        link = self.client._link
        if link is not None:
            try:
                link._sock.shutdown(2)
            except OSError:
                pass

    def wait_answering(self, since: float, timeout_s: float) -> bool:
        """Wait until a command sent after ``since`` was answered with no reconnect left in progress."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.stats.last_ok > since and not self._broken:
                return True
            time.sleep(0.05)
        return False

    def wait_reconnected(self, timeout_s: float) -> bool:
        target = self.stats.reconnects_done + 1
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.stats.reconnects_done >= target:
                return True
            time.sleep(0.05)
        return False

    def stop(self) -> ConsoleStats:
        self._stop.set()
        self._thread.join(30)
        try:
            self.client.close()
        except OSError:
            pass
        return self.stats
