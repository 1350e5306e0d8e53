"""The GPU tree's JSON values (SPEC §9.1–§9.3): GPU info, leases, job lines and status lines.

Why one module for all of them: every one is a compact JSON object with a fixed key order that other
programs hash, diff or parse (the bridge, cohsh, tests), so how a value is *rendered* sits next to how
it is *parsed*, and both use the strict JSON-line rules of §6.1 (:mod:`nine_door.jsonline`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing at boot (docs/build.md)
if TYPE_CHECKING:
    from typing import Any

from ..jsonline import U63_MAX, JsonLineError, check_keys, get_int, get_obj, get_str, parse_object

ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")
U32_MAX = 2**32 - 1
LEASE_SCHEMA = "gpu-lease/v1"
INFO_KEYS = ("id", "name", "memory_mb", "sm_count", "driver_version", "runtime_version")
JOB_KEYS = ("job", "kernel", "grid", "block", "bytes_hash", "inputs", "outputs", "timeout_ms", "payload_b64")
JOB_REQUIRED = ("job", "kernel", "grid", "block", "bytes_hash")
DEFAULT_TIMEOUT_MS = 5000
MAX_TIMEOUT_MS = 600_000
MAX_PATHS = 8
HEX = frozenset("0123456789abcdef")

# Lease-end tokens (SPEC §9.2), exact wording.
END_KILLED = "killed-by-queen"
END_EXPIRED = "lease-expired"
END_RELEASED = "released-by-queen"
END_BRIDGE = "bridge-disconnected"
END_REVOKED = "worker-revoked"
END_TOKENS = (END_KILLED, END_EXPIRED, END_RELEASED, END_BRIDGE, END_REVOKED)

# Job states and the details of their status lines (SPEC §9.3).
QUEUED, RUNNING, OK, ERR = "QUEUED", "RUNNING", "OK", "ERR"
DETAIL = {QUEUED: "accepted", RUNNING: "scheduled", OK: "completed"}
ERR_TIMEOUT, ERR_LEASE_ENDED, ERR_INVALID_PAYLOAD, ERR_BRIDGE = ("timeout", "lease-ended", "invalid-payload",
                                                                 "bridge-error")
ERR_DETAILS = (ERR_TIMEOUT, ERR_LEASE_ENDED, ERR_INVALID_PAYLOAD, ERR_BRIDGE)


def compact(obj: dict[str, Any]) -> str:
    """SPEC §9.1 compact JSON: no spaces, keys in insertion order, UTF-8 (not \\u escapes)."""
    import json

    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def is_id(text: str) -> bool:
    """GPU id and job id syntax (SPEC §1.3): 1–32 characters of ``[A-Za-z0-9._-]``."""
    return 0 < len(text) <= 32 and set(text) <= ID_CHARS


def is_sha256_hex(text: str) -> bool:
    return len(text) == 64 and set(text) <= HEX


# -- GPU info (§9.1) ------------------------------------------------------------------------------
@dataclass(frozen=True)
class GpuInfo:
    id: str
    name: str
    memory_mb: int
    sm_count: int
    driver_version: str
    runtime_version: str

    def line(self) -> str:
        return compact({key: getattr(self, key) for key in INFO_KEYS})

    @classmethod
    def from_obj(cls, obj: dict[str, Any]) -> "GpuInfo":
        """A bridge's ``register`` object: the six §9.1 keys, all required, nothing else."""
        check_keys(obj, INFO_KEYS, required=INFO_KEYS)
        gpu_id = get_str(obj, "id")
        if not is_id(gpu_id):
            raise JsonLineError("bad gpu id")
        return cls(gpu_id, get_str(obj, "name"), get_int(obj, "memory_mb", 1, U63_MAX),
                   get_int(obj, "sm_count", 0, U63_MAX), get_str(obj, "driver_version"),
                   get_str(obj, "runtime_version"))


MOCK_GPUS = (
    GpuInfo("GPU-0", "Mock 4090", 24576, 144, "555.0", "12.4"),
    GpuInfo("GPU-1", "Mock 4060", 8192, 64, "555.0", "12.4"),
)


# -- leases (§9.2) ----------------------------------------------------------------------------------
@dataclass
class Lease:
    gpu_id: str
    worker_id: str
    mem_mb: int
    streams: int
    ttl_s: int
    priority: int
    reason: str | None = None           # the end token once RELEASED

    @property
    def active(self) -> bool:
        return self.reason is None

    def line(self) -> str:
        obj: dict[str, Any] = {"schema": LEASE_SCHEMA, "state": "ACTIVE" if self.active else "RELEASED",
                               "gpu_id": self.gpu_id, "worker_id": self.worker_id, "mem_mb": self.mem_mb,
                               "streams": self.streams, "ttl_s": self.ttl_s, "priority": self.priority}
        if self.reason is not None:
            obj["reason"] = self.reason
        return compact(obj)


# -- jobs (§9.3) ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Job:
    """A validated job line. ``obj`` is the submitted object (key order kept) for the bridge stream."""

    job_id: str
    kernel: str
    grid: tuple[int, int, int]
    block: tuple[int, int, int]
    bytes_hash: str
    timeout_ms: int
    payload: bytes | None
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    obj: dict = field(default_factory=dict, compare=False, repr=False)


def parse_job_line(line: str) -> Job:
    """One job line → a :class:`Job`; every violation of §9.3 (schema, hash, layout) → JsonLineError."""
    return parse_job(parse_object(line))


