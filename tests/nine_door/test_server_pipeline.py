"""Pipelined stream input (SPEC §3.10, §3.12 on TCP), coalesced replies and the per-session walk memo.

The server executes every complete frame of one transport read in order and answers them with one
write; these tests pin down that the batch changes nothing a client can observe: reply order, the
per-frame error rules, Tversion changing msize mid-burst, framing loss after good frames. The walk
memo (``SessionView.walk``) must never serve a stale outcome, so each of its inputs is changed after
a memoized walk: the tree, the mount table, the identity, and node versions.
"""
from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nine_door import codec, namespace, tickets
from nine_door import errors as E
from nine_door import messages as m
from nine_door.errors import FramingLost
from nine_door.server import ChannelBinding
from nine_door.tcp_listener import NinePListener, _Conn

try:
    from .test_server_harness import SECRETS, Raw, make_door, queen
except ImportError:  # pragma: no cover - rootdir-style import
    from test_server_harness import SECRETS, Raw, make_door, queen


def burst(*msgs) -> bytes:
    return b"".join(codec.encode(msg) for msg in msgs)


def replies(session, data: bytes) -> list:
    return [codec.decode_reply(frame) for frame in session.feed(data)]


def pipelined_ops(fids) -> list[bytes]:
    """The bench's ×8 batches: walk, getattr, lopen, read, clunk on several fids."""
    tag = iter(range(1, 1000))
    return [burst(*(m.Twalk(next(tag), 0, f, ("proc", "boot")) for f in fids)),
            burst(*(m.Tgetattr(next(tag), f, m.GETATTR_BASIC) for f in fids)),
            burst(*(m.Tlopen(next(tag), f, m.O_RDONLY) for f in fids)),
            burst(*(m.Tread(next(tag), f, 0, 4096) for f in fids)),
            burst(*(m.Tclunk(next(tag), f) for f in fids))]


# -- coalesced stream input ---------------------------------------------------------------------
PIPELINED = {"secure9p.tags_per_session": 32}   # schema ≥ 1.1: bursts are within the window (§3.12)


def test_a_stream_burst_is_admitted_against_the_tag_window():
    """§3.12 on a stream: the frames of one read are in flight together; a duplicate tag is EINVAL (the
    original still answered), frames beyond the window are EBUSY, Tflush is exempt."""
    door, _, _ = make_door({"secure9p.tags_per_session": 2})
    session = queen(door, stream=True).session
    frames = [m.Tgetattr(1, 0, m.GETATTR_BASIC), m.Tgetattr(1, 0, m.GETATTR_BASIC),
              m.Tgetattr(2, 0, m.GETATTR_BASIC), m.Tflush(3, 1), m.Tgetattr(4, 0, m.GETATTR_BASIC)]
    replies = [codec.decode_reply(f) for f in session.feed(b"".join(codec.encode(f) for f in frames))]
    assert [type(r).__name__ for r in replies] == ["Rgetattr", "Rlerror", "Rgetattr", "Rflush", "Rlerror"]
    assert (replies[1].tag, replies[1].ecode) == (1, E.EINVAL)
    assert (replies[4].tag, replies[4].ecode) == (4, E.EBUSY)
    # the next read is a new set of requests: the window is free again
    assert isinstance(codec.decode_reply(session.feed(codec.encode(m.Tgetattr(1, 0, 1)))[0]), m.Rgetattr)


def test_a_legacy_session_pipelines_nothing():
    door, _, _ = make_door()             # schema 1.0: tags_per_session = 1
    session = queen(door, stream=True).session
    burst = codec.encode(m.Tgetattr(1, 0, 1)) + codec.encode(m.Tgetattr(2, 0, 1))
    replies = [codec.decode_reply(f) for f in session.feed(burst)]
    assert isinstance(replies[0], m.Rgetattr) and replies[1] == m.Rlerror(2, E.EBUSY)
def test_burst_replies_match_one_frame_at_a_time_in_order():
    fids = range(10, 18)
    door_a, _, _ = make_door(PIPELINED)
    burst_session = queen(door_a, stream=True).session
    door_b, _, _ = make_door(PIPELINED)
    single_session = queen(door_b, stream=True).session
    for batch in pipelined_ops(fids):
        got = burst_session.feed(batch)
        want = []
        for frame in codec.split_batch(batch):
            want += single_session.feed(frame)
        assert got == want
        assert [codec.decode_reply(f).tag for f in got] == [codec.peek_tag(f)
                                                            for f in codec.split_batch(batch)]
        assert not any(isinstance(codec.decode_reply(f), m.Rlerror) for f in got)
    assert burst_session.fids.keys() == {0}


