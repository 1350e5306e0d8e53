"""The GPU service (SPEC §9): the registry of GPUs, leases, the job queue and both backends.

Why one object owns all of it: a lease ties a GPU to a worker record, a job ties a lease to a status
log *and* to the worker's telemetry ring, and the bridge's session lifetime decides whether GPUs exist
at all. Keeping these links in one place means each end of a lease — kill, budget revocation, TTL,
``RELEASE``, bridge disconnect — goes through one method (:meth:`GpuService.end_lease`) and cannot
forget a step (RELEASED lease line, ``RELEASE`` ctl line, queen-log line, queued jobs → ``lease-ended``,
fids → ESTALE, walks → EACCES, revocation).

The server calls in at four points only: ``_spawn_gpu`` (:meth:`spawn`), ``revoke``
(:meth:`worker_revoking`), ``on_tick`` (:meth:`on_tick`, job timeouts) and a session's end
(:meth:`session_closed`, bridge disconnect). Everything else arrives through the nodes' writes.

Backends (§9.4): ``mock`` registers GPU-0 and GPU-1 at boot and runs every accepted job at once with the
reference arithmetic (:mod:`nine_door.gpu.arith`); ``bridge`` has no GPU until a ``gpu-bridge-host``
session registers some through ``/gpu/bridge/ctl`` and hands accepted jobs to it through the consuming
``/gpu/bridge/jobs`` stream.
"""
from __future__ import annotations

from dataclasses import dataclass, field

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing at boot (docs/build.md)

from ..budgets import REASON_KILLED, REASON_TTL, Budget
from ..errors import EACCES, EBUSY, EINVAL, ENOENT, EPERM, NineError
from ..jsonline import JsonLineError
from . import lines as L
from .nodes import (ZONE_GPU_BRIDGE, ZONE_GPU_CTL, ZONE_GPU_DIR, ZONE_GPU_JOB, ZONE_GPU_READ, ZONE_GPU_ROOT,
                    BridgeCtlNode, BridgeJobsNode, GpuCtlNode, GpuDirNode, GpuInfoNode, GpuJobNode, GpuLogNode,
                    GpuRootNode)

if TYPE_CHECKING:  # pragma: no cover
    from ..budgets import WorkerRecord
    from ..queen_ctl import SpawnGpu
    from ..server import NineDoor
    from ..session import Session

MAX_UNFINISHED = 16          # §9.3: unfinished jobs per GPU, the 17th → EBUSY
# The mock backend computes inside the root task's one event loop, so one job must not hold it for long:
# a matmul above this many multiply-adds (64³; ~30 ms on a host CPU) ends ``ERR timeout`` instead of
# running (docs/spec-decisions.md). A payload of one Twrite can ask for 1 000×1×1 000 = 10⁶ of them.
MOCK_MAX_MACS = 64 ** 3
RETAINED_FINISHED = 64       # finished jobs a GPU remembers (ids stay unique among them; cohsh `gpu`)
REASON_LEASE_EXPIRED = "lease expired"     # §4.6 revocation reasons after a lease end (§9.2)
REASON_LEASE_RELEASED = "lease released"
KIND_GPU_JOB_STATUS = 2      # §7.5 Frame v1 kind of a fanned-out status line


@dataclass(eq=False)
class JobState:
    """One job the GPU retains: the job, the worker whose lease it ran under, its state."""

    job: L.Job
    worker_id: str
    state: str = L.QUEUED
    running_deadline_ms: int | None = None     # RUNNING + timeout_ms (§9.3 ``timeout``)
    result_sha256: str | None = None
    detail: str = "accepted"

    @property
    def finished(self) -> bool:
        return self.state in (L.OK, L.ERR)


@dataclass(eq=False)
class Gpu:
    """A registered GPU: its info, its nodes, its lease and the jobs it retains (oldest first)."""

    info: L.GpuInfo
    service: "GpuService"
    directory: GpuDirNode
    ctl: GpuCtlNode | None = None
    lease_log: GpuLogNode | None = None
    status: GpuLogNode | None = None
    lease: L.Lease | None = None                 # the ACTIVE lease, if any
    last_lease: L.Lease | None = None
    jobs: dict[str, JobState] = field(default_factory=dict)
    registered_by: "Session | None" = None       # bridge backend: the registering session

    @property
    def removed(self) -> bool:
        return self.directory.removed

    @property
    def unfinished(self) -> int:
        return sum(1 for state in self.jobs.values() if not state.finished)

    @property
    def last_job(self) -> JobState | None:
        return next(reversed(self.jobs.values()), None)


