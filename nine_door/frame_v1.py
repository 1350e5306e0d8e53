"""CBOR Frame v1: the telemetry record of ``cbor_v1`` rings (SPEC §7.1, §7.5), for host and guest.

A frame is one definite-length CBOR map with text keys ``seq``, ``ts``, ``kind``, ``payload`` and,
optionally, ``meta``. Producers (worker-heart, the server's fan-out, cohsh pools) call :func:`encode`;
the ring calls :func:`split_frames` on each Twrite; readers (``cohsh tail``) call :func:`decode_one`,
:func:`describe` and :func:`to_json`.

Why hand-written and not ``cbor2`` (the project prefers the library; this is the written reason):

* §7.5 makes decoders reject duplicate keys, indefinite lengths and tags. cbor2 silently keeps the
  last of two equal keys, and accepts indefinite items and tags (it even decodes tag 24's embedded
  CBOR, or tag 0 into a ``datetime``). So a strict walk over every item header is needed whatever
  decodes the values: it is what finds the item's end, what sees a tag or an indefinite length at any
  depth, and what compares keys before a dict can merge them. For Frame v1 that walk already holds
  every value — the schema only has unsigned ints, byte/text strings, bools and one nested map — so
  it returns them directly; handing the validated bytes to cbor2 would be a second parse that checks
  nothing new.
* Cost in the guest, where only cbor2's pure-Python part ships: importing it loads ``typing``,
  ``datetime`` and ``threading`` (~14 ms on the build host, many times that under TCG, and ``typing``
  is kept out of the image on purpose: docs/build.md "What the boot path imports"), in every worker
  process that writes a heartbeat. Measured on the build host for a heartbeat frame: cbor2's pure
  canonical ``dumps`` ~44 µs against ~3.5 µs for :func:`encode`; cbor2's pure ``loads`` ~10 µs, about
  the general walk of :func:`decode_one` (7 µs), which also enforces every rule below; a frame in the
  layout :func:`encode` writes takes ~1.5 µs (``_decode_canonical``).
* The encoder is the five fixed keys in their fixed order plus RFC 8949 §4.2.1 integer heads: a
  dozen lines, easier to audit than the library's canonical mode.

cbor2 stays the reference: the tests compare :func:`encode` with ``cbor2.dumps(..., canonical=True)``
and every accepted item with ``cbor2.loads`` — with the C extension and with the pure-Python classes
the guest would have — and ``nine_door.frame_fuzz`` repeats the comparison on mutated input.

Decoding rules (choices where SPEC §7.5 is silent are marked *choice*):

* Everything §7.5 lists is refused: a non-map item, missing, unknown or duplicate keys (compared by
  value, so ``seq`` spelled with a long length head is still a duplicate), wrong types (a bool is not
  an int; a negative int is not an unsigned one; floats, null, undefined and simple values are
  refused), indefinite lengths and tags at any depth, a ``meta`` that is not a map of text keys to
  text/uint/bool values with at most 16 entries. Ranges: ``seq`` ≥ 1, ``kind`` ≤ 255 (``seq``/``ts``
  fit u64 by construction: CBOR's major type 0 cannot hold more without a tag). Text strings must be
  valid UTF-8, and so must the payload of kinds 0–2.
* *choice* — the encoding need not be canonical. §7.5 obliges *encoders* to be deterministic and
  lists what decoders must refuse; non-shortest integer or length heads and another key order are
  unambiguous, so they are accepted (RFC 8949 §4.2 makes deterministic-checking an optional decoder
  mode). The ring stores the producer's bytes as they came; ``encode(frame) == raw`` tells a caller
  whether they were canonical.
* *choice* — kinds 3–127 (reserved) are accepted: §7.5 reserves them but does not make decoders
  refuse them, and refusing would break an older server the day they get a meaning.
* *choice* — an empty ``meta`` map is kept as ``{}`` (distinct from an absent ``meta``, ``None``), so
  decoding and re-encoding reproduces the bytes.
* Nesting deeper than :data:`MAX_DEPTH` is refused before recursing (no valid frame nests more than
  twice); every length is checked against the bytes left before anything is read or allocated, so
  work is linear in the input.
* The walk stops at the first structural problem, unknown key or duplicate key, in byte order; types
  and ranges are checked once the whole item has been walked (ts, seq, kind, payload, meta).
  :class:`FrameError` carries a short ``reason`` token (:data:`REASONS`) and the absolute ``offset``
  of the offending item (for a type or range problem: of the key's value).

Guest code: standard library only, and nothing outside the boot path at import time (``json`` is
imported by :func:`describe` when first used).
"""
from __future__ import annotations

