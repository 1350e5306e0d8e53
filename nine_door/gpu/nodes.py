"""Node kinds of the ``/gpu`` tree (SPEC §5.1, §5.2, §9.1) and its §5.3 access rows.

Why nodes carry their :class:`~nine_door.gpu.service.Gpu`: a worker-gpu's rights on ``/gpu/<G>/*``
depend on whether it holds *the current* lease on G, which changes at runtime; the policy function
reads it from the node it is asked about (``node.gpu.lease``), and the service bumps the namespace's
generation whenever a lease starts or ends so that session walk memos cannot outlive a lease.

Why handles remember the lease: SPEC §9.2 says a worker's open fids on ``/gpu/<G>/*`` fail with ESTALE
once its lease ends ("the job handle is closed"). Revocation normally follows at once and makes every
request of the worker ESTALE anyway; the handle check makes it hold on its own, too.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing at boot (docs/build.md)

from ..errors import EINVAL, ESTALE, NineError
from ..namespace import ZONE_POLICIES, Rights
from ..nodes import NO_STATE, QTAPPEND, DirNode, Node, SnapshotNode

if TYPE_CHECKING:  # pragma: no cover
    from ..namespace import Identity
    from ..session import Session
    from .service import Gpu, GpuService

SERVER_LOG_RETAIN = 64 * 1024    # SPEC §5.2: server logs keep at most 64 KiB, oldest whole lines dropped

ZONE_GPU_ROOT = "gpu-root"       # /gpu
ZONE_GPU_DIR = "gpu-dir"         # /gpu/<G>
ZONE_GPU_READ = "gpu-read"       # /gpu/<G>/{info,lease,status}
ZONE_GPU_CTL = "gpu-ctl"         # /gpu/<G>/ctl
ZONE_GPU_JOB = "gpu-job"         # /gpu/<G>/job
ZONE_GPU_BRIDGE = "gpu-bridge"   # /gpu/bridge and its files (queen only)

_NONE = Rights()
_R = Rights(read=True)
_W = Rights(write=True)
_RW = Rights(read=True, write=True)
_QUEEN = {ZONE_GPU_ROOT: _R, ZONE_GPU_DIR: _R, ZONE_GPU_READ: _R, ZONE_GPU_CTL: _RW, ZONE_GPU_JOB: _W,
          ZONE_GPU_BRIDGE: _RW}
_HOLDER = {ZONE_GPU_DIR: _R, ZONE_GPU_READ: _R, ZONE_GPU_CTL: _R, ZONE_GPU_JOB: _W}


def gpu_rights(node: Node, ident: "Identity") -> Rights:
    """The /gpu rows of SPEC §5.3: the queen per :data:`_QUEEN`; a worker-gpu only on the GPU whose
    active lease it holds (and ``/gpu`` itself while it holds one); everyone else nothing."""
    if ident.role == "queen":
        return _QUEEN.get(node.zone, _NONE)
    if ident.role != "worker-gpu":
        return _NONE
    if node.zone == ZONE_GPU_ROOT:
        return _R if node.service.lease_of(ident.worker_id) is not None else _NONE
    rights = _HOLDER.get(node.zone)
    if rights is None:
        return _NONE
    lease = node.gpu.lease
    return rights if lease is not None and lease.worker_id == ident.worker_id else _NONE


for _zone in _QUEEN:
    ZONE_POLICIES[_zone] = gpu_rights


@dataclass(eq=False)
class GpuRootNode(DirNode):
    service: "GpuService | None" = None


@dataclass(eq=False)
class GpuDirNode(DirNode):
    gpu: "Gpu | None" = None


class LeaseHandle:
    """An open GPU file: its content snapshot (readable kinds) and the lease a worker opened it under."""

    __slots__ = ("content", "lease")

    def __init__(self, content: bytes, lease: object) -> None:
        self.content = content
        self.lease = lease


def _check_lease(node: Node, handle: object, caller: "Session") -> None:
    """ESTALE for a worker's handle whose lease has ended (SPEC §9.2)."""
    if caller.worker is not None and isinstance(handle, LeaseHandle) and handle.lease is not node.gpu.lease:
        raise NineError(ESTALE, "the lease of this handle has ended")


