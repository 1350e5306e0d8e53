"""SPEC §16 C8 over real 9P TCP, against any running system (host run mode or a booted guest).

C8: ``spawn gpu`` on ``GPU-0`` yields LEASE/ACTIVE lines and the self-test job's RUNNING/OK lines (with
the §9.3 result hash) in the worker's telemetry; lease expiry ends the lease, the job fid → ESTALE;
``gpu-bridge-host --mock --list`` prints the two mock info lines.

:func:`run_c8` takes only a 9P address and two secrets, so the same check runs against the host mode
(tests/nine_door/test_gpu_host_c8.py), a guest with the bridge backend (tests/qemu/test_gpu_bridge.py)
and, once the shipped IR says ``mock``, the shipped guest. The real worker-gpu process does the
self-test; the script attaches a second session of the same worker (a ticket minted with the worker-gpu
secret) only to hold an open ``/gpu/GPU-0/job`` fid across the lease's end.
"""
from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from nine_door import frame_v1, tickets
from nine_door import errors as E
from nine_door import messages as m
from nine_door.client import Client, NineError, SocketStreamTransport

REPO = Path(__file__).resolve().parents[1]
SELFTEST_RESULT = "9bb6f42efad721db3d320e2684c4cdf9295728a02f1c08f768bfe2444113cdc5"
MOCK_INFO_LINES = [
    '{"id":"GPU-0","name":"Mock 4090","memory_mb":24576,"sm_count":144,"driver_version":"555.0","runtime_version":"12.4"}',
    '{"id":"GPU-1","name":"Mock 4060","memory_mb":8192,"sm_count":64,"driver_version":"555.0","runtime_version":"12.4"}',
]


@dataclass
class GpuTarget:
    host: str
    port: int
    queen_ticket: str
    worker_gpu_secret: str

    def connect(self, uname: str, ticket: str) -> Client:
        client = Client(SocketStreamTransport(socket.create_connection((self.host, self.port), timeout=30)))
        client.version(8192)
        client.attach(uname, ticket)
        return client

    def queen(self) -> Client:
        return self.connect("queen", self.queen_ticket)


def wait_for(predicate, timeout_s: float, what: str, interval_s: float = 0.1):
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(interval_s)


def boot_settings(q: Client) -> tuple[str, int]:
    """(frame schema, shard width or 0) from ``/proc/boot`` (legacy: text, no sharding)."""
    text = q.read_all("/proc/boot").decode()
    schema = re.search(r"frame_schema=(\S+)", text)
    shard = re.search(r"sharding enable=(\w+) width=(\d)", text)
    width = int(shard.group(2)) if shard and shard.group(1) == "true" else 0
    return (schema.group(1) if schema else "text"), width


def telemetry_records(q: Client, path: str, schema: str) -> list[str]:
    """The worker's telemetry as text lines (``cbor_v1``: each frame's payload, kind noted)."""
    data = q.read_all(path)
    if schema != "cbor_v1":
        return data.decode().splitlines()
    frames, _used, _error = frame_v1.split_frames(data)
    return [f"kind={frame.kind} {frame.payload.decode()}" if frame.kind != 2 else frame.payload.decode()
            for frame, _raw in frames]


def spawned_worker(q: Client, gpu: str) -> str:
    lines = q.read_all("/log/queen.log").decode().splitlines()
    found = [line.split()[1] for line in lines if line.startswith("spawned ") and f" gpu={gpu} " in line]
    assert found, "no `spawned <id> gpu=` line in /log/queen.log"
    return found[-1]


def mock_list_lines() -> list[str]:
    out = subprocess.run([sys.executable, "-m", "gpu_bridge.cli", "--mock", "--list"], cwd=REPO,
                         capture_output=True, text=True, timeout=60, check=True)
    return out.stdout.splitlines()


def run_c8(target: GpuTarget, ttl_s: int = 4, gpu: str = "GPU-0", ready_timeout_s: float = 60.0) -> dict:
    """C8 end to end; returns what it saw (worker id, telemetry lines, final lease line)."""
    from workers.worker_gpu import selftest_job_id
    from workers.worker_heart import telemetry_path

    q = target.queen()
    try:
        schema, width = boot_settings(q)
        wait_for(lambda: gpu in q.listdir("/gpu"), ready_timeout_s, f"{gpu} under /gpu")
        spawn = {"spawn": "gpu", "lease": {"gpu_id": gpu, "mem_mb": 4096, "streams": 2, "ttl_s": ttl_s}}
        line = json.dumps(spawn, separators=(",", ":")).encode()
        assert q.append("/queen/ctl", line) == len(line)
        worker = spawned_worker(q, gpu)
        assert f"spawned {worker} gpu={gpu} ttl={ttl_s} streams=2" in q.read_all("/log/queen.log").decode()
        # LEASE / ACTIVE lines
        assert q.read_all(f"/gpu/{gpu}/ctl").decode().splitlines()[-1] == \
            f"LEASE {worker} mem=4096 streams=2 priority=0"
        active = (f'{{"schema":"gpu-lease/v1","state":"ACTIVE","gpu_id":"{gpu}","worker_id":"{worker}",'
                  f'"mem_mb":4096,"streams":2,"ttl_s":{ttl_s},"priority":0}}')
        assert q.read_all(f"/gpu/{gpu}/lease").decode().splitlines()[-1] == active
        # a second session of the worker holds the job fid across the lease end
        ticket = tickets.mint(target.worker_gpu_secret, "worker-gpu", subject=worker)
        w = target.connect(f"worker-gpu:{worker}", ticket)
        job_fid = w.open(f"/gpu/{gpu}/job", m.O_WRONLY)
        # the self-test's RUNNING and OK lines in the worker's telemetry
        job = selftest_job_id(worker)
        running = f'{{"job":"{job}","state":"RUNNING","detail":"scheduled"}}'
        ok = f'{{"job":"{job}","state":"OK","detail":"completed","result_sha256":"{SELFTEST_RESULT}"}}'
        path = telemetry_path(worker, width)
        records = wait_for(lambda: (lambda r: r if ok in r else None)(telemetry_records(q, path, schema)),
                           ttl_s, "the self-test's OK line in the worker's telemetry")
        ready = f"gpu-worker ready gpu={gpu}"
        assert ready in records or f"kind=0 {ready}" in records, records
        assert records.index(running) < records.index(ok), records
        # lease expiry: RELEASED line, RELEASE ctl line, queen-log lines, the job fid → ESTALE
        released = active.replace('"ACTIVE"', '"RELEASED"')[:-1] + ',"reason":"lease-expired"}'
        wait_for(lambda: q.read_all(f"/gpu/{gpu}/lease").decode().splitlines()[-1] == released,
                 ttl_s + 10, "the RELEASED lease line")
        assert q.read_all(f"/gpu/{gpu}/ctl").decode().splitlines()[-1] == f"RELEASE {worker} lease-expired"
        log = q.read_all("/log/queen.log").decode().splitlines()
        expected = [f"gpu lease released gpu={gpu} worker={worker} reason=lease-expired",
                    f"revoked {worker}: lease expired"]
        assert [line for line in log if line in expected] == expected, log[-6:]
        try:
            w.write(job_fid, 0, b'{"job":"late"}\n')
            raise AssertionError("a job write after the lease end succeeded")
        except NineError as exc:
            assert exc.errno == E.ESTALE, exc
        w.close()
        assert mock_list_lines() == MOCK_INFO_LINES
        return {"worker": worker, "telemetry": records, "lease": released}
    finally:
        q.close()
