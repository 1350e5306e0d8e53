"""``/queen/ctl``: line processing (SPEC §6.1) and the queen's commands (§6.2, §6.3).

Why parsing and applying are split: every line is atomic, so a command is first parsed and fully
validated into a typed value (any schema problem is EINVAL before anything changes), and only then
handed to the server to apply. The server-side effects (worker records, nodes, log lines, launcher
calls) live in :class:`nine_door.server.NineDoor`; this module never touches them directly.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing at boot (docs/build.md)
if TYPE_CHECKING:
    from typing import Any

from .budgets import is_worker_id
from .errors import EINVAL, NineError
from .jsonline import U63_MAX, JsonLineError, check_keys, get_int, get_obj, get_str, parse_object

COMMAND_KEYS = ("spawn", "kill", "budget", "bind", "mount")
GPU_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")
U32_MAX = 2**32 - 1


@dataclass(frozen=True)
class SpawnHeartbeat:
    ticks: int
    ttl_s: int | None       # None: take the current default
    ops: int | None


@dataclass(frozen=True)
class GpuLease:
    gpu_id: str
    mem_mb: int
    streams: int
    ttl_s: int
    priority: int


@dataclass(frozen=True)
class SpawnGpu:
    lease: GpuLease
    ops: int | None


@dataclass(frozen=True)
class Kill:
    worker_id: str


@dataclass(frozen=True)
class SetBudget:
    ttl_s: int | None
    ops: int | None


@dataclass(frozen=True)
class Bind:
    source: str
    target: str


@dataclass(frozen=True)
class Mount:
    service: str
    at: str


Command = SpawnHeartbeat | SpawnGpu | Kill | SetBudget | Bind | Mount


def parse_command(line: str) -> Command:
    """One ``/queen/ctl`` line → a validated command; any violation → NineError(EINVAL)."""
    try:
        return _parse(parse_object(line))
    except JsonLineError as exc:
        raise NineError(EINVAL, str(exc)) from None


def _parse(obj: dict[str, Any]) -> Command:
    # "budget" is both a command and an optional field of spawn: a line with "spawn" is a spawn.
    present = ["spawn"] if "spawn" in obj else [key for key in COMMAND_KEYS if key in obj]
    if len(present) != 1:
        raise JsonLineError("a line carries exactly one command key")
    key = present[0]
    if key == "spawn":
        kind = get_str(obj, "spawn")
        if kind == "heartbeat":
            return _parse_spawn_heartbeat(obj)
        if kind == "gpu":
            return _parse_spawn_gpu(obj)
        raise JsonLineError(f"unknown spawn kind {kind!r}")
    if key == "kill":
        check_keys(obj, ("kill",))
        worker_id = get_str(obj, "kill")
        if not is_worker_id(worker_id):
            raise JsonLineError("bad worker id")
        return Kill(worker_id)
    if key == "budget":
        check_keys(obj, ("budget",))
        body = get_obj(obj, "budget")
        check_keys(body, ("ttl_s", "ops"))
        if not body:
            raise JsonLineError("budget needs at least one field")
        ttl_s = get_int(body, "ttl_s", 1, U63_MAX) if "ttl_s" in body else None
        ops = get_int(body, "ops", 1, U63_MAX) if "ops" in body else None
        return SetBudget(ttl_s, ops)
    if key == "bind":
        check_keys(obj, ("bind",))
        body = get_obj(obj, "bind")
        check_keys(body, ("from", "to"), required=("from", "to"))
        return Bind(get_str(body, "from"), get_str(body, "to"))
    check_keys(obj, ("mount",))
    body = get_obj(obj, "mount")
    check_keys(body, ("service", "at"), required=("service", "at"))
    return Mount(get_str(body, "service"), get_str(body, "at"))


def _parse_spawn_heartbeat(obj: dict[str, Any]) -> SpawnHeartbeat:
    check_keys(obj, ("spawn", "ticks", "budget"), required=("ticks",))
    ticks = get_int(obj, "ticks", 1, U63_MAX)
    ttl_s = ops = None
    if "budget" in obj:
        body = get_obj(obj, "budget")
        check_keys(body, ("ttl_s", "ops"))
        ttl_s = get_int(body, "ttl_s", 1, U63_MAX) if "ttl_s" in body else None
        ops = get_int(body, "ops", 1, U63_MAX) if "ops" in body else None
    return SpawnHeartbeat(ticks, ttl_s, ops)


def _parse_spawn_gpu(obj: dict[str, Any]) -> SpawnGpu:
    check_keys(obj, ("spawn", "lease", "budget"), required=("lease",))
    lease = get_obj(obj, "lease")
    check_keys(lease, ("gpu_id", "mem_mb", "streams", "ttl_s", "priority"),
               required=("gpu_id", "mem_mb", "streams", "ttl_s"))
    gpu_id = get_str(lease, "gpu_id")
    if len(gpu_id) > 32 or not set(gpu_id) <= GPU_ID_CHARS:
        raise JsonLineError("bad gpu id")
    parsed = GpuLease(
        gpu_id=gpu_id,
        mem_mb=get_int(lease, "mem_mb", 1, U32_MAX),
        streams=get_int(lease, "streams", 1, 255),
        ttl_s=get_int(lease, "ttl_s", 1, U32_MAX),
        priority=get_int(lease, "priority", 0, 255) if "priority" in lease else 0,
    )
    ops = None
    if "budget" in obj:
        body = get_obj(obj, "budget")
        check_keys(body, ("ops",))
        ops = get_int(body, "ops", 1, U63_MAX) if "ops" in body else None
    return SpawnGpu(parsed, ops)


def process_ctl_write(data: bytes, apply_line: Callable[[str], None]) -> int:
    """§6.1 line processing shared by all ctl sinks; returns the Rwrite count.

    UTF-8 or EINVAL (nothing applied); lines split at ``\\n`` (one ``\\r`` before it removed, a final
    unterminated segment is a line, blank lines skipped); the first failing line raises if it is the
    first non-blank line, otherwise the count covers everything up to the previous line's terminator.
    """
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        raise NineError(EINVAL, "ctl data is not UTF-8") from None
    consumed = 0            # bytes up to and including the last applied line's terminator
    applied_any = False
    pos = 0
    raw = data
    while pos < len(raw):
        end = raw.find(b"\n", pos)
        stop = len(raw) if end < 0 else end + 1
        segment = raw[pos:end if end >= 0 else len(raw)]
        if end >= 0 and segment.endswith(b"\r"):
            segment = segment[:-1]
        line = segment.decode("utf-8")
        if line.strip():
            try:
                apply_line(line)
            except NineError:
                if not applied_any:
                    raise
                return consumed
            applied_any = True
            consumed = stop
        pos = stop
    return len(data)