@dataclass(eq=False)
class GpuInfoNode(SnapshotNode):
    gpu: "Gpu | None" = None

    def open(self, access: int, caller: "Session", path: tuple[str, ...]) -> LeaseHandle:
        return LeaseHandle(self.render(), self.gpu.lease)

    def read(self, handle: LeaseHandle, offset: int, count: int, caller: "Session") -> bytes:
        _check_lease(self, handle, caller)
        return handle.content[offset:offset + count] if offset < len(handle.content) else b""


@dataclass(eq=False)
class GpuLogNode(Node):
    """A server log (``lease``, ``status``, and ``ctl``'s read side): whole lines, 64 KiB retained,
    a snapshot at Tlopen."""

    gpu: "Gpu | None" = None
    lines: deque = field(default_factory=deque, repr=False)
    used: int = 0

    qid_type = QTAPPEND

    def size(self) -> int:
        return self.used

    def append_line(self, line: str, now_ns: int) -> None:
        data = line.encode("utf-8") + b"\n"
        self.lines.append(data)
        self.used += len(data)
        while self.used > SERVER_LOG_RETAIN and len(self.lines) > 1:
            self.used -= len(self.lines.popleft())
        self.touch(now_ns)

    def text_lines(self) -> list[str]:
        return [raw.decode("utf-8").rstrip("\n") for raw in self.lines]

    def open(self, access: int, caller: "Session", path: tuple[str, ...]) -> LeaseHandle:
        return LeaseHandle(b"".join(self.lines), self.gpu.lease)

    def read(self, handle: LeaseHandle, offset: int, count: int, caller: "Session") -> bytes:
        _check_lease(self, handle, caller)
        return handle.content[offset:offset + count] if offset < len(handle.content) else b""


@dataclass(eq=False)
class GpuCtlNode(GpuLogNode):
    """``/gpu/<G>/ctl``: reads the lease-event log; queen writes are line-processed commands."""

    def write(self, handle: object, offset: int, data: bytes, caller: "Session") -> int:
        _check_lease(self, handle, caller)
        return self.gpu.service.ctl_write(self.gpu, data)


@dataclass(eq=False)
class GpuJobNode(Node):
    """``/gpu/<G>/job``: job submission (line-processed JSON, SPEC §9.3)."""

    gpu: "Gpu | None" = None
    qid_type = QTAPPEND

    def open(self, access: int, caller: "Session", path: tuple[str, ...]) -> LeaseHandle:
        return LeaseHandle(b"", self.gpu.lease)

    def write(self, handle: object, offset: int, data: bytes, caller: "Session") -> int:
        _check_lease(self, handle, caller)
        return self.gpu.service.job_write(self.gpu, data)


@dataclass(eq=False)
class BridgeCtlNode(Node):
    """``/gpu/bridge/ctl``: the bridge protocol's command sink (SPEC §9.4)."""

    service: "GpuService | None" = None
    qid_type = QTAPPEND

    def write(self, handle: object, offset: int, data: bytes, caller: "Session") -> int:
        return self.service.bridge_write(caller, data)


@dataclass(eq=False)
class BridgeJobsNode(Node):
    """``/gpu/bridge/jobs``: a consuming stream — each Tread returns and removes whole lines, 0 bytes
    when empty. Lines of jobs that ended meanwhile (lease end, unregister) are skipped, not delivered."""

    service: "GpuService | None" = None
    pending: deque = field(default_factory=deque, repr=False)   # (gpu, job state, line bytes)
    qid_type = QTAPPEND

    def size(self) -> int:
        return sum(len(item[2]) for item in self.pending)

    def open(self, access: int, caller: "Session", path: tuple[str, ...]) -> object:
        return NO_STATE

    def read(self, handle: object, offset: int, count: int, caller: "Session") -> bytes:
        out: list[bytes] = []
        used = 0
        pending = self.pending
        while pending:
            gpu, state, data = pending[0]
            if state.finished or gpu.removed:
                pending.popleft()
                continue
            if used + len(data) > count:
                if not out:
                    raise NineError(EINVAL, "job line larger than count")
                break
            out.append(pending.popleft()[2])
            used += len(data)
        return b"".join(out)


