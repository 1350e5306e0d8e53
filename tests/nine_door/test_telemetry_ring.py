"""Telemetry rings and cursor files (SPEC §7.1–§7.4, §16 C12), against a real NineDoor session.

Each refusal is checked with the input named in issue 13 (text cursor, ``next + 1``, a regressing value,
a record larger than the ring, non-UTF-8 text): the SPEC errno, the log line where §5.5 has one, and an
unchanged ring.
"""
from __future__ import annotations

import pytest

from nine_door import errors as E
from nine_door import messages as m
from nine_door.telemetry import IngestStats, parse_cursor_value

try:
    from .test_namespace import spawn_worker
    from .test_server_harness import Raw, log_text, make_door, queen
except ImportError:  # pragma: no cover
    from test_namespace import spawn_worker
    from test_server_harness import Raw, log_text, make_door, queen

V12 = {"root_task.schema": "1.2"}


def ring_door(capacity: int = 64, short_writes: bool = True, schema: str = "1.2"):
    door, clock, launcher = make_door({"root_task.schema": schema,
                                       "telemetry.ring_bytes_per_worker": capacity,
                                       "secure9p.short_write_policy.enable": short_writes})
    q = queen(door)
    worker_id, w = spawn_worker(door, q, launcher)
    return door, q, w, worker_id


def state(door, worker_id):
    ring = door.workers[worker_id].ring
    return (list(ring.records), ring.first_rseq, ring.next_rseq, ring.cursor, ring.used)


def cursor(q: Raw, worker_id: str) -> str:
    return q.cat(f"/worker/{worker_id}/cursor").decode()


def set_cursor(q: Raw, worker_id: str, data: bytes) -> int:
    return q.append(f"/worker/{worker_id}/cursor", data)


def test_records_get_rseq_and_the_cursor_file_reports_it():
    door, q, w, wid = ring_door()
    assert cursor(q, wid) == "cursor=0 oldest=1 next=1\n"
    assert w.append(f"/worker/{wid}/telemetry", b"a\nb\nc") == 5       # the fragment is completed
    assert q.cat(f"/worker/{wid}/telemetry") == b"a\nb\nc\n"
    assert cursor(q, wid) == "cursor=0 oldest=1 next=4\n"
    assert q.ls(f"/worker/{wid}") == ["cursor", "telemetry"]


def test_unarmed_ring_wraps_without_error_and_logs_the_wrap():
    door, q, w, wid = ring_door(capacity=20)
    for n in range(1, 9):
        assert w.append(f"/worker/{wid}/telemetry", f"line {n}\n".encode()) == 7
    assert cursor(q, wid) == "cursor=0 oldest=7 next=9\n"
    assert q.cat(f"/worker/{wid}/telemetry") == b"line 7\nline 8\n"
    assert door.ingest.dropped == 6 and door.ingest.backpressure == 0
    # one wrap line per ring per 10 s (§5.5): the first at once, the rest accumulated
    assert f"telemetry ring wrap worker={wid} dropped_frames=1 dropped_bytes=7 oldest=2" in log_text(door)
    door.clock.advance(10)
    door.on_tick()
    assert log_text(door).endswith(f"telemetry ring wrap worker={wid} dropped_frames=5 dropped_bytes=35 oldest=7")


def test_armed_ring_short_writes_zero_when_full_and_resumes_after_the_cursor_advances():
    door, q, w, wid = ring_door(capacity=21)
    path = f"/worker/{wid}/telemetry"
    w.append(path, b"r1\nr2\nr3\n")
    assert set_cursor(q, wid, b"1\n") == 2                                # armed at rseq 1
    assert w.append(path, b"r4\nr5\nr6\nr7\nr8\n") == 12                  # 4 of 5 fit: short on a boundary
    before = state(door, wid)
    assert w.append(path, b"r8\n") == 0                                   # full of unconsumed records
    assert state(door, wid) == before
    assert door.ingest.backpressure == 2 and door.ingest.short_zero == 1
    assert door.ingest.short_total == 2 and door.ingest.bytes_deferred == 3 + 3
    reader = q.open_path(path)                                            # an armed open starts at the cursor
    assert q.read(reader, 0, 9) == b"r1\nr2\nr3\n"
    assert set_cursor(q, wid, b"4") == 1                                  # consumed r1..r3
    assert w.append(path, b"r8\n") == 3                                   # evicts consumed r1 only
    assert cursor(q, wid) == "cursor=4 oldest=2 next=9\n"
    assert "telemetry ring wrap" not in log_text(door)                    # consumed records: no drop
    assert door.ingest.dropped == 0


def test_a_full_armed_ring_without_the_short_write_policy_answers_eagain_and_commits_nothing():
    door, q, w, wid = ring_door(capacity=9, short_writes=False)
    path = f"/worker/{wid}/telemetry"
    w.append(path, b"r1\nr2\nr3\n")
    set_cursor(q, wid, b"1")
    fid = w.open_path(path, m.O_WRONLY | m.O_APPEND)
    before = state(door, wid)
    assert w.errno(m.Twrite(w.next_tag(), fid, 0, b"r4\n")) == E.EAGAIN
    assert state(door, wid) == before and door.ingest.backpressure == 1


@pytest.mark.parametrize("data", [b"abc", b"12 ", b"-1", b"1\n\n", b"", b"\n", b"0x10", b"\xd9\xa0",
                                  b"99999999999999999999999"], ids=repr)
