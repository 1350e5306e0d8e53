"""The malformed-frame corpus of SPEC §16 C4, at the codec level (SPEC §3.8, §3.10).

Each case states the bytes and the reaction the codec must give the server: a DecodeError
carrying the frame's tag and EINVAL (→ Rlerror EINVAL), an Unsupported result with the §3.8
errno, an Oversize event (→ EMSGSIZE), or FramingLost (→ close the transport). Every case is
checked against the construct schema too, so the corpus pins both codecs.
"""
from __future__ import annotations

import pytest

from nine_door import codec, codec_schema
from nine_door import messages as m
from nine_door.errors import EINVAL, EMSGSIZE, EOPNOTSUPP, EPERM, DecodeError, FramingLost


def frame(mtype: int, tag: int, body: bytes) -> bytes:
    return (7 + len(body)).to_bytes(4, "little") + bytes([mtype]) + tag.to_bytes(2, "little") + body


def s(raw: bytes) -> bytes:
    return len(raw).to_bytes(2, "little") + raw


def u32(v: int) -> bytes:
    return v.to_bytes(4, "little")


GOOD_ATTACH = codec.encode(m.Tattach(1, 0, m.NOFID, "queen", "", m.NOFID))
GOOD_VERSION = bytes.fromhex("1500000064ffff0020000008003950323030302e4c")

