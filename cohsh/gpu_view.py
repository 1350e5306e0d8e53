"""``gpu``: each GPU's info, lease and last job in a few lines, from plain console reads (SPEC §9.1).

Why it is built from ``LS``/``CAT`` and not a new console verb: the console protocol (§10.5) is fixed;
``/gpu/<G>/{info,lease,status}`` already say everything — the info line, the last lease line (the
current state, §9.2) and the last status line (the newest job's latest state, §9.3). The command only
reads and summarises, so it is safe to repeat after a reconnect.

Output per GPU (``bridge`` is the bridge's directory, not a GPU)::

    GPU-0 "Mock 4090" memory_mb=24576 sm_count=144 driver=555.0 runtime=12.4
      lease: ACTIVE worker=worker-1 mem_mb=4096 streams=2 ttl_s=120 priority=0
      last job: job-0f6b811d617abedc OK completed result_sha256=9bb6…

and the response line ``OK GPU gpus=<n>``. A refused read ends the command with that read's ERR line.
"""
from __future__ import annotations

import json
from collections.abc import Callable

from cohsh.script import Outcome

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from cohsh.transport_tcp import Reply


def _last_json(lines: tuple[str, ...] | list[str]) -> dict | None:
    for line in reversed(lines):
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def info_line(gpu: str, info: dict | None) -> str:
    if info is None:
        return f"{gpu} (no info)"
    return (f"{gpu} {json.dumps(info.get('name'))} memory_mb={info.get('memory_mb')} "
            f"sm_count={info.get('sm_count')} driver={info.get('driver_version')} "
            f"runtime={info.get('runtime_version')}")


def lease_line(lease: dict | None) -> str:
    if lease is None:
        return "  lease: none"
    text = (f"  lease: {lease.get('state')} worker={lease.get('worker_id')} mem_mb={lease.get('mem_mb')} "
            f"streams={lease.get('streams')} ttl_s={lease.get('ttl_s')} priority={lease.get('priority')}")
    return text + (f" reason={lease['reason']}" if "reason" in lease else "")


def job_line(status: dict | None) -> str:
    if status is None:
        return "  last job: none"
    text = f"  last job: {status.get('job')} {status.get('state')} {status.get('detail')}"
    return text + (f" result_sha256={status['result_sha256']}" if "result_sha256" in status else "")


def run_gpu(step: "Callable[[str], Reply | Outcome]", say: Callable[[str], None]) -> Outcome:
    """``step(wire)`` is the shell's one-request helper (a Reply, or the Outcome that ends the command)."""
    listing = step("LS /gpu")
    if isinstance(listing, Outcome):
        return listing
    gpus = [name.rstrip("/") for name in listing.content if name.rstrip("/") and name.rstrip("/") != "bridge"]
    for gpu in gpus:
        replies = []
        for leaf in ("info", "lease", "status"):
            reply = step(f"CAT /gpu/{gpu}/{leaf}")
            if isinstance(reply, Outcome):
                return reply
            replies.append(_last_json(reply.content))
        say(info_line(gpu, replies[0]))
        say(lease_line(replies[1]))
        say(job_line(replies[2]))
    if not gpus:
        say("no GPUs registered")
    return Outcome(f"OK GPU gpus={len(gpus)}")
