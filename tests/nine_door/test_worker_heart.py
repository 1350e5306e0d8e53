"""worker-heart (SPEC §6.4) against a real NineDoor session over an AF_UNIX SOCK_SEQPACKET channel (C6)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nine_door import errors as E
from nine_door.client import Client, SeqPacketTransport, ShortWritePolicy
from nine_door.errors import NineError
from nine_door.server import ChannelBinding
from workers import worker_heart

try:
    from .test_server_harness import ServedDoor
except ImportError:  # pragma: no cover
    from test_server_harness import ServedDoor

REPO = Path(__file__).resolve().parents[2]


def fast_worker(fd: int, worker_id: str, ticket: str) -> int:
    return worker_heart.main(fd, worker_id, ticket, interval_ms=20)


def wait_for(predicate, timeout_s: float = 15.0):
    """Poll until ``predicate()`` is truthy (a liveness bound, not a timing assertion)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not reached")


def served(worker_runner=fast_worker):
    sd = ServedDoor(worker_runner=worker_runner)
    sock = sd.channel(ChannelBinding(kind="channel", origin="channel"))
    sd.run_in_thread()
    client = Client(SeqPacketTransport(sock))
    client.version()
    client.attach("queen")
    return sd, client


def read_stream(client: Client, path: str) -> bytes:
    fid = client.open(path)
    try:
        out = b""
        while chunk := client.read(fid, 0, 8000):
            out += chunk
        return out
    finally:
        client.clunk(fid)


def test_spawned_worker_appends_heartbeats_then_exits_on_kill_c6():
    sd, queen = served()
    try:
        queen.append("/queen/ctl", b'{"spawn":"heartbeat","ticks":1000}')
        text = wait_for(lambda: (t := read_stream(queen, "/worker/worker-1/telemetry")).count(b"\n") >= 3 and t)
        assert text.startswith(b"heartbeat 1\nheartbeat 2\nheartbeat 3\n")
        queen.append("/queen/ctl", b'{"kill":"worker-1"}')
        sd.worker_threads["worker-1"].join(15)
        assert sd.worker_results["worker-1"] == 0
        log = queen.read_all("/log/queen.log").decode()
        assert "spawned worker-1 ticks=1000 ttl=300 ops=10000\n" in log
        assert "killed worker-1\nrevoked worker-1: killed by queen\n" in log
        assert queen.listdir("/worker") == []
    finally:
        sd.close()


def test_tick_budget_of_one_revokes_after_first_write_c6():
    sd, queen = served()
    try:
        queen.append("/queen/ctl", b'{"spawn":"heartbeat","ticks":1}')
        sd.worker_threads["worker-1"].join(15)
        assert sd.worker_results["worker-1"] == 0
        log = queen.read_all("/log/queen.log").decode()
        assert log.endswith("revoked worker-1: tick budget exhausted\n")
        assert sd.stopped == ["worker-1"]
    finally:
        sd.close()


@pytest.mark.parametrize("argv", [("workers.worker_heart",), ("root_task.worker_launch", "workers.worker_heart")],
                         ids=["module", "launcher"])
def test_module_entry_point_runs_as_a_process(argv):
    """``python -m workers.worker_heart``, and the spawner's ``python -m root_task.worker_launch
    workers.worker_heart``, with the spawner's environment (real 1000 ms interval)."""
    procs = []

    def spawn_process(fd: int, worker_id: str, ticket: str) -> int:
        env = {"COHESIX_CHANNEL_FD": str(fd), "COHESIX_WORKER_ID": worker_id, "COHESIX_TICKET": ticket,
               "PYTHONPATH": str(REPO), "PATH": os.environ.get("PATH", "")}
        proc = subprocess.Popen([sys.executable, "-SB", "-m", *argv], env=env,
                                pass_fds=(fd,), cwd=REPO)
        os.close(fd)
        procs.append(proc)
        return proc.wait(30)

    sd, queen = served(spawn_process)
    try:
        queen.append("/queen/ctl", b'{"spawn":"heartbeat","ticks":2}')
        sd.worker_threads["worker-1"].join(30)
        assert sd.worker_results["worker-1"] == 0
        log = queen.read_all("/log/queen.log").decode()
        assert log.endswith("revoked worker-1: tick budget exhausted\n")
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        sd.close()


def test_launcher_refuses_a_module_that_is_not_a_worker_program():
    proc = subprocess.run([sys.executable, "-SB", "-m", "root_task.worker_launch", "os"], cwd=REPO,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1 and "usage: python -m root_task.worker_launch" in proc.stderr


def test_worker_exits_zero_when_channel_closes():
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    ours.close()
    assert worker_heart.main(theirs.detach(), "worker-1", "t", interval_ms=1) == 0


class ScriptedClient(Client):
    """A client whose Twrites answer scripted counts (an int) or errors (a NineError)."""

    def __init__(self, answers):
        super().__init__(transport=None)
        self.answers, self.sent = list(answers), []

    def write(self, fid, offset, data):
        self.sent.append(bytes(data))
        answer = self.answers.pop(0)
        if isinstance(answer, NineError):
            raise answer
        return answer


def test_write_all_resends_only_the_tail_with_backoff_reset_by_progress():
    sleeps = []
    fake = ScriptedClient([0, 4, 0, 0, 6])
    assert fake.write_all(1, b"heartbeat\n", ShortWritePolicy(5, 3), sleeps.append) == 10
    assert fake.sent == [b"heartbeat\n", b"heartbeat\n", b"tbeat\n", b"tbeat\n", b"tbeat\n"]
    assert sleeps == [0.005, 0.005, 0.010]          # backoff_ms × 2^attempt, attempts since progress


def test_write_all_gives_up_with_eagain_after_max_retries_without_progress():
    sleeps = []
    fake = ScriptedClient([0, NineError(E.EAGAIN, "full"), 0, 0])
    with pytest.raises(NineError) as info:
        fake.write_all(1, b"x\n", ShortWritePolicy(2, 3), sleeps.append)
    assert info.value.errno == E.EAGAIN and len(fake.sent) == 4
    assert sleeps == [0.002, 0.004, 0.008]


def test_write_all_passes_other_errors_through_at_once():
    fake = ScriptedClient([NineError(E.ESTALE, "revoked")])
    with pytest.raises(NineError) as info:
        fake.write_all(1, b"x\n", ShortWritePolicy(), lambda s: None)
    assert info.value.errno == E.ESTALE
