"""Issue 12 hardening: no exception from one request ends the server (EIO, a log line, a stderr summary),
log opens pin no copy of the log, and a session's fid table is bounded (MAX_FIDS_PER_SESSION → EBUSY)."""
from __future__ import annotations

import hashlib
import tracemalloc

import pytest

from nine_door import codec
from nine_door import errors as E
from nine_door import messages as m
from nine_door import session as session_module
from nine_door.session import MAX_FIDS_PER_SESSION

try:
    from .test_namespace import spawn_worker
    from .test_server_harness import Raw, log_text, make_door, queen
except ImportError:  # pragma: no cover
    from test_namespace import spawn_worker
    from test_server_harness import Raw, log_text, make_door, queen


def fill_log(door, nbytes: int = 1 << 20) -> None:
    line = "z" * 99                                                  # 100 bytes with \n
    for _ in range(nbytes // 100 + 10):
        door.log_append(line)
    assert door.ns.queen_log.used > (1 << 20) - 200


# -- catch-all (hardening 1) --------------------------------------------------------------------
def broken_ctl(door, exc: Exception):
    def handler(session, data):
        raise exc
    door.ns.queen_ctl.handler = handler


def test_a_failing_request_is_eio_logged_and_the_session_goes_on(capsys):
    door, _, _ = make_door()
    broken_ctl(door, RuntimeError("handler bug"))
    q, other = queen(door), queen(door)
    fid = q.open_path("/queen/ctl", m.O_WRONLY)
    assert q.errno(m.Twrite(q.next_tag(), fid, 0, b'{"kill":"x"}')) == E.EIO
    assert log_text(door).splitlines()[-1] == "9p request failed type=Twrite errno=5 error=RuntimeError"
    err = capsys.readouterr().err
    assert "Twrite failed, answered EIO" in err and "RuntimeError: handler bug" in err
    assert q.cat("/proc/boot").startswith(b"Cohesix boot")          # same session still served
    q.clunk(fid)
    assert other.ls("/") == ["log", "proc", "queen", "worker"]      # and everyone else
    assert q.session.stats.errors == 1


def test_eio_even_when_the_log_itself_is_what_fails(capsys, monkeypatch):
    door, _, _ = make_door()
    q = queen(door)

    def bad_log(line):
        raise UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed")
    broken_ctl(door, ValueError("first failure"))
    monkeypatch.setattr(door, "log_append", bad_log)
    fid = q.open_path("/queen/ctl", m.O_WRONLY)
    assert q.errno(m.Twrite(q.next_tag(), fid, 0, b"x")) == E.EIO
    assert "ValueError: first failure" in capsys.readouterr().err
    q.clunk(fid)


def test_a_lone_surrogate_ctl_line_does_not_end_the_server():
    door, _, _ = make_door()
    q = queen(door)
    fid = q.open_path("/queen/ctl", m.O_WRONLY)
    for line in (b'{"bind":{"from":"/proc","to":"/\\ud800"}}', b'{"mount":{"service":"log","at":"/\\udfff"}}'):
        assert q.errno(m.Twrite(q.next_tag(), fid, 0, line)) == E.EINVAL   # refused at the JSON boundary
    assert q.ls("/proc") == ["boot"]
    assert "9p request failed" not in log_text(door)                       # not the EIO catch-all


def test_codec_defect_on_a_stream_answers_that_frame_and_the_next_ones_run(monkeypatch, capsys):
    door, _, _ = make_door({"secure9p.tags_per_session": 32})
    q = queen(door, stream=True)
    real = session_module._decode

    def decode(frame):
        if frame[4] == m.TGETATTR:
            raise IndexError("decoder bug")
        return real(frame)
    monkeypatch.setattr(session_module, "_decode", decode)
    burst = codec.encode(m.Tgetattr(7, 0, m.GETATTR_BASIC)) + codec.encode(m.Tclunk(8, 0))
    replies = [codec.decode_reply(frame) for frame in q.session.feed(burst)]
    assert replies == [m.Rlerror(7, E.EIO), m.Rclunk(8)]
    assert f"9p request failed type=type-{m.TGETATTR} errno=5 error=IndexError" in log_text(door)
    assert "IndexError: decoder bug" in capsys.readouterr().err


# -- log opens share, not copy (hardening 4) -------------------------------------------------------
def open_log_fids(raw: Raw, count: int, between=None) -> list[int]:
    fids = []
    for index in range(count):
        fid = 1000 + index
        raw.walk(0, fid, "log", "queen.log")
        raw.lopen(fid)
        fids.append(fid)
        if between is not None:
            between(index)
    return fids


def test_200_log_opens_pin_at_most_one_copy():
    door, _, _ = make_door()
    fill_log(door)
    q = queen(door)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        fids = open_log_fids(q, 200)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < (1 << 20), grown                          # was 200 × 1 MiB
    handles = [q.session.fids[fid].handle for fid in fids]
    assert len({id(h.lines) for h in handles}) == 1          # one shared line list, no copies
    expected = door.ns.queen_log.content()
    assert q.read(fids[0], 4096, 100) == expected[4096:4196]


def test_log_opens_interleaved_with_new_lines_stay_bounded_and_exact():
    """A worker can cause log lines between opens (quota rejects, stale reads); each open still sees
    the log as of its open, and memory stays near one log, not one log per fid."""
    door, _, _ = make_door()
    fill_log(door)
    q = queen(door)
    digests = {}

    def between(index):
        digests[1000 + index] = hashlib.sha256(door.ns.queen_log.content()).digest()
        door.log_append(f"interleaved line {index} " + "w" * 80)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        fids = open_log_fids(q, 200, between)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 2 * (1 << 20), grown                      # was ~200 MiB
    for fid in (fids[0], fids[77], fids[-1]):
        out = bytearray()
        while chunk := q.read(fid, len(out)):
            out += chunk
        assert hashlib.sha256(out).digest() == digests[fid]


def test_log_reads_see_the_log_as_of_open():
    door, _, _ = make_door()
    q = queen(door)
    fid = q.open_path("/log/queen.log")
    at_open = door.ns.queen_log.content()
    fill_log(door)                                           # every line present at the open is evicted
    out = b""
    while chunk := q.read(fid, len(out)):
        out += chunk
    assert out == at_open


# -- fid limit --------------------------------------------------------------------------------------
def test_fid_table_is_bounded_with_ebusy_and_one_log_line():
    door, _, _ = make_door()
    q = queen(door)                                          # fid 0 = root
    for fid in range(1, MAX_FIDS_PER_SESSION):
        q.walk(0, fid)
    assert len(q.session.fids) == MAX_FIDS_PER_SESSION
    assert q.errno(m.Twalk(q.next_tag(), 0, 9999, ("proc",))) == E.EBUSY
    assert q.errno(m.Tattach(q.next_tag(), 9999, m.NOFID, "queen", "", m.NOFID)) == E.EBUSY
    assert q.errno(m.Twalk(q.next_tag(), 0, 1, ())) == E.EBADF           # live newfid: still EBADF
    q.walk(5, 5, "proc")                                                  # in-place walk binds nothing
    lines = [line for line in door.log_lines() if line.startswith("9p fid limit")]
    assert lines == [f"9p fid limit reached session={q.session.session_id} origin=serial "
                     f"limit={MAX_FIDS_PER_SESSION}"]
    q.clunk(7)
    q.walk(0, 9999, "proc")                                               # a freed slot binds again
    assert q.errno(m.Twalk(q.next_tag(), 0, 10000, ())) == E.EBUSY
    q.version()                                                           # Tversion clears the table
    q.attach(0)
    q.walk(0, 1)


def test_worker_fid_limit_bounds_its_log_handles():
    door, _, launcher = make_door()
    q = queen(door)
    fill_log(door)
    _, w = spawn_worker(door, q, launcher)
    opened = 0
    for index in range(MAX_FIDS_PER_SESSION + 5):
        reply = w.send_frames(codec.encode(m.Twalk(w.next_tag(), 0, 2000 + index, ("log", "queen.log"))))[0]
        if isinstance(reply, m.Rlerror):
            assert reply.ecode == E.EBUSY
            break
        w.lopen(2000 + index)
        opened += 1
    assert opened == MAX_FIDS_PER_SESSION - 1
    assert len({id(f.handle.lines) for f in w.session.fids.values() if f.handle is not None}) == 1


@pytest.mark.parametrize("stream", [False, True])
def test_refusals_are_not_counted_as_failures(stream, capsys):
    door, _, _ = make_door()
    q = queen(door, stream=stream)
    assert q.errno(m.Tread(q.next_tag(), 42, 0, 10)) == E.EBADF
    assert "request failed" not in log_text(door) and capsys.readouterr().err == ""
