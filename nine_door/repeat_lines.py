"""Coalescing of repeated audit lines per origin, so a flood cannot rotate ``/log/queen.log``.

Why: ``/log/queen.log`` is a bounded ring (1 MiB); SPEC §10.7 asks for one ``console throttled …`` line
per refused attempt, and an unauthenticated client can make thousands of attempts a second (14 500 in
2.7 s evicted every boot and spawn line). Per origin, the first refusal of an interval is logged as is;
later ones within ``interval_s`` are counted, and one summary line — the latest refusal's fields plus
`` repeated=<n>`` (n refusals since that origin's previous line) — is emitted when the interval ends (from
the owner's tick, or at the next refusal after it). So an origin costs at most about two lines per
interval whatever its rate (docs/spec-decisions.md).

Memory is bounded: at most ``max_keys`` origins are tracked; the stalest is evicted first, and its
pending count is emitted then rather than lost.
"""
from __future__ import annotations

from dataclasses import dataclass

COALESCE_INTERVAL_S = 10.0   # the same window as §5.5's ring-wrap lines


@dataclass
class _Origin:
    last_emit_s: float
    suppressed: int = 0
    last_line: str = ""


class RepeatCoalescer:
    """``offer`` a line per event, ``due`` on a timer; both return the lines to log now."""

    def __init__(self, interval_s: float = COALESCE_INTERVAL_S, max_keys: int = 4096) -> None:
        self.interval_s = interval_s
        self.max_keys = max_keys
        self._origins: dict[str, _Origin] = {}
        self._pending = 0            # origins with suppressed > 0 (due() is free while 0)

    @property
    def pending(self) -> int:
        return self._pending

    def offer(self, key: str, line: str, now_s: float) -> list[str]:
        """One event for ``key``: the lines to log now (possibly none)."""
        state = self._origins.get(key)
        if state is not None and now_s - state.last_emit_s < self.interval_s:
            if not state.suppressed:
                self._pending += 1
            state.suppressed += 1
            state.last_line = line
            return []
        out: list[str] = []
        if state is not None:
            if state.suppressed:
                out.append(self._summary(state))
            state.last_emit_s = now_s
        else:
            if len(self._origins) >= self.max_keys:
                out.extend(self._evict_stalest())
            self._origins[key] = _Origin(now_s)
        out.append(line)
        return out

    def due(self, now_s: float) -> list[str]:
        """Summary lines for origins whose interval ended; forgets origins quiet for a whole interval."""
        out: list[str] = []
        for key, state in list(self._origins.items()):
            if now_s - state.last_emit_s < self.interval_s:
                continue
            if state.suppressed:
                out.append(self._summary(state))
                state.last_emit_s = now_s
            else:
                del self._origins[key]
        return out

    def _summary(self, state: _Origin) -> str:
        line = f"{state.last_line} repeated={state.suppressed}"
        state.suppressed = 0
        state.last_line = ""
        self._pending -= 1
        return line

    def _evict_stalest(self) -> list[str]:
        key = min(self._origins, key=lambda k: self._origins[k].last_emit_s)
        state = self._origins.pop(key)
        return [self._summary(state)] if state.suppressed else []
