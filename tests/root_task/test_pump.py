"""Event pump behaviour: timer ordering, periodic timers, source order, cross-thread calls."""
from __future__ import annotations

import socket
import threading

import pytest

from root_task.pump import EventPump


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_timers_fire_in_deadline_order_and_cancel_is_honoured():
    clock = FakeClock()
    pump = EventPump(clock)
    fired: list[str] = []
    pump.call_later(0.3, lambda: fired.append("c"))
    pump.call_later(0.1, lambda: fired.append("a"))
    cancelled = pump.call_later(0.2, lambda: fired.append("b"))
    cancelled.cancel()
    clock.now += 1.0
    pump.run_once(max_wait=0)
    assert fired == ["a", "c"]


def test_periodic_timer_skips_missed_periods_instead_of_bursting():
    clock = FakeClock()
    pump = EventPump(clock)
    count = []
    pump.call_every(0.01, lambda: count.append(clock.now))
    clock.now += 0.055  # five periods elapsed during a stall
    pump.run_once(max_wait=0)
    assert len(count) == 1
    clock.now += 0.01
    pump.run_once(max_wait=0)
    assert len(count) == 2


def test_sources_are_served_in_spec_order():
    pump = EventPump()
    order: list[str] = []
    pairs = {name: socket.socketpair() for name in ("ipc", "net", "serial")}
    for name, (a, b) in pairs.items():
        pump.add_reader(a, lambda n=name, s=a: (order.append(n), s.recv(10)), source=name)
        b.send(b"x")
    pump.run_once(max_wait=1.0)
    assert order == ["serial", "net", "ipc"]
    for a, b in pairs.values():
        a.close()
        b.close()


def test_unknown_source_is_rejected():
    pump = EventPump()
    a, b = socket.socketpair()
    with pytest.raises(ValueError):
        pump.add_reader(a, lambda: None, source="disk")
    a.close()
    b.close()


def test_call_soon_threadsafe_wakes_a_blocked_loop():
    pump = EventPump()
    got = threading.Event()
    pump.call_later(5.0, pump.stop)  # safety net: the test fails by timeout, not by hanging

    def other_thread() -> None:
        pump.call_soon_threadsafe(lambda: (got.set(), pump.stop()))

    threading.Timer(0.05, other_thread).start()
    pump.run()
    assert got.is_set()


def test_removing_reader_and_writer_unregisters_the_fd():
    pump = EventPump()
    a, b = socket.socketpair()
    pump.add_reader(a, lambda: None)
    pump.add_writer(a, lambda: None)
    pump.remove_reader(a)
    pump.remove_writer(a)
    assert a.fileno() not in pump._regs
    a.close()
    b.close()
