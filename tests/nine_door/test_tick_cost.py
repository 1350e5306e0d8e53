"""The system tick costs nothing per idle worker (issue 15: no scans over all workers on a hot path):
TTL deadlines wait in a heap and wrap lines in a set, so 1 000 idle workers are not visited each tick,
while a due TTL still revokes within one tick."""
from __future__ import annotations

try:
    from .test_server_harness import log_text, make_door, queen
except ImportError:  # pragma: no cover
    from test_server_harness import log_text, make_door, queen


def test_a_tick_visits_no_idle_worker_and_a_due_ttl_still_revokes(monkeypatch):
    door, clock, _ = make_door({"system.max_workers": 1024})
    q = queen(door)
    for _ in range(1000):
        q.append("/queen/ctl", b'{"spawn":"heartbeat","ticks":10,"budget":{"ttl_s":600}}')
    q.append("/queen/ctl", b'{"spawn":"heartbeat","ticks":10,"budget":{"ttl_s":2}}')
    visited = []
    real = door._earliest_deadline
    monkeypatch.setattr(door, "_earliest_deadline", lambda w, s=None: visited.append(w.worker_id) or real(w, s))
    door.on_tick()
    assert visited == [] and len(door.workers) == 1001
    clock.advance(2.0)
    door.on_tick()
    assert visited == ["worker-1001"] and "worker-1001" not in door.workers
    assert log_text(door).endswith("revoked worker-1001: ticket ttl expired")
