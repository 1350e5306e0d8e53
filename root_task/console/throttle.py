"""Authentication throttling per origin (SPEC §10.7), shared by the consoles and the 9P TCP listener.

Why time is an argument: the rules are pure functions of failure times, so callers pass ``now_ms``
(one millisecond clock, used consistently by every caller) and tests drive time explicitly — no sleeping, no timing flakes.

Rules:
- back-off: after the n-th consecutive failure, attempts within ``250 × 2^(min(n,8) − 1)`` ms of that
  failure are refused ``throttled`` (max 32 000 ms);
- lockout: 3 failures within any 60 000 ms window lock the origin for 90 000 ms from the third failure
  (refused ``rate-limited``); lockout is checked before back-off;
- refusals are not failures; a success resets the consecutive count and the window.

Usage::

    throttle = Throttle()
    verdict = throttle.check("127.0.0.1", now_ms)      # before validating credentials
    if not verdict.ok: refuse(verdict.detail, verdict.delay_ms)
    ... throttle.record_failure(origin, now_ms) / throttle.record_success(origin)

Memory is bounded: at most ``max_origins`` origins are tracked; when full, the origin whose last
failure is oldest is forgotten first.
"""
from __future__ import annotations

import math
from _thread import allocate_lock  # threading.Lock, without importing threading at boot
from collections import deque
from dataclasses import dataclass, field

BASE_DELAY_MS = 250
MAX_EXPONENT = 8              # 250 × 2^7 = 32 000 ms
WINDOW_MS = 60_000
LOCKOUT_FAILURES = 3
LOCKOUT_MS = 90_000

THROTTLED = "throttled"
RATE_LIMITED = "rate-limited"


def backoff_ms(n: int) -> int:
    """Back-off after the n-th consecutive failure (n ≥ 1)."""
    if n < 1:
        return 0
    return BASE_DELAY_MS * 2 ** (min(n, MAX_EXPONENT) - 1)


@dataclass(frozen=True)
class Verdict:
    """Outcome of :meth:`Throttle.check`: ``ok``, or a refusal ``detail`` with ``delay_ms`` remaining."""

    ok: bool
    detail: str = ""
    delay_ms: int = 0

    def __iter__(self):
        """Unpacks as ``ok, detail, delay_ms`` (NineDoor's ``AttachThrottle`` protocol)."""
        return iter((self.ok, self.detail, self.delay_ms))


ALLOW = Verdict(True)


@dataclass
class _OriginState:
    consecutive: int = 0
    last_failure_ms: float = 0.0
    window: deque = field(default_factory=deque)   # failure times within WINDOW_MS
    locked_until_ms: float | None = None


def _remaining(until_ms: float, now_ms: float) -> int:
    return max(1, math.ceil(until_ms - now_ms))




class Throttle:
    """Per-origin back-off and lockout state. Thread-safe (the 9P listener may share it)."""

    def __init__(self, max_origins: int = 4096) -> None:
        self._states: dict[str, _OriginState] = {}
        self._max_origins = max_origins
        self._lock = allocate_lock()

    def check(self, origin: str, now_ms: float) -> Verdict:
        """Whether an attach attempt from ``origin`` may proceed now (lockout first, then back-off)."""
        with self._lock:
            state = self._states.get(origin)
            if state is None:
                return ALLOW
            locked = self._lockout(state, now_ms)
            if locked is not None:
                return locked
            if state.consecutive:
                until = state.last_failure_ms + backoff_ms(state.consecutive)
                if now_ms < until:
                    return Verdict(False, THROTTLED, _remaining(until, now_ms))
            return ALLOW

    def check_lockout(self, origin: str, now_ms: float) -> Verdict:
        """Lockout only (TCP ``AUTH`` is refused ``rate-limited`` during lockout, not during back-off)."""
        with self._lock:
            state = self._states.get(origin)
            verdict = self._lockout(state, now_ms) if state is not None else None
            return verdict or ALLOW

    def record_failure(self, origin: str, now_ms: float) -> None:
        with self._lock:
            state = self._states.get(origin)
            if state is None:
                self._evict_if_full()
                state = self._states[origin] = _OriginState()
            state.consecutive += 1
            state.last_failure_ms = now_ms
            while state.window and now_ms - state.window[0] >= WINDOW_MS:
                state.window.popleft()
            state.window.append(now_ms)
            if len(state.window) >= LOCKOUT_FAILURES:
                state.locked_until_ms = now_ms + LOCKOUT_MS
                state.window.clear()

    def record_success(self, origin: str) -> None:
        """Reset the consecutive count and the window (an active lockout is not lifted early)."""
        with self._lock:
            state = self._states.get(origin)
            if state is None:
                return
            state.consecutive = 0
            state.window.clear()
            if state.locked_until_ms is None:
                del self._states[origin]

    def failures(self, origin: str) -> int:
        """Consecutive failures recorded for ``origin`` (for diagnostics and tests)."""
        with self._lock:
            state = self._states.get(origin)
            return state.consecutive if state else 0

    # -- internals ---------------------------------------------------------------------------
    @staticmethod
    def _lockout(state: _OriginState, now_ms: float) -> Verdict | None:
        if state.locked_until_ms is None:
            return None
        if now_ms < state.locked_until_ms:
            return Verdict(False, RATE_LIMITED, _remaining(state.locked_until_ms, now_ms))
        state.locked_until_ms = None
        return None

    def _evict_if_full(self) -> None:
        if len(self._states) < self._max_origins:
            return
        oldest = min(self._states, key=lambda o: self._states[o].last_failure_ms)
        del self._states[oldest]


AttachThrottle = Throttle  # the name root_task.boot and NineDoor's protocol use
