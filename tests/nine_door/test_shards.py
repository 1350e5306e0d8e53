"""The sharded worker namespace (SPEC §8; issue 15 acceptance 2 and 4): the label rule's vectors, the
tree with widths 1 and 2, the legacy alias on and off, access toward the worker's own shard only,
``/proc/9p/sessions`` shard lines, and refusals that create nothing."""
from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, strategies as st

from nine_door import errors as E
from nine_door import messages as m
from nine_door.shards import all_labels, shard_label, worker_dir_path

try:
    from .test_queen_ctl import ctl, ctl_errno, worker_session
    from .test_server_harness import NineRemoteError, log_text, make_door, queen
except ImportError:  # pragma: no cover
    from test_queen_ctl import ctl, ctl_errno, worker_session
    from test_server_harness import NineRemoteError, log_text, make_door, queen

SPAWN = '{"spawn":"heartbeat","ticks":100}\n'

# SPEC §8 vector table: worker id, digest prefix, width 2, width 1
VECTORS = [("worker-1", "13029f9e", "13", "1"), ("worker-2", "1ce9fa3f", "1c", "1"),
           ("worker-3", "1a093e22", "1a", "1"), ("worker-4", "c2007011", "c2", "c"),
           ("worker-10", "bf957182", "bf", "b"), ("worker-123", "18093e76", "18", "1")]


@pytest.mark.parametrize("worker_id,prefix,width2,width1", VECTORS)
def test_label_rule_vectors(worker_id, prefix, width2, width1):
    assert hashlib.sha256(worker_id.encode()).hexdigest().startswith(prefix)
    assert shard_label(worker_id, 2) == width2
    assert shard_label(worker_id, 1) == width1
    assert worker_dir_path(worker_id, 2) == f"/shard/{width2}/worker/{worker_id}"
    assert worker_dir_path(worker_id, 0) == f"/worker/{worker_id}"


@given(st.text(min_size=1, max_size=40))
def test_label_is_the_digest_prefix_for_any_id(worker_id):
    digest = hashlib.sha256(worker_id.encode("utf-8", "surrogatepass")).hexdigest() \
        if not any(0xD800 <= ord(c) <= 0xDFFF for c in worker_id) else None
    if digest is None:
        return
    assert shard_label(worker_id, 2) == digest[:2]
    assert shard_label(worker_id, 1) == digest[:1]
    assert shard_label(worker_id, 2).startswith(shard_label(worker_id, 1))


def test_labels_and_bad_widths():
    assert all_labels(1) == list("0123456789abcdef")
    assert all_labels(2)[:3] == ["00", "01", "02"] and all_labels(2)[-1] == "ff" and len(all_labels(2)) == 256
    for width in (0, 3):
        with pytest.raises(ValueError):
            shard_label("worker-1", width)
        with pytest.raises(ValueError):
            all_labels(width)


def sharded(width: int = 2, alias: bool = True, **extra):
    return make_door({"root_task.schema": "1.2", "sharding.enable": True, "sharding.scheme.width": width,
                      "sharding.legacy_worker_alias": alias, **extra})


def test_every_shard_directory_exists_from_boot():
    door, _, _ = sharded(2)
    q = queen(door)
    assert q.ls("/shard") == all_labels(2)
    assert q.ls("/shard/00") == ["worker"] and q.ls("/shard/ff/worker") == []
    assert "worker" in q.ls("/") and "shard" in q.ls("/")
    door1, _, _ = sharded(1)
    assert queen(door1).ls("/shard") == all_labels(1)


@pytest.mark.parametrize("width,label", [(2, "13"), (1, "1")])
def test_canonical_path_and_alias_reach_the_same_node(width, label):
    door, _, _ = sharded(width)
    q = queen(door)
    ctl(q, SPAWN)
    canonical = q.walk(0, 1, "shard", label, "worker", "worker-1", "telemetry").qids[-1]
    alias = q.walk(0, 2, "worker", "worker-1", "telemetry").qids[-1]
    assert canonical == alias
    assert q.ls(f"/shard/{label}/worker") == ["worker-1"] and q.ls("/worker") == ["worker-1"]
    ctl(q, '{"kill":"worker-1"}')
    for fid in (1, 2):                                   # both names are gone with the worker
        with pytest.raises(NineRemoteError) as info:
            q.lopen(fid)
        assert info.value.errno == E.ENOENT
    assert q.ls(f"/shard/{label}/worker") == [] and q.ls("/worker") == []
    assert not door.ns.shards[label].workers


def test_alias_off_removes_the_legacy_tree():
    door, _, _ = sharded(2, alias=False)
    q = queen(door)
    ctl(q, SPAWN)
    assert "worker" not in q.ls("/")
    assert q.errno(m.Twalk(q.next_tag(), 0, 1, ("worker", "worker-1", "telemetry"))) == E.ENOENT
    assert q.errno(m.Twalk(q.next_tag(), 0, 1, ("worker",))) == E.ENOENT
    q.walk(0, 1, "shard", "13", "worker", "worker-1", "telemetry")


def test_workers_provider_mounts_the_shard_tree():
    door, _, _ = sharded(2, alias=False)
    q = queen(door)
    ctl(q, '{"mount":{"service":"workers","at":"/log/w"}}')
    assert q.ls("/log/w") == all_labels(2)


