"""Observability files (SPEC §12, §16 C15): counters match a scripted load exactly; watch lines parse."""
from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from nine_door import codec
from nine_door import errors as E
from nine_door import messages as m

try:
    from .test_namespace import spawn_worker
    from .test_server_harness import make_door, queen
except ImportError:  # pragma: no cover
    from test_namespace import spawn_worker
    from test_server_harness import make_door, queen

V12 = {"root_task.schema": "1.2", "secure9p.tags_per_session": 8, "secure9p.batch_frames": True,
       "secure9p.short_write_policy.enable": True,
       "telemetry.ring_bytes_per_worker": 12, "observability.proc_9p": ["outstanding", "sessions", "short_writes"],
       "observability.proc_ingest.fields": ["backpressure", "dropped", "p50_ms", "p95_ms", "queued"],
       "observability.proc_ingest.watch_interval_ms": 1000}


def text(q, path: str) -> str:
    return q.cat(path).decode()


def test_the_files_exist_for_the_queen_only_as_the_ir_lists_them():
    door, _, launcher = make_door(V12)
    q = queen(door)
    assert q.ls("/proc") == ["9p", "boot", "ingest"]
    assert q.ls("/proc/9p") == ["outstanding", "sessions", "short_writes"]
    assert q.ls("/proc/ingest") == ["backpressure", "dropped", "p50_ms", "p95_ms", "queued", "watch"]
    _, w = spawn_worker(door, q, launcher)
    assert w.ls("/proc") == ["boot"]
    w.walk(0, 60, "proc")
    assert w.errno(m.Twalk(w.next_tag(), 60, 61, ("9p",))) == E.EACCES
    q.walk(0, 62, "proc", "ingest", "dropped")
    assert q.errno(m.Tlopen(q.next_tag(), 62, m.O_WRONLY)) == E.EACCES


def test_a_subset_and_an_empty_list_and_before_schema_1_2():
    door, _, _ = make_door({**V12, "observability.proc_9p": ["sessions"], "observability.proc_ingest.fields": [],
                            "observability.proc_ingest.watch_interval_ms": 0})
    q = queen(door)
    assert q.ls("/proc") == ["9p", "boot"] and q.ls("/proc/9p") == ["sessions"]
    door, _, _ = make_door()
    assert queen(door).ls("/proc") == ["boot"]


def test_counters_match_a_scripted_load_exactly():
    door, clock, launcher = make_door(V12)
    q, q2 = queen(door), queen(door)
    wid, w = spawn_worker(door, q, launcher)
    assert text(q, "/proc/9p/sessions") == "sessions total=3 queen=2 worker=1 shard_count=0\n"

    # a batch of three pipelined Tgetattr in one message: three requests in flight at once
    batch = b"".join(codec.encode(m.Tgetattr(tag, 0, m.GETATTR_BASIC)) for tag in (71, 72, 73))
    assert len(q.send_frames(batch)) == 3
    assert text(q, "/proc/9p/outstanding") == "outstanding current=1 peak=3 limit=8\n"

    path = f"/worker/{wid}/telemetry"
    w.append(path, b"a1\nb2\nc3\nd4\n")        # 12 bytes: fills the unarmed ring exactly
    w.append(path, b"e5\n")                    # evicts a1: dropped 1
    q.append(f"/worker/{wid}/cursor", b"2")    # armed at b2 (rseq 2): b2..e5 unconsumed
    assert w.append(path, b"f6\n") == 0        # full of unconsumed records: short write 0
    assert w.append(path, b"") == 0            # a 0-byte Twrite is not short
    q.append(f"/worker/{wid}/cursor", b"4")    # b2, c3 consumed
    assert w.append(path, b"f6\ng7\nh8\n") == 6  # evicts b2, c3; h8 does not fit: short by 3

    assert text(q, "/proc/9p/short_writes") == "short_writes total=2 zero=1 bytes_deferred=6\n"
    assert text(q, "/proc/ingest/backpressure") == "backpressure=2\n"
    assert text(q, "/proc/ingest/dropped") == "dropped=1\n"
    assert text(q, "/proc/ingest/queued") == "queued=4\n"    # d4 e5 f6 g7 (rseq ≥ cursor 4)
    for name in ("p50_ms", "p95_ms"):
        assert re.fullmatch(rf"{name}=\d+\.\d{{3}}\n", text(q, f"/proc/ingest/{name}"))
    q2.session.close()
    assert text(q, "/proc/9p/sessions") == "sessions total=2 queen=1 worker=1 shard_count=0\n"


