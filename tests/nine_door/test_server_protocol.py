"""Message- and frame-level rules of SPEC §3 (C3, C4) against a real NineDoor session."""
from __future__ import annotations

import struct

import pytest

from nine_door import codec
from nine_door import errors as E
from nine_door import messages as m
from nine_door.errors import FramingLost
from nine_door.server import ChannelBinding

try:
    from .test_server_harness import Raw, make_door, queen
except ImportError:  # pragma: no cover - rootdir-style import
    from test_server_harness import Raw, make_door, queen


def fresh(kind: str = "console", stream: bool = False, **over):
    door, clock, launcher = make_door(over or None)
    return door, Raw(door.open_session(ChannelBinding(kind=kind, origin="serial")), stream=stream)


# -- §3.3 version -----------------------------------------------------------------------------
def test_version_clamps_msize_c3():
    _, raw = fresh()
    reply = raw.version(65536)
    assert (reply.msize, reply.version) == (8192, "9P2000.L")


def test_version_below_512_is_einval():
    _, raw = fresh()
    assert raw.errno(m.Tversion(m.NOTAG, 511, "9P2000.L")) == E.EINVAL


def test_unknown_version_string_leaves_session_unnegotiated():
    _, raw = fresh()
    reply = raw.version(8192, "9P2000")
    assert (reply.msize, reply.version) == (8192, "unknown")
    assert raw.errno(m.Tattach(1, 0, m.NOFID, "queen", "", m.NOFID)) == E.EINVAL


def test_requests_before_version_are_einval():
    _, raw = fresh()
    assert raw.errno(m.Tattach(1, 0, m.NOFID, "queen", "", m.NOFID)) == E.EINVAL
    assert raw.errno(m.Tclunk(2, 0)) == E.EINVAL


def test_version_resets_fids_and_identity():
    door, _, _ = make_door()
    raw = queen(door)
    raw.walk(0, 1, "proc")
    raw.version()
    assert raw.errno(m.Tclunk(5, 1)) == E.EBADF
    assert raw.errno(m.Tclunk(6, 0)) == E.EBADF
    assert door.attached_sessions == 0
    raw.attach(0)   # a fresh identity may be attached again
    assert door.attached_sessions == 1


def test_spec_byte_vectors_round_trip_through_session():
    _, raw = fresh()
    out = raw.session.handle_message(bytes.fromhex("1500000064ffff0020000008003950323030302e4c"))
    assert codec.decode_reply(out[0]) == m.Rversion(m.NOTAG, 8192, "9P2000.L")
    out = raw.session.handle_message(bytes.fromhex("1c00000068010000000000ffffffff0500717565656e0000ffffffff"))
    assert isinstance(codec.decode_reply(out[0]), m.Rattach)
    out = raw.session.handle_message(bytes.fromhex("1d0000006e020000000000010000000200040070726f630400626f6f74"))
    assert len(codec.decode_reply(out[0]).qids) == 2
    out = raw.session.handle_message(bytes.fromhex("0f0000000c03000100000000000000"))
    assert codec.decode_reply(out[0]).iounit == 8192 - 24


# -- §3.3 attach ------------------------------------------------------------------------------
def test_attach_rules():
    _, raw = fresh()
    raw.version()
    assert raw.errno(m.Tattach(1, 0, 7, "queen", "", m.NOFID)) == E.EBADF           # afid
    assert raw.errno(m.Tattach(2, 0, m.NOFID, "king", "", m.NOFID)) == E.EINVAL     # uname
    assert raw.errno(m.Tattach(2, 0, m.NOFID, "worker-heartbeat:worker-01", "x", m.NOFID)) == E.EINVAL
    raw.attach(0)
    assert raw.errno(m.Tattach(3, 0, m.NOFID, "queen", "", m.NOFID)) == E.EBADF     # live fid
    raw.attach(1)   # same identity again is fine
    raw.rpc(m.Tattach(4, 2, m.NOFID, "", "", m.NOFID))  # empty uname + same aname inherits


def test_tauth_is_enoent():
    _, raw = fresh()
    raw.version()
    assert raw.errno(m.Tauth(1, 5, "queen", "", m.NOFID)) == E.ENOENT


