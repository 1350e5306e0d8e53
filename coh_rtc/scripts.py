"""The generated ``.coh`` regression scripts (SPEC §15.4), as lists of statements.

Which scripts exist and what they say depends on the resolved IR (schema, sharding, CAS, enabled
``/proc`` nodes); that logic lives here, in Python, and the template only lays the lines out.
Worker paths assume a fresh boot, so the first spawned worker is ``worker-1``.
"""

from __future__ import annotations


from nine_door.shards import all_labels, shard_label, worker_dir_path

from .model import IR
from .validate import schema_at_least

FIRST_WORKER = "worker-1"


def shard_labels(ir: IR) -> tuple[str, ...]:
    """All shard labels in ascending order (the server's own list, nine_door/shards.py); empty when
    sharding is disabled."""
    return tuple(all_labels(ir.sharding.scheme.width)) if ir.sharding.enable else ()


def worker_dir(ir: IR, worker_id: str) -> str:
    """Canonical directory of a worker (SPEC §8), by the server's own rule."""
    return worker_dir_path(worker_id, ir.sharding.scheme.width if ir.sharding.enable else 0)


def _ok(command: str, *extra: str) -> list[str]:
    return [command, "EXPECT OK", *extra]


def boot_v0(ir: IR) -> list[str]:
    ttl = ir.roles.worker_heartbeat.default_budget.ttl_s
    return [
        *_ok("attach queen"),
        *_ok("cat /proc/boot", "EXPECT SUBSTR path=/proc/boot"),
        *_ok('echo {"budget":{"ttl_s":%d}} > /queen/ctl' % ttl),
        *_ok("log"),
        "WAIT 250",
        "quit",
    ]


def batch_9p() -> list[str]:
    return [
        *_ok("attach queen"),
        *_ok("echo batch-1 > /log/queen.log"),
        *_ok("echo batch-2 > /log/queen.log"),
        *_ok("echo batch-3 > /log/queen.log"),
        *_ok("cat /log/queen.log", "EXPECT SUBSTR batch-1|batch-2|batch-3"),
        "echo {{msize_overflow}} > /log/queen.log",
        "EXPECT ERR",
        "quit",
    ]


def telemetry_ring(ir: IR) -> list[str]:
    base = worker_dir(ir, FIRST_WORKER)
    return [
        *_ok("attach queen"),
        *_ok("spawn heartbeat ticks=100 ttl_s=60"),
        *_ok(f"cat {base}/cursor", "EXPECT SUBSTR cursor=0"),
        *_ok(f"cat {base}/telemetry"),
        *_ok(f"kill {FIRST_WORKER}"),
        "quit",
    ]


def shard_paths(ir: IR) -> list[str]:
    label = shard_label(FIRST_WORKER, ir.sharding.scheme.width)
    alias = ["ls /worker", "EXPECT OK" if ir.sharding.legacy_worker_alias else "EXPECT ERR"]
    return [
        *_ok("attach queen"),
        *_ok("spawn heartbeat ticks=10 ttl_s=60"),
        *_ok(f"ls /shard/{label}/worker", "EXPECT SUBSTR entries=1"),
        *alias,
        "quit",
    ]


def observe_watch(ir: IR) -> list[str]:
    lines = _ok("attach queen")
    if "sessions" in ir.observability.proc_9p:
        lines += _ok("cat /proc/9p/sessions")
    if ir.observability.proc_ingest.watch_interval_ms > 0:
        lines += _ok("tail /proc/ingest/watch")
    return lines + ["quit"]


def session_pool() -> list[str]:
    return [*_ok("attach queen"), *_ok("pool bench path=/log/queen.log ops=64 batch=4 payload=pool"), "quit"]


def cas_roundtrip(ir: IR) -> list[str]:
    root = ir.cas.store.root
    return [*_ok("attach queen"), *_ok(f"ls {root}"), f"cat {root}/0/manifest.cbor", "EXPECT ERR", "quit"]


def scripts_for(ir: IR) -> dict[str, list[str]]:
    """Script file name → statements, for every script this IR's schema and features call for."""
    scripts = {"boot_v0.coh": boot_v0(ir)}
    if schema_at_least(ir.schema, "1.1"):
        scripts["9p_batch.coh"] = batch_9p()
    if schema_at_least(ir.schema, "1.2"):
        scripts["telemetry_ring.coh"] = telemetry_ring(ir)
        if ir.sharding.enable:
            scripts["shard_paths.coh"] = shard_paths(ir)
        scripts["observe_watch.coh"] = observe_watch(ir)
        scripts["session_pool.coh"] = session_pool()
    if schema_at_least(ir.schema, "1.3") and ir.cas.enable:
        scripts["cas_roundtrip.coh"] = cas_roundtrip(ir)
    return scripts