import binascii
import re
import struct
from dataclasses import dataclass

__all__ = ["Frame", "FrameError", "encode", "decode_one", "split_frames", "describe", "to_json",
           "REASONS", "KIND_TEXT", "KIND_HEARTBEAT", "KIND_GPU_JOB_STATUS", "META_MAX_ENTRIES",
           "U64_MAX", "MAX_DEPTH", "TEXT_KINDS", "KIND_NAMES"]

KIND_TEXT = 0
KIND_HEARTBEAT = 1
KIND_GPU_JOB_STATUS = 2
#: Kinds whose payload must be UTF-8 text (§7.5).
TEXT_KINDS = (KIND_TEXT, KIND_HEARTBEAT, KIND_GPU_JOB_STATUS)
KIND_NAMES = {KIND_TEXT: "text", KIND_HEARTBEAT: "heartbeat", KIND_GPU_JOB_STATUS: "gpu-job"}
META_MAX_ENTRIES = 16
U64_MAX = (1 << 64) - 1
#: Deepest container nesting the decoder walks into (a valid frame has 2: the frame map, ``meta``).
MAX_DEPTH = 4

#: Every ``FrameError.reason``, with what it means.
REASONS = {
    "truncated": "the input ends inside the item",
    "malformed": "not well-formed CBOR (reserved additional info, stray break, bad simple value)",
    "indefinite": "an indefinite-length string, array or map",
    "tag": "a tagged item",
    "depth": f"containers nested deeper than {MAX_DEPTH}",
    "not-map": "the item is not a map",
    "key-type": "a map key that is not a text string",
    "duplicate-key": "the same key twice in one map",
    "unknown-key": "a frame key other than seq, ts, kind, payload, meta",
    "missing-key": "seq, ts, kind or payload is absent",
    "type": "a value of the wrong CBOR type",
    "range": "seq 0, kind above 255, or an integer above u64",
    "utf8": "a text string, or the payload of kinds 0-2, that is not valid UTF-8",
    "meta-size": f"meta with more than {META_MAX_ENTRIES} entries",
}


class FrameError(ValueError):
    """Why bytes are not a Frame v1 item (decode) or a Frame cannot be encoded (encode).

    The ring answers it with EINVAL or a short write (§7.1); ``reason`` is one of :data:`REASONS`
    (stable, for log lines and tests), ``offset`` the absolute offset of the offending item in the
    decoded buffer (``None`` from :func:`encode`).
    """

    def __init__(self, reason: str, message: str, offset: int | None = None) -> None:
        super().__init__(message if offset is None else f"{message} (at offset {offset})")
        self.reason = reason
        self.offset = offset


@dataclass(frozen=True)
class Frame:
    """One frame, as producers build it and decoders return it.

    Frozen so that a frame validated by :func:`decode_one` cannot change before the ring or a reader
    uses it. ``meta`` is ``None`` when the key is absent, ``{}`` when it is an empty map; a frame with
    a ``meta`` dict is not hashable. Fields are checked by :func:`encode`, not here, so decoding does
    not validate twice.
    """

    seq: int
    ts: int
    kind: int
    payload: bytes
    meta: dict | None = None


# -- encoding ----------------------------------------------------------------------------------------

