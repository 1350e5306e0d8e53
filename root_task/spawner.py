"""Starts and stops worker processes for NineDoor (the ``WorkerLauncher`` of docs/internals.md).

Each worker is its own process whose only capability is one message-preserving channel
(AF_UNIX SOCK_SEQPACKET) to NineDoor (SPEC §3.14, DESIGN §3 "Isolation stands in for seL4
capabilities"): the child gets no other descriptors and, when the root task runs as root in the VM, a
uid of its own and resource limits.

Two ways to start one, same isolation:

* the **fork server** (default where ``os.pidfd_open`` exists, i.e. Linux ≥ 5.3: the guest and the
  host): one long-lived process that has imported the worker programs forks each worker
  (root_task/fork_server.py). A spawn costs a fork, not an interpreter start, and workers share the
  imported code's pages, which is what makes a thousand of them a normal load (docs/workers.md).
  The root task holds a pidfd per worker, so it signals the right process and hears its exit
  (the pidfd turns readable) without polling;
* a **fresh interpreter** per worker (``python -SB -m root_task.worker_launch <module>``), kept where
  pidfds are missing and as the baseline the spawn benchmark compares the fork server with.

``subprocess``, ``signal`` and ``json`` are imported where a spawn, a stop or the fork server's protocol
first needs them, not at import time: they (``subprocess`` with ``locale``; ``signal`` builds its enums;
``json`` its scanner and encoder) are a noticeable part of the emulated guest's start-up, and no worker
runs before the console is ready.
"""
from __future__ import annotations

import collections
import os
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing at boot (docs/build.md)

if TYPE_CHECKING:
    import subprocess

WORKER_MODULES = {"worker-heartbeat": "workers.worker_heart", "worker-gpu": "workers.worker_gpu"}
CHANNEL_RECV_BYTES = 65536
FIRST_WORKER_UID = 1001
# A spawn is refused (EBUSY) unless this much memory stays available after it: the root task, its
# consoles and the kernel keep working when workers fill the machine (the guest's 256 MiB holds about
# 70 heartbeat workers, docs/workers.md). WORKER_COST_KB is one worker's measured private memory,
# rounded up.
MEMORY_RESERVE_KB = 16 * 1024
WORKER_COST_KB = 3 * 1024


@dataclass
class _Worker:
    worker_id: str
    channel: socket.socket
    session: object
    process: subprocess.Popen | None = None   # fresh-interpreter workers
    pidfd: int | None = None                  # fork-server workers, once the fork server answered
    pid: int | None = None
    stopping: bool = False
    exited: bool = False

    def signal(self, signum: int) -> None:
        import signal

        if self.exited:
            return
        try:
            if self.process is not None:
                self.process.send_signal(signum)
            elif self.pidfd is not None:
                signal.pidfd_send_signal(self.pidfd, signum)
        except ProcessLookupError:
            pass                                   # exited meanwhile
        except OSError as exc:
            print(f"spawner: cannot signal {self.worker_id}: {exc}", file=sys.stderr)

    def alive(self) -> bool:
        if self.process is not None:
            return self.process.poll() is None
        return not self.exited