def test_watch_lines_come_every_interval_parse_as_key_value_and_keep_the_newest_64():
    door, clock, _ = make_door(V12)
    q = queen(door)
    assert text(q, "/proc/ingest/watch") == ""
    clock.advance(0.5)
    door.on_tick()
    assert text(q, "/proc/ingest/watch") == ""
    for _ in range(70):
        clock.advance(1.0)
        door.on_tick()
    lines = text(q, "/proc/ingest/watch").splitlines()
    assert len(lines) == 64
    keys = ["ts_ms", "p50_ms", "p95_ms", "queued", "backpressure", "dropped"]
    for line in lines:
        word, *pairs = line.split(" ")
        assert word == "watch" and [p.split("=", 1)[0] for p in pairs] == keys
        assert all(re.fullmatch(r"\d+(\.\d{3})?", p.split("=", 1)[1]) for p in pairs)
    assert lines[-1].startswith("watch ts_ms=70500 ")
    clock.advance(5.0)                         # a stalled pump: one line, not five
    door.on_tick()
    assert text(q, "/proc/ingest/watch").splitlines()[-1].startswith("watch ts_ms=75500 ")
    assert text(q, "/proc/ingest/watch").splitlines()[-2].startswith("watch ts_ms=70500 ")


def test_proc_boot_shows_the_telemetry_and_sharding_lines_from_schema_1_2():
    door, _, _ = make_door({**V12, "telemetry.frame_schema": "cbor_v1"})
    text = queen(door).cat("/proc/boot").decode()
    assert "manifest.schema=1.2\n" in text
    assert ("secure9p msize=8192 walk_depth=8 tags_per_session=8 batch_frames=true\n"
            "telemetry ring_bytes_per_worker=12 frame_schema=cbor_v1\n"
            "sharding enable=false width=2 legacy_worker_alias=true\n") in text
    door, _, _ = make_door()
    assert "telemetry " not in queen(door).cat("/proc/boot").decode()


def test_the_server_publishes_exactly_the_proc_files_the_compiler_lists():
    """coh-rtc's PROC_NODES (generated from the shipped IR) and the running server's /proc agree."""
    from nine_door.config import NineDoorConfig
    from nine_door.server import NineDoor
    from root_task.generated import bootstrap

    door = NineDoor(NineDoorConfig.from_resolved(bootstrap.RESOLVED, bootstrap.TICKET_SECRETS, "ab" * 32))
    q = queen(door)
    found = [f"/proc/{name}" for name in q.ls("/proc") if name == "boot"]
    for directory in ("9p", "ingest"):
        found += [f"/proc/{directory}/{name}" for name in q.ls(f"/proc/{directory}")]
    assert tuple(sorted(found)) == bootstrap.PROC_NODES


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(1, 5)), max_size=40))
def test_the_outstanding_peak_is_the_running_maximum_whenever_it_is_read(steps):
    """The gauge records its peak only in ``done`` (so the session can admit with ``current += 1``); read
    at any moment, the peak must still be the greatest ``current`` so far."""
    from nine_door.observability import Outstanding
    gauge, highest = Outstanding(), 0
    for admit, n in steps:
        if admit:
            gauge.admit(n) if n % 2 else setattr(gauge, "current", gauge.current + n)   # both ways in
        else:
            gauge.done(min(n, gauge.current))
        highest = max(highest, gauge.current)
        assert gauge.peak == highest
