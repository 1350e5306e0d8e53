"""The real clock NineDoor and the root task run on.

Why a module of its own: the clock is the one piece of ambient state every time rule (ticket TTLs, budget
deadlines, throttle windows, handshake timeouts) depends on; tests replace it with a fake that has the same
two methods, and importing it must not pull in the server.
"""
from __future__ import annotations

import time


class SystemClock:
    """Real time: Unix ms for ticket/TTL arithmetic, monotonic seconds for rate limits."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def monotonic(self) -> float:
        return time.monotonic()