def test_ticketless_queen_refused_on_tcp():
    door, raw = fresh(kind="tcp")
    raw.version()
    assert raw.errno(m.Tattach(1, 0, m.NOFID, "queen", "", m.NOFID)) == E.EACCES
    assert "9p attach denied origin=serial uname=queen errno=13" in door.log_lines()


# -- §3.4 walk --------------------------------------------------------------------------------
@pytest.mark.parametrize("names", [("..",), (".",), ("proc", ".."), ("a/b",), ("",),
                                   ("x" * 256,)])
def test_bad_walk_names_are_einval(names):
    door, _, _ = make_door()
    raw = queen(door)
    assert raw.errno(m.Twalk(9, 0, 1, names)) == E.EINVAL


def test_walk_depth_limits():
    door, _, _ = make_door()
    raw = queen(door)
    assert raw.errno(m.Twalk(9, 0, 1, tuple(["proc"] * 9))) == E.EINVAL
    door2, _, _ = make_door({"secure9p.walk_depth": 2})
    raw2 = queen(door2)
    raw2.walk(0, 1, "log", "queen.log")
    assert raw2.errno(m.Twalk(9, 0, 2, ("log", "queen.log", "x"))) == E.EINVAL
    raw2.walk(0, 3, "log")
    assert raw2.errno(m.Twalk(9, 3, 4, ("queen.log", "x"))) == E.EINVAL


def test_walk_errors_and_partial_walks():
    door, _, _ = make_door()
    raw = queen(door)
    assert raw.errno(m.Twalk(9, 0, 1, ("nope",))) == E.ENOENT
    raw.walk(0, 5, "proc", "boot")
    assert raw.errno(m.Twalk(9, 5, 6, ("x",))) == E.ENOTDIR
    # failure on name k > 1: Rwalk with the successful prefix, newfid not bound
    reply = raw.walk(0, 2, "proc", "nope")
    assert len(reply.qids) == 1
    assert raw.errno(m.Tclunk(9, 2)) == E.EBADF
    reply = raw.walk(0, 3, "proc", "boot", "deeper")
    assert len(reply.qids) == 2
    assert raw.errno(m.Tclunk(9, 3)) == E.EBADF


def test_walk_fid_rules():
    door, _, _ = make_door()
    raw = queen(door)
    assert raw.errno(m.Twalk(9, 42, 1, ())) == E.EBADF              # unknown fid
    raw.walk(0, 1)                                                  # clone
    assert raw.errno(m.Twalk(9, 0, 1, ("proc",))) == E.EBADF        # newfid live
    assert raw.errno(m.Twalk(9, 0, m.NOFID, ("proc",))) == E.EBADF  # NOFID
    raw.walk(1, 1, "proc")                                          # in place
    assert raw.getattr(1).qid.type == m.QTDIR
    raw.lopen(1)
    assert raw.errno(m.Twalk(9, 1, 1, ("boot",))) == E.EINVAL       # opened fid in place
    raw.walk(1, 2, "boot")                                          # opened fid, new fid: allowed


# -- §3.5 lopen -------------------------------------------------------------------------------
def test_lopen_proc_boot_write_is_eacces_c3():
    door, _, _ = make_door()
    raw = queen(door)
    raw.walk(0, 1, "proc", "boot")
    assert raw.errno(m.Tlopen(9, 1, m.O_WRONLY)) == E.EACCES
    assert raw.errno(m.Tlopen(9, 1, m.O_WRONLY | m.O_TRUNC)) == E.EACCES   # EACCES before EPERM


def test_lopen_rules():
    door, _, _ = make_door()
    raw = queen(door)
    raw.walk(0, 1, "log", "queen.log")
    assert raw.errno(m.Tlopen(9, 1, 3)) == E.EINVAL
    assert raw.errno(m.Tlopen(9, 1, m.O_DIRECTORY)) == E.ENOTDIR
    assert raw.errno(m.Tlopen(9, 1, m.O_WRONLY | m.O_TRUNC)) == E.EPERM
    raw.walk(0, 2, "proc")
    assert raw.errno(m.Tlopen(9, 2, m.O_WRONLY)) == E.EISDIR
    assert raw.errno(m.Tlopen(9, 2, m.O_RDWR)) == E.EISDIR
    raw.walk(0, 3, "queen", "ctl")
    assert raw.errno(m.Tlopen(9, 3, m.O_RDONLY)) == E.EACCES   # ctl is write-only
    reply = raw.lopen(1, m.O_WRONLY | m.O_APPEND | m.O_CREAT | m.O_EXCL | m.O_CLOEXEC)
    assert reply.qid.type == m.QTAPPEND and reply.iounit == 8192 - 24
    assert raw.errno(m.Tlopen(9, 1, m.O_RDONLY)) == E.EINVAL   # opened once


