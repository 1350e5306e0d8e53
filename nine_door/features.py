"""Which resolved-IR values this build honours: the one table of features not implemented yet.

The compiler accepts IR schemas 1.0-1.3 (SPEC §14), but the running system implements the 1.0 subset
plus a few later keys. Booting an IR and silently ignoring a feature it asks for would make the
manifest lie, so every run mode refuses such an IR, naming the key:

* ``cohesix-host --ir`` and ``python -m image.build --ir`` check at compile time
  (``coh_rtc.compile_runtime_ir``, located diagnostics ``<file>:<line>: <key>: not implemented by this build``);
* the guest checks its generated bootstrap at boot (``root_task.config.RuntimeConfig.from_bootstrap``).

Each row is a dotted resolved-manifest key and the values this build honours (the legacy value, or
the one value the code implements). A key absent from the table is implemented for every valid value.
When a milestone lands, it deletes its rows here; nothing else needs to change.

Decisions, key by key (from reading nine_door/ and root_task/):

* ``secure9p.tags_per_session`` and ``secure9p.batch_frames`` are honoured: ``Session.handle_message``
  admits frames against the window, answers duplicates EINVAL and refuses batches EBUSY (SPEC §3.12).
* ``secure9p.short_write_policy`` is honoured: armed telemetry rings answer short counts, and 0 only when
  it is enabled (EAGAIN otherwise); workers wait at least its ``backoff_ms`` before a resend.
* ``client_policies.retry.short_write`` is honoured by the workers' §3.13 client (``Client.write_all``)
  and by cohsh session pools; ``client_policies.cohsh.pool`` is honoured by cohsh session pools
  (``cohsh/pool.py``, SPEC §11.7), which take their sizes and retries from the generated
  ``cohsh_policy.toml`` (``cohsh --policy``).
* ``observability`` is honoured: ``/proc/9p/*``, ``/proc/ingest/*`` and the ``watch`` log (SPEC §12).
* ``gpu.backend`` is honoured: ``none``, ``mock`` and ``bridge`` (SPEC §9, nine_door/gpu/).
* ``telemetry.ring_bytes_per_worker`` sizes the rings (honoured); ``memory_budget_bytes`` is a compile-time
  bound the compiler enforces (honoured); ``frame_schema`` is honoured (``cbor_v1``: nine_door/frame_v1.py).
* ``sharding`` is honoured: ``/shard/<label>/worker/<id>`` with widths 1 and 2, the legacy alias on and
  off, and the shard lines of ``/proc/9p/sessions`` (nine_door/shards.py, SPEC §8).
* ``cas`` is honoured: the store under ``cas.store.root``, manifests, delta packs and Ed25519 signatures
  (nine_door/cas, SPEC §13).
"""
from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing at boot (docs/build.md)
if TYPE_CHECKING:
    from typing import Any

NOT_IMPLEMENTED: dict[str, tuple[Any, ...]] = {
    # key: values honoured by this build
}

PROBLEM = "not implemented by this build"


def lookup(resolved: dict[str, Any], dotted: str) -> Any:
    """``resolved["a"]["b"]`` for ``"a.b"``; KeyError names the missing key."""
    node: Any = resolved
    for part in dotted.split("."):
        node = node[part]
    return node


def unimplemented(resolved: dict[str, Any]) -> list[str]:
    """Keys of ``resolved`` (a resolved manifest) set to a value this build does not honour, sorted."""
    found = []
    for key, honoured in NOT_IMPLEMENTED.items():
        value = lookup(resolved, key)
        if isinstance(value, tuple):
            value = list(value)
        if value not in honoured:
            found.append(key)
    return sorted(found)
