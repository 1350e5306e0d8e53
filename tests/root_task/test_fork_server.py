"""The worker fork server (root_task/fork_server.py, docs/workers.md) in the host run mode, with real
worker processes: isolation of each forked worker (own uid, no groups, rlimits, own session, OOM score),
the pidfd path (a kill ends the process and the spawner forgets it), and recovery when the fork server
itself dies."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from coh_rtc.testing import write_ir
from nine_door.client import Client
from nine_door.messages import O_APPEND, O_RDONLY, O_WRONLY
from root_task.spawner import FIRST_WORKER_UID

from .test_host_c13 import alive, connect, wait_for

SPAWN = b'{"spawn":"heartbeat","ticks":100000}\n'


@pytest.fixture
def system(tmp_path):
    from root_task.host import start_in_process

    host = start_in_process(str(write_ir(tmp_path, {"observability.proc_9p": ["sessions"]}, schema="1.2")))
    yield host
    host.stop()


def queen(system) -> Client:
    return connect(system.ninep_port)


def attached_workers(client: Client) -> int:
    fid = client.open("/proc/9p/sessions", O_RDONLY)
    try:
        return int(client.read(fid, 0, 8000).split(b" worker=")[1].split()[0])
    finally:
        client.clunk(fid)


def status_field(pid: int, name: str) -> str:
    with open(f"/proc/{pid}/status") as handle:
        return next(line.split(":", 1)[1].split() for line in handle if line.startswith(name + ":"))


@pytest.mark.skipif(os.geteuid() != 0, reason="per-worker uids need root (as in the VM)")
def test_each_forked_worker_runs_isolated(system):
    system.task.workers.isolate = True                 # what the VM does (the root task runs as root)
    q = queen(system)
    ctl = q.open("/queen/ctl", O_WRONLY | O_APPEND)
    q.write(ctl, 0, SPAWN * 2)
    wait_for(lambda: attached_workers(q) == 2, 30, "two attached workers")
    pids = system.task.workers.pids()
    server = system.task.workers.fork_server_pid
    uids = set()
    for pid in pids.values():
        uid = int(status_field(pid, "Uid")[0])
        assert uid >= FIRST_WORKER_UID and int(status_field(pid, "Gid")[0]) == uid
        assert status_field(pid, "Groups") == []
        uids.add(uid)
        with open(f"/proc/{pid}/limits") as handle:
            limits = {line[:26].strip(): line[26:].split() for line in handle}
        assert limits["Max open files"][:2] == ["16", "16"]
        assert limits["Max processes"][:2] == ["0", "0"]
        assert os.getsid(pid) == pid                   # its own session
        with open(f"/proc/{pid}/oom_score_adj") as handle:
            assert int(handle.read()) == 500
        assert sorted(int(fd) for fd in os.listdir(f"/proc/{pid}/fd")) == [0, 1, 2, 3]   # stdio + channel
        with open(f"/proc/{pid}/stat", "rb") as handle:
            assert int(handle.read().rsplit(b")", 1)[1].split()[1]) == server
    assert len(uids) == 2                              # one uid per worker
    # -1000 needs CAP_SYS_RESOURCE: the VM's root has it; a sandbox's root may not (then it stays 0)
    probe = "f = '/proc/self/oom_score_adj'; open(f, 'w').write('-1000'); print(open(f).read().strip())"
    can_lower = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True).stdout.strip() == "-1000"
    with open(f"/proc/{server}/oom_score_adj") as handle:
        assert int(handle.read()) == (-1000 if can_lower else 0)


def test_kill_ends_the_process_and_a_dead_fork_server_is_replaced(system):
    q = queen(system)
    ctl = q.open("/queen/ctl", O_WRONLY | O_APPEND)
    q.write(ctl, 0, SPAWN * 2)
    wait_for(lambda: attached_workers(q) == 2, 30, "two attached workers")
    workers = system.task.workers
    first = workers.pids()["worker-1"]
    q.write(ctl, 0, b'{"kill":"worker-1"}\n')
    wait_for(lambda: "worker-1" not in workers.pids(), 10, "the spawner to forget worker-1 (its pidfd)")
    wait_for(lambda: not alive(first), 10, "worker-1's process to end")
    # the fork server dies: running workers keep their channels; the next spawn starts a new server
    old_server = workers.fork_server_pid
    os.kill(old_server, signal.SIGKILL)
    wait_for(lambda: workers.fork_server_pid != old_server, 10, "the dead fork server to be noticed")
    q.write(ctl, 0, SPAWN)
    wait_for(lambda: "worker-3" in workers.pids(), 30, "worker-3 forked by a new fork server")
    assert workers.fork_server_pid not in (None, old_server)
    wait_for(lambda: attached_workers(q) == 2, 30, "worker-2 and worker-3 attached")
    assert alive(workers.pids()["worker-2"])