# Frames for the chunking property: every kind Session.feed treats differently (whole, refused in the
# body, oversize for msize 512, a Tversion that changes the limit for what follows), tags unique.
_STREAM_PARTS = [
    lambda t: codec.encode(m.Twalk(t, 0, 100 + t, ("proc", "boot"))),
    lambda t: codec.encode(m.Tgetattr(t, 0, m.GETATTR_BASIC)),
    lambda t: codec.encode(m.Tclunk(t, 100 + t - 1)),
    lambda t: struct.pack("<IBH", 9, m.TCLUNK, t) + b"\0\0",                    # short body: EINVAL
    lambda t: codec.encode(m.Twrite(t, 1, 0, b"x" * 600)),                     # > 512: EMSGSIZE
    lambda t: codec.encode(m.Tversion(t, 512, "9P2000.L")),          # (a tag of its own: unique)
    lambda t: codec.encode(m.Tversion(t, 8192, "9P2000.L")),
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(0, len(_STREAM_PARTS) - 1), min_size=1, max_size=24),
       st.lists(st.integers(0, 100_000), max_size=10))
def test_any_chunking_of_a_stream_gets_the_replies_of_one_frame_at_a_time(kinds, cuts):
    """Session.feed cuts whole frames straight from a chunk and leaves the rest to its reader; whatever
    the chunk boundaries, the replies are those of feeding each frame alone (tags unique and within
    the window, so admission refuses nothing)."""
    frames = [_STREAM_PARTS[kind](tag) for tag, kind in enumerate(kinds, start=1)]
    data = b"".join(frames)
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    door_a, _, _ = make_door(PIPELINED)
    chunked = queen(door_a, stream=True).session
    door_b, _, _ = make_door(PIPELINED)
    single = queen(door_b, stream=True).session
    got = [reply for a, b in zip(points, points[1:]) for reply in chunked.feed(data[a:b])]
    want = [reply for frame in frames for reply in single.feed(frame)]
    assert got == want
    assert chunked._reader.idle and door_a.outstanding.current == 0


def test_bad_frames_inside_a_burst_are_answered_per_frame():
    door, _, _ = make_door(PIPELINED)
    raw = queen(door, stream=True)
    truncated = struct.pack("<IBH", 9, m.TCLUNK, 3) + b"\0\0"          # body too short → EINVAL
    oversize = struct.pack("<IBH", 9000, m.TWRITE, 5) + bytes(8993)     # > msize → EMSGSIZE
    data = (codec.encode(m.Twalk(1, 0, 1, ("proc",))) + codec.encode(m.Tclunk(2, 77)) + truncated
            + codec.encode(m.Twalk(4, 0, 2, ("..",))) + oversize
            + struct.pack("<IBH", 11, m.TREMOVE, 6) + b"\1\0\0\0"
            + codec.encode(m.Tgetattr(7, 1, m.GETATTR_BASIC)) + codec.encode(m.Tflush(8, 1)))
    got = replies(raw.session, data)
    assert [type(r).__name__ for r in got] == ["Rwalk", "Rlerror", "Rlerror", "Rlerror", "Rlerror",
                                               "Rlerror", "Rgetattr", "Rflush"]
    assert [r.tag for r in got] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert [r.ecode for r in got[1:6]] == [E.EBADF, E.EINVAL, E.EINVAL, E.EMSGSIZE, E.EPERM]
    assert got[6].qid.type == m.QTDIR                                  # fid 1 = /proc, bound above


def test_tversion_in_a_burst_sets_the_limit_for_the_frames_behind_it():
    door, _, _ = make_door(PIPELINED)
    session = door.open_session(ChannelBinding(kind="console", origin="serial"))
    write_600 = codec.encode(m.Twrite(2, 1, 0, b"x" * 600))
    got = replies(session, codec.encode(m.Tversion(m.NOTAG, 512, "9P2000.L")) + write_600)
    assert got == [m.Rversion(m.NOTAG, 512, "9P2000.L"), m.Rlerror(2, E.EMSGSIZE)]
    got = replies(session, codec.encode(m.Tversion(m.NOTAG, 8192, "9P2000.L")) + write_600)
    assert got == [m.Rversion(m.NOTAG, 8192, "9P2000.L"), m.Rlerror(2, E.EBADF)]   # fits now


