"""The host side of the GPU bridge protocol (SPEC §9.4, §9.5 ``--connect``).

One queen session over the 9P TCP listener: register every GPU through ``/gpu/bridge/ctl``, then read the
consuming ``/gpu/bridge/jobs`` stream and, for each job, report ``RUNNING``, execute it with the
reference arithmetic of §9.3 on this host's CPU (SPEC §17 item 7: even with ``--nvml``) and report its
end. The GPUs live exactly as long as this session: when it ends — normal exit, a crash, ``kill -9`` —
the server unregisters them and ends their leases with ``bridge-disconnected``.

Why reports that fail are not fatal: a job's lease may end between the stream read and the report (the
server then answers ENOENT: the job already ended ``lease-ended``); the bridge goes on with the next job.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from nine_door.client import Client, SocketStreamTransport
from nine_door.errors import NineError
from nine_door.gpu import arith
from nine_door.gpu.lines import GpuInfo, compact
from nine_door.messages import O_RDONLY, O_WRONLY

IDLE_POLL_MIN_S = 0.002      # first wait after an empty read; doubles while idle
IDLE_POLL_MAX_S = 0.05


class ConnectFailed(Exception):
    """The listener could not be reached or refused the attach (exit 4)."""


@dataclass
class Outcome:
    """How a job ended here: the state, its detail and the result hash (inline payloads)."""

    state: str
    detail: str
    result_sha256: str | None = None


def execute_job(job: dict) -> Outcome:
    """Run one submitted job object (already validated by the server) with the reference arithmetic."""
    payload_b64 = job.get("payload_b64")
    if payload_b64 is None:
        return Outcome("OK", "completed")
    try:
        payload = base64.b64decode(payload_b64, validate=True)
        result = arith.execute(str(job.get("kernel")), payload)
    except (binascii.Error, ValueError, arith.LayoutError):
        return Outcome("ERR", "invalid-payload")
    return Outcome("OK", "completed", hashlib.sha256(result).hexdigest())


class Bridge:
    """A connected bridge: :meth:`register` then :meth:`serve`."""

    def __init__(self, client: Client, log: Callable[[str], None] = lambda text: None) -> None:
        self.client = client
        self.log = log
        self.ctl = client.open("/gpu/bridge/ctl", O_WRONLY)
        self.jobs = client.open("/gpu/bridge/jobs", O_RDONLY)
        self.executed = 0

    @classmethod
    def connect(cls, host: str, port: int, ticket: str, timeout_s: float = 30.0,
                log: Callable[[str], None] = lambda text: None) -> "Bridge":
        """Attach as the queen (``uname`` ``queen``, ``aname`` = the ticket) and open the bridge files."""
        try:
            sock = socket.create_connection((host, port), timeout=timeout_s)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            client = Client(SocketStreamTransport(sock))
            client.version(8192)
            client.attach("queen", ticket)
            return cls(client, log)
        except (OSError, NineError, ConnectionError) as exc:
            raise ConnectFailed(f"{host}:{port}: {exc}") from None

    def _command(self, obj: dict) -> None:
        line = (compact(obj) + "\n").encode()
        self.client.write(self.ctl, 0, line)

    def register(self, gpus: list[GpuInfo]) -> None:
        for info in gpus:
            self._command({"register": json.loads(info.line())})
            self.log(f"registered {info.id}")

    def report(self, gpu: str, job: str, outcome: Outcome) -> bool:
        body: dict = {"gpu": gpu, "job": job, "state": outcome.state, "detail": outcome.detail}
        if outcome.result_sha256 is not None:
            body["result_sha256"] = outcome.result_sha256
        try:
            self._command({"job_status": body})
            return True
        except NineError as exc:
            self.log(f"job {job} on {gpu}: report {outcome.state} refused ({exc})")
            return False

    def handle_line(self, raw: bytes) -> None:
        """One stream line; a line that is not a §9.4 job entry is skipped (logged), never fatal."""
        try:
            entry = json.loads(raw)
            gpu, job = entry["gpu"], entry["job"]
            job_id = job["job"]
            if not (isinstance(gpu, str) and isinstance(job_id, str)):
                raise TypeError("gpu and job id must be strings")
        except (ValueError, KeyError, TypeError) as exc:
            self.log(f"skipped a malformed jobs line ({exc.__class__.__name__}): {raw[:80]!r}")
            return
        if not self.report(gpu, job_id, Outcome("RUNNING", "scheduled")):
            return
        self.report(gpu, job_id, execute_job(job))
        self.executed += 1

    def poll(self) -> int:
        """One read of the jobs stream; handles every line; returns how many lines there were."""
        data = self.client.read(self.jobs, 0, self.client.iounit)
        lines = [line for line in data.split(b"\n") if line]
        for line in lines:
            self.handle_line(line)
        return len(lines)

    def serve(self, once: bool = False, sleep: Callable[[float], None] = time.sleep,
              should_stop: Callable[[], bool] = lambda: False) -> int:
        """Loop over the jobs stream; with ``once``, return when it is empty. Returns jobs executed."""
        wait = IDLE_POLL_MIN_S
        while not should_stop():
            if self.poll():
                wait = IDLE_POLL_MIN_S
                continue
            if once:
                break
            sleep(wait)
            wait = min(wait * 2, IDLE_POLL_MAX_S)
        return self.executed

    def close(self) -> None:
        self.client.close()