def test_wrong_shard_is_enoent_for_the_queen():
    door, _, _ = sharded(2)
    q = queen(door)
    ctl(q, SPAWN)
    q.walk(0, 1, "shard", "1c", "worker")
    assert q.errno(m.Twalk(q.next_tag(), 1, 2, ("worker-1",))) == E.ENOENT
    walked = q.rpc(m.Twalk(q.next_tag(), 0, 2, ("shard", "1c", "worker", "worker-1", "telemetry")))
    assert len(walked.qids) == 3                       # partial walk (a client's ENOENT): up to the shard


def test_worker_reaches_only_its_own_shard():
    door, _, launcher = sharded(2)
    q = queen(door)
    ctl(q, SPAWN + SPAWN)                               # worker-1 → 13, worker-2 → 1c
    tickets = {wid: ticket for wid, _, ticket in launcher.started}
    w1 = worker_session(door, "worker-1", tickets["worker-1"])
    w1.walk(0, 1, "shard", "13", "worker", "worker-1", "telemetry")
    fid = w1.open_path("/shard/13/worker/worker-1/telemetry", m.O_WRONLY | m.O_APPEND)
    assert w1.write(fid, b"heartbeat 1\n") == 12
    # another worker's shard: walk-through is refused at the shard directory
    w1.walk(0, 5, "shard")
    assert w1.errno(m.Twalk(w1.next_tag(), 5, 2, ("1c",))) == E.EACCES
    walked = w1.rpc(m.Twalk(w1.next_tag(), 0, 2, ("shard", "1c", "worker", "worker-2", "telemetry")))
    assert len(walked.qids) == 1                       # only /shard; 1c refused
    # listing a walk-through directory is refused (§5.3 "T")
    w1.walk(0, 3, "shard")
    assert w1.errno(m.Tlopen(w1.next_tag(), 3, m.O_RDONLY)) == E.EACCES
    # the alias of another worker's directory is refused too
    w1.walk(0, 4, "worker")
    assert w1.errno(m.Twalk(w1.next_tag(), 4, 6, ("worker-2",))) == E.EACCES


def test_proc_9p_sessions_counts_worker_sessions_per_shard():
    door, _, launcher = sharded(2, **{"observability.proc_9p": ["sessions"]})
    q = queen(door)
    ctl(q, SPAWN * 3)
    tickets = {wid: ticket for wid, _, ticket in launcher.started}
    sessions = [worker_session(door, wid, tickets[wid]) for wid in ("worker-1", "worker-2", "worker-3")]
    text = q.cat("/proc/9p/sessions").decode()
    lines = text.splitlines()
    assert lines[0] == "sessions total=4 queen=1 worker=3 shard_count=256"
    shard_lines = lines[1:]
    assert [ln.split()[1] for ln in shard_lines] == all_labels(2)
    counts = {ln.split()[1]: int(ln.split()[2]) for ln in shard_lines}
    assert counts["13"] == counts["1c"] == counts["1a"] == 1 and sum(counts.values()) == 3
    sessions[0].session.close()
    counts = {ln.split()[1]: int(ln.split()[2]) for ln in q.cat("/proc/9p/sessions").decode().splitlines()[1:]}
    assert counts["13"] == 0 and sum(counts.values()) == 2


def test_sessions_file_without_sharding_has_no_shard_lines():
    door, _, _ = make_door({"root_task.schema": "1.2", "observability.proc_9p": ["sessions"]})
    assert queen(door).cat("/proc/9p/sessions") == b"sessions total=1 queen=1 worker=0 shard_count=0\n"


def test_spawn_past_max_workers_is_ebusy_and_creates_nothing():
    door, _, launcher = sharded(2, **{"system.max_workers": 2})
    q = queen(door)
    ctl(q, SPAWN * 2)
    nodes, log = door.ns.node_count, log_text(door)
    assert ctl_errno(q, SPAWN) == E.EBUSY
    assert door.ns.node_count == nodes and log_text(door) == log and len(launcher.started) == 2
    assert sum(len(s.workers) for s in door.ns.shards.values()) == 2
    ctl(q, '{"kill":"worker-1"}')
    ctl(q, SPAWN)                                       # room again: the next id, never reused
    assert "worker-3" in door.workers and door.ns.shards[shard_label("worker-3", 2)].workers


def test_thousand_workers_spread_over_every_shard():
    door, _, _ = sharded(2, **{"system.max_workers": 1024})
    q = queen(door)
    for _ in range(1000 // 40):
        ctl(q, SPAWN * 40)
    per_shard = [len(shard.workers) for shard in door.ns.shards.values()]
    assert sum(per_shard) == 1000 and max(per_shard) <= 12 and sum(1 for n in per_shard if n) > 240
    for worker_id in ("worker-1", "worker-500", "worker-1000"):
        label = shard_label(worker_id, 2)
        assert door.ns.lookup_global(("shard", label, "worker", worker_id, "telemetry")) is not None


def test_spawn_refused_when_the_machine_has_no_memory_for_a_worker():
    door, _, launcher = sharded(2)
    launcher.room_for_worker = lambda: "not enough memory for another worker (MemAvailable 9000 KiB)"
    q = queen(door)
    nodes, log = door.ns.node_count, log_text(door)
    assert ctl_errno(q, SPAWN) == E.EBUSY
    assert door.ns.node_count == nodes and log_text(door) == log and not launcher.started and not door.workers
    launcher.room_for_worker = lambda: None
    ctl(q, SPAWN)
    assert list(door.workers) == ["worker-1"]             # the refused spawn used no id