def test_cursor_writes_that_are_not_a_decimal_u64_are_einval_and_change_nothing(data):
    door, q, w, wid = ring_door()
    w.append(f"/worker/{wid}/telemetry", b"x\n")
    fid = q.open_path(f"/worker/{wid}/cursor", m.O_WRONLY)
    before = state(door, wid)
    assert q.errno(m.Twrite(q.next_tag(), fid, 0, data)) == E.EINVAL
    assert state(door, wid) == before


def test_cursor_beyond_next_or_regressing_is_einval_zero_is_a_no_op_and_old_values_clamp():
    door, q, w, wid = ring_door(capacity=6)
    path = f"/worker/{wid}/telemetry"
    for n in range(5):
        w.append(path, f"{n}\n".encode())                                 # rseq 1..5; 3 retained
    assert cursor(q, wid) == "cursor=0 oldest=3 next=6\n"
    fid = q.open_path(f"/worker/{wid}/cursor", m.O_WRONLY)
    assert q.errno(m.Twrite(q.next_tag(), fid, 0, b"7")) == E.EINVAL     # next + 1
    assert q.write(fid, b"0") == 1 and cursor(q, wid) == "cursor=0 oldest=3 next=6\n"
    assert q.write(fid, b"1") == 1                                        # below oldest: clamped
    assert cursor(q, wid) == "cursor=3 oldest=3 next=6\n"
    assert f"telemetry cursor stale worker={wid} requested=1 oldest=3" in log_text(door)
    assert q.write(fid, b"6\n") == 2
    assert q.errno(m.Twrite(q.next_tag(), fid, 0, b"5")) == E.EINVAL     # the cursor never regresses
    assert cursor(q, wid) == "cursor=6 oldest=3 next=6\n"


def test_stale_read_is_erange_once_per_gap_then_continues_at_the_oldest():
    door, q, w, wid = ring_door(capacity=6)
    path = f"/worker/{wid}/telemetry"
    w.append(path, b"1\n")
    reader = q.open_path(path)                                            # position rseq 1
    for n in range(2, 6):
        w.append(path, f"{n}\n".encode())                                 # 1 and 2 evicted
    assert q.errno(m.Tread(q.next_tag(), reader, 0, 100)) == E.ERANGE
    assert q.read(reader, 0, 100) == b"3\n4\n5\n"
    assert q.read(reader, 0, 100) == b""
    assert log_text(door).count(f"telemetry cursor stale worker={wid} requested=1 oldest=3") == 1


def test_a_record_larger_than_the_ring_is_emsgsize_with_the_quota_line_and_nothing_stored():
    door, q, w, wid = ring_door(capacity=16)
    path = f"/worker/{wid}/telemetry"
    w.append(path, b"kept\n")
    fid = w.open_path(path, m.O_WRONLY | m.O_APPEND)
    before = state(door, wid)
    assert w.errno(m.Twrite(w.next_tag(), fid, 0, b"ok\n" + b"y" * 20 + b"\n")) == E.EMSGSIZE
    assert state(door, wid) == before
    assert f"telemetry quota reject worker={wid} bytes=24 quota=16" in log_text(door)


def test_non_utf8_text_is_einval_and_nothing_stored():
    door, q, w, wid = ring_door()
    fid = w.open_path(f"/worker/{wid}/telemetry", m.O_WRONLY | m.O_APPEND)
    assert w.errno(m.Twrite(w.next_tag(), fid, 0, b"ok\n\xff\xfe\n")) == E.EINVAL
    assert state(door, wid) == ([], 1, 1, 0, 0)


def test_only_the_queen_reaches_the_cursor_and_it_exists_only_from_schema_1_2():
    door, q, w, wid = ring_door()
    w.walk(0, 50, "worker", wid)
    assert w.errno(m.Twalk(w.next_tag(), 50, 51, ("cursor",))) == E.EACCES
    assert w.ls(f"/worker/{wid}") == ["telemetry"]
    door, q, w, wid = ring_door(schema="1.0")
    assert q.ls(f"/worker/{wid}") == ["telemetry"]
    q.walk(0, 50, "worker", wid)
    assert q.errno(m.Twalk(q.next_tag(), 50, 51, ("cursor",))) == E.ENOENT


def test_the_cursor_survives_reconnects_and_is_lost_with_the_worker():
    door, q, w, wid = ring_door()
    w.append(f"/worker/{wid}/telemetry", b"a\nb\n")
    set_cursor(q, wid, b"2")
    assert cursor(queen(door), wid) == "cursor=2 oldest=1 next=3\n"       # another session sees it
    q.append("/queen/ctl", f'{{"kill":"{wid}"}}'.encode())
    assert wid not in door.workers


def test_rings_allocate_nothing_until_written():
    door, q, w, wid = ring_door(capacity=1 << 20)
    ring = door.workers[wid].ring
    assert len(ring.records) == 0 and ring.used == 0 and ring.capacity == 1 << 20


def test_ingest_percentiles_are_nearest_rank_with_three_decimals():
    stats = IngestStats()
    assert stats.percentile_ms(95) == "0.000"
    for ms in range(1, 101):
        stats.note_latency(ms * 1_000_000)
    assert stats.percentile_ms(50) == "50.000" and stats.percentile_ms(95) == "95.000"
    for _ in range(256):                       # only the last 256 samples count
        stats.note_latency(1_500)
    assert stats.percentile_ms(95) == "0.002"


@pytest.mark.parametrize("text,value", [(b"0", 0), (b"42\n", 42), (b"18446744073709551615", 2**64 - 1)])
def test_cursor_values(text, value):
    assert parse_cursor_value(text) == value
