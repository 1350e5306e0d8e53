"""``workers``: live workers grouped by shard (SPEC §8), from plain console reads.

Why it prefers the legacy alias: with a thousand workers over 256 shards, listing every
``/shard/<label>/worker`` directory is 256 requests, while ``/worker`` (present when sharding is off
or ``legacy_worker_alias`` is on) lists every live worker in one, and the §8 label rule places each
one locally. Only with the alias off are the shard directories listed one by one.

Output::

    shard 13: worker-1 worker-17
    shard 1c: worker-2
    OK WORKERS workers=3 shards=2

(without sharding: one ``all:`` line). A refused read ends the command with that read's ERR line.
"""
from __future__ import annotations

from collections.abc import Callable

from cohsh.script import Outcome
from nine_door.shards import shard_label

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from cohsh.transport_tcp import Reply


def _worker_sort_key(worker_id: str) -> tuple[int, str]:
    number = worker_id.rsplit("-", 1)[-1]
    return (int(number), worker_id) if number.isdigit() else (1 << 62, worker_id)


def group_line(label: str, workers: list[str]) -> str:
    return f"{label}: {' '.join(sorted(workers, key=_worker_sort_key))}"


def run_workers(step: Callable[[str], "Reply | Outcome"], say: Callable[[str], None]) -> Outcome:
    root = step("LS /")
    if isinstance(root, Outcome):
        return root
    sharded = "shard" in root.content
    if "worker" in root.content:
        listing = step("LS /worker")
        if isinstance(listing, Outcome):
            return listing
        workers = list(listing.content)
        if not sharded:
            if workers:
                say(group_line("all", workers))
            return _done(say, len(workers), 1 if workers else 0)
        labels = step("LS /shard")
        if isinstance(labels, Outcome):
            return labels
        width = len(labels.content[0]) if labels.content else 2
        groups: dict[str, list[str]] = {}
        for worker_id in workers:
            groups.setdefault(shard_label(worker_id, width), []).append(worker_id)
        for label in sorted(groups):
            say(group_line(f"shard {label}", groups[label]))
        return _done(say, len(workers), len(groups))
    if not sharded:
        return _done(say, 0, 0)
    labels = step("LS /shard")
    if isinstance(labels, Outcome):
        return labels
    total = shards = 0
    for label in labels.content:
        listing = step(f"LS /shard/{label}/worker")
        if isinstance(listing, Outcome):
            return listing
        if listing.content:
            say(group_line(f"shard {label}", list(listing.content)))
            total += len(listing.content)
            shards += 1
    return _done(say, total, shards)


def _done(say: Callable[[str], None], workers: int, shards: int) -> Outcome:
    line = f"OK WORKERS workers={workers} shards={shards}"
    say(f"[console] {line}")
    return Outcome(line)
