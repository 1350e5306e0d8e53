"""Starts and stops worker processes for NineDoor (the ``WorkerLauncher`` of docs/internals.md).

Each worker is its own process whose only capability is one message-preserving channel
(AF_UNIX SOCK_SEQPACKET) to NineDoor (SPEC §3.14, DESIGN §3 "Isolation stands in for seL4
capabilities"): the child gets no other descriptors and, when the root task runs as root in the VM, a
uid of its own and resource limits.

``subprocess`` is imported on the first spawn, not at import time: it (with ``signal`` and ``locale``)
is a noticeable part of the emulated guest's start-up, and no worker runs before the console is ready.
"""
from __future__ import annotations

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


@dataclass
class _Worker:
    worker_id: str
    process: subprocess.Popen
    channel: socket.socket
    session: object
    stopping: bool = False


@dataclass
class WorkerProcesses:
    pump: object
    open_session: Callable[[str, str], object]  # (role, worker_id) -> NineDoor session
    python: str = sys.executable
    pythonpath: str = ""
    isolate: bool = False  # VM: separate uid + rlimits (needs root)
    settings: dict[str, str] = field(default_factory=dict)  # IR values every worker gets (worker_settings)
    kill_grace_s: float = 1.0
    _workers: dict[str, _Worker] = field(default_factory=dict)
    _uid_next: int = 1000

    # -- WorkerLauncher -----------------------------------------------------------------------
    def start(self, worker_id: str, role: str, ticket: str) -> None:
        import subprocess

        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        ours.setblocking(False)
        env = {"COHESIX_CHANNEL_FD": str(theirs.fileno()), "COHESIX_WORKER_ID": worker_id,
               "COHESIX_TICKET": ticket, "PYTHONPATH": self.pythonpath, **self.settings}
        kwargs = {}
        if self.isolate:
            self._uid_next += 1
            kwargs.update(user=self._uid_next, group=self._uid_next, extra_groups=[],
                          preexec_fn=_limit_resources)
        process = subprocess.Popen(
            [self.python, "-SB", "-m", "root_task.worker_launch", WORKER_MODULES[role]], env=env, pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL, close_fds=True, **kwargs)
        theirs.close()
        session = self.open_session(role, worker_id)
        worker = _Worker(worker_id, process, ours, session)
        self._workers[worker_id] = worker
        self.pump.add_reader(ours, lambda: self._on_channel(worker), source="ipc")

    def stop(self, worker_id: str) -> None:
        worker = self._workers.get(worker_id)
        if worker is None or worker.stopping:
            return
        worker.stopping = True
        if worker.process.poll() is None:
            worker.process.terminate()
            self.pump.call_later(self.kill_grace_s, lambda: _kill_if_alive(worker.process))

    # -- housekeeping -------------------------------------------------------------------------
    def reap(self) -> None:
        """Called from the system tick: forget workers whose process has exited."""
        for worker_id, worker in list(self._workers.items()):
            if worker.process.poll() is not None:
                self._drop(worker_id)

    def stop_all(self) -> None:
        import subprocess

        for worker_id in list(self._workers):
            self.stop(worker_id)
        for worker in list(self._workers.values()):
            try:
                worker.process.wait(timeout=self.kill_grace_s)
            except subprocess.TimeoutExpired:
                worker.process.kill()
        for worker_id in list(self._workers):
            self._drop(worker_id)

    @property
    def live(self) -> int:
        return len(self._workers)

    def _drop(self, worker_id: str) -> None:
        worker = self._workers.pop(worker_id)
        self.pump.remove_reader(worker.channel)
        worker.channel.close()
        worker.session.close()

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


def worker_settings(resolved: dict) -> dict[str, str]:
    """The resolved-IR values a worker acts on, as its environment: the telemetry frame schema (§7.5)
    and the §3.13 client rules' backoff and retry count. A worker reads no configuration of its own."""
    retry = resolved["client_policies"]["retry"]["short_write"]   # backoff ≥ the server's (coh-rtc checks)
    return {"COHESIX_FRAME_SCHEMA": str(resolved["telemetry"]["frame_schema"]),
            "COHESIX_BACKOFF_MS": str(retry["backoff_ms"]),
            "COHESIX_MAX_RETRIES": str(retry["max_retries"])}


def _kill_if_alive(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.kill()


def _limit_resources() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_NOFILE, (16, 16))
    resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))
    os.setsid()