def _head(major: int, n: int) -> bytes:
    """The shortest head for ``n`` (RFC 8949 §4.2.1: preferred serialization of lengths and ints)."""
    mt = major << 5
    if n < 24:
        return bytes((mt | n,))
    if n < 0x100:
        return bytes((mt | 24, n))
    if n < 0x10000:
        return bytes((mt | 25,)) + n.to_bytes(2, "big")
    if n < 0x100000000:
        return bytes((mt | 26,)) + n.to_bytes(4, "big")
    return bytes((mt | 27,)) + n.to_bytes(8, "big")


def _text(s: str) -> bytes:
    try:
        b = s.encode("utf-8")
    except UnicodeEncodeError:
        raise FrameError("utf8", f"text {s!r} is not encodable as UTF-8") from None
    return _head(3, len(b)) + b


def encode(frame: Frame) -> bytes:
    """The frame's core deterministic encoding (§7.5): fixed key order ``ts seq kind [meta] payload``,
    ``meta`` keys sorted by their encoded bytes. Raises :class:`FrameError` for an invalid frame, so no
    producer can write what the ring would refuse."""
    seq, ts, kind, payload, meta = frame.seq, frame.ts, frame.kind, frame.payload, frame.meta
    _check_fields(seq, ts, kind, payload, meta)
    parts = [b"\xa5" if meta is not None else b"\xa4",
             b"\x62ts", _head(0, ts), b"\x63seq", _head(0, seq), b"\x64kind", _head(0, kind)]
    if meta is not None:
        entries = sorted((_text(k), v) for k, v in meta.items())
        parts += [b"\x64meta", _head(5, len(entries))]
        for key, value in entries:
            parts.append(key)
            parts.append(_text(value) if type(value) is str
                         else b"\xf5" if value is True else b"\xf4" if value is False
                         else _head(0, value))
    parts += [b"\x67payload", _head(2, len(payload)), payload]
    return b"".join(parts)


def _check_fields(seq, ts, kind, payload, meta, where: dict | None = None) -> None:
    """The schema checks shared by encode and decode; ``where`` maps a key to its offset (decode)."""
    for key, value, low in (("ts", ts, 0), ("seq", seq, 1), ("kind", kind, 0)):
        if type(value) is not int or value < 0:
            _fail(where, "type", key, f"{key} must be an unsigned integer, not {_what(value)}")
        high = 255 if key == "kind" else U64_MAX
        if not low <= value <= high:
            _fail(where, "range", key, f"{key} {value} is outside {low}..{high}")
    if type(payload) is not bytes:
        _fail(where, "type", "payload", f"payload must be a byte string, not {_what(payload)}")
    if meta is not None:
        if type(meta) is not dict:
            _fail(where, "type", "meta", f"meta must be a map, not {_what(meta)}")
        if len(meta) > META_MAX_ENTRIES:
            _fail(where, "meta-size", "meta", f"meta has {len(meta)} entries (at most {META_MAX_ENTRIES})")
        for k, v in meta.items():
            if type(k) is not str:
                _fail(where, "key-type", "meta", f"meta key {k!r} is not text")
            if type(v) is int and v > U64_MAX:
                _fail(where, "range", "meta", f"meta[{k!r}] {v} is above u64")
            if not (type(v) is str or type(v) is bool or (type(v) is int and v >= 0)):
                _fail(where, "type", "meta", f"meta[{k!r}] must be text, an unsigned integer or a bool, "
                                             f"not {_what(v)}")
    if kind in TEXT_KINDS:
        try:
            payload.decode("utf-8")
        except UnicodeDecodeError:
            _fail(where, "utf8", "payload", f"payload of kind {kind} is not UTF-8 text")


def _fail(where: dict | None, reason: str, key: str, message: str):
    raise FrameError(reason, message, None if where is None else where[key])


def _what(v) -> str:
    """A value's CBOR type in words, for error messages."""
    if isinstance(v, _Simple):
        return v.name
    if type(v) is int:
        return "a negative integer" if v < 0 else "an integer above u64"
    return {bool: "a bool", str: "a text string", bytes: "a byte string", float: "a float",
            list: "an array", dict: "a map", type(None): "null"}.get(type(v), type(v).__name__)