def test_frames_before_lost_framing_in_the_same_read_still_execute():
    door, _, _ = make_door(PIPELINED)
    raw = queen(door, stream=True)
    raw.walk(0, 1, "proc")
    with pytest.raises(FramingLost):
        raw.session.feed(codec.encode(m.Tclunk(5, 1)) + struct.pack("<I", 3))
    assert 1 not in raw.session.fids


# -- the TCP listener writes one burst of replies per read ------------------------------------------
class _FakePump:
    def __init__(self) -> None:
        self.writers: dict = {}
        self.iterations = 0          # the listener's per-iteration frame budget keys on this
        self.deferred: list = []

    def defer(self, callback, source="net") -> None:
        self.deferred.append(callback)

    def call_later(self, delay_s, callback):
        raise AssertionError("not used by these tests")

    def add_reader(self, sock, callback, source="net") -> None:
        pass

    def remove_reader(self, sock) -> None:
        pass

    def add_writer(self, sock, callback) -> None:
        self.writers[sock] = callback

    def remove_writer(self, sock) -> None:
        self.writers.pop(sock, None)


class _FakeSock:
    """Takes ``accept`` bytes, then would block until ``writable`` is set (None: takes all)."""

    def __init__(self, incoming: bytes, accept: int | None = None) -> None:
        self.incoming = [incoming]
        self.accept = accept
        self.writable = accept is None
        self.sends: list[bytes] = []

    def recv(self, size: int) -> bytes:
        return self.incoming.pop(0) if self.incoming else b""

    def send(self, data) -> int:
        if self.sends and not self.writable:
            raise BlockingIOError
        taken = len(data) if self.writable else min(self.accept, len(data))
        self.sends.append(bytes(data[:taken]))
        return taken

    def close(self) -> None:
        pass


def _tcp_queen(door):
    session = door.open_session(ChannelBinding(kind="tcp", origin="9p:127.0.0.1"))
    raw = Raw(session, stream=True)
    raw.version()
    raw.attach(0, "queen", tickets.mint(SECRETS["queen"], "queen"))
    return session


@pytest.mark.parametrize("accept", [None, 100])
def test_listener_answers_a_read_with_one_write_and_queues_the_rest(accept):
    door, _, _ = make_door(PIPELINED)
    pump = _FakePump()
    listener = NinePListener(pump, door, "127.0.0.1", 0, lambda line: None)
    batch = pipelined_ops(range(10, 18))[0]
    sock = _FakeSock(batch, accept)
    conn = _Conn(1, sock, "127.0.0.1:1", _tcp_queen(door))
    listener.conns[1] = conn
    listener._on_readable(conn)
    if accept is None:
        assert len(sock.sends) == 1 and not conn.out and not pump.writers
    else:
        assert len(sock.sends[0]) == 100 and conn.writing and pump.writers
        sock.writable = True
        pump.writers[sock]()                            # the pump's writer callback
        assert not conn.out and not conn.writing and not pump.writers
    out = b"".join(sock.sends)
    got = [codec.decode_reply(f) for f in codec.split_batch(out)]
    assert [r.tag for r in got] == [codec.peek_tag(f) for f in codec.split_batch(batch)]
    assert all(isinstance(r, m.Rwalk) and len(r.qids) == 2 for r in got)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(0, len(_STREAM_PARTS) - 1), min_size=1, max_size=24),
       st.lists(st.integers(0, 100_000), max_size=8), st.integers(1, 5), st.integers(1, 8), st.booleans())