# -- §3.6 read / write ------------------------------------------------------------------------
def test_read_write_need_matching_open_mode():
    door, _, _ = make_door()
    raw = queen(door)
    raw.walk(0, 1, "log", "queen.log")
    assert raw.errno(m.Tread(9, 1, 0, 10)) == E.EBADF
    assert raw.errno(m.Twrite(9, 1, 0, b"x")) == E.EBADF
    raw.lopen(1, m.O_RDONLY)
    assert raw.errno(m.Twrite(9, 1, 0, b"x")) == E.EBADF
    raw.walk(0, 2, "proc")
    raw.lopen(2)
    assert raw.errno(m.Tread(9, 2, 0, 10)) == E.EISDIR


def test_proc_boot_content_and_offsets_c3():
    door, _, _ = make_door()
    raw = queen(door)
    text = raw.cat("/proc/boot").decode()
    assert text.startswith("Cohesix boot: root-task online\n")
    assert "manifest.schema=1.0\n" in text
    assert "secure9p msize=8192 walk_depth=8 tags_per_session=1 batch_frames=false\n" in text
    assert "net " not in text
    fid = raw.open_path("/proc/boot")
    assert raw.read(fid, 7, 4) == b"x bo"[:0] + text.encode()[7:11]
    assert raw.read(fid, 10_000, 10) == b""
    # count is clamped to iounit
    assert len(raw.read(fid, 0, 100_000)) == len(text)


def test_proc_boot_net_line_when_a_listener_is_enabled():
    door, _, _ = make_door({"console.tcp.enable": True},
                           net_info=lambda: {"link_up": True, "rx_frames": 3, "tx_frames": 4, "tx_drops": 0})
    raw = queen(door)
    assert "net link_up=true rx_frames=3 tx_frames=4 tx_drops=0\n" in raw.cat("/proc/boot").decode()


def test_log_append_semantics():
    door, _, _ = make_door()
    raw = queen(door)
    fid = raw.open_path("/log/queen.log", m.O_WRONLY | m.O_APPEND)
    assert raw.write(fid, b"one", offset=12345) == 3
    assert raw.write(fid, b"two\nthree\n") == 10
    assert raw.errno(m.Twrite(9, fid, 0, b"\xff\xfe")) == E.EINVAL
    assert door.log_lines()[-3:] == ["one", "two", "three"]
    # snapshot at open: later appends are not visible to an already-open reader
    reader = raw.open_path("/log/queen.log")
    raw.write(fid, b"later")
    assert b"later" not in raw.read(reader, 0, 8000)


def test_clunk_and_dead_fids_c4():
    door, _, _ = make_door()
    raw = queen(door)
    raw.walk(0, 1, "log", "queen.log")
    raw.lopen(1)
    raw.clunk(1)
    for msg in (m.Tread(9, 1, 0, 10), m.Twrite(9, 1, 0, b"x"), m.Twalk(9, 1, 2, ()), m.Tlopen(9, 1, 0),
                m.Tgetattr(9, 1, 0), m.Treaddir(9, 1, 0, 100), m.Tclunk(9, 1)):
        assert raw.errno(msg) == E.EBADF, msg
    # re-binding the number gives a brand-new fid with no inherited state (not open)
    raw.walk(0, 1, "log", "queen.log")
    assert raw.errno(m.Tread(9, 1, 0, 10)) == E.EBADF
    raw.lopen(1)
    assert raw.read(1).startswith(b"Cohesix boot")


def test_other_sessions_keep_working_after_errors_c4():
    door, _, _ = make_door()
    a, b = queen(door), queen(door)
    a.session.handle_message(codec.encode(m.Tclunk(1, 77)))
    with pytest.raises(FramingLost):
        a.session.handle_message(b"\x03\x00\x00\x00")
    assert b.cat("/proc/boot").startswith(b"Cohesix boot")


