"""worker-gpu (SPEC §6.4): attaches as ``worker-gpu:<id>``, says it is ready, submits the §9.3 self-test.

Why it asks the server what it leased instead of being told: the spawner hands every worker the same
three things (channel, id, ticket), and the namespace already answers the question — a GPU worker may
list ``/gpu`` and sees exactly the GPU whose lease it holds (SPEC §5.3), whose ``lease`` file's last
line carries its ``streams``. So the worker needs no GPU-specific launch plumbing.

After the self-test it issues no further requests: it waits on its channel until the root task closes
it or stops the process (revocation, lease end), and exits 0. A refusal that means its authority is gone
(ESTALE, ENOENT, EBADF) also ends it with 0.

Run as ``python -m workers.worker_gpu`` with ``COHESIX_CHANNEL_FD``, ``COHESIX_WORKER_ID`` and
``COHESIX_TICKET`` in the environment (root_task/spawner.py), or call :func:`main` directly.
"""
from __future__ import annotations

import hashlib
import socket
import sys
import time
from collections.abc import Callable

from nine_door.client import Client, SeqPacketTransport, ShortWritePolicy
from nine_door.errors import NineError
from nine_door.messages import O_APPEND, O_WRONLY
from workers.worker_heart import EXIT_ERRNOS, run_from_environment, telemetry_path

KIND_TEXT = 0    # SPEC §7.5 Frame v1 kind of the ready line
SELFTEST_PAYLOAD_B64 = "AACAPwAAAEAAAEBAAACAQAAAIEEAAKBBAADwQQAAIEI="   # a = 1,2,3,4; b = 10,20,30,40
SELFTEST_HASH = "sha256:e7011a16a15eedff7eaa3321509f336d786248946170ac997aa2205326c2afe3"
SELFTEST_RESULT_SHA256 = "9bb6f42efad721db3d320e2684c4cdf9295728a02f1c08f768bfe2444113cdc5"


def selftest_job_id(worker_id: str) -> str:
    """``job-`` + the first 16 hex of SHA-256(``<worker id>:selftest``) (SPEC §9.3)."""
    return "job-" + hashlib.sha256(f"{worker_id}:selftest".encode()).hexdigest()[:16]


def selftest_line(worker_id: str, streams: int) -> bytes:
    """The self-test job line: vadd, grid [1,1,1], block [streams,1,1], the inline §9.3 payload."""
    return (f'{{"job":"{selftest_job_id(worker_id)}","kernel":"vadd","grid":[1,1,1],'
            f'"block":[{streams},1,1],"bytes_hash":"{SELFTEST_HASH}",'
            f'"payload_b64":"{SELFTEST_PAYLOAD_B64}"}}\n').encode()


def ready_record(gpu_id: str, frame_schema: str, now_ms: Callable[[], int]) -> bytes:
    """``gpu-worker ready gpu=<G>`` as one record: a text line, or a Frame v1 item with kind 0."""
    text = f"gpu-worker ready gpu={gpu_id}"
    if frame_schema != "cbor_v1":
        return (text + "\n").encode()
    from nine_door import frame_v1

    return frame_v1.encode(frame_v1.Frame(seq=1, ts=now_ms(), kind=KIND_TEXT, payload=text.encode()))


def leased_gpu(client: Client) -> tuple[str, int]:
    """The GPU this worker leases and the lease's ``streams`` (from the last line of its lease file)."""
    import json

    names = client.listdir("/gpu")
    if len(names) != 1:
        raise RuntimeError(f"expected exactly one leased GPU under /gpu, saw {names}")
    gpu_id = names[0]
    last = client.read_all(f"/gpu/{gpu_id}/lease").decode().splitlines()[-1]
    return gpu_id, int(json.loads(last)["streams"])


def main(channel_fd: int, worker_id: str, ticket: str, frame_schema: str = "text",
         policy: ShortWritePolicy | None = None, shard_width: int = 0,
         wait: Callable[[socket.socket], None] | None = None) -> int:
    """Ready line, self-test submission, then wait for the channel to close; returns the exit status."""
    sock = socket.socket(fileno=channel_fd)
    client = Client(SeqPacketTransport(sock))
    now_ms = lambda: time.time_ns() // 1_000_000  # noqa: E731
    try:
        client.version(8192)
        client.attach(f"worker-gpu:{worker_id}", ticket)
        gpu_id, streams = leased_gpu(client)
        telemetry = client.open(telemetry_path(worker_id, shard_width), O_WRONLY | O_APPEND)
        client.write_all(telemetry, ready_record(gpu_id, frame_schema, now_ms), policy)
        job = client.open(f"/gpu/{gpu_id}/job", O_WRONLY)
        client.write(job, 0, selftest_line(worker_id, streams))
        (wait or _wait_for_close)(sock)
        return 0
    except NineError as exc:
        return 0 if exc.errno in EXIT_ERRNOS else 1
    except (ConnectionError, OSError):
        return 0                        # the root task closed the channel: nothing left to do
    finally:
        sock.close()


def _wait_for_close(sock: socket.socket) -> None:
    """Block until the root task closes the channel (no request is sent, so nothing arrives before)."""
    while sock.recv(65536):
        pass


def _from_environment() -> int:
    return run_from_environment(main)


if __name__ == "__main__":
    sys.exit(_from_environment())
