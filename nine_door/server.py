"""NineDoor: the Secure9P server's shared state and policy (SPEC §3–§6).

Why this split from :mod:`nine_door.session`: a session is one connection's protocol state; everything
that outlives a connection or is shared between connections — the namespace, worker records and their
budgets, the queen's log, spawning and revocation, ticket checks at attach — lives here. The root task
owns one ``NineDoor`` and drives it from its single event loop (``on_tick`` every system tick), so no
locking is needed.
"""
from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing at boot (docs/build.md)

from .clock import SystemClock  # noqa: F401 - re-exported (root_task.boot, tests)
from .budgets import (REASON_KILLED, REASON_OPS, REASON_TICKS, REASON_TTL, Budget, WorkerRecord,
                      fmt_limit, is_worker_id)
from .config import BudgetDefaults, NineDoorConfig, coerce_config
from .errors import EACCES, EAGAIN, EBUSY, EINVAL, EMSGSIZE, ENOENT, EPERM, ESTALE, NineError
from .namespace import Identity, Namespace, fmt_path, parse_abs_path
from .nodes import ZONE_QUEEN_CTL, LogNode
from .repeat_lines import RepeatCoalescer
from .gpu import install as install_gpu
from .observability import Outstanding, install as install_observability, watch_line
from .telemetry import IngestStats, RingNode
from .vocabulary import schema_at_least

DEFAULT_BOOT_LINES = (
    "Cohesix boot: root-task online",
    "spawned user-component endpoint 1",
    "tick 1",
    "PING 1",
    "PONG 1",
    "tick 2",
    "tick 3",
)
def _tickets():
    """nine_door.tickets, imported on first use (keeps server import cheap on the emulated CPU)."""
    from . import tickets
    return tickets


WRAP_LOG_INTERVAL_S = 10.0   # §5.5: at most one wrap line per ring per 10 s
WORKER_ROLES = ("worker-heartbeat", "worker-gpu")


@dataclass(frozen=True)
class ChannelBinding:
    """What the transport knows about a session before any 9P byte arrives (SPEC §3.14).

    ``kind``: ``tcp`` (9P listener: every attach needs a ticket), ``channel`` (in-VM channel; a worker
    channel is bound to exactly one ``role``/``worker_id``), ``console`` (the console bridge: any identity
    the console already authenticated; ticket-less queen allowed).
    """

    kind: str
    origin: str = "channel"
    role: str | None = None
    worker_id: str | None = None


# nine_door.session and nine_door.queen_ctl are imported where a session opens and where /queen/ctl is
# written, not here: the root task imports this module at boot, and on the emulated CPU their classes
# cost boot time that no session or control write needs before the console is ready.
if TYPE_CHECKING:  # pragma: no cover - interfaces for type checkers; duck-typed at run time
    from typing import Any, Protocol

    from .queen_ctl import Bind, Command, Mount, SetBudget, SpawnGpu, SpawnHeartbeat
    from .session import Session

    class Clock(Protocol):
        def now_ms(self) -> int: ...
        def monotonic(self) -> float: ...

    class WorkerLauncher(Protocol):
        def start(self, worker_id: str, role: str, ticket: str) -> None: ...
        def stop(self, worker_id: str) -> None: ...
        # optional: why another worker would not fit (memory), or None; a reason makes a spawn EBUSY
        def room_for_worker(self) -> str | None: ...

    class AttachThrottle(Protocol):
        """§10.7 per-origin attach throttling, shared with the console (root_task/console/throttle.py)."""

        def check(self, origin: str, now_ms: int) -> tuple[bool, str, int]: ...
        def record_failure(self, origin: str, now_ms: int) -> None: ...
        def record_success(self, origin: str) -> None: ...


class NullLauncher:
    """Launcher that starts nothing (tests and hosts that run no worker processes)."""

    def start(self, worker_id: str, role: str, ticket: str) -> None:
        pass

    def stop(self, worker_id: str) -> None:
        pass


@dataclass(frozen=True)
class AttachResult:
    identity: Identity
    worker: WorkerRecord | None
    ticket_deadline_ms: int | None
    mount: tuple[str, str] | None = None   # queen ticket mount spec (service, at), §4.3


class _AttachDenied(Exception):
    """Internal: a credential failure (logged and counted for throttling) carrying its errno."""

    def __init__(self, errno: int, detail: str) -> None:
        super().__init__(detail)
        self.errno = errno