# -- §3.7 getattr / readdir / statfs ----------------------------------------------------------
def test_getattr_fields():
    door, _, _ = make_door()
    raw = queen(door)
    raw.walk(0, 1, "proc", "boot")
    attr = raw.getattr(1)
    assert attr.valid == 0x7FF
    assert attr.mode == m.S_IFREG | 0o444
    assert attr.size == len(raw.cat("/proc/boot"))
    assert attr.blocks == (attr.size + 511) // 512 and attr.blksize == 8192 - 24
    assert attr.nlink == 1 and attr.uid == attr.gid == 0
    assert attr.mtime_sec == 1_700_000_000
    raw.walk(0, 2, "queen", "ctl")
    assert raw.getattr(2).mode == m.S_IFREG | 0o222
    raw.walk(0, 3, "log", "queen.log")
    assert raw.getattr(3).mode == m.S_IFREG | 0o666
    assert raw.getattr(0).mode == m.S_IFDIR | 0o555


def test_readdir_paging_and_fit():
    door, _, _ = make_door()
    raw = queen(door)
    raw.walk(0, 1)
    raw.lopen(1)
    entries = raw.readdir(1)
    assert [e.name for e in entries] == ["log", "proc", "queen", "worker"]
    assert [e.offset for e in entries] == [1, 2, 3, 4]
    assert all(e.type == m.DT_DIR for e in entries)
    first = raw.readdir(1, 0, codec.dirent_size("log"))
    assert [e.name for e in first] == ["log"]
    rest = raw.readdir(1, first[-1].offset)
    assert [e.name for e in rest] == ["proc", "queen", "worker"]
    assert raw.readdir(1, 4) == ()
    assert raw.errno(m.Treaddir(9, 1, 0, 5)) == E.EINVAL      # first entry does not fit
    raw.walk(0, 2, "proc")
    assert raw.errno(m.Treaddir(9, 2, 0, 100)) == E.EBADF     # not open
    raw.walk(0, 3, "proc", "boot")
    assert raw.errno(m.Treaddir(9, 3, 0, 100)) == E.ENOTDIR


def test_statfs():
    door, _, _ = make_door()
    raw = queen(door)
    reply = raw.rpc(m.Tstatfs(9, 0))
    assert (reply.type, reply.bsize, reply.namelen) == (0x01021997, 4096, 255)
    assert reply.files == door.ns.node_count == 8   # / proc boot log queen.log queen ctl worker


# -- §3.8 unsupported -------------------------------------------------------------------------
@pytest.mark.parametrize("mtype,errno", [(14, E.EPERM), (122, E.EPERM), (26, E.EPERM), (30, E.EOPNOTSUPP),
                                         (50, E.EOPNOTSUPP), (22, E.EINVAL), (6, E.EINVAL), (112, E.EINVAL),
                                         (101, E.EINVAL), (200, E.EINVAL)])
def test_unsupported_messages(mtype, errno):
    door, _, _ = make_door()
    raw = queen(door)
    frame = struct.pack("<IBH", 11, mtype, 33) + b"\0\0\0\0"
    reply = codec.decode_reply(raw.session.handle_message(frame)[0])
    assert reply == m.Rlerror(33, errno)


def test_flush_always_succeeds():
    door, _, _ = make_door()
    raw = queen(door)
    assert raw.rpc(m.Tflush(5, 4)) == m.Rflush(5)


# -- §3.10 malformed input --------------------------------------------------------------------
def test_malformed_frames_message_transport_c4():
    door, _, _ = make_door()
    raw = queen(door)
    s = raw.session
    good = codec.encode(m.Tclunk(7, 999))
    truncated = struct.pack("<IBH", 9, m.TCLUNK, 7) + b"\0\0"
    trailing = struct.pack("<IBH", 12, m.TCLUNK, 7) + b"\0\0\0\0\0"
    bad_utf8 = struct.pack("<IBHIIH", 25, m.TATTACH, 7, 5, m.NOFID, 2) + b"\xff\xfe" + b"\0\0" + b"\xff" * 4
    write_mismatch = struct.pack("<IBHIQI", 25, m.TWRITE, 7, 0, 0, 5) + b"ab"
    for frame in (truncated, trailing, bad_utf8, write_mismatch):
        assert codec.decode_reply(s.handle_message(frame)[0]) == m.Rlerror(7, E.EINVAL), frame.hex()
    assert codec.decode_reply(s.handle_message(good)[0]) == m.Rlerror(7, E.EBADF)
    with pytest.raises(FramingLost):
        s.handle_message(good[:-1])                             # not on a frame boundary
    with pytest.raises(FramingLost):
        s.handle_message(struct.pack("<IBH", 6, 1, 1))          # size < 7
    oversize = struct.pack("<IBH", 9000, m.TWRITE, 12) + bytes(8993)
    assert codec.decode_reply(s.handle_message(oversize)[0]) == m.Rlerror(12, E.EMSGSIZE)