def parse_job(obj: dict[str, Any]) -> Job:
    from . import arith

    check_keys(obj, JOB_KEYS, required=JOB_REQUIRED)
    job_id = get_str(obj, "job")
    if not is_id(job_id):
        raise JsonLineError("bad job id")
    kernel = get_str(obj, "kernel")
    if kernel not in arith.KERNELS:
        raise JsonLineError(f"unknown kernel {kernel!r}")
    grid = _dims(obj, "grid")
    block = _dims(obj, "block")
    bytes_hash = get_str(obj, "bytes_hash")
    if not bytes_hash.startswith("sha256:") or not is_sha256_hex(bytes_hash[7:]):
        raise JsonLineError("bytes_hash must be sha256: and 64 lowercase hex")
    inputs = _paths(obj, "inputs")
    outputs = _paths(obj, "outputs")
    timeout_ms = get_int(obj, "timeout_ms", 1, MAX_TIMEOUT_MS) if "timeout_ms" in obj else DEFAULT_TIMEOUT_MS
    payload = None
    if "payload_b64" in obj:
        payload = _b64(get_str(obj, "payload_b64"))
        import hashlib

        if hashlib.sha256(payload).hexdigest() != bytes_hash[7:]:
            raise JsonLineError("payload does not match bytes_hash")
        try:
            arith.parse(kernel, payload)
        except arith.LayoutError as exc:
            raise JsonLineError(f"payload layout: {exc}") from None
    return Job(job_id, kernel, grid, block, bytes_hash, timeout_ms, payload, inputs, outputs, obj)


def _dims(obj: dict[str, Any], key: str) -> tuple[int, int, int]:
    value = obj[key]
    if not isinstance(value, list) or len(value) != 3:
        raise JsonLineError(f"{key} must be an array of 3 integers")
    for item in value:
        if type(item) is not int or not 1 <= item <= U32_MAX:
            raise JsonLineError(f"{key} entries must be integers 1..2^32-1")
    return (value[0], value[1], value[2])


def _paths(obj: dict[str, Any], key: str) -> tuple[str, ...]:
    if key not in obj:
        return ()
    value = obj[key]
    if not isinstance(value, list) or len(value) > MAX_PATHS:
        raise JsonLineError(f"{key} must be an array of at most {MAX_PATHS} paths")
    from ..errors import NineError
    from ..namespace import validate_name

    for item in value:
        if not isinstance(item, str) or not item.startswith("/"):
            raise JsonLineError(f"{key} entries must be absolute paths")
        if item != "/":
            try:
                for part in item[1:].split("/"):
                    validate_name(part)
            except NineError:
                raise JsonLineError(f"bad path in {key}: {item!r}") from None
    return tuple(value)


def _b64(text: str) -> bytes:
    """Standard base64 with padding, canonical (re-encoding gives the same text), else an error."""
    import base64
    import binascii

    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise JsonLineError("payload_b64 is not standard padded base64") from None
    if base64.b64encode(data).decode("ascii") != text:
        raise JsonLineError("payload_b64 is not canonical base64")
    return data


def status_line(job_id: str, state: str, detail: str, result_sha256: str | None = None) -> str:
    obj: dict[str, Any] = {"job": job_id, "state": state, "detail": detail}
    if result_sha256 is not None:
        obj["result_sha256"] = result_sha256
    return compact(obj)


# -- the bridge's ctl lines (§9.4) ------------------------------------------------------------------
@dataclass(frozen=True)
class Register:
    info: GpuInfo


@dataclass(frozen=True)
class Unregister:
    gpu_id: str


@dataclass(frozen=True)
class JobStatus:
    gpu_id: str
    job_id: str
    state: str
    detail: str
    result_sha256: str | None


BridgeCommand = Register | Unregister | JobStatus


def parse_bridge_line(line: str) -> BridgeCommand:
    """One ``/gpu/bridge/ctl`` line; the detail must be the one §9.3 gives the state (the server writes
    the status line, so a bridge cannot invent new wording), ``lease-ended`` is the server's own."""
    obj = parse_object(line)
    if len(obj) != 1:
        raise JsonLineError("a bridge line carries exactly one command key")
    if "register" in obj:
        return Register(GpuInfo.from_obj(get_obj(obj, "register")))
    if "unregister" in obj:
        gpu_id = get_str(obj, "unregister")
        if not is_id(gpu_id):
            raise JsonLineError("bad gpu id")
        return Unregister(gpu_id)
    if "job_status" not in obj:
        raise JsonLineError(f"unknown bridge command {next(iter(obj))!r}")
    body = get_obj(obj, "job_status")
    check_keys(body, ("gpu", "job", "state", "detail", "result_sha256"), required=("gpu", "job", "state", "detail"))
    gpu_id, job_id, state, detail = (get_str(body, k) for k in ("gpu", "job", "state", "detail"))
    if not is_id(gpu_id) or not is_id(job_id):
        raise JsonLineError("bad gpu or job id")
    if state in (RUNNING, OK):
        if detail != DETAIL[state]:
            raise JsonLineError(f"{state} needs detail {DETAIL[state]!r}")
    elif state == ERR:
        if detail not in ERR_DETAILS or detail == ERR_LEASE_ENDED:
            raise JsonLineError(f"bad ERR detail {detail!r}")
    else:
        raise JsonLineError(f"bad job state {state!r}")
    result = None
    if "result_sha256" in body:
        if state != OK:
            raise JsonLineError("result_sha256 only with OK")
        result = get_str(body, "result_sha256")
        if not is_sha256_hex(result):
            raise JsonLineError("result_sha256 must be 64 lowercase hex")
    return JobStatus(gpu_id, job_id, state, detail, result)