class GpuService:
    """``/gpu`` for one NineDoor (created by :func:`nine_door.gpu.install`)."""

    def __init__(self, door: "NineDoor", backend: str) -> None:
        self.door = door
        self.backend = backend
        ns = door.ns
        self.root: GpuRootNode = ns.attach(ns.root, ns.new_node(GpuRootNode, "gpu", ZONE_GPU_ROOT, None,
                                                                service=self))
        self.gpus: dict[str, Gpu] = {}
        self._by_worker: dict[str, Gpu] = {}
        self._ending: set[str] = set()           # workers whose lease end is in progress
        self.bridge_jobs: BridgeJobsNode | None = None
        if backend == "mock":
            for info in L.MOCK_GPUS:
                self.register(info)
        elif backend == "bridge":
            bridge = ns.mkdir(self.root, "bridge", ZONE_GPU_BRIDGE)
            ns.attach(bridge, ns.new_node(BridgeCtlNode, "ctl", ZONE_GPU_BRIDGE, None, service=self))
            self.bridge_jobs = ns.attach(bridge, ns.new_node(BridgeJobsNode, "jobs", ZONE_GPU_BRIDGE, None,
                                                             service=self))

    # -- registry ---------------------------------------------------------------------------------
    def register(self, info: L.GpuInfo, session: "Session | None" = None) -> Gpu:
        ns = self.door.ns
        directory = ns.attach(self.root, ns.new_node(GpuDirNode, info.id, ZONE_GPU_DIR, info.id))
        gpu = Gpu(info, self, directory, registered_by=session)
        directory.gpu = gpu
        ns.attach(directory, ns.new_node(GpuInfoNode, "info", ZONE_GPU_READ, info.id,
                                         render=lambda: (info.line() + "\n").encode(), gpu=gpu))
        gpu.ctl = ns.attach(directory, ns.new_node(GpuCtlNode, "ctl", ZONE_GPU_CTL, info.id, gpu=gpu))
        gpu.lease_log = ns.attach(directory, ns.new_node(GpuLogNode, "lease", ZONE_GPU_READ, info.id, gpu=gpu))
        ns.attach(directory, ns.new_node(GpuJobNode, "job", ZONE_GPU_JOB, info.id, gpu=gpu))
        gpu.status = ns.attach(directory, ns.new_node(GpuLogNode, "status", ZONE_GPU_READ, info.id, gpu=gpu))
        self.gpus[info.id] = gpu
        return gpu

    def unregister(self, gpu: Gpu) -> None:
        """Ends any lease with ``bridge-disconnected`` and removes ``/gpu/<G>`` (fids on it → ENOENT)."""
        if gpu.lease is not None:
            self.end_lease(gpu, L.END_BRIDGE)
        for state in gpu.jobs.values():          # queen-submitted jobs without a live lease holder
            if not state.finished:
                self._finish(gpu, state, L.ERR, L.ERR_BRIDGE)
        self.gpus.pop(gpu.info.id, None)
        self.door.ns.remove(gpu.directory)

    def lease_of(self, worker_id: str | None) -> L.Lease | None:
        gpu = self._by_worker.get(worker_id or "")
        return gpu.lease if gpu is not None else None

    # -- spawn and leases (§6.3, §9.2) -------------------------------------------------------------
    def spawn(self, command: "SpawnGpu") -> None:
        door = self.door
        if not door.config.role_enabled.get("worker-gpu", False):
            raise NineError(EPERM, "worker-gpu is disabled")
        request = command.lease
        gpu = self.gpus.get(request.gpu_id)
        if gpu is None:
            raise NineError(ENOENT, f"GPU {request.gpu_id} is not registered")
        if request.mem_mb > gpu.info.memory_mb:
            raise NineError(EINVAL, f"mem_mb {request.mem_mb} exceeds {gpu.info.memory_mb}")
        if gpu.lease is not None:
            raise NineError(EBUSY, f"GPU {request.gpu_id} is already leased")
        door._check_worker_room()
        ops = command.ops if command.ops is not None else door.config.gpu_default_ops
        record = door.new_worker("worker-gpu", Budget(ticks=None, ops=ops, ttl_s=request.ttl_s))
        lease = L.Lease(gpu.info.id, record.worker_id, request.mem_mb, request.streams, request.ttl_s,
                        request.priority)
        gpu.lease = gpu.last_lease = lease
        self._by_worker[record.worker_id] = gpu
        self.door.ns.generation += 1             # rights changed: drop session walk memos
        now_ns = door.now_ns()
        gpu.ctl.append_line(f"LEASE {record.worker_id} mem={lease.mem_mb} streams={lease.streams} "
                            f"priority={lease.priority}", now_ns)
        gpu.lease_log.append_line(lease.line(), now_ns)
        door.log_append(f"spawned {record.worker_id} gpu={gpu.info.id} ttl={lease.ttl_s} streams={lease.streams}")
        door.start_worker_process(record)

    def worker_revoking(self, worker: "WorkerRecord", reason: str) -> str:
        """Called by ``NineDoor.revoke`` before its log line: a GPU worker's lease ends with the token
        that matches the reason (SPEC §9.2). A TTL revocation at the lease deadline *is* the lease
        expiring, so it is reported as ``lease expired`` (the returned reason)."""
        gpu = self._by_worker.get(worker.worker_id)
        if gpu is None or gpu.lease is None or worker.worker_id in self._ending:
            return reason
        if reason == REASON_KILLED:
            token = L.END_KILLED
        elif reason == REASON_TTL and worker.deadline_ms is not None and \
                self.door.clock.now_ms() >= worker.deadline_ms:
            token, reason = L.END_EXPIRED, REASON_LEASE_EXPIRED
        else:
            token = L.END_REVOKED
        self.end_lease(gpu, token, revoke=False)
        return reason

    def end_lease(self, gpu: Gpu, token: str, revoke: bool = True) -> None:
        """Every lease end (SPEC §9.2), in order: RELEASED lease line, ``RELEASE`` ctl line, queen-log
        line, the worker's unfinished jobs → ERR ``lease-ended``; then, unless the worker is already
        being revoked, its revocation (``lease expired`` / ``lease released``)."""
        lease = gpu.lease
        if lease is None:
            return
        door = self.door
        worker_id = lease.worker_id
        self._ending.add(worker_id)
        try:
            for state in list(gpu.jobs.values()):
                if state.worker_id == worker_id and not state.finished:
                    self._finish(gpu, state, L.ERR, L.ERR_LEASE_ENDED)
            lease.reason = token
            gpu.lease = None
            self._by_worker.pop(worker_id, None)
            door.ns.generation += 1              # rights changed: drop session walk memos
            now_ns = door.now_ns()
            gpu.lease_log.append_line(lease.line(), now_ns)
            gpu.ctl.append_line(f"RELEASE {worker_id} {token}", now_ns)
            door.log_append(f"gpu lease released gpu={gpu.info.id} worker={worker_id} reason={token}")
            worker = door.workers.get(worker_id)
            if revoke and worker is not None and not worker.revoked:
                door.revoke(worker, REASON_LEASE_EXPIRED if token == L.END_EXPIRED else REASON_LEASE_RELEASED)
        finally:
            self._ending.discard(worker_id)

    # -- /gpu/<G>/ctl (§9.1) ------------------------------------------------------------------------
    def ctl_write(self, gpu: Gpu, data: bytes) -> int:
        from ..queen_ctl import process_ctl_write  # on first use: queen_ctl is off the boot path

        return process_ctl_write(data, lambda line: self._ctl_line(gpu, line))

    def _ctl_line(self, gpu: Gpu, line: str) -> None:
        words = line.split()
        if words == ["RELEASE"]:
            if gpu.lease is None:
                raise NineError(ENOENT, "no active lease")
            self.end_lease(gpu, L.END_RELEASED)
            return
        if len(words) == 2 and words[0] == "PRIORITY" and _is_u8(words[1]):
            lease = gpu.lease
            if lease is None:
                raise NineError(ENOENT, "no active lease")
            lease.priority = int(words[1])
            now_ns = self.door.now_ns()
            gpu.ctl.append_line(f"PRIORITY {lease.worker_id} {lease.priority}", now_ns)
            gpu.lease_log.append_line(lease.line(), now_ns)
            return
        raise NineError(EINVAL, "ctl takes PRIORITY <0-255> or RELEASE")

    # -- jobs (§9.3) --------------------------------------------------------------------------------
    def job_write(self, gpu: Gpu, data: bytes) -> int:
        from ..queen_ctl import process_ctl_write

        return process_ctl_write(data, lambda line: self.submit(gpu, line))

    def submit(self, gpu: Gpu, line: str) -> JobState:
        """Validate one job line and queue it: EACCES without an ACTIVE lease, EINVAL for any schema,
        hash or layout problem or an id the GPU still retains, EBUSY with 16 unfinished jobs."""
        lease = gpu.lease
        if lease is None:
            raise NineError(EACCES, f"GPU {gpu.info.id} has no active lease")
        try:
            job = L.parse_job_line(line)
        except JsonLineError as exc:
            raise NineError(EINVAL, str(exc)) from None
        if job.job_id in gpu.jobs:
            raise NineError(EINVAL, f"job id {job.job_id} is already retained")
        if gpu.unfinished >= MAX_UNFINISHED:
            raise NineError(EBUSY, "job queue full")
        entry = None
        if self.bridge_jobs is not None:
            # The stream line wraps the job; it must fit one Tread of the bridge (iounit = msize − 24).
            entry = (L.compact({"gpu": gpu.info.id, "worker": lease.worker_id, "job": job.obj}) + "\n").encode()
            if len(entry) > self.door.config.msize - 24:
                raise NineError(EINVAL, "job line too long for the bridge's jobs stream")
        state = JobState(job, lease.worker_id)
        gpu.jobs[job.job_id] = state
        self._forget_old_jobs(gpu)
        gpu.status.append_line(L.status_line(job.job_id, L.QUEUED, L.DETAIL[L.QUEUED]), self.door.now_ns())
        if self.backend == "mock":
            self._run_mock(gpu, state)
        elif entry is not None:
            self.bridge_jobs.pending.append((gpu, state, entry))
            self.bridge_jobs.touch(self.door.now_ns())
        return state

    def _run_mock(self, gpu: Gpu, state: JobState) -> None:
        """The mock backend: QUEUED → RUNNING → OK at once, with the reference arithmetic."""
        self._set_running(gpu, state)
        result = None
        if state.job.payload is not None:
            import hashlib

            from . import arith

            if arith.work(state.job.kernel, state.job.payload) > MOCK_MAX_MACS:
                self._finish(gpu, state, L.ERR, L.ERR_TIMEOUT)
                return
            result = hashlib.sha256(arith.execute(state.job.kernel, state.job.payload)).hexdigest()
        self._finish(gpu, state, L.OK, L.DETAIL[L.OK], result)

    def _set_running(self, gpu: Gpu, state: JobState) -> None:
        state.state = L.RUNNING
        state.detail = L.DETAIL[L.RUNNING]
        state.running_deadline_ms = self.door.clock.now_ms() + state.job.timeout_ms
        self._status(gpu, state, L.status_line(state.job.job_id, L.RUNNING, state.detail))

    def _finish(self, gpu: Gpu, state: JobState, end: str, detail: str, result: str | None = None) -> None:
        if state.state == L.QUEUED:              # every job's lines are QUEUED, RUNNING, then its end
            self._set_running(gpu, state)
        state.state = end
        state.detail = detail
        state.result_sha256 = result
        state.running_deadline_ms = None
        self._status(gpu, state, L.status_line(state.job.job_id, end, detail, result))

    def _status(self, gpu: Gpu, state: JobState, line: str) -> None:
        gpu.status.append_line(line, self.door.now_ns())
        self.fan_out(state.worker_id, line)

    def _forget_old_jobs(self, gpu: Gpu) -> None:
        finished = [job_id for job_id, state in gpu.jobs.items() if state.finished]
        for job_id in finished[:max(0, len(finished) - RETAINED_FINISHED)]:
            del gpu.jobs[job_id]

    def fan_out(self, worker_id: str, line: str) -> None:
        """A status line into the worker's telemetry (§9.3): the line itself (``text``) or a server
        frame (``cbor_v1``, kind 2, ``seq`` = its rseq). Server records never short-write: one that does
        not fit an armed ring is dropped and counted (§7.2)."""
        door = self.door
        worker = door.workers.get(worker_id)
        if worker is None or worker.revoked:
            return
        from ..telemetry import SCHEMA_CBOR, Record

        ring = worker.ring
        if ring.schema == SCHEMA_CBOR:
            from .. import frame_v1

            data = frame_v1.encode(frame_v1.Frame(seq=ring.next_rseq, ts=door.clock.now_ms(),
                                                  kind=KIND_GPU_JOB_STATUS, payload=line.encode("utf-8")))
        else:
            data = line.encode("utf-8") + b"\n"
        if len(data) > ring.capacity:
            door.ingest.dropped += 1
            return
        result = ring.admit([Record(data, len(data))], None, door.now_ns())
        if result.blocked:
            door.ingest.dropped += 1
        if result.evicted_unconsumed:
            door.ingest.dropped += result.evicted_unconsumed
            door._maybe_log_wrap(ring)

    def on_tick(self, now_ms: int) -> None:
        """Bridge jobs RUNNING past their ``timeout_ms`` end ``ERR timeout`` (mock jobs never wait, so a
        mock tick costs nothing)."""
        if self.bridge_jobs is None:
            return
        for gpu in list(self.gpus.values()):
            for state in list(gpu.jobs.values()):
                deadline = state.running_deadline_ms
                if deadline is not None and now_ms >= deadline and state.state == L.RUNNING:
                    self._finish(gpu, state, L.ERR, L.ERR_TIMEOUT)

    # -- the bridge (§9.4) ------------------------------------------------------------------------
    def bridge_write(self, session: "Session", data: bytes) -> int:
        from ..queen_ctl import process_ctl_write

        return process_ctl_write(data, lambda line: self._bridge_line(session, line))

    def _bridge_line(self, session: "Session", line: str) -> None:
        try:
            command = L.parse_bridge_line(line)
        except JsonLineError as exc:
            raise NineError(EINVAL, str(exc)) from None
        if isinstance(command, L.Register):
            info = command.info
            if info.id == "bridge":
                raise NineError(EINVAL, "GPU id 'bridge' names /gpu/bridge")
            gpu = self.gpus.get(info.id)
            if gpu is None:
                self.register(info, session)
            elif gpu.info != info:
                if gpu.lease is not None:
                    raise NineError(EBUSY, f"GPU {info.id} is leased")
                self.unregister(gpu)
                self.register(info, session)
            else:
                gpu.registered_by = session      # identical info: a no-op, but now this session's
            return
        gpu = self.gpus.get(command.gpu_id)
        if gpu is None:
            raise NineError(ENOENT, f"GPU {command.gpu_id} is not registered")
        if isinstance(command, L.Unregister):
            self.unregister(gpu)
            return
        state = gpu.jobs.get(command.job_id)
        if state is None or state.finished:
            raise NineError(ENOENT, f"no unfinished job {command.job_id} on {gpu.info.id}")
        if command.state == L.RUNNING:
            if state.state != L.QUEUED:
                raise NineError(EINVAL, f"job {command.job_id} is already RUNNING")
            self._set_running(gpu, state)
        else:
            self._finish(gpu, state, command.state, command.detail, command.result_sha256)

    def session_closed(self, session: "Session") -> None:
        """SPEC §9.4: when the session that registered GPUs ends, all of them are unregistered."""
        for gpu in [g for g in self.gpus.values() if g.registered_by is session]:
            self.unregister(gpu)


def _is_u8(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= 3 and int(text) <= 255
