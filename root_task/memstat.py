"""``memstat`` lines: what the workers cost in memory, measured where they run (docs/workers.md).

Why the root task measures itself: a thousand workers is a memory question first, and the guest's
256 MiB can only be seen from inside. With the boot parameter ``cohesix_memstat=<seconds>`` (host
mode: ``cohesix-host --memstat S``) the root task prints, every S seconds on its serial console,

    memstat mem_available_kb=<n> workers=<n> worker_uss_kb=<avg> worker_pss_kb=<avg> fork_server_rss_kb=<n> fork_children=<n>

``workers`` is the spawner's own count; ``fork_children`` is counted independently from ``/proc``
(live processes whose parent is the fork server), so a leaked worker process shows there. USS (pages
only this worker has) is what one more worker costs; PSS also charges each worker its
share of the pages it shares with the fork server. Off by default: reading ``smaps_rollup`` of every
worker costs the loop time (about 0.1 ms per worker on the host).
"""
from __future__ import annotations

import os

SAMPLE_WORKERS = 64      # averages over at most this many workers (evenly spread), to bound the cost


def mem_available_kb(path: str = "/proc/meminfo") -> int:
    with open(path, "rb") as handle:
        for line in handle:
            if line.startswith(b"MemAvailable:"):
                return int(line.split()[1])
    return 0


def smaps_kb(pid: int) -> dict[str, int]:
    """``Rss``, ``Pss`` and ``Uss`` (private clean + dirty) of one process, in KiB; {} if it is gone."""
    values = {"Rss": 0, "Pss": 0, "Uss": 0}
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as handle:
            for line in handle:
                key, _, rest = line.partition(b":")
                name = key.decode()
                if name in ("Rss", "Pss"):
                    values[name] = int(rest.split()[0])
                elif name in ("Private_Clean", "Private_Dirty"):
                    values["Uss"] += int(rest.split()[0])
    except OSError:
        return {}
    return values


def children(parent: int) -> list[int]:
    """Live (non-zombie) processes whose parent is ``parent``, read from ``/proc/<pid>/stat``."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != b"Z" and int(fields[1]) == parent:
            found.append(int(name))
    return found


def average_kb(pids: list[int]) -> tuple[int, int]:
    """Mean (USS, PSS) in KiB over at most SAMPLE_WORKERS of ``pids``, evenly spread; (0, 0) if none."""
    step = max(1, len(pids) // SAMPLE_WORKERS)
    samples = [s for s in (smaps_kb(pid) for pid in pids[::step]) if s]
    if not samples:
        return 0, 0
    return sum(s["Uss"] for s in samples) // len(samples), sum(s["Pss"] for s in samples) // len(samples)


def line(worker_pids: list[int], fork_server_pid: int | None) -> str:
    uss, pss = average_kb(worker_pids)
    server = smaps_kb(fork_server_pid).get("Rss", 0) if fork_server_pid else 0
    return (f"memstat mem_available_kb={mem_available_kb()} workers={len(worker_pids)} "
            f"worker_uss_kb={uss} worker_pss_kb={pss} fork_server_rss_kb={server} "
            f"fork_children={len(children(fork_server_pid)) if fork_server_pid else 0}")