def test_the_listener_answers_any_chunking_under_any_budget_as_one_frame_at_a_time(
        kinds, cuts, per_slice, per_iteration, broken_tail):
    """The listener's two walks — the session's own over whole frames at a boundary, the boundary
    tracker's for everything else — and its fairness budgets change nothing a client sees: the replies
    are those of one frame at a time, and a bad size field after them closes the connection (framing)
    once they are sent."""
    frames = [_STREAM_PARTS[kind](tag) for tag, kind in enumerate(kinds, start=1)]
    data = b"".join(frames) + (struct.pack("<I", 3) if broken_tail else b"")
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    door, _, _ = make_door(PIPELINED)
    pump = _FakePump()
    audit: list[str] = []
    listener = NinePListener(pump, door, "127.0.0.1", 0, audit.append, frames_per_iteration=per_iteration,
                             frames_per_slice=per_slice)
    sock = _FakeSock(b"")
    sock.incoming.clear()
    conn = _Conn(1, sock, "127.0.0.1:1", _tcp_queen(door))
    listener.conns[1] = conn
    for a, b in zip(points, points[1:]):
        sock.incoming.append(data[a:b])
        for _ in range(10_000):                      # pump iterations until this chunk is served
            if 1 not in listener.conns or not (sock.incoming or conn.has_input):
                break
            pump.iterations += 1
            deferred, pump.deferred = pump.deferred, []
            for callback in deferred:
                callback()
            if not conn.has_input and sock.incoming:
                listener._on_readable(conn)
        else:
            raise AssertionError("the listener stopped making progress")
    door_b, _, _ = make_door(PIPELINED)
    single = _tcp_queen(door_b)
    want = [reply for frame in frames for reply in single.feed(frame)]
    assert codec.split_batch(b"".join(sock.sends)) == want if want else not sock.sends
    assert (1 not in listener.conns) == broken_tail
    assert any("reason=framing" in line for line in audit) == broken_tail


# -- walk memo: every input change is seen ----------------------------------------------------------
def ctl(raw: Raw, text: str) -> int:
    return raw.append("/queen/ctl", text.encode())


def test_memoized_walk_sees_removed_and_created_nodes():
    door, _, launcher = make_door()
    q = queen(door)
    assert len(q.walk(0, 1, "worker", "worker-1").qids) == 1      # partial: not there yet
    ctl(q, '{"spawn":"heartbeat","ticks":100}')
    q.walk(0, 2, "worker", "worker-1", "telemetry")               # complete: memoized
    q.clunk(2)
    q.walk(0, 2, "worker", "worker-1", "telemetry")               # served from the memo
    q.clunk(2)
    ctl(q, '{"kill":"worker-1"}')
    assert len(q.walk(0, 3, "worker", "worker-1", "telemetry").qids) == 1
    assert q.errno(m.Tclunk(9, 3)) == E.EBADF                      # newfid not bound


def test_memoized_walk_sees_mount_table_changes():
    door, _, _ = make_door()
    q = queen(door)
    assert len(q.walk(0, 1, "log", "x", "boot").qids) == 1        # partial before the bind
    ctl(q, '{"bind":{"from":"/proc","to":"/log/x"}}')
    q.walk(0, 1, "log", "x", "boot")
    q.clunk(1)
    ctl(q, '{"bind":{"from":"/queen","to":"/log/x"}}')            # later entry wins
    assert len(q.walk(0, 2, "log", "x", "boot").qids) == 2
    q.walk(0, 2, "log", "x", "ctl")
    q.version()                                                    # resets the mount table
    q.attach(0)
    assert len(q.walk(0, 3, "log", "x").qids) == 1                 # partial: /log/x is gone


def test_memoized_walk_sees_identity_changes():
    door, _, launcher = make_door()
    q = queen(door)
    ctl(q, '{"spawn":"heartbeat","ticks":100}')
    ticket = launcher.started[-1][2]
    raw = Raw(door.open_session(ChannelBinding(kind="console", origin="serial")))
    raw.version()
    raw.attach(0, "queen", "")
    raw.walk(0, 1, "queen", "ctl")                                 # memoized for the queen
    raw.version()
    raw.attach(0, "", ticket)                                      # now worker-1
    assert raw.session.identity.worker_id == "worker-1"
    assert raw.errno(m.Twalk(9, 0, 1, ("queen", "ctl"))) == E.EACCES


def test_memoized_walk_answers_current_qid_versions_and_is_bounded(monkeypatch):
    door, _, _ = make_door()
    q = queen(door)
    before = q.walk(0, 1, "log", "queen.log").qids[-1]
    q.clunk(1)
    door.log_append("a line")                                      # bumps the log's qid version
    after = q.walk(0, 1, "log", "queen.log").qids[-1]
    assert after.path == before.path and after.version != before.version
    monkeypatch.setattr(namespace, "WALK_MEMO_ENTRIES", 2)
    for path in (("proc",), ("proc", "boot"), ("log",), ("queen",), ("queen", "ctl")):
        q.walk(0, 2, *path)
        q.clunk(2)
        assert len(q.session.view._walks) <= 2
