"""The root task's single cooperative event loop (SPEC §2.4).

Why one loop: every source (timer, serial, network, in-VM channels) is served from one thread, so
NineDoor's tables need no locks and a hostile client can only ever cost one bounded callback per
iteration. Within an iteration sources are served in the SPEC order timer → serial → net → ipc → tx,
and the loop blocks in ``select`` until the next timer deadline when idle (no busy-waiting).

Why ``defer``: a source that still has work after its 64 items (SPEC §2.4) parks a callback for the next
iteration instead of finishing in a loop, so every other source runs between its slices; while anything
is deferred the next ``select`` does not block.

Why ``select.epoll`` directly and not ``selectors``: one request/reply round trip on the 9P listener is
one loop iteration, and ``selectors`` spent about 2 µs of it turning the poll result into key objects
(measured, docs/benchmarks.md "Where a round trip's time goes"). The registration table here already
maps each fd to its callbacks, so the loop reads epoll's ``(fd, mask)`` pairs itself.

Why every callback is guarded: a callback is one connection's or one timer's work. An exception from it
is reported through ``on_error`` (the root task prints it on the serial console) and the loop goes on;
front ends close the connection concerned themselves, so nothing one client sends can end the loop.
"""
from __future__ import annotations

import collections
import heapq
import itertools
import select
import socket
import sys
import time
from _thread import allocate_lock  # threading.Lock, without importing threading at boot
from collections.abc import Callable
from dataclasses import dataclass, field

SOURCE_ORDER = ("serial", "net", "ipc")
_EPOLLIN, _EPOLLOUT = select.EPOLLIN, select.EPOLLOUT
# As selectors does: an error or hang-up (reported whatever was asked) wakes both callbacks, so the
# reader sees EOF / the error from its own recv and the writer from its send.
_READ_BITS = ~_EPOLLOUT
_WRITE_BITS = ~_EPOLLIN
_NOTHING_DEFERRED: dict[str, tuple] = {name: () for name in SOURCE_ORDER}


@dataclass(order=True)
class TimerHandle:
    """A scheduled callback; ``cancel()`` makes the loop skip it."""

    deadline: float
    seq: int
    callback: Callable[[], None] = field(compare=False)
    period: float | None = field(default=None, compare=False)
    cancelled: bool = field(default=False, compare=False)

    def cancel(self) -> None:
        self.cancelled = True


@dataclass
class _Registration:
    reader: Callable[[], None] | None = None
    source: str = "net"
    writer: Callable[[], None] | None = None
    mask: int = 0                      # what epoll currently watches for this fd (0: not registered)