@dataclass
class WorkerProcesses:
    pump: object
    open_session: Callable[[str, str], object]  # (role, worker_id) -> NineDoor session
    python: str = sys.executable
    pythonpath: str = ""
    isolate: bool = False  # VM: separate uid + rlimits (needs root)
    settings: dict[str, str] = field(default_factory=dict)  # IR values every worker gets (worker_settings)
    kill_grace_s: float = 1.0
    use_fork_server: bool = hasattr(os, "pidfd_open")
    _workers: dict[str, _Worker] = field(default_factory=dict)
    _uid_next: int = FIRST_WORKER_UID - 1
    _fork_server: "ForkServerClient | None" = None

    # -- WorkerLauncher -----------------------------------------------------------------------
    def start(self, worker_id: str, role: str, ticket: str) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        ours.setblocking(False)
        uid = None
        if self.isolate:
            self._uid_next += 1
            uid = self._uid_next
        try:
            if self.use_fork_server:
                worker = _Worker(worker_id, ours, None)
                self._server().request(worker_id, WORKER_MODULES[role], ticket, uid, theirs)
            else:
                worker = _Worker(worker_id, ours, None, process=self._popen(worker_id, role, ticket, uid, theirs))
        finally:
            theirs.close()
        worker.session = self.open_session(role, worker_id)
        self._workers[worker_id] = worker
        self.pump.add_reader(ours, lambda: self._on_channel(worker), source="ipc")

    def stop(self, worker_id: str) -> None:
        worker = self._workers.get(worker_id)
        if worker is None or worker.stopping:
            return
        worker.stopping = True
        if worker.alive():
            import signal

            worker.signal(signal.SIGTERM)      # a fork-server worker not yet forked: sent on its reply
            self.pump.call_later(self.kill_grace_s, lambda: worker.signal(signal.SIGKILL))

    def room_for_worker(self) -> str | None:
        """Why another worker would not fit, or None (NineDoor answers EBUSY, creating nothing)."""
        try:
            from root_task.memstat import mem_available_kb

            available = mem_available_kb()
        except (OSError, ValueError):
            return None                        # no /proc/meminfo: nothing to go by
        if available and available < MEMORY_RESERVE_KB + WORKER_COST_KB:
            return f"not enough memory for another worker (MemAvailable {available} KiB)"
        return None

    # -- housekeeping -------------------------------------------------------------------------
    def reap(self) -> None:
        """Called from the system tick: forget fresh-interpreter workers whose process has exited
        (fork-server workers are forgotten when their pidfd reports the exit, so with the fork server
        there is nothing to poll)."""
        if self.use_fork_server:
            return
        for worker_id, worker in list(self._workers.items()):
            if worker.process is not None and worker.process.poll() is not None:
                self._drop(worker_id)

    def stop_all(self) -> None:
        for worker_id in list(self._workers):
            self.stop(worker_id)
        for worker in list(self._workers.values()):
            if worker.process is not None:
                import subprocess

                try:
                    worker.process.wait(timeout=self.kill_grace_s)
                except subprocess.TimeoutExpired:
                    worker.process.kill()
        _wait_pidfds([w for w in self._workers.values() if w.pidfd is not None and not w.exited],
                     self.kill_grace_s)
        for worker_id in list(self._workers):
            self._drop(worker_id)
        if self._fork_server is not None:
            self._fork_server.close()
            self._fork_server = None

    @property
    def live(self) -> int:
        return len(self._workers)

    def pids(self) -> dict[str, int]:
        """Worker id → pid of every started worker (the spawn benchmark reads their memory)."""
        out = {}
        for worker_id, worker in self._workers.items():
            pid = worker.process.pid if worker.process is not None else worker.pid
            if pid is not None:
                out[worker_id] = pid
        return out

    @property
    def fork_server_pid(self) -> int | None:
        server = self._fork_server
        return server.process.pid if server is not None and not server.closed else None

    def _drop(self, worker_id: str) -> None:
        worker = self._workers.pop(worker_id, None)
        if worker is None:
            return
        self.pump.remove_reader(worker.channel)
        worker.channel.close()
        worker.session.close()
        if worker.pidfd is not None:
            self.pump.remove_reader(worker.pidfd)
            os.close(worker.pidfd)
            worker.pidfd = None

    # -- the two ways to start a process ----------------------------------------------------------
    def _popen(self, worker_id: str, role: str, ticket: str, uid: int | None,
               theirs: socket.socket) -> subprocess.Popen:
        import subprocess

        env = {"COHESIX_CHANNEL_FD": str(theirs.fileno()), "COHESIX_WORKER_ID": worker_id,
               "COHESIX_TICKET": ticket, "PYTHONPATH": self.pythonpath, **self.settings}
        kwargs = {}
        if uid is not None:
            kwargs.update(user=uid, group=uid, extra_groups=[], preexec_fn=_limit_resources)
        return subprocess.Popen(
            [self.python, "-SB", "-m", "root_task.worker_launch", WORKER_MODULES[role]], env=env,
            pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, close_fds=True, **kwargs)

    def _server(self) -> "ForkServerClient":
        if self._fork_server is None or self._fork_server.closed:
            env = {"PYTHONPATH": self.pythonpath, **self.settings}
            self._fork_server = ForkServerClient(self.pump, self.python, env, self._forked)
        return self._fork_server

    def _forked(self, worker_id: str, pid: int | None, pidfd: int | None, error: str | None) -> None:
        """The fork server's answer for one worker: watch its pidfd, or drop a worker it could not start."""
        worker = self._workers.get(worker_id)
        if worker is None or pidfd is None:
            if pidfd is not None:
                os.close(pidfd)
            if worker is not None:
                print(f"spawner: {worker_id} not started: {error}", file=sys.stderr)
                worker.exited = True
                self._drop(worker_id)
            return
        worker.pid, worker.pidfd = pid, pidfd
        self.pump.add_reader(pidfd, lambda: self._exited(worker), source="ipc")
        if worker.stopping:
            import signal

            worker.signal(signal.SIGTERM)

    def _exited(self, worker: _Worker) -> None:
        worker.exited = True
        if self._workers.get(worker.worker_id) is worker:
            self._drop(worker.worker_id)

    def _on_channel(self, worker: _Worker) -> None:
        for _ in range(self.pump.BATCH):
            try:
                message = worker.channel.recv(CHANNEL_RECV_BYTES)
            except BlockingIOError:
                return
            except OSError:
                message = b""
            if not message:
                self.pump.remove_reader(worker.channel)
                return
            try:
                replies = worker.session.handle_message(message)
            except Exception:  # FramingLost or a server bug: the channel cannot be trusted
                self.pump.remove_reader(worker.channel)
                worker.channel.close()
                return
            for reply in replies:
                try:
                    worker.channel.send(reply)
                except OSError:
                    return


