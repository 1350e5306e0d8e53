"""SPEC §16 C13 in the host run mode, over real TCP (issue 15 acceptance 1 and 3's host half).

1 000 real worker processes (forked by the fork server, each with its own channel) are spawned by 32
concurrent queen clients and attach concurrently; ``/proc/9p/sessions`` then shows ``worker=1000`` and
256 shard lines summing to 1 000; with the alias off ``/worker/...`` is ENOENT while the canonical
``/shard/<label>/worker/<id>/telemetry`` carries the worker's heartbeats; killing all of them leaves no
process, session or ring behind.
"""
from __future__ import annotations

import socket
import threading
import time

import pytest

from coh_rtc.testing import TICKET_SECRETS, write_ir
from nine_door import errors as E
from nine_door import frame_v1, tickets
from nine_door.client import Client, SocketStreamTransport
from nine_door.errors import NineError
from nine_door.messages import O_APPEND, O_RDONLY, O_WRONLY
from nine_door.shards import all_labels, shard_label

WORKERS, CLIENTS = 1000, 32
QUEEN = tickets.mint(TICKET_SECRETS["queen"], "queen")
SPAWN = b'{"spawn":"heartbeat","ticks":100000}\n'


def connect(port: int) -> Client:
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    client = Client(SocketStreamTransport(sock))
    client.version(8192)
    client.attach("queen", QUEEN)
    return client


def cat(client: Client, path: str) -> str:
    return client.read_all(path).decode()


def sessions_showing(client: Client, needle: str) -> str | None:
    text = cat(client, "/proc/9p/sessions")
    return text if needle in text else None


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    from root_task.host import start_in_process

    ir = write_ir(tmp_path_factory.mktemp("c13"), {
        "sharding.enable": True, "sharding.scheme.width": 2, "sharding.legacy_worker_alias": False,
        "system.max_workers": 1024, "telemetry.frame_schema": "cbor_v1",
        "observability.proc_9p": ["sessions", "outstanding", "short_writes"]}, schema="1.2")
    host = start_in_process(str(ir))
    yield host
    host.stop()


def test_c13_thousand_workers_from_32_clients(system):
    failures: list[str] = []
    share = [WORKERS // CLIENTS + (1 if n < WORKERS % CLIENTS else 0) for n in range(CLIENTS)]
    barrier = threading.Barrier(CLIENTS)

    def spawner(n: int) -> None:
        try:
            client = connect(system.ninep_port)
            fid = client.open("/queen/ctl", O_WRONLY | O_APPEND)
            barrier.wait(30)
            for _ in range(share[n]):            # one line per Twrite: 32 writers interleave
                assert client.write(fid, 0, SPAWN) == len(SPAWN)
            client.clunk(fid)
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(f"client {n}: {exc!r}")

    threads = [threading.Thread(target=spawner, args=(n,)) for n in range(CLIENTS)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not failures, failures
    queen = connect(system.ninep_port)
    text = wait_for(lambda: sessions_showing(queen, f" worker={WORKERS} "), 90, "1 000 attached worker sessions")
    attach_s = time.monotonic() - started
    lines = text.splitlines()
    assert lines[0].startswith("sessions total=") and f" worker={WORKERS} shard_count=256" in lines[0]
    shard_lines = [line.split() for line in lines[1:]]
    assert [parts[1] for parts in shard_lines] == all_labels(2) and all(p[0] == "shard" for p in shard_lines)
    counts = {parts[1]: int(parts[2]) for parts in shard_lines}
    assert sum(counts.values()) == WORKERS
    expected: dict[str, int] = {}
    for i in range(1, WORKERS + 1):
        label = shard_label(f"worker-{i}", 2)
        expected[label] = expected.get(label, 0) + 1
    assert counts == {label: expected.get(label, 0) for label in all_labels(2)}   # exact, per shard
    print(f"C13: {WORKERS} workers spawned by {CLIENTS} clients and attached in {attach_s:.1f} s")

    # alias off: the legacy path does not exist; the canonical one carries Frame v1 heartbeats
    for path in ("/worker/worker-1/telemetry", "/worker"):
        with pytest.raises(NineError) as info:
            queen.open(path, O_RDONLY)
        assert info.value.errno == E.ENOENT
    for worker_id in ("worker-1", "worker-500", f"worker-{WORKERS}"):
        path = f"/shard/{shard_label(worker_id, 2)}/worker/{worker_id}/telemetry"
        fid = queen.open(path, O_RDONLY)
        data = wait_for(lambda: queen.read(fid, 0, 8000), 10, f"a heartbeat from {worker_id}")
        queen.clunk(fid)
        frame, _ = frame_v1.decode_one(data)
        assert frame.kind == 1 and frame.payload.startswith(b"heartbeat ")

    # kill them all: no worker, session, ring or process is left
    pids = list(system.task.workers.pids().values())
    assert len(pids) == WORKERS
    ctl = queen.open("/queen/ctl", O_WRONLY | O_APPEND)
    for start in range(1, WORKERS + 1, 50):
        batch = b"".join(b'{"kill":"worker-%d"}\n' % i for i in range(start, min(start + 50, WORKERS + 1)))
        assert queen.write(ctl, 0, batch) == len(batch)
    text = wait_for(lambda: sessions_showing(queen, " worker=0 "), 30, "every worker session to end")
    assert all(line.endswith(" 0") for line in text.splitlines()[1:])
    assert cat(queen, "/proc/9p/outstanding").startswith("outstanding current=1 ")   # this read only
    assert not system.task.door.workers and system.task.door.telemetry_capacity == 0
    assert all(not shard.workers for shard in system.task.door.ns.shards.values())
    wait_for(lambda: system.task.workers.live == 0, 30, "the spawner to forget every worker")
    wait_for(lambda: not [pid for pid in pids if alive(pid)], 30, "every worker process to exit")


def alive(pid: int) -> bool:
    """A live, non-zombie process (a zombie has exited; its parent reaps it)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False