class NineDoor:
    """The server: namespace, sessions, workers, budgets, revocation and the queen's control file."""

    def __init__(self, config: Any, boot_lines: list[str] | None = None,
                 launcher: WorkerLauncher | None = None, clock: Clock | None = None,
                 throttle: AttachThrottle | None = None,
                 net_info: Callable[[], dict] | None = None) -> None:
        self.config: NineDoorConfig = coerce_config(config)
        self.boot_lines = list(boot_lines) if boot_lines else list(DEFAULT_BOOT_LINES)
        self.launcher = launcher if launcher is not None else NullLauncher()
        self.clock = clock if clock is not None else SystemClock()
        self.throttle = throttle
        self.net_info = net_info     # () -> {"link_up", "rx_frames", "tx_frames", "tx_drops"} (§5.4)
        self._boot_static: bytes | None = None   # /proc/boot without live net counters (_render_boot)
        self.default_budget = BudgetDefaults(self.config.heartbeat_budget.ttl_s,
                                             self.config.heartbeat_budget.ops)
        self.ns = Namespace(self._now_ns, self.config.ring_bytes_per_worker, self.config.frame_schema,
                            cursor_files=schema_at_least(self.config.schema, "1.2"),
                            shard_width=self.config.sharding_width if self.config.sharding_enable else 0,
                            legacy_alias=self.config.legacy_worker_alias)
        self.ingest = IngestStats()   # §12 counters (fixed-size state)
        self.outstanding = Outstanding()
        self._boot_mono = self.clock.monotonic()
        self.watch = install_observability(self)
        self.cas = _install_cas(self) if self.config.cas_enable else None   # §13 (schema ≥ 1.3)
        self._next_watch = self._boot_mono + self.config.watch_interval_ms / 1000
        self.ns.proc_boot = self.ns.add_snapshot(self.ns.proc, "boot", self._render_boot)
        self.ns.queen_ctl = self.ns.add_ctl(self.ns.queen_dir, "ctl", ZONE_QUEEN_CTL, self._queen_ctl_write)
        for line in self.boot_lines:
            self.ns.queen_log.append_server_line(line, self._now_ns())
        self.workers: dict[str, WorkerRecord] = {}
        self.gpu = install_gpu(self)   # /gpu (SPEC §9); None when gpu.backend = "none"
        self.sessions: dict[int, Session] = {}
        # What on_tick must look at, so a tick costs nothing per idle worker (1 000 workers used to cost
        # 1.3 ms per 5 ms tick): TTL deadlines in a heap (stale entries are re-checked and dropped), and
        # the rings whose wrap line is waiting for its 10 s window.
        self._deadlines: list[tuple[int, int, str]] = []
        self._deadline_seq = 0
        self._wraps_pending: set[RingNode] = set()
        # §10.7 throttle refusals, coalesced per origin so a flood cannot rotate the log (repeat_lines.py)
        self.throttle_lines = RepeatCoalescer()
        self._next_worker = 1
        self._next_session = 1

    # -- public API -------------------------------------------------------------------------------
    def open_session(self, binding: ChannelBinding) -> Session:
        from .session import Session

        session = Session(self, binding, self._next_session)
        self.sessions[session.session_id] = session
        self._next_session += 1
        return session

    def log_append(self, line: str) -> None:
        """Append one server line to ``/log/queen.log`` (SPEC §5.5)."""
        self.ns.queen_log.append_server_line(line, self._now_ns())

    def log_lines(self) -> list[str]:
        return [raw.decode("utf-8").rstrip("\n") for raw in self.ns.queen_log.lines]

    def on_tick(self) -> None:
        """Every system tick: proactive TTL revocation (§4.6), deferred ring-wrap lines (§5.5) and
        coalesced throttle lines whose interval ended (§10.7, repeat_lines.py)."""
        now_ms = self.clock.now_ms()
        if self.watch is not None:
            self._maybe_watch()
        if self.throttle_lines.pending:
            for text in self.throttle_lines.due(self.clock.monotonic()):
                self.log_append(text)
        heap = self._deadlines
        while heap and heap[0][0] <= now_ms:
            worker = self.workers.get(heapq.heappop(heap)[2])
            if worker is None:
                continue                       # gone already: a stale entry
            deadline = self._earliest_deadline(worker)
            if deadline is not None and now_ms >= deadline:
                self.revoke(worker, REASON_TTL)
        if self.gpu is not None:
            self.gpu.on_tick(now_ms)           # bridge job timeouts (§9.3)
        if self._wraps_pending:
            for ring in list(self._wraps_pending):
                self._maybe_log_wrap(ring)

    def watch_deadline(self, worker: WorkerRecord, deadline_ms: int | None) -> None:
        """Make on_tick look at ``worker`` once ``deadline_ms`` (a spawn TTL or a ticket's) has passed."""
        if deadline_ms is not None:
            self._deadline_seq += 1
            heapq.heappush(self._deadlines, (deadline_ms, self._deadline_seq, worker.worker_id))

    # introspection for the console's `mem` verb (SPEC §10.5)
    @property
    def live_workers(self) -> int:
        return len(self.workers)

    @property
    def attached_sessions(self) -> int:
        return sum(1 for s in self.sessions.values() if s.attached)

    @property
    def telemetry_bytes(self) -> int:
        return sum(w.ring.used for w in self.workers.values())

    @property
    def telemetry_capacity(self) -> int:
        return sum(w.ring.capacity for w in self.workers.values())

    def mem_stats(self) -> dict[str, int]:
        """Values for the console's ``mem`` verb (``cas_bytes``: chunk bytes the CAS store holds)."""
        return {"workers": self.live_workers, "sessions": self.attached_sessions,
                "telemetry_bytes": self.telemetry_bytes, "telemetry_capacity": self.telemetry_capacity,
                "cas_bytes": self.cas_bytes}

    @property
    def cas_bytes(self) -> int:
        """Chunk bytes held by the CAS store, pending included (0 without CAS, §10.5)."""
        return self.cas.bytes_used if self.cas is not None else 0

    def provider_root(self, service: str) -> tuple[str, ...] | None:
        """§5.6 provider → global root path; disabled or unknown providers → None."""
        workers = ("shard",) if self.ns.shard_width else ("worker",)    # §5.6: /shard when sharding
        roots = {"proc": ("proc",), "log": ("log",), "queen": ("queen",), "workers": workers}
        if self.gpu is not None:
            roots["gpu"] = ("gpu",)
        if self.cas is not None:
            roots["updates"] = (self.cas.root.name,)
        return roots.get(service)

    # -- attach (§4.2, §4.5) --------------------------------------------------------------------
    def authenticate(self, session: Session, uname: str, aname: str) -> AttachResult:
        binding = session.binding
        now_ms = self.clock.now_ms()
        throttled_origin = self._throttle_origin(binding)
        if throttled_origin is not None:
            ok, detail, delay_ms = self.throttle.check(throttled_origin, now_ms)  # type: ignore[union-attr]
            if not ok:
                line = f"console throttled origin={binding.origin} detail={detail} delay_ms={delay_ms}"
                for text in self.throttle_lines.offer(binding.origin, line, self.clock.monotonic()):
                    self.log_append(text)
                raise NineError(EAGAIN, "attach throttled")
        try:
            result = self._resolve_identity(binding, uname, aname, now_ms)
        except _AttachDenied as denied:
            if binding.kind != "console":
                self.log_append(f"9p attach denied origin={binding.origin} uname={uname} errno={denied.errno}")
            if throttled_origin is not None:
                self.throttle.record_failure(throttled_origin, now_ms)  # type: ignore[union-attr]
            raise NineError(denied.errno, str(denied)) from None
        if throttled_origin is not None:
            self.throttle.record_success(throttled_origin)  # type: ignore[union-attr]
        return result

    def _throttle_origin(self, binding: ChannelBinding) -> str | None:
        """Throttling applies to the 9P TCP listener only, keyed by peer IP (shared with the console)."""
        if self.throttle is None or binding.kind != "tcp":
            return None
        return binding.origin.split(":", 1)[1] if binding.origin.startswith("9p:") else binding.origin

    def _resolve_identity(self, binding: ChannelBinding, uname: str, aname: str,
                          now_ms: int) -> AttachResult:
        if uname == "queen":
            role, worker_id = "queen", None
        elif uname == "":
            if not aname:
                raise _AttachDenied(EACCES, "empty uname needs a ticket")
            role, worker_id = None, None
        else:
            role, sep, worker_id = uname.partition(":")
            if not sep or role not in WORKER_ROLES or not is_worker_id(worker_id):
                raise NineError(EINVAL, f"bad uname {uname!r}")
        if role is not None:
            self._check_binding(binding, role, worker_id)
        if role == "queen" and not aname:
            if binding.kind == "tcp":
                raise _AttachDenied(EACCES, "queen needs a ticket on the TCP listener")
            return AttachResult(Identity("queen"), None, None)
        claims = self._check_ticket(aname, role, worker_id, now_ms)
        if role is None:
            role, worker_id = claims.role, claims.subject
            self._check_binding(binding, role, worker_id)
        if role == "queen":
            mount = (claims.mount_service, claims.mount_at) if (claims.mount_service or claims.mount_at) else None
            return AttachResult(Identity("queen"), None, None, mount)
        worker = self.workers.get(worker_id or "")
        if worker is None or worker.revoked:
            raise _AttachDenied(ENOENT, f"no live worker {worker_id}")
        if worker.role != role:
            raise NineError(EINVAL, f"{worker_id} is not a {role}")
        ticket_budget = Budget(claims.ticks, claims.ops, claims.ttl_s)
        worker.apply_ticket_budget(ticket_budget)
        deadline = None
        if claims.ttl_s is not None:
            base = claims.issued_at_ms if claims.issued_at_ms else now_ms
            deadline = base + claims.ttl_s * 1000
        return AttachResult(Identity(role, worker_id), worker, deadline)

    def _check_binding(self, binding: ChannelBinding, role: str, worker_id: str | None) -> None:
        """A worker channel may only attach its own identity (§3.14)."""
        if binding.kind == "channel" and binding.role is not None:
            if (role, worker_id) != (binding.role, binding.worker_id):
                raise _AttachDenied(EACCES, "identity does not match the channel binding")

    def _check_ticket(self, text: str, role: str | None, worker_id: str | None, now_ms: int):
        """§4.5 steps 1–6 via :func:`nine_door.tickets.check`; every failure is EACCES on 9P.

        With an empty uname the role is the one the ticket claims (``peek_role``); ``check`` then
        verifies the MAC with that role's secret, so nothing unverified is trusted.
        """
        tickets = _tickets()
        if role is None:
            role = tickets.peek_role(text)
            if role is None:
                raise _AttachDenied(EACCES, "ticket invalid-claims")

        def secret_for_role(label: str) -> str | None:
            if not self.config.role_enabled.get(label, False):
                return None
            return self.config.ticket_secrets.get(label)

        try:
            return tickets.check(text, secret_for_role, role, worker_id, now_ms)
        except tickets.TicketError as exc:
            raise _AttachDenied(EACCES, f"ticket {exc.reason}") from None

    # -- budgets and revocation (§4.6) ----------------------------------------------------------
    def charge_request(self, session: Session) -> None:
        """Check-then-consume for a worker request: deadline, then ops (ESTALE and revocation)."""
        worker = session.worker
        assert worker is not None
        if worker.revoked:
            raise NineError(ESTALE, "worker revoked")
        now_ms = self.clock.now_ms()
        deadline = self._earliest_deadline(worker, session)
        if deadline is not None and now_ms >= deadline:
            self.revoke(worker, REASON_TTL)
            raise NineError(ESTALE, "deadline passed")
        if worker.ops_left is not None:
            if worker.ops_left <= 0:
                self.revoke(worker, REASON_OPS)
                raise NineError(ESTALE, "operation budget exhausted")
            worker.ops_left -= 1

    def _earliest_deadline(self, worker: WorkerRecord, session: Session | None = None) -> int | None:
        candidates = [worker.deadline_ms]
        sessions = [session] if session is not None else list(worker.sessions)
        candidates.extend(s.ticket_deadline_ms for s in sessions)
        present = [c for c in candidates if c is not None]
        return min(present) if present else None

    def revoke(self, worker: WorkerRecord, reason: str) -> None:
        """Revoke a worker: sessions → ESTALE, nodes removed, log line, process stopped."""
        if worker.revoked:
            return
        worker.revoked = True
        for session in list(worker.sessions):
            session.revoked = True
        self._maybe_log_wrap(worker.ring)
        if self.gpu is not None:                # a GPU worker's lease ends first (§9.2), maybe renaming
            reason = self.gpu.worker_revoking(worker, reason)   # a TTL end as "lease expired"
        self.ns.remove_worker(worker.directory)
        self.workers.pop(worker.worker_id, None)
        self.log_append(f"revoked {worker.worker_id}: {reason}")
        try:
            self.launcher.stop(worker.worker_id)
        except Exception:  # noqa: BLE001 - a failing launcher must not break the server loop
            pass

    # -- node writes ----------------------------------------------------------------------------
    def client_log_append(self, node: LogNode, data: bytes) -> int:
        return node.append_client_data(data, self._now_ns())

    def ring_write(self, session: Session, ring: RingNode, data: bytes) -> int:
        """Telemetry append (§7.1–§7.2, short writes §3.13); worker writes consume ticks (§4.6).

        Returns the Twrite's count: every byte, or a prefix ending on a record boundary when an armed ring
        is full or a ``cbor_v1`` item after the first is invalid. A full armed ring that admits nothing
        answers count 0 when the short-write policy is on, else EAGAIN (nothing committed either way).
        """
        worker = session.worker
        own = worker is not None and ring.owner == worker.worker_id
        if own and worker.ticks_left is not None and worker.ticks_left <= 0:
            self.revoke(worker, REASON_TICKS)
            raise NineError(ESTALE, "tick budget exhausted")
        try:
            records = ring.split_records(data)
        except NineError as exc:
            if exc.errno == EMSGSIZE:
                self.log_append(f"telemetry quota reject worker={ring.owner} bytes={len(data)} "
                                f"quota={ring.capacity}")
            raise
        writer = worker.worker_id if worker is not None else "queen"
        result = ring.admit(records, writer, self._now_ns())
        if result.evicted_unconsumed:
            self.ingest.dropped += result.evicted_unconsumed
            self._maybe_log_wrap(ring)
        if result.blocked:
            self.ingest.backpressure += 1
            if result.count == 0 and not self.config.short_write_enable:
                raise NineError(EAGAIN, "telemetry ring is full (armed, unconsumed records)")
        if own and result.count > 0 and worker.ticks_left is not None:   # commits ≥ 1 byte (§4.6)
            worker.ticks_left -= 1
        return result.count

    def _maybe_watch(self) -> None:
        """§12: one ``watch`` line every ``watch_interval_ms`` (ticks that fall behind skip, not queue)."""
        now = self.clock.monotonic()
        if now < self._next_watch:
            return
        interval = self.config.watch_interval_ms / 1000
        self._next_watch += interval * (1 + int((now - self._next_watch) // interval))
        self.watch.append_line(watch_line(self, int((now - self._boot_mono) * 1000)), self._now_ns())

    def _maybe_log_wrap(self, ring: RingNode) -> None:
        """Emit the accumulated wrap line unless one was emitted for this ring in the last 10 s.

        Counts accumulate while the window is closed; ``on_tick`` flushes them once it reopens.
        """
        if not ring.pending_wrap_records:
            self._wraps_pending.discard(ring)
            return
        now = self.clock.monotonic()
        if ring.last_wrap_log_s is not None and now - ring.last_wrap_log_s < WRAP_LOG_INTERVAL_S:
            self._wraps_pending.add(ring)      # on_tick emits it when the window reopens
            return
        self.log_append(f"telemetry ring wrap worker={ring.owner} dropped_frames={ring.pending_wrap_records} "
                        f"dropped_bytes={ring.pending_wrap_bytes} oldest={ring.oldest_rseq}")
        ring.pending_wrap_records = ring.pending_wrap_bytes = 0
        ring.last_wrap_log_s = now
        self._wraps_pending.discard(ring)

    # -- /queen/ctl (§6) ------------------------------------------------------------------------
    def _queen_ctl_write(self, session: Session, data: bytes) -> int:
        from .queen_ctl import parse_command, process_ctl_write

        return process_ctl_write(data, lambda line: self.apply_command(session, parse_command(line)))

    def apply_command(self, session: Session, command: Command) -> None:
        from .queen_ctl import Bind, Kill, Mount, SetBudget, SpawnGpu, SpawnHeartbeat

        if isinstance(command, SpawnHeartbeat):
            self._spawn_heartbeat(command)
        elif isinstance(command, SpawnGpu):
            self._spawn_gpu(command)
        elif isinstance(command, Kill):
            self._kill(command.worker_id)
        elif isinstance(command, SetBudget):
            self._set_budget(command)
        elif isinstance(command, Bind):
            self._bind(session, command)
        elif isinstance(command, Mount):
            self._mount(session, command)
        else:  # pragma: no cover - parse_command returns only the types above
            raise NineError(EINVAL, "unknown command")

    def _spawn_heartbeat(self, command: SpawnHeartbeat) -> None:
        role = "worker-heartbeat"
        if not self.config.role_enabled.get(role, False):
            raise NineError(EPERM, "worker-heartbeat is disabled")
        self._check_worker_room()
        budget = Budget(
            ticks=command.ticks,
            ops=command.ops if command.ops is not None else self.default_budget.ops,
            ttl_s=command.ttl_s if command.ttl_s is not None else self.default_budget.ttl_s,
        )
        record = self.new_worker(role, budget)
        self.log_append(f"spawned {record.worker_id} ticks={fmt_limit(budget.ticks)} "
                        f"ttl={fmt_limit(budget.ttl_s)} ops={fmt_limit(budget.ops)}")
        self.start_worker_process(record)

    def _check_worker_room(self) -> None:
        """§6.2: live workers = ``system.max_workers`` → EBUSY, checked before anything is created; also
        EBUSY when the launcher says the machine has no memory for another worker
        (docs/spec-decisions.md)."""
        if len(self.workers) >= self.config.max_workers:
            raise NineError(EBUSY, "worker limit reached")
        room = getattr(self.launcher, "room_for_worker", None)    # the machine's memory (spawner.py)
        reason = room() if room is not None else None
        if reason is not None:
            raise NineError(EBUSY, reason)

    def new_worker(self, role: str, budget: Budget) -> WorkerRecord:
        """§6.3 spawn steps shared by every role: next id, directory with telemetry (and cursor), record,
        TTL watch. The caller has checked the role and :meth:`_check_worker_room`, and appends its own
        ``spawned`` line before :meth:`start_worker_process`."""
        worker_id = f"worker-{self._next_worker}"
        self._next_worker += 1
        directory, ring = self.ns.create_worker(worker_id)
        self.workers[worker_id] = record = WorkerRecord(worker_id, role, budget, self.clock.now_ms(),
                                                        directory, ring)
        self.watch_deadline(record, record.deadline_ms)
        return record

    def start_worker_process(self, record: WorkerRecord) -> None:
        """Mint the worker's ticket (§4.7) and start its process (asynchronous; a failed start leaves the
        record killable)."""
        ticket = self.mint_worker_ticket(record.worker_id, record.role, record.spawn_budget, record.spawn_ms)
        try:
            self.launcher.start(record.worker_id, record.role, ticket)
        except Exception:  # noqa: BLE001 - process start is asynchronous; the record stays killable
            pass

    def mint_worker_ticket(self, worker_id: str, role: str, budget: Budget, issued_at_ms: int) -> str:
        """§4.7: role, subject = worker id, the spawn budget, issued_at_ms = spawn time."""
        secret = self.config.ticket_secrets.get(role, "")
        return _tickets().mint(secret=secret, role=role, subject=worker_id, ticks=budget.ticks,
                            ops=budget.ops, ttl_s=budget.ttl_s, issued_at_ms=issued_at_ms)

    def _spawn_gpu(self, command: SpawnGpu) -> None:
        if self.gpu is None:                    # gpu.backend = "none": no GPU is ever registered
            if not self.config.role_enabled.get("worker-gpu", False):
                raise NineError(EPERM, "worker-gpu is disabled")
            raise NineError(ENOENT, f"GPU {command.lease.gpu_id} is not registered")
        self.gpu.spawn(command)                 # nine_door/gpu/service.py

    def _kill(self, worker_id: str) -> None:
        worker = self.workers.get(worker_id)
        if worker is None:
            raise NineError(ENOENT, f"{worker_id} is not live")
        self.log_append(f"killed {worker_id}")
        self.revoke(worker, REASON_KILLED)

    def _set_budget(self, command: SetBudget) -> None:
        self.default_budget = BudgetDefaults(
            ttl_s=command.ttl_s if command.ttl_s is not None else self.default_budget.ttl_s,
            ops=command.ops if command.ops is not None else self.default_budget.ops)
        self.log_append(f"updated default budget ttl={fmt_limit(self.default_budget.ttl_s)} "
                        f"ops={fmt_limit(self.default_budget.ops)}")

    def _bind(self, session: Session, command: Bind) -> None:
        depth = self.config.walk_depth
        source = parse_abs_path(command.source, depth)
        target = parse_abs_path(command.target, depth)
        session.view.add_mount(target, source, "bind")
        self.log_append(f"bound {fmt_path(source)} -> {fmt_path(target)}")

    def _mount(self, session: Session, command: Mount) -> None:
        target = self.add_provider_mount(session, command.service, command.at)
        self.log_append(f"mounted {command.service} at {fmt_path(target)}")

    def add_provider_mount(self, session: Session, service: str, at: str) -> tuple[str, ...]:
        """§5.6 mount into one session's table (ctl command or queen ticket mount spec)."""
        target = parse_abs_path(at, self.config.walk_depth)
        source = self.provider_root(service)
        if source is None:
            raise NineError(ENOENT, f"unknown service {service!r}")
        session.view.add_mount(target, source, f"mount:{service}")
        return target

    # -- misc -------------------------------------------------------------------------------------
    def _session_closed(self, session: Session) -> None:
        self.sessions.pop(session.session_id, None)
        if self.gpu is not None:
            self.gpu.session_closed(session)    # GPUs a bridge session registered go with it (§9.4)

    def _now_ns(self) -> int:
        return self.clock.now_ms() * 1_000_000

    now_ns = _now_ns  # for nodes (change times of nodes they touch)

    def _render_boot(self) -> bytes:
        """``/proc/boot`` (§5.4). Everything but the ``net`` counters is fixed after boot, so it is
        rendered once (and the whole file once when there is no ``net_info`` probe): Tgetattr
        renders the file for its size, and pipelined clients getattr it thousands of times a second."""
        content = self._boot_static
        if content is None:
            content = self._boot_static = self._render_boot_static()
        if self.net_info is None or not self.config.any_tcp_listener:
            return content
        try:
            info = dict(self.net_info())
        except Exception:  # noqa: BLE001 - a failing probe must not make /proc/boot unreadable
            info = {}
        return content + _net_line(info)

    def _render_boot_static(self) -> bytes:
        cfg = self.config
        lines = list(self.boot_lines)
        lines.append(f"manifest.schema={cfg.schema}")
        lines.append(f"manifest.sha256={cfg.manifest_sha256}")
        lines.append(f"secure9p msize={cfg.msize} walk_depth={cfg.walk_depth} "
                     f"tags_per_session={cfg.tags_per_session} batch_frames={_b(cfg.batch_frames)}")
        if schema_at_least(cfg.schema, "1.2"):
            lines.append(f"telemetry ring_bytes_per_worker={cfg.ring_bytes_per_worker} "
                         f"frame_schema={cfg.frame_schema}")
            lines.append(f"sharding enable={_b(cfg.sharding_enable)} width={cfg.sharding_width} "
                         f"legacy_worker_alias={_b(cfg.legacy_worker_alias)}")
        content = ("\n".join(lines) + "\n").encode("utf-8")
        if self.net_info is None and cfg.any_tcp_listener:
            content += _net_line({})
        return content


def _install_cas(door: NineDoor):
    """The CAS store at ``cas.store.root`` (nine_door/cas, imported only when the IR enables it)."""
    from .cas.store import CasStore

    cfg = door.config
    pubkey = bytes.fromhex(cfg.cas_pubkey_hex) if cfg.cas_pubkey_hex else None
    return CasStore(door.ns, cfg.cas_root.lstrip("/"), cfg.cas_chunk_bytes, cfg.cas_delta_enable, pubkey,
                    door.log_append, door._now_ns)


def _net_line(info: dict) -> bytes:
    """The ``/proc/boot`` ``net`` line from a probe result (missing keys read as down / 0)."""
    return (f"net link_up={_b(bool(info.get('link_up', False)))} "
            f"rx_frames={int(info.get('rx_frames', 0))} tx_frames={int(info.get('tx_frames', 0))} "
            f"tx_drops={int(info.get('tx_drops', 0))}\n").encode("utf-8")


def _b(value: bool) -> str:
    return "true" if value else "false"
