"""worker-heart (SPEC §6.4) against a real NineDoor session over an AF_UNIX SOCK_SEQPACKET channel (C6)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nine_door.client import Client, SeqPacketTransport
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


@pytest.mark.parametrize("argv", [("workers.worker_heart",), ("workers.launch", "workers.worker_heart")],
                         ids=["module", "launcher"])
def test_module_entry_point_runs_as_a_process(argv):
    """``python -m workers.worker_heart``, and the spawner's ``python -m workers.launch
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
    proc = subprocess.run([sys.executable, "-SB", "-m", "workers.launch", "os"], cwd=REPO,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1 and "usage: python -m workers.launch" in proc.stderr


def test_worker_exits_zero_when_channel_closes():
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    ours.close()
    assert worker_heart.main(theirs.detach(), "worker-1", "t", interval_ms=1) == 0


def test_append_record_resends_only_the_tail():
    class FakeClient:
        def __init__(self, counts):
            self.counts, self.sent = list(counts), []

        def write(self, fid, offset, data):
            self.sent.append(data)
            return self.counts.pop(0)

    sleeps = []
    fake = FakeClient([0, 4, 6])
    worker_heart.append_record(fake, 1, b"heartbeat\n", sleeps.append)
    assert fake.sent == [b"heartbeat\n", b"heartbeat\n", b"tbeat\n"]   # only the uncommitted tail
    assert sleeps == [0.005]
