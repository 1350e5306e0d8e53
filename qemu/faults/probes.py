"""What a fault run measures in the guest from outside its network: the serial console, which no
network fault touches, answers every probe, and the event pump's tick is read off the watch log.

Why the watch log: ``/proc/ingest/watch`` (SPEC §12) gets one line per ``watch_interval_ms`` from the
system tick, stamped with the tick's own uptime, and a tick that falls behind writes one late line
instead of queueing (nine_door/server.py ``_maybe_watch``). So the gap between two consecutive lines is
the longest the pump went without a tick across that boundary, to within one interval: no new guest
exposure is needed. Only the newest 64 lines are kept, so the meter samples often and counts a gap only
between lines it knows are consecutive (both seen in one snapshot, or snapshots that overlap).
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

WATCH_LINE = re.compile(r"watch ts_ms=(\d+) ")
NET_LINE = re.compile(r"net link_up=(true|false) rx_frames=(\d+) tx_frames=(\d+) tx_drops=(\d+)")


def watch_stamps(lines: list[str]) -> list[int]:
    """The ``ts_ms`` of every watch line in console output (other lines, e.g. audit, are skipped)."""
    return [int(m.group(1)) for line in lines for m in [WATCH_LINE.search(line)] if m]


@dataclass
class TickGapMeter:
    """Largest gap between consecutive watch lines over the snapshots fed to it."""

    interval_ms: int
    max_gap_ms: int = 0
    lines: int = 0
    blind_spots: int = 0            # snapshots that did not overlap the previous one
    _last: int | None = field(default=None, repr=False)

    def baseline(self, stamps: list[int]) -> None:
        """Start measuring after the newest of ``stamps`` (lines older than the run are not its gaps)."""
        self._last = max(stamps) if stamps else None

    def feed(self, stamps: list[int]) -> None:
        fresh = sorted(set(stamps))
        if not fresh:
            return
        if self._last is not None:
            if fresh[0] > self._last:        # the ring moved past what we saw: do not invent a gap
                self.blind_spots += 1
                self._last = None
            else:
                fresh = [self._last] + [s for s in fresh if s > self._last]
        pairs = zip(fresh, fresh[1:])
        for a, b in pairs:
            self.max_gap_ms = max(self.max_gap_ms, b - a)
        self.lines += len(fresh) - (1 if self._last is not None else 0)
        self._last = fresh[-1]


@dataclass
class SerialProbe:
    """Serial console checks against a started ``QemuGuest`` attached as queen."""

    guest: object
    meter: TickGapMeter
    answered: int = 0
    max_latency_s: float = 0.0
    timeout_s: float = 15.0

    def cat(self, path: str) -> list[str]:
        """``cat <path>`` on the serial console; the content lines.

        Matched on the reply's own ack and ``END`` rather than the prompt: an audit line from the network
        side (a connection opened, a session attached) reprints the prompt at any moment.
        """
        child = self.guest.child
        started = time.monotonic()
        self.guest.sendline(f"cat {path}")
        child.expect(re.compile(r"(OK|ERR) CAT path=%s[^\r\n]*" % re.escape(path)), timeout=self.timeout_s)
        ack = child.after
        if not ack.startswith("OK"):
            raise AssertionError(f"serial console refused cat {path}: {ack}")
        child.expect(re.compile(r"\r*\nEND\r*\n"), timeout=self.timeout_s)
        content = child.before
        self.max_latency_s = max(self.max_latency_s, time.monotonic() - started)
        self.answered += 1
        return [line for line in content.replace("\r", "").split("\n") if line.strip()]

    def sample(self) -> None:
        """One round: read the watch log (tick gaps) — the console answering is the other half."""
        self.meter.feed(watch_stamps(self.cat("/proc/ingest/watch")))

    def start(self) -> None:
        """The first sample of a run: its lines only mark where the run's measurement begins."""
        self.meter.baseline(watch_stamps(self.cat("/proc/ingest/watch")))

    def net_counters(self) -> dict[str, int | bool]:
        for line in self.cat("/proc/boot"):
            found = NET_LINE.search(line)
            if found:
                return {"link_up": found.group(1) == "true", "rx_frames": int(found.group(2)),
                        "tx_frames": int(found.group(3)), "tx_drops": int(found.group(4))}
        raise AssertionError("no net line in /proc/boot")