def test_malformed_frames_stream_transport_c4():
    door, _, _ = make_door()
    raw = queen(door, kind="console", stream=True)
    s = raw.session
    oversize = struct.pack("<IBH", 9000, m.TWRITE, 12) + bytes(8993)
    good = codec.encode(m.Tflush(13, 1))
    # an oversize frame is discarded with EMSGSIZE and the stream continues, split across chunks
    out = s.feed(oversize[:100]) + s.feed(oversize[100:] + good[:3]) + s.feed(good[3:])
    assert [codec.decode_reply(f) for f in out] == [m.Rlerror(12, E.EMSGSIZE), m.Rflush(13)]
    with pytest.raises(FramingLost):
        s.feed(struct.pack("<I", (1 << 20) + 1))


def test_pre_version_frames_above_8192_are_oversize():
    _, raw = fresh(stream=True)
    frame = struct.pack("<IBH", 8193, m.TVERSION, 0xFFFF) + bytes(8186)
    assert [codec.decode_reply(f) for f in raw.session.feed(frame)] == [m.Rlerror(0xFFFF, E.EMSGSIZE)]


def test_negotiated_msize_bounds_frames():
    door, _, _ = make_door()
    raw = Raw(door.open_session(ChannelBinding(kind="console")))
    raw.version(1024)
    raw.attach(0)
    raw.walk(0, 1, "log", "queen.log")
    raw.lopen(1, m.O_WRONLY)
    assert raw.errno(m.Twrite(9, 1, 0, b"x" * 1010)) == E.EMSGSIZE
    assert raw.write(1, b"x" * 1000) == 1000


# -- §3.12 batching (legacy schema: batch_frames = false, tags_per_session = 1) ------------------
def test_two_frame_batch_without_batching_is_ebusy_twice_c11():
    door, _, _ = make_door()
    raw = queen(door)
    message = codec.encode(m.Tflush(1, 0)) + codec.encode(m.Tclunk(2, 0))
    replies = [codec.decode_reply(f) for f in raw.session.handle_message(message)]
    assert replies == [m.Rlerror(1, E.EBUSY), m.Rlerror(2, E.EBUSY)]
    assert raw.clunk(0)  # nothing was applied: fid 0 was still live


def test_batch_over_msize_is_emsgsize_for_every_frame():
    door, _, _ = make_door({"secure9p.batch_frames": True, "secure9p.tags_per_session": 32})
    raw = Raw(door.open_session(ChannelBinding(kind="console")))
    raw.version(1024)
    frames = [codec.encode(m.Twrite(t, 1, 0, b"y" * 600)) for t in (1, 2)]
    replies = [codec.decode_reply(f) for f in raw.session.handle_message(b"".join(frames))]
    assert replies == [m.Rlerror(1, E.EMSGSIZE), m.Rlerror(2, E.EMSGSIZE)]


def test_batch_window_and_duplicate_tags():
    door, _, _ = make_door({"secure9p.batch_frames": True, "secure9p.tags_per_session": 2})
    raw = queen(door)
    raw.walk(0, 1, "log", "queen.log")
    raw.lopen(1, m.O_WRONLY)
    batch = b"".join(codec.encode(msg) for msg in (
        m.Twrite(1, 1, 0, b"a"), m.Twrite(1, 1, 0, b"dup"), m.Twrite(2, 1, 0, b"b"),
        m.Twrite(3, 1, 0, b"over"), m.Tflush(4, 3)))
    replies = [codec.decode_reply(f) for f in raw.session.handle_message(batch)]
    assert replies == [m.Rwrite(1, 1), m.Rlerror(1, E.EINVAL), m.Rwrite(2, 1), m.Rlerror(3, E.EBUSY),
                       m.Rflush(4)]
    assert door.log_lines()[-2:] == ["a", "b"]
