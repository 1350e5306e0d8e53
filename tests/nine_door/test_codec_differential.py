"""Differential property tests: the struct fast path must agree with the construct schemas.

The construct schemas (nine_door.codec_schema) are the source of truth; the fast path
(nine_door.codec) is a hand-written restatement for speed. For random valid messages both
encoders must emit identical bytes and both decoders must return the original message; for
random mutated bytes both decoders must accept or reject alike (and agree on the result and
on the tag carried by the error).
"""
from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nine_door import codec, codec_schema, fuzz
from nine_door import messages as m
from nine_door.errors import DecodeError

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
u64 = st.integers(0, 0xFFFFFFFFFFFFFFFF)
# Any text without NUL: includes astral characters; surrogates are excluded because they have
# no UTF-8 form (category Cs is excluded).
text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=24)
data = st.binary(max_size=300)
qids = st.builds(m.Qid, u8, u32, u64)
dirents = st.builds(m.DirEntry, qids, u64, u8, text)

requests = st.one_of(
    st.builds(m.Tversion, u16, u32, text),
    st.builds(m.Tauth, u16, u32, text, text, u32),
    st.builds(m.Tattach, u16, u32, u32, text, text, u32),
    st.builds(m.Twalk, u16, u32, u32, st.lists(text, max_size=12).map(tuple)),
    st.builds(m.Tlopen, u16, u32, u32),
    st.builds(m.Tread, u16, u32, u64, u32),
    st.builds(m.Twrite, u16, u32, u64, data),
    st.builds(m.Tclunk, u16, u32),
    st.builds(m.Tgetattr, u16, u32, u64),
    st.builds(m.Treaddir, u16, u32, u64, u32),
    st.builds(m.Tstatfs, u16, u32),
    st.builds(m.Tflush, u16, u16),
)
replies = st.one_of(
    st.builds(m.Rversion, u16, u32, text),
    st.builds(m.Rattach, u16, qids),
    st.builds(m.Rwalk, u16, st.lists(qids, max_size=12).map(tuple)),
    st.builds(m.Rlopen, u16, qids, u32),
    st.builds(m.Rread, u16, data),
    st.builds(m.Rwrite, u16, u32),
    st.builds(m.Rclunk, u16),
    st.builds(m.Rgetattr, u16, u64, qids, u32, u32, u32, *([u64] * 15)),
    st.builds(m.Rreaddir, u16, st.lists(dirents, max_size=5).map(codec.encode_dirents)),
    st.builds(m.Rstatfs, u16, u32, u32, u64, u64, u64, u64, u64, u64, u32),
    st.builds(m.Rflush, u16),
    st.builds(m.Rlerror, u16, u32),
)

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _outcome(fn, frame: bytes):
    try:
        return ("ok", fn(frame))
    except DecodeError as exc:
        return ("err", exc.tag, exc.errno)


@FAST
@given(requests)
def test_requests_encode_identically_and_round_trip(msg):
    frame = codec.encode(msg)
    assert codec_schema.schema_encode(msg) == frame
    assert codec.decode(frame) == msg
    assert codec_schema.schema_decode(frame) == msg


@FAST
@given(replies)
def test_replies_encode_identically_and_round_trip(msg):
    frame = codec.encode(msg)
    assert codec_schema.schema_encode(msg) == frame
    assert codec.decode_reply(frame) == msg
    assert codec_schema.schema_decode(frame, replies=True) == msg


@FAST
@given(st.lists(dirents, max_size=6).map(tuple))
def test_dirents_agree(entries):
    blob = codec.encode_dirents(entries)
    assert codec_schema.schema_encode_dirents(entries) == blob
    assert codec.decode_dirents(blob) == codec_schema.schema_decode_dirents(blob) == entries


@FAST
@given(st.one_of(requests, replies), st.randoms(use_true_random=False))
def test_mutated_frames_are_judged_alike(msg, rnd):
    frame = fuzz.mutate(random.Random(rnd.getrandbits(64)), codec.encode(msg))
    assert _outcome(codec.decode, frame) == _outcome(codec_schema.schema_decode, frame)
    assert _outcome(codec.decode_reply, frame) == _outcome(
        lambda f: codec_schema.schema_decode(f, replies=True), frame)


@FAST
@given(st.binary(max_size=64))
def test_arbitrary_bytes_are_judged_alike(blob):
    assert _outcome(codec.decode, blob) == _outcome(codec_schema.schema_decode, blob)
    assert _outcome(codec.decode_reply, blob) == _outcome(
        lambda f: codec_schema.schema_decode(f, replies=True), blob)


@FAST
@given(u8, u16, st.binary(max_size=40))
def test_any_well_sized_frame_is_judged_alike(mtype, tag, body):
    frame = (7 + len(body)).to_bytes(4, "little") + bytes([mtype]) + tag.to_bytes(2, "little") + body
    fast = _outcome(codec.decode, frame)
    assert fast == _outcome(codec_schema.schema_decode, frame)
    if fast[0] == "err":
        assert fast[1] == tag      # a readable tag is always reported
    assert _outcome(codec.decode_reply, frame) == _outcome(
        lambda f: codec_schema.schema_decode(f, replies=True), frame)


@FAST
@given(st.binary(max_size=120))
def test_dirent_decoders_agree_on_arbitrary_bytes(blob):
    assert _outcome(codec.decode_dirents, blob) == _outcome(
        codec_schema.schema_decode_dirents, blob)
