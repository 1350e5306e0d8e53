"""Fixed byte vectors from SPEC §3.2 and layout facts from §3.7, for both codecs."""
from __future__ import annotations

import pytest

from nine_door import codec, codec_schema
from nine_door import messages as m

# (hex from SPEC §3.2, the message it denotes, is it a reply?)
SPEC_VECTORS = [
    ("1500000064ffff0020000008003950323030302e4c",
     m.Tversion(m.NOTAG, 8192, "9P2000.L"), False),
    ("0b0000000701000d000000", m.Rlerror(1, 13), True),
    ("1c00000068010000000000ffffffff0500717565656e0000ffffffff",
     m.Tattach(1, 0, m.NOFID, "queen", "", m.NOFID), False),
    ("1d0000006e020000000000010000000200040070726f630400626f6f74",
     m.Twalk(2, 0, 1, ("proc", "boot")), False),
    ("0f0000000c03000100000000000000", m.Tlopen(3, 1, m.O_RDONLY), False),
]


@pytest.mark.parametrize("hexframe,msg,reply", SPEC_VECTORS)
def test_fast_path_matches_spec_bytes(hexframe, msg, reply):
    frame = bytes.fromhex(hexframe)
    assert codec.encode(msg) == frame
    assert (codec.decode_reply if reply else codec.decode)(frame) == msg


@pytest.mark.parametrize("hexframe,msg,reply", SPEC_VECTORS)
def test_schema_matches_spec_bytes(hexframe, msg, reply):
    frame = bytes.fromhex(hexframe)
    assert codec_schema.schema_encode(msg) == frame
    assert codec_schema.schema_decode(frame, replies=reply) == msg


def _rgetattr() -> m.Rgetattr:
    return m.Rgetattr(9, m.GETATTR_BASIC, m.Qid(m.QTFILE, 3, 42), m.S_IFREG | 0o444, 0, 0, 1, 0,
                      17, 8168, 1, 100, 5, 100, 5, 100, 5, 0, 0, 0, 0)


def test_rgetattr_body_is_153_bytes():
    frame = codec.encode(_rgetattr())
    assert len(frame) == 7 + 153
    assert frame[4] == m.RGETATTR
    # valid[8] then qid type/version/path, then mode at offset 7+8+13.
    assert frame[7:15] == (0x7FF).to_bytes(8, "little")
    assert frame[28:32] == (m.S_IFREG | 0o444).to_bytes(4, "little")
    assert codec.decode_reply(frame) == _rgetattr()


def test_rstatfs_body_is_60_bytes():
    msg = m.Rstatfs(4, m.V9FS_MAGIC, 4096, 0, 0, 0, 12, 0, 0, 255)
    frame = codec.encode(msg)
    assert len(frame) == 7 + 60
    assert frame[7:11] == bytes.fromhex("97190201")
    assert codec.decode_reply(frame) == msg


def test_rlopen_layout_is_qid_then_iounit():
    frame = codec.encode(m.Rlopen(3, m.Qid(m.QTAPPEND, 7, 0x0102030405060708), 8168))
    assert frame.hex() == "18000000" "0d" "0300" "40" "07000000" "0807060504030201" "e81f0000"


def test_twrite_count_is_derived_from_data():
    frame = codec.encode(m.Twrite(5, 2, 0xFFFFFFFFFFFFFFFF, b"hello"))
    assert frame[19:23] == (5).to_bytes(4, "little")
    assert frame[23:] == b"hello"
    assert len(frame) == int.from_bytes(frame[:4], "little") == 28


def test_empty_replies_are_header_only():
    assert codec.encode(m.Rclunk(7)) == bytes.fromhex("0700000079" "0700")
    assert codec.encode(m.Rflush(7)) == bytes.fromhex("070000006d" "0700")


def test_dirent_layout_and_round_trip():
    entries = (m.DirEntry(m.Qid(m.QTDIR, 0, 5), 1, m.DT_DIR, "proc"),
               m.DirEntry(m.Qid(m.QTFILE, 2, 6), 2, m.DT_REG, "boot"))
    data = codec.encode_dirents(entries)
    assert len(data) == sum(codec.dirent_size(e.name) for e in entries) == 2 * (24 + 4)
    assert data[:28].hex() == "80" "00000000" "0500000000000000" "0100000000000000" "04" "0400" \
        + b"proc".hex()
    assert codec.decode_dirents(data) == entries
    assert codec_schema.schema_encode_dirents(entries) == data
    assert codec_schema.schema_decode_dirents(data) == entries


def test_unicode_strings_count_bytes_not_characters():
    frame = codec.encode(m.Twalk(1, 0, 1, ("日本",)))
    assert frame[17:19] == (6).to_bytes(2, "little")
    assert codec.decode(frame).wnames == ("日本",)


@pytest.mark.parametrize("bad", [
    m.Tversion(1, 1 << 32, "9P2000.L"),       # msize does not fit u32
    m.Tversion(1, 8192, "a\x00b"),            # NUL in string
    m.Tversion(1, 8192, "\udc80"),            # lone surrogate: not encodable as UTF-8
    m.Tversion(1, 8192, "x" * 65536),         # longer than a u16 length
    m.Tflush(1 << 16, 0),                     # tag does not fit u16
    m.Rlerror(-1, 22),
])
def test_encode_refuses_unrepresentable_values(bad):
    with pytest.raises(ValueError):
        codec.encode(bad)
    with pytest.raises(ValueError):
        codec_schema.schema_encode(bad)


def test_encode_refuses_non_messages():
    with pytest.raises(codec.EncodeError):
        codec.encode(m.Unsupported(14, 1))
    with pytest.raises(codec.EncodeError):
        codec.encode(m.Qid(0, 0, 0))


def test_peek_tag():
    assert codec.peek_tag(bytes.fromhex("0b0000000701000d000000")) == 1
    assert codec.peek_tag(b"\x0b\x00\x00\x00\x07\x01") is None
