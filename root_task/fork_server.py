"""The worker fork server: imports the worker programs once and forks every worker from that image.

Why: a worker used to be a fresh interpreter (``python -m root_task.worker_launch …``). On the guest's
emulated CPU that is 1.3 s from spawn to first heartbeat, and each one is a whole CPython heap (several
MiB of private memory), so 256 MiB held a few dozen workers. A fork of a process that has already
imported the worker code shares all of those pages copy-on-write: a spawn is one ``fork`` and each
worker owns only the pages it writes (docs/workers.md has the measured spawn times and USS/PSS).

Isolation is unchanged (SPEC §3.14, DESIGN §3): the child keeps exactly one descriptor besides
stdio — its channel, created by the root task for one (role, worker id) and passed here with
SCM_RIGHTS — and, when asked, its own uid, no supplementary groups, its own session and rlimits, set
before any worker code runs. The fork server itself holds no capability: it never sees a ticket's
secret, only the minted ticket of the worker it forks, and it cannot reach NineDoor.

Protocol on the control channel (AF_UNIX SOCK_SEQPACKET, from the root task, root_task/spawner.py):
  request  = JSON ``{"worker_id", "module", "ticket", "uid"}`` + the worker's channel fd
  reply    = JSON ``{"worker_id", "pid"}`` + a pidfd of the child (the root task signals and watches
             the child through it, so a recycled pid can never be signalled by mistake), or
             JSON ``{"worker_id", "error"}`` with no descriptor.
The fork server exits when the control channel closes; its children keep running until their own
channels close (the root task's end), and are reaped here or, once orphaned, by PID 1.

Run as ``python -SB -m root_task.fork_server`` with ``COHESIX_FORK_FD`` naming the control channel.
"""
from __future__ import annotations

import gc
import importlib
import json
import os
import signal
import socket
import sys
import traceback

from root_task import precompiled

REQUEST_BYTES = 4096
NOFILE_LIMIT = 16
# Out of memory, the kernel must pick a worker, never the fork server (every later spawn needs it) —
# PID 1, the root task, is never picked. Children inherit the score, so each worker raises its own.
FORK_SERVER_OOM_SCORE = -1000
WORKER_OOM_SCORE = 500


def main(control_fd: int) -> int:
    precompiled.install()           # before any dataclass is declared (root_task/worker_launch.py)
    from root_task.spawner import WORKER_MODULES

    control = socket.socket(fileno=control_fd)
    _set_oom_score(FORK_SERVER_OOM_SCORE)
    modules = {name: module for name in sorted(set(WORKER_MODULES.values()))
               if (module := _load(name)) is not None}
    gc.freeze()
    signal.signal(signal.SIGCHLD, _reap_children)
    while True:
        try:
            message, fds, _flags, _addr = socket.recv_fds(control, REQUEST_BYTES, 1)
        except InterruptedError:    # pragma: no cover - PEP 475 retries; kept for old kernels
            continue
        except OSError:
            return 0
        if not message:
            return 0                # the root task closed the channel: no more spawns
        try:
            _serve(control, message, fds, modules)
        finally:
            for fd in fds:
                os.close(fd)


def _load(name: str) -> object | None:
    """Import a worker module into the fork server's image (shared by every child) and run its optional
    ``warm()`` (lazy imports and caches its loop would otherwise fill in each child). ``main`` then calls
    ``gc.freeze``, moving everything made so far out of the collector's reach, so a child's collections
    do not write to (and copy) the shared pages."""
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        print(f"fork-server: cannot import {name}: {exc}", file=sys.stderr)
        return None
    warm = getattr(module, "warm", None)
    if warm is not None:
        warm()
    return module


def _serve(control: socket.socket, message: bytes, fds: list[int], modules: dict[str, object]) -> None:
    try:
        request = json.loads(message)
        worker_id, module_name, ticket = request["worker_id"], request["module"], request["ticket"]
        uid = request.get("uid")
    except (ValueError, KeyError, TypeError):
        control.send(json.dumps({"worker_id": None, "error": "malformed request"}).encode())
        return
    module = modules.get(module_name)
    if module is None or len(fds) != 1:
        reason = "unknown module" if module is None else "expected one channel descriptor"
        control.send(json.dumps({"worker_id": worker_id, "error": reason}).encode())
        return
    sys.stdout.flush()
    sys.stderr.flush()
    # SIGCHLD stays blocked until the pidfd exists: a child that dies at once is not reaped (and its
    # pid not freed for reuse) before the pidfd pins it.
    signal.pthread_sigmask(signal.SIG_BLOCK, (signal.SIGCHLD,))
    try:
        pid = os.fork()
        if pid == 0:
            _run_child(control, fds[0], worker_id, ticket, uid, module)
        pidfd = os.pidfd_open(pid)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, (signal.SIGCHLD,))
    try:
        socket.send_fds(control, [json.dumps({"worker_id": worker_id, "pid": pid}).encode()], [pidfd])
    finally:
        os.close(pidfd)


def _run_child(control: socket.socket, channel_fd: int, worker_id: str, ticket: str, uid: int | None,
               module: object) -> None:
    """In the forked child: drop everything but the channel, take the worker's identity, run it."""
    code = 1
    try:
        control.close()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, (signal.SIGCHLD,))
        _set_oom_score(WORKER_OOM_SCORE)
        if uid is not None:
            _isolate(uid)
        os.environ.update(COHESIX_CHANNEL_FD=str(channel_fd), COHESIX_WORKER_ID=worker_id,
                          COHESIX_TICKET=ticket)
        code = module._from_environment() or 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - report, then leave without running the parent's cleanup
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _isolate(uid: int) -> None:
    """The VM's per-worker isolation (DESIGN §3): own session, uid/gid, no groups, tight rlimits.
    The uid changes before the limits: RLIMIT_NPROC = 0 then stops this worker from forking."""
    import resource

    os.setsid()
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE_LIMIT, NOFILE_LIMIT))
    resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))


def _set_oom_score(score: int) -> None:
    """Best effort: lowering the score needs root (the VM); on the host it is simply left alone."""
    try:
        with open("/proc/self/oom_score_adj", "w") as handle:
            handle.write(str(score))
    except OSError:
        pass


def _reap_children(_signum: int, _frame: object) -> None:
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


if __name__ == "__main__":
    sys.exit(main(int(os.environ["COHESIX_FORK_FD"])))