# name → (frame bytes, expected tag in the DecodeError)
MALFORMED = {
    "size-field-larger-than-frame": (b"\x20" + GOOD_VERSION[1:], 0xFFFF),
    "size-field-smaller-than-frame": (b"\x14" + GOOD_VERSION[1:], 0xFFFF),
    "truncated-fixed-field": (frame(m.TLOPEN, 3, u32(1) + b"\x00\x00"), 3),
    "truncated-u32-before-string": (frame(m.TVERSION, 4, b"\x00\x20"), 4),
    "truncated-string-length": (frame(m.TVERSION, 5, u32(8192) + b"\x09"), 5),
    "truncated-string-bytes": (frame(m.TVERSION, 6, u32(8192) + b"\x08\x009P2000"), 6),
    "truncated-attach-n_uname": (GOOD_ATTACH[:-1].replace(b"\x1c", b"\x1b", 1), 1),
    "truncated-walk-name-list": (frame(m.TWALK, 7, u32(0) + u32(1) + b"\x02\x00" + s(b"proc")), 7),
    "trailing-bytes-fixed": (frame(m.TCLUNK, 8, u32(1) + b"\x00"), 8),
    "trailing-bytes-after-string": (frame(m.TVERSION, 9, u32(8192) + s(b"9P2000.L") + b"zz"), 9),
    "trailing-bytes-after-walk": (frame(m.TWALK, 10, u32(0) + u32(1) + b"\x01\x00" + s(b"a") + b"b"), 10),
    "bad-utf8-continuation": (frame(m.TVERSION, 11, u32(8192) + s(b"\xc3\x28")), 11),
    "bad-utf8-surrogate": (frame(m.TWALK, 12, u32(0) + u32(1) + b"\x01\x00" + s(b"\xed\xa0\x80")), 12),
    "bad-utf8-overlong": (frame(m.TATTACH, 13, u32(0) + u32(m.NOFID) + s(b"\xc0\xaf") + s(b"") + u32(0)), 13),
    "nul-in-uname": (frame(m.TATTACH, 14, u32(0) + u32(m.NOFID) + s(b"que\x00en") + s(b"") + u32(0)), 14),
    "nul-in-wname": (frame(m.TWALK, 15, u32(0) + u32(1) + b"\x01\x00" + s(b"\x00")), 15),
    "twrite-count-exceeds-data": (frame(m.TWRITE, 16, u32(1) + bytes(8) + u32(6) + b"hello"), 16),
    "twrite-count-below-data": (frame(m.TWRITE, 17, u32(1) + bytes(8) + u32(4) + b"hello"), 17),
    "twrite-count-huge": (frame(m.TWRITE, 18, u32(1) + bytes(8) + u32(0xFFFFFFFF) + b"x"), 18),
    "tflush-short": (frame(m.TFLUSH, 19, b"\x01"), 19),
    "empty-body-tattach": (frame(m.TATTACH, 20, b""), 20),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_frames_are_einval_with_their_tag(name):
    data, tag = MALFORMED[name]
    for decoder in (codec.decode, codec_schema.schema_decode):
        with pytest.raises(DecodeError) as info:
            decoder(data)
        assert info.value.tag == tag
        assert info.value.errno == EINVAL


@pytest.mark.parametrize("data", [b"", b"\x07", b"\x07\x00\x00\x00\x64\x01", bytes(6)])
def test_frames_shorter_than_the_header_have_no_tag(data):
    with pytest.raises(DecodeError) as info:
        codec.decode(data)
    assert info.value.tag is None


@pytest.mark.parametrize("size", [0, 1, 4, 6])
def test_size_below_seven_loses_framing_on_streams_and_messages(size):
    data = u32(size) + b"\x64\x01\x00" + bytes(16)
    with pytest.raises(FramingLost):
        codec.FrameReader().feed(data)
    with pytest.raises(FramingLost):
        codec.split_batch(data)


def test_oversize_frame_is_discarded_and_reported_with_its_tag():
    big = frame(m.TWRITE, 0x1234, u32(1) + bytes(8) + u32(9000) + bytes(9000))
    reader = codec.FrameReader(msize=8192)
    events = reader.feed(big + GOOD_VERSION)
    assert events == [codec.Oversize(0x1234, len(big)), GOOD_VERSION]
    assert reader.buffered == 0


def test_frame_of_exactly_one_mib_is_oversize_but_one_more_byte_loses_framing():
    header = bytes([m.TWRITE]) + b"\x05\x00"
    reader = codec.FrameReader(msize=8192)
    assert reader.feed(u32(m.MAX_FRAME) + header) == []
    assert reader.feed(bytes(m.MAX_FRAME - 7)) == [codec.Oversize(5, m.MAX_FRAME)]
    with pytest.raises(FramingLost):
        codec.FrameReader().feed(u32(m.MAX_FRAME + 1) + header)


def test_message_not_ending_on_frame_boundary_loses_framing():
    # C4 "size mismatch on a message channel": declared sizes do not tile the message.
    with pytest.raises(FramingLost):
        codec.split_batch(GOOD_VERSION + GOOD_ATTACH[:-3])
    with pytest.raises(FramingLost):
        codec.split_batch(GOOD_VERSION[:-1])
    with pytest.raises(FramingLost):
        codec.split_batch(GOOD_VERSION + b"\x00")


@pytest.mark.parametrize("mtype,errno", [
    (m.TLCREATE, EPERM), (m.TSYMLINK, EPERM), (m.TMKNOD, EPERM), (m.TRENAME, EPERM),
    (m.TSETATTR, EPERM), (m.TLINK, EPERM), (m.TMKDIR, EPERM), (m.TRENAMEAT, EPERM),
    (m.TUNLINKAT, EPERM), (m.TREMOVE, EPERM),
    (m.TXATTRWALK, EOPNOTSUPP), (m.TXATTRCREATE, EOPNOTSUPP), (m.TFSYNC, EOPNOTSUPP),
    (m.TLOCK, EOPNOTSUPP), (m.TGETLOCK, EOPNOTSUPP),
    (m.TREADLINK, EINVAL), (m.TLERROR, EINVAL), (m.TOPEN, EINVAL), (m.TCREATE, EINVAL),
    (m.TSTAT, EINVAL), (m.TWSTAT, EINVAL), (m.RVERSION, EINVAL), (m.RLERROR, EINVAL),
    (m.RERROR, EINVAL), (0, EINVAL), (255, EINVAL), (99, EINVAL),
])
def test_unsupported_types_follow_the_section_3_8_table(mtype, errno):
    # The body is not interpreted: garbage or nothing at all still yields the table's errno.
    for body in (b"", b"\xff" * 13):
        data = frame(mtype, 77, body)
        for decoder in (codec.decode, codec_schema.schema_decode):
            msg = decoder(data)
            assert msg == m.Unsupported(mtype, 77)
            assert msg.errno == errno


def test_unsupported_type_still_needs_valid_framing():
    with pytest.raises(DecodeError) as info:
        codec.decode(u32(99) + bytes([m.TLCREATE]) + b"\x02\x00")
    assert info.value.tag == 2


def test_tauth_is_a_real_message():
    data = frame(m.TAUTH, 3, u32(5) + s(b"queen") + s(b"") + u32(m.NOFID))
    assert codec.decode(data) == m.Tauth(3, 5, "queen", "", m.NOFID)


def test_unknown_reply_type_is_a_decode_error_for_the_client():
    with pytest.raises(DecodeError):
        codec.decode_reply(frame(m.RERROR, 1, s(b"nope")))
    with pytest.raises(DecodeError):
        codec.decode_reply(frame(m.TVERSION, 1, u32(8192) + s(b"9P2000.L")))


@pytest.mark.parametrize("names", [
    tuple(f"n{i}" for i in range(9)),     # 9 walk names: wire-valid, the server says EINVAL
    ("..",), (".",), ("a/b",), ("",),
])
def test_semantically_bad_walks_still_decode_so_the_server_can_refuse_them(names):
    # SPEC §3.4 refusals need the session's walk_depth and happen "before walking"; the codec
    # only guarantees the names are well-formed strings.
    data = codec.encode(m.Twalk(4, 0, 1, names))
    assert codec.decode(data).wnames == names


@pytest.mark.parametrize("blob", [
    b"\x80" + bytes(20),                                        # truncated entry header
    codec.encode_dirent(m.DirEntry(m.Qid(0, 0, 1), 1, 8, "ab"))[:-1],   # truncated name
    codec.encode_dirent(m.DirEntry(m.Qid(0, 0, 1), 1, 8, "ab")) + b"\x00",
    bytes(22) + s(b"\xff"),
    bytes(22) + s(b"a\x00"),
])
def test_bad_directory_entry_lists_are_rejected(blob):
    with pytest.raises(DecodeError):
        codec.decode_dirents(blob)
    with pytest.raises(DecodeError):
        codec_schema.schema_decode_dirents(blob)


def test_decoder_accepts_bytearray_and_memoryview():
    assert codec.decode(bytearray(GOOD_VERSION)) == codec.decode(memoryview(GOOD_VERSION))
