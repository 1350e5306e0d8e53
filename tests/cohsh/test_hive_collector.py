"""The hive's collector against the host run mode, tick by tick (issue 21: "read what changed").

The collector is driven by hand (``tick()``, no thread) so each test sees exactly what one tick read:
the worker set from the queen log and the listing, the ring slice bounded by ``ring_budget``, and the
queen log read incrementally — including after the 1 MiB log has started dropping its oldest lines.
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from cohsh.hive.collector import Collector
from cohsh.pool import Pool, PoolPolicy

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def system():
    from root_task.host import start_in_process

    system = start_in_process(str(REPO / "configs" / "root_task.toml"))
    yield system
    system.stop()


def pools(system):
    made: list[Pool] = []

    def make(control: int) -> Pool:
        pool = Pool("127.0.0.1", system.ninep_port, secret="bootstrap", env={},
                    policy=PoolPolicy(control=control, telemetry=1))
        made.append(pool)
        return pool

    return make, made


def last_delta(collector: Collector) -> dict:
    import json

    return json.loads(collector.hub.deltas[-1][1])


def test_spawn_beats_and_kill_tick_by_tick(system):
    make, made = pools(system)
    collector = Collector(make)
    ctl = make(1)
    try:
        collector.tick()
        assert collector.workers == {}
        ctl.write("/queen/ctl", '{"spawn":"heartbeat","ticks":1000}\n')
        collector.tick()
        delta = last_delta(collector)
        assert [w["id"] for w in delta["workers"]] == ["worker-1"]
        assert delta["workers"][0]["kind"] == "heartbeat" and delta["workers"][0]["group"] == "13"  # §8
        assert "spawned worker-1 ticks=1000 ttl=300 ops=10000" in delta["log"]
        deadline = time.monotonic() + 5
        while collector.workers["worker-1"].beats < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
            collector.tick()
        view = collector.workers["worker-1"]
        assert view.beats >= 2 and view.records == view.beats
        assert view.last[-1] .endswith(f'kind=heartbeat payload="heartbeat {view.beats}"')
        ctl.write("/queen/ctl", '{"kill":"worker-1"}\n')
        collector.tick()
        delta = last_delta(collector)
        assert delta["removed"] == ["worker-1"] and "worker-1" not in collector.workers
        assert delta["log"][-2:] == ["killed worker-1", "revoked worker-1: killed by queen"]
    finally:
        ctl.close()
        collector.stop()


def test_ring_reads_per_tick_are_bounded_by_the_budget(system):
    make, _ = pools(system)
    collector = Collector(make, ring_budget=3)
    ctl = make(1)
    try:
        ctl.write("/queen/ctl", '{"spawn":"heartbeat","ticks":1000}\n' * 8)
        collector.tick()
        assert len(collector.workers) == 8
        assert sum(w.visited for w in collector.workers.values()) == 3
        collector.tick()
        assert sum(w.visited for w in collector.workers.values()) == 6
        collector.tick()
        assert all(w.visited for w in collector.workers.values())
        held = sum(len(h.fids) for h in collector._held[1:])
        assert held == 8                     # one open ring fid per worker, kept between ticks
    finally:
        ctl.close()
        collector.stop()


def test_queen_log_is_read_incrementally_even_after_it_wraps(system):
    make, _ = pools(system)
    collector = Collector(make)
    writer = make(1)
    try:
        collector.tick()
        seen = list(collector.log_lines)
        assert seen[0] == "Cohesix boot: root-task online"
        writer.append_many("/log/queen.log", [f"hello-{i}" for i in range(3)])
        collector.tick()
        assert last_delta(collector)["log"] == ["hello-0", "hello-1", "hello-2"]
        collector.tick()
        assert "log" not in last_delta(collector)          # nothing new, nothing sent
        # Push the log past its 1 MiB limit: the server now drops whole oldest lines on every append,
        # so offsets shift under the reader; it must resynchronise on its last line, not repeat or skip.
        filler = "x" * 100
        writer.append_many("/log/queen.log", [f"fill-{i} {filler}" for i in range(12000)])
        collector.tick()
        tail = last_delta(collector)["log"]
        assert tail[-1] == f"fill-11999 {filler}" and len(tail) <= 200
        for n in range(3):
            writer.append_many("/log/queen.log", [f"marker-{n}"])
            collector.tick()
            assert last_delta(collector)["log"] == [f"marker-{n}"]
        assert list(collector.log_lines)[-3:] == ["marker-0", "marker-1", "marker-2"]
    finally:
        writer.close()
        collector.stop()