# -- decoding ----------------------------------------------------------------------------------------

class _Simple:
    """undefined / simple values: well-formed CBOR that no Frame v1 field accepts."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


_UNDEFINED = _Simple("undefined")
_FLOATS = {25: struct.Struct(">e"), 26: struct.Struct(">f"), 27: struct.Struct(">d")}
_FRAME_KEYS = frozenset(("seq", "ts", "kind", "payload", "meta"))
#: Fast path: a key in its shortest encoding is looked up by its raw bytes (no UTF-8 decode).
_KEY_BY_RAW = {_head(3, len(k)) + k.encode(): k for k in _FRAME_KEYS}


def _head_at(buf: bytes, pos: int) -> tuple[int, int, int, int]:
    """Read the head at ``pos``: (major, additional info, argument, offset after the head).

    Tags and indefinite lengths are refused here, so no caller ever sees one."""
    n = len(buf)
    if pos >= n:
        raise FrameError("truncated", "input ends where an item should start", pos)
    ib = buf[pos]
    major, ai = ib >> 5, ib & 0x1F
    if major == 6:
        raise FrameError("tag", "tags are not allowed in Frame v1", pos)
    if ai < 24:
        return major, ai, ai, pos + 1
    if ai < 28:
        size = 1 << (ai - 24)
        end = pos + 1 + size
        if end > n:
            raise FrameError("truncated", "input ends inside an item head", pos)
        return major, ai, int.from_bytes(buf[pos + 1:end], "big"), end
    if ai == 31 and major in (2, 3, 4, 5):
        raise FrameError("indefinite", "indefinite lengths are not allowed in Frame v1", pos)
    if ai == 31 and major == 7:
        raise FrameError("malformed", "break outside an indefinite-length item", pos)
    raise FrameError("malformed", f"reserved additional information {ai} (initial byte {ib:#04x})", pos)


def _item(buf: bytes, pos: int, depth: int):
    """Decode the well-formed, tag-free, definite item at ``pos``: (value, offset after it)."""
    major, ai, arg, p = _head_at(buf, pos)
    if major == 0:
        return arg, p
    if major == 1:
        return -1 - arg, p
    if major == 2 or major == 3:
        end = p + arg
        if end > len(buf):
            raise FrameError("truncated", "input ends inside a string", pos)
        raw = buf[p:end]
        if major == 2:
            return raw, end
        try:
            return raw.decode("utf-8"), end
        except UnicodeDecodeError:
            raise FrameError("utf8", "text string is not valid UTF-8", pos) from None
    if major == 7:
        if ai == 20:
            return False, p
        if ai == 21:
            return True, p
        if ai == 22:
            return None, p
        if ai == 23:
            return _UNDEFINED, p
        if ai < 24:
            return _Simple(f"simple value {ai}"), p
        if ai == 24:
            if arg < 32:
                raise FrameError("malformed", f"two-byte simple value {arg} (< 32)", pos)
            return _Simple(f"simple value {arg}"), p
        return _FLOATS[ai].unpack_from(buf, pos + 1)[0], p
    if depth >= MAX_DEPTH:
        raise FrameError("depth", f"containers nested deeper than {MAX_DEPTH}", pos)
    if major == 4:
        if arg > len(buf) - p:
            raise FrameError("truncated", f"input ends inside an array of {arg} items", pos)
        out = []
        for _ in range(arg):
            value, p = _item(buf, p, depth + 1)
            out.append(value)
        return out, p
    # major 5: a map; Frame v1 maps have text keys only, compared by value for duplicates.
    if arg > (len(buf) - p) // 2:
        raise FrameError("truncated", f"input ends inside a map of {arg} entries", pos)
    out = {}
    for _ in range(arg):
        kpos = p
        key, p = _item(buf, p, depth + 1)
        if type(key) is not str:
            raise FrameError("key-type", f"map key is {_what(key)}, not a text string", kpos)
        if key in out:
            raise FrameError("duplicate-key", f"duplicate map key {key!r}", kpos)
        out[key], p = _item(buf, p, depth + 1)
    return out, p


def decode_one(buf: bytes, pos: int = 0) -> tuple[Frame, int]:
    """Decode exactly one Frame v1 item starting at ``pos``; return it and the offset just after it.

    Bytes after the item are not looked at (frames are written back to back, §7.5). Raises only
    :class:`FrameError` for bad input, whatever the bytes (IndexError only for a ``pos`` outside
    ``buf``, a caller's bug).
    """
    if type(buf) is not bytes:
        buf = bytes(buf)
    if not 0 <= pos <= len(buf):
        raise IndexError(f"pos {pos} outside the buffer of {len(buf)} bytes")
    if pos < len(buf) and buf[pos] == 0xA4:
        done = _decode_canonical(buf, pos)
        if done is not None:
            return done
    return _decode_general(buf, pos)


def _decode_general(buf: bytes, pos: int) -> tuple[Frame, int]:
    """:func:`decode_one` for any input: the strict walk over every item head (module docstring)."""
    if pos < len(buf) and buf[pos] >> 5 not in (5, 6):    # a tag gets its own reason below
        raise FrameError("not-map", f"a Frame v1 item is a map, not major type {buf[pos] >> 5}", pos)
    _major, _ai, count, p = _head_at(buf, pos)
    if count > (len(buf) - p) // 2:
        raise FrameError("truncated", f"input ends inside a map of {count} entries", pos)
    fields: dict = {}
    where = {}
    for _ in range(count):
        kpos = p
        size = buf[p] - 0x5F if p < len(buf) else 0          # head + length of a short text key
        key = _KEY_BY_RAW.get(buf[p:p + size]) if 3 <= size <= 8 else None
        if key is not None:
            p += size
        else:
            key, p = _item(buf, p, 1)
            if type(key) is not str:
                raise FrameError("key-type", f"frame key is {_what(key)}, not a text string", kpos)
        if key in fields:
            raise FrameError("duplicate-key", f"duplicate frame key {key!r}", kpos)
        if key not in _FRAME_KEYS:
            raise FrameError("unknown-key", f"unknown frame key {key!r}", kpos)
        where[key] = p
        fields[key], p = _item(buf, p, 1)
    missing = [k for k in ("seq", "ts", "kind", "payload") if k not in fields]
    if missing:
        raise FrameError("missing-key", f"frame lacks {', '.join(missing)}", pos)
    meta = fields.get("meta")
    if meta is None and "meta" in fields:     # null is not "absent": Frame.meta None means no key
        raise FrameError("type", "meta must be a map, not null", where["meta"])
    frame = Frame(fields["seq"], fields["ts"], fields["kind"], fields["payload"], meta)
    _check_fields(frame.seq, frame.ts, frame.kind, frame.payload, frame.meta, where)
    return frame, p


# The layout every encoder here writes for a frame without ``meta`` (``encode``): a 4-entry map with
# ``ts``, ``seq``, ``kind`` as unsigned heads of any width and ``payload`` as a byte-string head.
_UINT_HEAD = rb"([\x00-\x17]|\x18.|\x19..|\x1a....|\x1b........)"
_CANONICAL = re.compile(rb"\xa4\x62ts" + _UINT_HEAD + rb"\x63seq" + _UINT_HEAD + rb"\x64kind" + _UINT_HEAD
                        + rb"\x67payload([\x40-\x57]|\x58.|\x59..|\x5a....|\x5b........)", re.DOTALL)
_from_bytes = int.from_bytes
_new_object = object.__new__


def _decode_canonical(buf: bytes, pos: int) -> tuple[Frame, int] | None:
    """The frame at ``pos`` if it has the layout :func:`encode` writes without ``meta``; else None.

    Why: that is what worker-heart and cohsh pools send, one item per record, and the general walk costs
    ~7 µs per record (a head read, a type dispatch and a dict per item). One precompiled pattern reads
    the four keys and heads in their fixed order, and the frame's fields are set without the frozen
    ``__init__`` (one ``object.__setattr__`` per field: 0.8 µs), which is safe because every field has
    been checked here: ~1.5 µs in all. Anything else — another key order, ``meta``, any malformed or
    out-of-range input — returns None and the general walk decides with its exact error, so this
    accepts only what the walk accepts, with the same frame (a property test compares the two)."""
    match = _CANONICAL.match(buf, pos)
    if match is None:
        return None
    ts, seq, kind, length = match.groups()
    ts = ts[0] if len(ts) == 1 else _from_bytes(ts[1:], "big")
    seq = seq[0] if len(seq) == 1 else _from_bytes(seq[1:], "big")
    kind = kind[0] if len(kind) == 1 else _from_bytes(kind[1:], "big")
    length = length[0] & 0x1F if len(length) == 1 else _from_bytes(length[1:], "big")
    start = match.end()
    end = start + length
    if end > len(buf) or seq < 1 or kind > 255:
        return None
    payload = buf[start:end]
    if kind in TEXT_KINDS:
        try:
            payload.decode("utf-8")
        except UnicodeDecodeError:
            return None
    frame = _new_object(Frame)
    frame.__dict__.update(seq=seq, ts=ts, kind=kind, payload=payload, meta=None)
    return frame, end


def split_frames(data: bytes) -> tuple[list[tuple[Frame, bytes]], int, FrameError | None]:
    """Split one Twrite's data into back-to-back frames (§7.1).

    Returns ``(frames, accepted_bytes, error)``: each frame with its raw bytes (the ring stores
    records as bytes), the length of the valid prefix, and the error that ended it (``None`` when all
    of ``data`` was consumed). ``error`` with ``accepted_bytes == 0`` → the caller answers EINVAL; with
    a non-empty prefix → a short write of ``accepted_bytes``.
    """
    if type(data) is not bytes:
        data = bytes(data)
    frames = []
    pos = 0
    while pos < len(data):
        try:
            frame, end = decode_one(data, pos)
        except FrameError as exc:
            return frames, pos, exc
        frames.append((frame, data[pos:end]))
        pos = end
    return frames, pos, None


# -- rendering ---------------------------------------------------------------------------------------

def _b64(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def describe(frame: Frame) -> str:
    """One line for humans (``cohsh tail``): ``seq=1 ts=1700000000000 kind=heartbeat payload="…"``.

    Kinds are named where §7.5 names them, else shown as numbers; ``meta`` (when present) is compact
    JSON; the payload is a JSON string when it is UTF-8 (escapes keep it on one line), else
    ``b64:<base64>``.
    """
    import json   # lazily: off the guest's boot path

    kind = KIND_NAMES.get(frame.kind, str(frame.kind))
    parts = [f"seq={frame.seq}", f"ts={frame.ts}", f"kind={kind}"]
    if frame.meta is not None:
        parts.append("meta=" + json.dumps(frame.meta, ensure_ascii=False, separators=(",", ":")))
    try:
        parts.append("payload=" + json.dumps(frame.payload.decode("utf-8"), ensure_ascii=False))
    except UnicodeDecodeError:
        parts.append("payload=b64:" + _b64(frame.payload))
    return " ".join(parts)


def to_json(frame: Frame) -> dict:
    """The frame as a JSON-ready dict (``cohsh tail --json``).

    Keys ``seq``, ``ts``, ``kind``, then ``meta`` when present, then ``payload`` (text) for kinds 0–2,
    whose payload is UTF-8 by §7.5, or ``payload_b64`` for every other kind — decided by the kind, not
    the bytes, so a consumer knows which key to read.
    """
    out = {"seq": frame.seq, "ts": frame.ts, "kind": frame.kind}
    if frame.meta is not None:
        out["meta"] = dict(frame.meta)
    if frame.kind in TEXT_KINDS:
        out["payload"] = frame.payload.decode("utf-8")
    else:
        out["payload_b64"] = _b64(frame.payload)
    return out