class ForkServerClient:
    """The root task's end of the fork server (root_task/fork_server.py has the protocol).

    Requests are queued and written when the control channel has room, so a burst of a thousand
    spawns never blocks the event loop; answers arrive on the loop and go to ``on_forked``."""

    def __init__(self, pump, python: str, env: dict[str, str],
                 on_forked: Callable[[str, int | None, int | None, str | None], None]) -> None:
        import subprocess

        self.pump = pump
        self.on_forked = on_forked
        self.closed = False          # the fork server went away; the next spawn starts a new one
        self._control, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._control.setblocking(False)
        self._queue: collections.deque[tuple[bytes, socket.socket]] = collections.deque()
        self.process = subprocess.Popen(
            [python, "-SB", "-m", "root_task.fork_server"], env={**env, "COHESIX_FORK_FD": str(theirs.fileno())},
            pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, close_fds=True)
        theirs.close()
        pump.add_reader(self._control, self._on_answers, source="ipc")

    def request(self, worker_id: str, module: str, ticket: str, uid: int | None, channel: socket.socket) -> None:
        import json

        payload = json.dumps({"worker_id": worker_id, "module": module, "ticket": ticket, "uid": uid}).encode()
        self._queue.append((payload, channel.dup()))   # ours until sent: the caller closes its copy
        if len(self._queue) == 1:
            self._flush()

    def _flush(self) -> None:
        import json

        while self._queue:
            payload, channel = self._queue[0]
            try:
                socket.send_fds(self._control, [payload], [channel.fileno()])
            except BlockingIOError:
                self.pump.add_writer(self._control, self._flush)
                return
            except OSError as exc:                    # the fork server is gone: these cannot start
                self._queue.popleft()
                channel.close()
                self.on_forked(json.loads(payload)["worker_id"], None, None, f"fork server: {exc}")
                continue
            self._queue.popleft()
            channel.close()
        self.pump.remove_writer(self._control)

    def _on_answers(self) -> None:
        import json

        for _ in range(self.pump.BATCH):
            try:
                message, fds, _flags, _addr = socket.recv_fds(self._control, 1024, 1)
            except BlockingIOError:
                return
            except OSError:
                message, fds = b"", []
            if not message:
                self.close()
                return
            answer = json.loads(message)
            pidfd = fds[0] if fds else None
            self.on_forked(answer.get("worker_id"), answer.get("pid"), pidfd, answer.get("error"))

    def close(self) -> None:
        import json
        import subprocess

        if self.closed:
            return
        self.closed = True
        self.pump.remove_reader(self._control)
        self.pump.remove_writer(self._control)
        for payload, channel in self._queue:
            channel.close()
            self.on_forked(json.loads(payload)["worker_id"], None, None, "fork server closed")
        self._queue.clear()
        self._control.close()
        try:
            self.process.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _wait_pidfds(workers: list[_Worker], grace_s: float) -> None:
    """Shutdown: give fork-server workers ``grace_s`` to exit after SIGTERM, then SIGKILL the rest
    (``poll``, not ``select``: a thousand workers' pidfds are numbered past select's 1024)."""
    import select
    import signal
    import time

    poller = select.poll()
    pending = {w.pidfd: w for w in workers}
    for fd in pending:
        poller.register(fd, select.POLLIN)
    deadline = time.monotonic() + grace_s
    while pending and time.monotonic() < deadline:
        for fd, _event in poller.poll(50):
            pending.pop(fd).exited = True
            poller.unregister(fd)
    for worker in pending.values():
        worker.signal(signal.SIGKILL)


def worker_settings(resolved: dict) -> dict[str, str]:
    """The resolved-IR values a worker acts on, as its environment: the telemetry frame schema (§7.5),
    the §3.13 client rules' backoff and retry count, and the shard width that places its directory (§8;
    0 when sharding is off). A worker reads no configuration of its own."""
    retry = resolved["client_policies"]["retry"]["short_write"]   # backoff ≥ the server's (coh-rtc checks)
    sharding = resolved["sharding"]
    return {"COHESIX_FRAME_SCHEMA": str(resolved["telemetry"]["frame_schema"]),
            "COHESIX_SHARD_WIDTH": str(sharding["scheme"]["width"] if sharding["enable"] else 0),
            "COHESIX_BACKOFF_MS": str(retry["backoff_ms"]),
            "COHESIX_MAX_RETRIES": str(retry["max_retries"])}


def _limit_resources() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_NOFILE, (16, 16))
    resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))
    os.setsid()
