"""Brute-force storm: many bad attaches from several TCP connections (SPEC §10.7, §2.4).

All loopback connections share the origin ``127.0.0.1``, so lockout necessarily also refuses a
concurrent *good* TCP attach; what we assert is that the lockout is per origin (the serial origin is
unaffected) and that the event loop keeps serving its timer during the storm (max tick gap recorded).
"""
from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass

from root_task.console.session import ConsoleSession

from .fakes import FakeDoor, make_ctx
from .tcp_harness import Harness


@dataclass
class StepClock:
    """Epoch ms that advances 100 ms per reading, so back-off windows pass without sleeping."""

    ms: int = 1_700_000_000_000

    def now_ms(self) -> int:
        self.ms += 100
        return self.ms

    def monotonic(self) -> float:
        return time.monotonic()


def test_storm_locks_out_origin_and_loop_keeps_ticking(capsys):
    clock = StepClock()
    h = Harness(make_ctx(FakeDoor(), clock, max_sessions=16))
    ticks: list[float] = []
    h.call(lambda: h.pump.call_every(0.005, lambda: ticks.append(time.monotonic())))
    results: Counter = Counter()
    lock = threading.Lock()
    ready = threading.Barrier(8)   # all authenticate before the storm (AUTH is refused once locked)

    def attacker():
        p = h.connect()
        p.send("AUTH changeme")
        assert p.recv() == "OK AUTH"
        ready.wait(10)
        for _ in range(150):
            p.send("ATTACH worker cohesix-ticket-00.00")
            line = p.recv()
            with lock:
                results[line.split(" detail=")[1].split(" ")[0]] += 1
        p.send("quit")
        p.close()

    try:
        threads = [threading.Thread(target=attacker) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        # a concurrent well-formed attach from the same origin is refused while locked out
        good = h.connect()
        good.send("AUTH changeme")
        auth = good.recv()
        assert auth.startswith("ERR AUTH reason=rate-limited delay_ms=")
        # … but lockout is per origin: the serial console still attaches
        serial = ConsoleSession(h.ctx, transport="serial", origin_key="serial", origin_label="serial",
                                conn_id="serial")
        assert h.call(lambda: serial.handle_line("attach queen").lines) == ("OK ATTACH role=queen",)
        gaps = [b - a for a, b in zip(ticks, ticks[1:])]
    finally:
        h.stop()
    assert sum(results.values()) == 8 * 150
    assert results["denied"] >= 3 and results["rate-limited"] > 0
    assert set(results) <= {"denied", "throttled", "rate-limited"}
    assert len(gaps) >= 3
    max_gap = max(gaps)
    with capsys.disabled():
        print(f"\n[bruteforce] replies={dict(results)} ticks={len(ticks)} max_tick_gap_ms={max_gap * 1000:.1f}")
    assert max_gap < 1.0   # generous sanity bound only, not a performance assertion
