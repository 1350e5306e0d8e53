"""§10.7 throttling, with time driven explicitly."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from root_task.console.throttle import Throttle, Verdict, backoff_ms

O = "127.0.0.1"


def test_backoff_sequence_and_cap():
    assert [backoff_ms(n) for n in range(1, 11)] == \
        [250, 500, 1000, 2000, 4000, 8000, 16000, 32000, 32000, 32000]
    assert backoff_ms(0) == 0


def test_fresh_origin_allowed():
    assert Throttle().check(O, 0) == Verdict(True)


def test_first_failure_then_immediate_retry_throttled_250():
    t = Throttle()
    t.record_failure(O, 1000)
    assert t.check(O, 1000) == Verdict(False, "throttled", 250)
    assert t.check(O, 1100) == Verdict(False, "throttled", 150)
    assert t.check(O, 1250).ok


def test_delay_rounded_up():
    t = Throttle()
    t.record_failure(O, 1000)
    assert t.check(O, 1249.2).delay_ms == 1


def test_exponential_backoff_spaced_failures_no_lockout():
    t = Throttle()
    now = 0
    # failures spaced > 60 s apart never reach 3 in a window, so only back-off applies
    for n in range(1, 10):
        t.record_failure(O, now)
        v = t.check(O, now)
        assert v == Verdict(False, "throttled", backoff_ms(n))
        now += 61_000
        assert t.check(O, now).ok


def test_three_failures_in_60s_lock_out_90s():
    t = Throttle()
    t.record_failure(O, 0)
    t.record_failure(O, 1_000)
    t.record_failure(O, 59_999)
    v = t.check(O, 60_000)
    assert v == Verdict(False, "rate-limited", 89_999)
    assert t.check_lockout(O, 149_998) == Verdict(False, "rate-limited", 1)
    assert t.check(O, 149_999).ok      # lockout ended; back-off of 1000 ms long expired


def test_three_failures_spread_over_more_than_60s_do_not_lock():
    t = Throttle()
    for at in (0, 30_000, 60_000):
        t.record_failure(O, at)
    assert t.check(O, 60_000 + 1000).ok  # back-off for n=3 is 1000 ms; window held only 2


def test_lockout_checked_before_backoff():
    t = Throttle()
    for at in (0, 300, 900):
        t.record_failure(O, at)
    assert t.check(O, 901).detail == "rate-limited"


def test_check_lockout_ignores_backoff():
    t = Throttle()
    t.record_failure(O, 0)
    assert t.check_lockout(O, 1).ok
    assert not t.check(O, 1).ok


def test_success_resets_count_and_window():
    t = Throttle()
    t.record_failure(O, 0)
    t.record_failure(O, 600)
    t.record_success(O)
    assert t.failures(O) == 0
    t.record_failure(O, 2_000)   # would be the 3rd in the window without the reset
    assert t.check(O, 2_000) == Verdict(False, "throttled", 250)


def test_origins_are_independent():
    t = Throttle()
    for at in (0, 1, 2):
        t.record_failure("10.0.0.1", at)
    assert t.check("10.0.0.1", 3).detail == "rate-limited"
    assert t.check("10.0.0.2", 3).ok
    assert t.check("serial", 3).ok


def test_unpacks_like_ninedoor_protocol():
    t = Throttle()
    t.record_failure(O, 0)
    ok, detail, delay = t.check(O, 0)
    assert (ok, detail, delay) == (False, "throttled", 250)


def test_bounded_origins():
    t = Throttle(max_origins=3)
    for i in range(10):
        t.record_failure(f"o{i}", i)
    assert sum(t.failures(f"o{i}") for i in range(10)) == 3
    assert t.failures("o9") == 1


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5_000), st.booleans()), max_size=40))
def test_property_matches_reference_model(steps):
    """Random attempt sequences agree with a direct transcription of §10.7."""
    t = Throttle()
    now = 0
    failures: list[int] = []      # reference: times of consecutive failures since last success
    window: list[int] = []
    locked_until = None
    for gap, succeed in steps:
        now += gap
        # reference verdict
        if locked_until is not None and now < locked_until:
            expect = ("rate-limited", locked_until - now)
        elif failures and now < failures[-1] + backoff_ms(len(failures)):
            expect = ("throttled", failures[-1] + backoff_ms(len(failures)) - now)
        else:
            expect = None
        v = t.check(O, now)
        if expect is None:
            assert v.ok
            if succeed:
                t.record_success(O)
                failures, window = [], []
            else:
                t.record_failure(O, now)
                failures.append(now)
                window = [w for w in window if now - w < 60_000] + [now]
                if len(window) >= 3:
                    locked_until, window = now + 90_000, []
        else:
            assert (v.ok, v.detail, v.delay_ms) == (False, *expect)
            assert 0 < v.delay_ms <= 90_000
