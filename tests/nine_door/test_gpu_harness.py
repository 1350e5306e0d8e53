"""Shared doubles for the GPU tests: an in-process door with a GPU backend, queen/worker clients, job lines.

Kept as a ``test_gpu_*`` module so the file-ownership rules hold; it defines no tests itself.
"""
from __future__ import annotations

import base64
import hashlib
import json

import pytest

from nine_door import messages as m
from nine_door.client import Client, InProcessTransport
from nine_door.errors import NineError
from nine_door.gpu import arith
from nine_door.server import ChannelBinding
from test_server_harness import make_door

SELFTEST_B64 = "AACAPwAAAEAAAEBAAACAQAAAIEEAAKBBAADwQQAAIEI="
SELFTEST_HASH = "sha256:e7011a16a15eedff7eaa3321509f336d786248946170ac997aa2205326c2afe3"
SELFTEST_RESULT = "9bb6f42efad721db3d320e2684c4cdf9295728a02f1c08f768bfe2444113cdc5"


class Gpus:
    """A NineDoor with ``gpu.backend`` set, a queen client, and helpers to spawn and attach GPU workers."""

    def __init__(self, backend: str = "mock", overrides: dict | None = None) -> None:
        self.door, self.clock, self.launcher = make_door({"gpu.backend": backend, **(overrides or {})})
        self.q = self.client()
        self.q.attach("queen")

    def client(self, binding: ChannelBinding | None = None) -> Client:
        session = self.door.open_session(binding or ChannelBinding(kind="channel"))
        client = Client(InProcessTransport(session))
        client.version(8192)
        client.session = session          # the tests end sessions through it
        return client

    def ctl(self, obj: dict | str) -> int:
        data = (obj if isinstance(obj, str) else json.dumps(obj, separators=(",", ":"))).encode()
        return self.q.append("/queen/ctl", data)

    def spawn(self, gpu: str = "GPU-0", mem_mb: int = 4096, streams: int = 2, ttl_s: int = 120,
              **extra) -> str:
        lease = {"gpu_id": gpu, "mem_mb": mem_mb, "streams": streams, "ttl_s": ttl_s, **extra.pop("lease", {})}
        self.ctl({"spawn": "gpu", "lease": lease, **extra})
        return self.launcher.started[-1][0]

    def worker(self, worker_id: str) -> Client:
        _wid, role, ticket = next(s for s in self.launcher.started if s[0] == worker_id)
        client = self.client(ChannelBinding(kind="channel", role=role, worker_id=worker_id))
        client.attach(f"{role}:{worker_id}", ticket)
        return client

    def read_lines(self, path: str, client: Client | None = None) -> list[str]:
        return (client or self.q).read_all(path).decode().splitlines()

    def log(self) -> list[str]:
        return self.door.log_lines()

    def errno(self, fn, *args) -> int:
        with pytest.raises(NineError) as info:
            fn(*args)
        return info.value.errno

    def submit(self, line: str | bytes, gpu: str = "GPU-0", client: Client | None = None) -> int:
        data = line if isinstance(line, bytes) else line.encode()
        return (client or self.q).append(f"/gpu/{gpu}/job", data)


def job_obj(job: str = "j1", kernel: str = "vadd", payload: bytes | None = None, **extra) -> dict:
    """A valid job object (an inline vadd self-test payload unless ``payload`` is given)."""
    if payload is None:
        payload = base64.b64decode(SELFTEST_B64)
    obj = {"job": job, "kernel": kernel, "grid": [1, 1, 1], "block": [2, 1, 1],
           "bytes_hash": "sha256:" + hashlib.sha256(payload).hexdigest(),
           "payload_b64": base64.b64encode(payload).decode()}
    obj.update(extra)
    return {k: v for k, v in obj.items() if v is not None}


def job_line(**kwargs) -> str:
    return json.dumps(job_obj(**kwargs), separators=(",", ":"))


def matmul_vector() -> bytes:
    return arith.matmul_payload(2, 2, 2, [1, 2, 3, 4], [5, 6, 7, 8])


O_WRONLY = m.O_WRONLY