class EventPump:
    """Selectors-based loop with ordered sources, timers and per-source counters."""

    BATCH = 64  # work items a callback may handle per iteration (SPEC §2.4)

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 on_error: Callable[[str, BaseException], None] | None = None) -> None:
        self._clock = clock
        self.on_error = on_error if on_error is not None else _print_error
        self.callback_errors = 0
        self._deferred: dict[str, list[Callable[[], None]]] = {name: [] for name in SOURCE_ORDER}
        self._any_deferred = False
        self._epoll = select.epoll()
        self._regs: dict[int, _Registration] = {}
        self._fileobjs: dict[int, object] = {}
        self._timers: list[TimerHandle] = []
        self._seq = itertools.count()
        self._running = False
        self.iterations = 0
        self.counters: dict[str, dict[str, int]] = {
            name: {"dropped_input_bytes": 0, "deferred_frames": 0} for name in (*SOURCE_ORDER, "tx")
        }
        # Cross-thread calls (host mode tests, cohsh's mock transport) go through a queue plus a
        # self-pipe so the loop wakes from select() immediately.
        self._soon: collections.deque[Callable[[], None]] = collections.deque()
        self._soon_lock = allocate_lock()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self.add_reader(self._wake_r, self._drain_soon, source="ipc")

    # -- registration -------------------------------------------------------------------------
    def add_reader(self, fileobj, callback: Callable[[], None], source: str = "net") -> None:
        if source not in SOURCE_ORDER:
            raise ValueError(f"unknown source {source!r}")
        reg = self._reg_for(fileobj)
        reg.reader, reg.source = callback, source
        self._sync(fileobj)

    def remove_reader(self, fileobj) -> None:
        fd = _fd(fileobj)
        if fd in self._regs:
            self._regs[fd].reader = None
            self._sync(fileobj)

    def add_writer(self, fileobj, callback: Callable[[], None]) -> None:
        self._reg_for(fileobj).writer = callback
        self._sync(fileobj)

    def remove_writer(self, fileobj) -> None:
        fd = _fd(fileobj)
        if fd in self._regs:
            self._regs[fd].writer = None
            self._sync(fileobj)

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> TimerHandle:
        handle = TimerHandle(self._clock() + max(0.0, delay_s), next(self._seq), callback)
        heapq.heappush(self._timers, handle)
        return handle

    def call_every(self, period_s: float, callback: Callable[[], None]) -> TimerHandle:
        """Periodic timer; deadlines advance by whole periods so ticks do not drift."""
        handle = TimerHandle(self._clock() + period_s, next(self._seq), callback, period=period_s)
        heapq.heappush(self._timers, handle)
        return handle

    def defer(self, callback: Callable[[], None], source: str = "net") -> None:
        """Run ``callback`` once in ``source``'s slot of the next iteration (before that source's
        ready readers); loop thread only. Counted as ``deferred_frames`` of ``source``."""
        self._deferred[source].append(callback)
        self._any_deferred = True
        self.counters[source]["deferred_frames"] += 1

    def call_soon_threadsafe(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the loop thread at the next iteration; safe from any thread."""
        with self._soon_lock:
            self._soon.append(callback)
        try:
            self._wake_w.send(b"\0")
        except (BlockingIOError, OSError):
            pass  # a wakeup is already pending

    def _drain_soon(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass
        with self._soon_lock:
            pending, self._soon = self._soon, collections.deque()
        for callback in pending:
            self._run(callback, "ipc")

    def close(self) -> None:
        self.remove_reader(self._wake_r)
        self._wake_r.close()
        self._wake_w.close()
        self._epoll.close()

    # -- running ------------------------------------------------------------------------------
    def stop(self) -> None:
        self._running = False

    def run(self) -> None:
        self._running = True
        while self._running:
            self.run_once()

    def run_once(self, max_wait: float | None = None) -> None:
        """One iteration: wait for readiness or the next deadline, then serve sources in order."""
        any_deferred = self._any_deferred
        timeout = 0.0 if any_deferred else self._time_to_next_deadline()
        if max_wait is not None:
            timeout = max_wait if timeout is None else min(timeout, max_wait)
        events = self._epoll.poll(-1.0 if timeout is None else timeout)
        self.iterations += 1
        deferred = _NOTHING_DEFERRED
        if any_deferred:
            deferred = self._deferred
            self._deferred = {name: [] for name in SOURCE_ORDER}
            self._any_deferred = False
        timers = self._timers
        if timers and timers[0].deadline <= self._clock():
            self._fire_timers()
        if not any_deferred and len(events) <= 1:
            # The usual iteration (one connection's request, or a timer): nothing to order.
            if events:
                fd, mask = events[0]
                reg = self._regs.get(fd)
                if reg is not None:
                    reader = reg.reader if mask & _READ_BITS else None
                    writer = reg.writer if mask & _WRITE_BITS else None
                    if reader is not None:
                        self._run(reader, reg.source)
                    if writer is not None:
                        self._run(writer, "tx")
            return
        ready_read: dict[str, list[Callable[[], None]]] = {name: [] for name in SOURCE_ORDER}
        ready_write: list[Callable[[], None]] = []
        regs = self._regs
        for fd, mask in events:
            reg = regs.get(fd)
            if reg is None:
                continue
            if mask & _READ_BITS and reg.reader is not None:
                ready_read[reg.source].append(reg.reader)
            if mask & _WRITE_BITS and reg.writer is not None:
                ready_write.append(reg.writer)
        run = self._run
        for source in SOURCE_ORDER:
            for callback in deferred[source]:
                run(callback, source)
            for callback in ready_read[source]:
                run(callback, source)
        for callback in ready_write:
            run(callback, "tx")

    def _run(self, callback: Callable[[], None], source: str) -> None:
        """One callback; an exception is reported and counted, never propagated (see module doc)."""
        try:
            callback()
        except Exception as exc:  # noqa: BLE001 - one failing callback must not end the loop
            self.callback_errors += 1
            try:
                self.on_error(source, exc)
            except Exception:  # noqa: BLE001 - nor may a failing reporter
                pass

    # -- internals ----------------------------------------------------------------------------
    def _time_to_next_deadline(self) -> float | None:
        while self._timers and self._timers[0].cancelled:
            heapq.heappop(self._timers)
        if not self._timers:
            return None
        return max(0.0, self._timers[0].deadline - self._clock())

    def _fire_timers(self) -> None:
        now = self._clock()
        while self._timers and self._timers[0].deadline <= now:
            handle = heapq.heappop(self._timers)
            if handle.cancelled:
                continue
            if handle.period is not None:
                # Skip whole missed periods rather than firing a burst after a stall.
                missed = int((now - handle.deadline) // handle.period) + 1
                handle.deadline += missed * handle.period
                heapq.heappush(self._timers, handle)
            self._run(handle.callback, "timer")

    def _reg_for(self, fileobj) -> _Registration:
        fd = _fd(fileobj)
        self._fileobjs[fd] = fileobj
        return self._regs.setdefault(fd, _Registration())

    def _sync(self, fileobj) -> None:
        fd = _fd(fileobj)
        reg = self._regs[fd]
        mask = (_EPOLLIN if reg.reader else 0) | (_EPOLLOUT if reg.writer else 0)
        if mask == 0:
            if reg.mask:
                try:
                    self._epoll.unregister(fd)
                except OSError:
                    pass                  # already closed by its owner: the kernel dropped it
            del self._regs[fd]
            del self._fileobjs[fd]
        elif not reg.mask:
            self._epoll.register(fd, mask)
        elif reg.mask != mask:
            self._epoll.modify(fd, mask)
        reg.mask = mask


def _fd(fileobj) -> int:
    return fileobj if isinstance(fileobj, int) else fileobj.fileno()



def _print_error(source: str, exc: BaseException) -> None:
    """Default ``on_error``: one line on stderr (the host's terminal, the VM's serial console)."""
    print(f"event-pump: {source} callback failed: {type(exc).__name__}: {exc}", file=sys.stderr)
