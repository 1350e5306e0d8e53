"""Names the whole system agrees on: red-line sizes, default ports, roles, schema order.

Why one guest module: the IR compiler (``coh_rtc``), the operator shell (``cohsh``), the root task and
NineDoor all spell these values; before this module each kept its own copy (the role list three times,
two ``canonical_role`` variants, three schema comparisons). Guest code may import it (stdlib only), and
host packages import it from here, so a change is one edit.
"""
from __future__ import annotations

MAX_MSIZE = 8192             # red line R2: no 9P frame or console frame above this (SPEC §3.3, §10.4)
MAX_WALK_DEPTH = 8           # red line R3 (SPEC §3.4)
CONSOLE_TCP_PORT = 31337     # console.tcp.port default (SPEC §14.2); also cohsh's default
NINEP_TCP_PORT = 564         # secure9p.tcp_listener.port default inside the VM (SPEC §14.2)
HOST_NINEP_PORT = 5640       # host-side 9P port (host run mode, QEMU forward): 564 needs root

ROLE_LABELS = ("queen", "worker-heartbeat", "worker-gpu")   # SPEC §4.1 order
WORKER_ROLES = frozenset(ROLE_LABELS[1:])
ROLE_ALIASES = {"worker": "worker-heartbeat"}                # accepted by the console and cohsh


def canonical_role(word: str) -> str | None:
    """Case-insensitive role word → canonical label (alias ``worker``), or None if unknown."""
    lowered = word.lower()
    lowered = ROLE_ALIASES.get(lowered, lowered)
    return lowered if lowered in ROLE_LABELS else None


def schema_key(version: str) -> tuple[int, ...]:
    """Sort key of a schema string ("1.10" sorts after "1.9"); raises ValueError on a non-number."""
    return tuple(int(part) for part in version.split("."))


def schema_at_least(schema: str, wanted: str) -> bool:
    """Whether IR schema ``schema`` includes features introduced in ``wanted``."""
    return schema_key(schema) >= schema_key(wanted)
