"""CBOR Frame v1 (SPEC §7.5, §7.1 splitting; issue 13): vector, round trips against cbor2, the
malformed corpus, split_frames, rendering, guest import constraints and the Frame v1 fuzzer.

cbor2 is the reference both as installed (C extension) and as the pure-Python classes the guest would
ship (``cbor2._encoder`` / ``cbor2._decoder``), so a difference between the two cannot hide a bug.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import cbor2
import pytest
from cbor2 import _decoder as pure_decoder
from cbor2 import _encoder as pure_encoder
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nine_door import frame_fuzz
from nine_door import frame_v1 as fv
from nine_door.frame_v1 import Frame, FrameError, decode_one, describe, encode, split_frames, to_json

REPO = Path(__file__).resolve().parents[2]
VECTOR_HEX = ("a46274731b0000018bcfe568006373657101646b696e6401677061796c6f61644b6865617274626561742031")
VECTOR = bytes.fromhex(VECTOR_HEX)
VECTOR_FRAME = Frame(seq=1, ts=1700000000000, kind=1, payload=b"heartbeat 1")
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def as_map(frame: Frame) -> dict:
    out = {"seq": frame.seq, "ts": frame.ts, "kind": frame.kind, "payload": frame.payload}
    if frame.meta is not None:
        out["meta"] = frame.meta
    return out


def refused(data: bytes, reason: str) -> FrameError:
    with pytest.raises(FrameError) as info:
        decode_one(data)
    assert info.value.reason == reason, str(info.value)
    assert isinstance(info.value, ValueError) and 0 <= info.value.offset <= len(data)
    return info.value


# -- the §7.5 vector ---------------------------------------------------------------------------------

def test_vector_encodes_to_the_spec_bytes():
    assert encode(VECTOR_FRAME) == VECTOR and len(VECTOR) == 44


def test_vector_decodes_to_the_spec_frame():
    assert decode_one(VECTOR) == (VECTOR_FRAME, 44)
    assert decode_one(b"junk" + VECTOR, 4) == (VECTOR_FRAME, 48)


def test_vector_matches_cbor2_canonical_c_and_pure():
    m = as_map(VECTOR_FRAME)
    assert cbor2.dumps(m, canonical=True) == VECTOR == pure_encoder.dumps(m, canonical=True)
    assert cbor2.loads(VECTOR) == m == pure_decoder.loads(VECTOR)


@pytest.mark.parametrize("prefix", range(len(VECTOR)))
def test_vector_truncated_at_every_offset_is_refused_as_truncated(prefix):
    refused(VECTOR[:prefix], "truncated")


# -- round trips -------------------------------------------------------------------------------------

u64 = st.one_of(st.integers(0, 30), st.sampled_from([23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32,
                                                     2**64 - 1]), st.integers(0, 2**64 - 1))
texts = st.text(max_size=12)


@st.composite
def frames(draw) -> Frame:
    kind = draw(st.integers(0, 255))
    payload = draw(texts).encode() if kind <= 2 else draw(st.binary(max_size=64))
    meta = draw(st.none() | st.dictionaries(texts, st.one_of(texts, u64, st.booleans()), max_size=16))
    return Frame(draw(u64.filter(bool)), draw(u64), kind, payload, meta)


@FAST
@given(frames())
def test_random_frames_round_trip_and_encode_canonically(frame):
    data = encode(frame)
    assert decode_one(data) == (frame, len(data))
    assert encode(decode_one(data)[0]) == data
    m = as_map(frame)
    assert data == cbor2.dumps(m, canonical=True) == pure_encoder.dumps(m, canonical=True)
    assert pure_decoder.loads(data) == m == cbor2.loads(data)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(frames(), min_size=1, max_size=4))
def test_random_frame_sequences_split_back(seq):
    records = [encode(f) for f in seq]
    data = b"".join(records)
    assert split_frames(data) == (list(zip(seq, records)), len(data), None)


@FAST
@given(frames(), st.randoms(use_true_random=False))
def test_non_canonical_encodings_are_accepted_and_re_encode_canonically(frame, rnd):
    """Decision (module docstring): wide heads and other key orders are accepted, not required."""
    data = frame_fuzz.noncanonical(rnd, frame)
    assert decode_one(data) == (frame, len(data))
    assert encode(decode_one(data)[0]) == encode(frame)


def test_cbor2_default_encoding_is_accepted():
    data = cbor2.dumps({"seq": 1, "ts": 1700000000000, "kind": 1, "payload": b"heartbeat 1"})
    assert data != VECTOR and decode_one(data) == (VECTOR_FRAME, len(data))


# -- the malformed corpus ----------------------------------------------------------------------------

def item(*pairs, head: bytes | None = None) -> bytes:
    """A map from raw (key, value) pairs; values and keys are Python values (cbor2) or raw bytes."""
    def enc(x):
        return x if isinstance(x, (bytes, bytearray)) and not isinstance(x, Raw) else cbor2.dumps(x)
    body = b"".join(enc(k) + enc(v) for k, v in pairs)
    return (head if head is not None else bytes((0xA0 + len(pairs),))) + body


class Raw(bytes):
    """A byte string *value* (bytes passed to ``item`` are raw CBOR)."""


def base(**override):
    fields = {"seq": 1, "ts": 1700000000000, "kind": 1, "payload": Raw(b"heartbeat 1")}
    fields.update(override)
    return [(cbor2.dumps(k), v if not isinstance(v, Raw) else cbor2.dumps(bytes(v)))
            for k, v in fields.items() if v is not None]


def with_meta(meta_raw: bytes) -> bytes:
    return item(*base(), (cbor2.dumps("meta"), meta_raw))


CORPUS = {
    # not a map
    "uint": (cbor2.dumps(5), "not-map"),
    "array": (cbor2.dumps([1, 2, 3, 4]), "not-map"),
    "array of the fields": (cbor2.dumps(["seq", 1, "ts", 2]), "not-map"),
    "text": (cbor2.dumps("seq"), "not-map"),
    "bytes": (cbor2.dumps(b"heartbeat 1"), "not-map"),
    "null": (b"\xf6", "not-map"),
    "break": (b"\xff", "not-map"),
    # keys
    "missing seq": (item(*base(seq=None)), "missing-key"),
    "missing ts": (item(*base(ts=None)), "missing-key"),
    "missing kind": (item(*base(kind=None)), "missing-key"),
    "missing payload": (item(*base(payload=None)), "missing-key"),
    "empty map": (b"\xa0", "missing-key"),
    "unknown key": (item(*base(), (cbor2.dumps("extra"), cbor2.dumps(1))), "unknown-key"),
    "key differing in case": (item(*base(), (cbor2.dumps("Seq"), cbor2.dumps(1))), "unknown-key"),
    "int key": (item(*base(), (cbor2.dumps(1), cbor2.dumps(1))), "key-type"),
    "byte-string key": (item(*base(), (cbor2.dumps(b"seq"), cbor2.dumps(1))), "key-type"),
    "non-UTF-8 key": (item(*base(), (b"\x63se\xff", cbor2.dumps(1))), "utf8"),
    "duplicate seq": (item(*base(), (cbor2.dumps("seq"), cbor2.dumps(2))), "duplicate-key"),
    "duplicate with a wide head": (item(*base(), (b"\x78\x03seq", cbor2.dumps(2))), "duplicate-key"),
    "duplicate payload, same value": (item(*base(), (cbor2.dumps("payload"), cbor2.dumps(b"heartbeat 1"))),
                                      "duplicate-key"),
    # indefinite lengths
    "indefinite map": (b"\xbf" + item(*base())[1:] + b"\xff", "indefinite"),
    "indefinite payload bytes": (item(*base(payload=b"\x5f\x4bheartbeat 1\xff")), "indefinite"),
    "indefinite key": (item(*base()[:3], (b"\x7f\x67payload\xff", cbor2.dumps(b"x"))), "indefinite"),
    "indefinite text in meta": (with_meta(b"\xa1\x61a\x7f\x61b\xff"), "indefinite"),
    "indefinite array in meta": (with_meta(b"\xa1\x61a\x9f\x01\xff"), "indefinite"),
    "indefinite meta": (with_meta(b"\xbf\x61a\x01\xff"), "indefinite"),
    # tags
    "tag 24 wrapping": (b"\xd8\x18\x58\x2c" + VECTOR, "tag"),
    "tag 0 wrapping": (b"\xc0" + VECTOR, "tag"),
    "self-describe tag wrapping": (b"\xd9\xd9\xf7" + VECTOR, "tag"),
    "tag 1 on ts": (item(*base(ts=b"\xc1\x1b\x00\x00\x01\x8b\xcf\xe5\x68\x00")), "tag"),
    "bignum ts": (item(*base(ts=b"\xc2\x49\x01" + bytes(8))), "tag"),
    "tag in meta": (with_meta(b"\xa1\x61a\xc0\x61b"), "tag"),
    # types and ranges
    "float ts": (item(*base(ts=1700000000000.0)), "type"),
    "half-float kind": (item(*base(kind=b"\xf9\x3c\x00")), "type"),
    "negative seq": (item(*base(seq=-1)), "type"),
    "seq 0": (item(*base(seq=0)), "range"),
    "kind 256": (item(*base(kind=256)), "range"),
    "bool seq": (item(*base(seq=True)), "type"),
    "bool kind": (item(*base(kind=False)), "type"),
    "null ts": (item(*base(ts=b"\xf6")), "type"),
    "undefined seq": (item(*base(seq=b"\xf7")), "type"),
    "simple value seq": (item(*base(seq=b"\xf8\x20")), "type"),
    "text payload": (item(*base(payload="heartbeat 1")), "type"),
    "array payload": (item(*base(payload=[1])), "type"),
    "non-UTF-8 payload, kind 1": (item(*base(payload=Raw(b"\xff\xfe"))), "utf8"),
    "non-UTF-8 payload, kind 0": (item(*base(kind=0, payload=Raw(b"\xc3"))), "utf8"),
    "surrogate payload, kind 2": (item(*base(kind=2, payload=Raw(b"\xed\xa0\x80"))), "utf8"),
    # meta
    "meta 17 entries": (with_meta(cbor2.dumps({f"k{i}": i for i in range(17)})), "meta-size"),
    "meta int key": (with_meta(cbor2.dumps({1: "a"})), "key-type"),
    "meta nested map": (with_meta(cbor2.dumps({"a": {"b": 1}})), "type"),
    "meta array value": (with_meta(cbor2.dumps({"a": [1]})), "type"),
    "meta float value": (with_meta(cbor2.dumps({"a": 1.5})), "type"),
    "meta negative value": (with_meta(cbor2.dumps({"a": -1})), "type"),
    "meta null value": (with_meta(cbor2.dumps({"a": None})), "type"),
    "meta bytes value": (with_meta(cbor2.dumps({"a": b"x"})), "type"),
    "meta is an array": (with_meta(cbor2.dumps(["a", 1])), "type"),
    "meta is text": (with_meta(cbor2.dumps("a=1")), "type"),
    "meta is null": (with_meta(b"\xf6"), "type"),      # found by the fuzzer: once read as "no meta"
    "meta duplicate key": (with_meta(b"\xa2\x61a\x01\x61a\x02"), "duplicate-key"),
    # well-formedness and bounds
    "reserved additional info": (item(*base(ts=b"\x1c")), "malformed"),
    "break as a value": (item(*base(ts=b"\xff")), "malformed"),
    "two-byte simple value < 32": (item(*base(ts=b"\xf8\x10")), "malformed"),
    "deep nesting in meta": (with_meta(cbor2.dumps({"a": [[[[[1]]]]]})), "depth"),
    "map head claiming 2**64-1 entries": (b"\xbb" + b"\xff" * 8 + VECTOR[1:], "truncated"),
    "payload length 2**63": (item(*base(payload=b"\x5b\x80" + bytes(7))), "truncated"),
}


@pytest.mark.parametrize("name", list(CORPUS))
def test_malformed_items_are_refused_with_their_reason(name):
    data, reason = CORPUS[name]
    assert reason in fv.REASONS
    refused(data, reason)
    frames, accepted, error = split_frames(data)            # first item invalid → EINVAL (prefix 0)
    assert (frames, accepted, error.reason) == ([], 0, reason)
    frames, accepted, error = split_frames(VECTOR + data)   # after a valid one → short write
    assert (len(frames), accepted, error.reason) == (1, len(VECTOR), reason)
    assert error.offset >= len(VECTOR)


def test_corpus_items_that_cbor2_accepts_show_why_the_scan_exists():
    """cbor2 decodes several corpus items without complaint (keeping the last duplicate key, tags)."""
    dup = cbor2.loads(CORPUS["duplicate seq"][0])
    assert dup["seq"] == 2 and len(dup) == 4
    assert cbor2.loads(CORPUS["tag 24 wrapping"][0]).value == VECTOR
    assert pure_decoder.loads(CORPUS["indefinite map"][0]) == as_map(VECTOR_FRAME)


def test_error_offsets_point_at_the_offending_item():
    data = CORPUS["duplicate seq"][0]
    assert refused(data, "duplicate-key").offset == len(data) - 5      # the second "seq" key
    data = item(*base(kind=256))
    assert refused(data, "range").offset == data.index(b"dkind") + 5
    assert refused(b"\xc0" + VECTOR, "tag").offset == 0
    assert refused(VECTOR[:-3], "truncated").offset == VECTOR.index(b"K")   # the payload's head
    # A container that cannot fit in what is left is refused at its head, before its entries are read.
    assert refused(VECTOR[:8], "truncated").offset == 0
    data = with_meta(b"\xb4\x61a\x01")
    assert refused(data, "truncated").offset == len(data) - 4
    data = with_meta(b"\xa1\x61a\x98\x20\x01")
    assert refused(data, "truncated").offset == len(data) - 3


def test_kinds_above_2_take_any_payload_bytes_and_reserved_kinds_are_accepted():
    for kind in (3, 127, 128, 255):
        frame = Frame(5, 0, kind, b"\xff\x00\xfe")
        assert decode_one(encode(frame)) == (frame, len(encode(frame)))


def test_meta_round_trips_with_all_value_types_and_empty_meta_is_kept():
    frame = Frame(2, 3, 200, b"", {"host": "q", "n": 2**64 - 1, "ok": True, "bad": False, "": ""})
    data = encode(frame)
    assert decode_one(data)[0] == frame and data == cbor2.dumps(as_map(frame), canonical=True)
    empty = Frame(1, 1, 1, b"", {})
    assert decode_one(encode(empty))[0].meta == {} and encode(empty) != encode(Frame(1, 1, 1, b""))


# -- encode validation -------------------------------------------------------------------------------

@pytest.mark.parametrize("frame,reason", [
    (Frame(0, 1, 1, b""), "range"),
    (Frame(-1, 1, 1, b""), "type"),
    (Frame(True, 1, 1, b""), "type"),
    (Frame(1, 2**64, 1, b""), "range"),
    (Frame(1, 1.0, 1, b""), "type"),
    (Frame(1, 1, 256, b""), "range"),
    (Frame(1, 1, 1, "text"), "type"),
    (Frame(1, 1, 1, bytearray(b"x")), "type"),
    (Frame(1, 1, 1, b"\xff"), "utf8"),
    (Frame(1, 1, 1, b"", {f"k{i}": i for i in range(17)}), "meta-size"),
    (Frame(1, 1, 1, b"", {1: "a"}), "key-type"),
    (Frame(1, 1, 1, b"", {"a": 1.5}), "type"),
    (Frame(1, 1, 1, b"", {"a": -1}), "type"),
    (Frame(1, 1, 1, b"", {"a": 2**64}), "range"),
    (Frame(1, 1, 1, b"", {"a": {"b": 1}}), "type"),
    (Frame(1, 1, 1, b"", [("a", 1)]), "type"),
    (Frame(1, 1, 1, b"", {"\udcff": "a"}), "utf8"),
])
def test_encode_refuses_invalid_frames(frame, reason):
    with pytest.raises(FrameError) as info:
        encode(frame)
    assert info.value.reason == reason and info.value.offset is None


# -- split_frames ------------------------------------------------------------------------------------

def test_split_three_valid_frames_keeps_each_record():
    records = [encode(Frame(i, 1700000000000 + i, 1, f"heartbeat {i}".encode())) for i in (1, 2, 3)]
    frames, accepted, error = split_frames(b"".join(records))
    assert [raw for _, raw in frames] == records and [f.seq for f, _ in frames] == [1, 2, 3]
    assert (accepted, error) == (sum(map(len, records)), None)


def test_split_valid_then_truncated_is_a_short_prefix():
    second = encode(Frame(2, 0, 1, b"heartbeat 2"))
    frames, accepted, error = split_frames(VECTOR + second[:-1])
    assert (frames, accepted, error.reason) == ([(VECTOR_FRAME, VECTOR)], 44, "truncated")


def test_split_invalid_first_item_accepts_nothing():
    frames, accepted, error = split_frames(b"\x01" + VECTOR)
    assert (frames, accepted, error.reason, error.offset) == ([], 0, "not-map", 0)


def test_split_trailing_garbage_is_a_short_prefix():
    frames, accepted, error = split_frames(VECTOR * 2 + b"garbage")
    assert (len(frames), accepted, error.reason) == (2, 88, "not-map")


def test_split_accepts_any_bytes_like_and_no_bytes():
    assert split_frames(b"") == ([], 0, None)
    assert split_frames(bytearray(VECTOR)) == split_frames(memoryview(VECTOR)) == ([(VECTOR_FRAME, VECTOR)], 44, None)


# -- arbitrary bytes ---------------------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80))
def test_decode_one_on_arbitrary_bytes_raises_only_frame_error(data):
    try:
        frame, end = decode_one(data)
    except FrameError as exc:
        assert exc.reason in fv.REASONS and 0 <= exc.offset <= len(data)
    else:
        assert pure_decoder.loads(data[:end]) == as_map(frame)
    frames, accepted, error = split_frames(data)
    assert b"".join(raw for _, raw in frames) == data[:accepted]


@FAST
@given(frames(), st.randoms(use_true_random=False))
def test_mutated_frames_pass_every_fuzzer_check(frame, rnd):
    frame_fuzz.check_input(frame_fuzz.mutate(rnd, encode(frame), VECTOR))


def _fast_agrees_with_general(data: bytes) -> bool:
    """The canonical-layout fast path either declines or gives exactly what the general walk gives."""
    fast = fv._decode_canonical(data, 0) if data else None
    if fast is None:
        return False
    assert fv._decode_general(data, 0) == fast
    assert fast[0].__dict__ == Frame(fast[0].seq, fast[0].ts, fast[0].kind, fast[0].payload).__dict__
    return True


@FAST
@given(frames(), st.randoms(use_true_random=False))
def test_the_canonical_fast_path_takes_what_encode_writes_and_agrees_with_the_walk(frame, rnd):
    data = encode(frame)
    assert _fast_agrees_with_general(data + b"trailing") is (frame.meta is None)
    _fast_agrees_with_general(frame_fuzz.noncanonical(rnd, frame))
    for _ in range(8):                              # mutants: declined, or the walk's own answer
        mutant = frame_fuzz.mutate(rnd, data, VECTOR)
        try:
            _fast_agrees_with_general(mutant)
        except FrameError:
            raise AssertionError(f"fast path accepted {mutant!r}, which the walk refuses") from None


@given(st.binary(max_size=80))
def test_the_canonical_fast_path_on_arbitrary_bytes(data):
    try:
        _fast_agrees_with_general(b"\xa4" + data)
    except FrameError:
        raise AssertionError("fast path accepted bytes the walk refuses") from None


def test_the_canonical_fast_path_declines_what_it_must_leave_to_the_walk():
    good = encode(Frame(5, 9, 1, b"beat"))
    assert fv._decode_canonical(good, 0)[0] == Frame(5, 9, 1, b"beat")
    assert fv._decode_canonical(good.replace(b"seq\x05", b"seq\x00"), 0) is None          # seq 0
    assert fv._decode_canonical(good.replace(b"beat", b"\xffeat"), 0) is None            # not UTF-8
    assert fv._decode_canonical(good[:-1], 0) is None                                     # truncated
    assert fv._decode_canonical(encode(Frame(5, 9, 1, b"b", {"k": 1})), 0) is None        # meta
    assert fv._decode_canonical(good.replace(b"kind\x01", b"kind\x19\x01\x00"), 0) is None   # kind 256
    assert fv._decode_canonical(good.replace(b"ts\x09", b"ts\x1f"), 0) is None           # indefinite


# -- rendering ---------------------------------------------------------------------------------------

def test_describe_and_to_json():
    assert describe(VECTOR_FRAME) == 'seq=1 ts=1700000000000 kind=heartbeat payload="heartbeat 1"'
    assert to_json(VECTOR_FRAME) == {"seq": 1, "ts": 1700000000000, "kind": 1, "payload": "heartbeat 1"}
    job = Frame(7, 9, 2, b'{"job":"j"}\n', {"worker": "worker-1", "n": 3, "ok": True})
    assert describe(job) == ('seq=7 ts=9 kind=gpu-job meta={"worker":"worker-1","n":3,"ok":true} '
                             'payload="{\\"job\\":\\"j\\"}\\n"')
    assert "\n" not in describe(job)
    blob = Frame(1, 2, 200, b"\xff\x00")
    assert describe(blob) == "seq=1 ts=2 kind=200 payload=b64:/wA="
    assert to_json(blob) == {"seq": 1, "ts": 2, "kind": 200, "payload_b64": "/wA="}
    assert to_json(Frame(1, 2, 200, b"text")) == {"seq": 1, "ts": 2, "kind": 200, "payload_b64": "dGV4dA=="}
    assert describe(Frame(1, 2, 200, b"text")).endswith('payload="text"')


# -- guest constraints -------------------------------------------------------------------------------

def test_module_imports_neither_typing_nor_cbor2_nor_json():
    """The guest ships no ``typing`` and imports only the boot path's modules (docs/build.md)."""
    code = ("import sys; sys.path.insert(0, '.'); import nine_door.frame_v1; "
            "print(sorted(m for m in ('typing', 'cbor2', '_cbor2', 'json') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr


# -- the fuzzer --------------------------------------------------------------------------------------

def test_fuzzer_counts_add_up_and_are_deterministic():
    report = frame_fuzz.run_fuzz(1500, seed=3)
    assert report.accepted + report.refused == 1500 and report.failures == 0
    assert min(report.accepted, report.refused) > 200
    assert report == frame_fuzz.run_fuzz(1500, seed=3) != frame_fuzz.run_fuzz(1500, seed=4)


def test_fuzzer_catches_a_planted_decoder_bug(monkeypatch):
    """A decoder that forgets a string's length check: the fuzzer must notice (it raises IndexError
    or accepts a short payload that cbor2 refuses)."""
    real_item = fv._item

    def sloppy(buf, pos, depth):
        if buf[pos] >> 5 == 2:
            _major, _ai, arg, p = fv._head_at(buf, pos)
            return buf[p:p + arg], p + arg       # no truncation check
        return real_item(buf, pos, depth)

    monkeypatch.setattr(fv, "_item", sloppy)
    with pytest.raises(frame_fuzz.FuzzFailure, match=r"iteration \d+: "):
        frame_fuzz.run_fuzz(500)
    assert frame_fuzz.run_fuzz(500, keep_going=True).failures > 0


def test_command_line_summary_is_the_run_it_made():
    proc = subprocess.run([sys.executable, "-m", "nine_door.frame_fuzz", "--iterations", "200", "--seed", "5"],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    ours = frame_fuzz.run_fuzz(200, seed=5)
    line, = [ln for ln in proc.stdout.splitlines() if ln.startswith("frame-v1-fuzz: ")]
    assert re.fullmatch(r"frame-v1-fuzz: iterations=\d+ accepted=\d+ refused=\d+ failures=\d+ seed=0x[0-9a-f]+",
                        line)
    assert dict(re.findall(r"(\w+)=(\S+)", line)) == {
        "iterations": "200", "accepted": str(ours.accepted), "refused": str(ours.refused),
        "failures": "0", "seed": "0x5"}
