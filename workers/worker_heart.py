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

from nine_door.client import Client, SeqPacketTransport, ShortWritePolicy
from nine_door.errors import EBADF, ENOENT, ESTALE, NineError
from nine_door.messages import O_APPEND, O_WRONLY
from nine_door.shards import worker_dir_path

EXIT_ERRNOS = (ESTALE, ENOENT, EBADF)   # revoked, removed, fid gone: the worker's job is over
KIND_HEARTBEAT = 1                      # SPEC §7.5 Frame v1 kind


def telemetry_path(worker_id: str, shard_width: int = 0) -> str:
    """The worker's canonical telemetry path (SPEC §8): under its shard when ``shard_width`` is 1 or 2,
    ``/worker/<id>/telemetry`` when sharding is disabled (0)."""
    return worker_dir_path(worker_id, shard_width) + "/telemetry"


def heartbeat_record(n: int, frame_schema: str, now_ms: Callable[[], int]) -> bytes:
    """Heartbeat ``n`` as one record: a text line, or a Frame v1 item (kind 1, its own ``seq`` = n)."""
    text = f"heartbeat {n}"
    if frame_schema != "cbor_v1":
        return (text + "\n").encode()
    from nine_door import frame_v1

    return frame_v1.encode(frame_v1.Frame(seq=n, ts=now_ms(), kind=KIND_HEARTBEAT, payload=text.encode()))


def warm(rounds: int = 16) -> None:
    """Called once by the fork server (root_task/fork_server.py) before it forks any worker.

    Why: a forked worker pays, in private memory, for every shared page it writes. CPython writes to
    far more than data: the first runs of a function fill its bytecode's inline caches (3.11's
    specialising interpreter), lazy imports and ``struct``/codec caches fill on first use. Running the
    worker's whole protocol path here — attach, walk, open, heartbeats of both schemas, against a
    scripted peer (:class:`_ScriptedPeer`) — makes those writes once, in the shared image.
    """
    from nine_door.client import InProcessTransport

    for schema in ("text", "cbor_v1"):
        for _ in range(rounds):
            client = Client(InProcessTransport(_ScriptedPeer()))
            client.version(8192)
            client.attach("worker-heartbeat:worker-0", "ticket")
            fid = client.open(telemetry_path("worker-0", 2), O_WRONLY | O_APPEND)
            for n in (1, 2):
                client.write_all(fid, heartbeat_record(n, schema, lambda: 0), None, lambda _s: None)


class _ScriptedPeer:
    """Answers the requests a heartbeat worker makes, as a server would (only for :func:`warm`)."""

    def handle_message(self, frame: bytes) -> list[bytes]:
        from nine_door import codec, messages as m

        msg = codec.decode(frame)
        qid = m.Qid(0, 0, 1)
        if isinstance(msg, m.Tversion):
            reply = m.Rversion(msg.tag, msg.msize, msg.version)
        elif isinstance(msg, m.Tattach):
            reply = m.Rattach(msg.tag, qid)
        elif isinstance(msg, m.Twalk):
            reply = m.Rwalk(msg.tag, (qid,) * len(msg.wnames))
        elif isinstance(msg, m.Tlopen):
            reply = m.Rlopen(msg.tag, qid, 0)
        elif isinstance(msg, m.Twrite):
            reply = m.Rwrite(msg.tag, len(msg.data))
        else:
            reply = m.Rclunk(msg.tag)
        return [codec.encode(reply)]


def main(channel_fd: int, worker_id: str, ticket: str, interval_ms: int = 1000,
         sleep: Callable[[float], None] = time.sleep, frame_schema: str = "text",
         policy: ShortWritePolicy | None = None, shard_width: int = 0) -> int:
    """Heartbeat loop; returns the process exit status (0 on revocation or channel close).

    Each record goes through ``Client.write_all`` (the §3.13 client rules: a full armed ring is
    retried with backoff, never dropped or doubled); a ring that stays full ends the worker with 1."""
    sock = socket.socket(fileno=channel_fd)
    client = Client(SeqPacketTransport(sock))
    now_ms = lambda: time.time_ns() // 1_000_000  # noqa: E731
    try:
        client.version(8192)
        client.attach(f"worker-heartbeat:{worker_id}", ticket)
        fid = client.open(telemetry_path(worker_id, shard_width), O_WRONLY | O_APPEND)
        n = 1
        while True:
            client.write_all(fid, heartbeat_record(n, frame_schema, now_ms), policy, sleep)
            n += 1
            sleep(interval_ms / 1000)
    except NineError as exc:
        return 0 if exc.errno in EXIT_ERRNOS else 1
    except (ConnectionError, OSError):
        return 0                        # the root task closed the channel: nothing left to do
    finally:
        sock.close()


def run_from_environment(worker_main: Callable[..., int]) -> int:
    """Run a worker's ``main`` with the spawner's environment (root_task/spawner.py): the channel, the
    identity, and the IR values a worker needs (frame schema, short-write backoff and retries, shard
    width). Every worker program takes the same arguments, so they all start through this."""
    env = os.environ
    policy = ShortWritePolicy(int(env.get("COHESIX_BACKOFF_MS", "5")), int(env.get("COHESIX_MAX_RETRIES", "3")))
    return worker_main(int(env["COHESIX_CHANNEL_FD"]), env["COHESIX_WORKER_ID"], env["COHESIX_TICKET"],
                       frame_schema=env.get("COHESIX_FRAME_SCHEMA", "text"), policy=policy,
                       shard_width=int(env.get("COHESIX_SHARD_WIDTH", "0")))


def _from_environment() -> int:
    return run_from_environment(main)


if __name__ == "__main__":
    sys.exit(_from_environment())
