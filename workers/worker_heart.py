"""worker-heart (SPEC §6.4): attaches as ``worker-heartbeat:<id>`` and appends a heartbeat every second.

Why so small: it starts on an emulated CPU inside the VM, one process per spawned worker, so its import
set is the 9P client and nothing else. Its whole authority is the channel fd it inherits and the ticket
the root task minted for it; when NineDoor revokes that authority (ESTALE), removes its node (ENOENT) or
invalidates its fid (EBADF), it exits 0.

Run as ``python -m workers.worker_heart`` with ``COHESIX_CHANNEL_FD``, ``COHESIX_WORKER_ID`` and
``COHESIX_TICKET`` in the environment (root_task/spawner.py), or call :func:`main` directly.
"""
from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Callable

from nine_door.client import Client, SeqPacketTransport
from nine_door.errors import EAGAIN, EBADF, ENOENT, ESTALE, NineError
from nine_door.messages import O_APPEND, O_WRONLY

EXIT_ERRNOS = (ESTALE, ENOENT, EBADF)   # revoked, removed, fid gone: the worker's job is over
BACKOFF_MS = 5                          # SPEC §3.13 client rule (4): backoff_ms × 2^attempt
MAX_RETRIES = 3


def telemetry_path(worker_id: str) -> str:
    """Canonical telemetry path with sharding disabled (schema < 1.2, SPEC §8)."""
    return f"/worker/{worker_id}/telemetry"


def append_record(client: Client, fid: int, data: bytes, sleep: Callable[[float], None]) -> None:
    """One record, following the short-write rules of §3.13: resend only the uncommitted tail."""
    attempt = 0
    while data:
        try:
            count = client.write(fid, 0, data)
        except NineError as exc:
            if exc.errno != EAGAIN:
                raise
            count = 0
        data = data[count:]
        if not data:
            return
        if count == 0:
            if attempt >= MAX_RETRIES:
                raise NineError(EAGAIN, "telemetry ring stayed full")
            sleep(BACKOFF_MS * (2 ** attempt) / 1000)
            attempt += 1
        else:
            attempt = 0


def main(channel_fd: int, worker_id: str, ticket: str, interval_ms: int = 1000,
         sleep: Callable[[float], None] = time.sleep) -> int:
    """Heartbeat loop; returns the process exit status (0 on revocation or channel close)."""
    sock = socket.socket(fileno=channel_fd)
    client = Client(SeqPacketTransport(sock))
    try:
        client.version(8192)
        client.attach(f"worker-heartbeat:{worker_id}", ticket)
        fid = client.open(telemetry_path(worker_id), O_WRONLY | O_APPEND)
        n = 1
        while True:
            append_record(client, fid, f"heartbeat {n}\n".encode(), sleep)
            n += 1
            sleep(interval_ms / 1000)
    except NineError as exc:
        return 0 if exc.errno in EXIT_ERRNOS else 1
    except (ConnectionError, OSError):
        return 0                        # the root task closed the channel: nothing left to do
    finally:
        sock.close()


def _from_environment() -> int:
    env = os.environ
    return main(int(env["COHESIX_CHANNEL_FD"]), env["COHESIX_WORKER_ID"], env["COHESIX_TICKET"])


if __name__ == "__main__":
    sys.exit(_from_environment())
