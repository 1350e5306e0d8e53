"""Secure9P layouts declared once as ``construct`` schemas — the source of truth (SPEC §3.1–§3.7).

Each message body is written here exactly once, field by field, in wire order, with the same
field names as the dataclasses in :mod:`nine_door.messages`. The hand-written fast path in
:mod:`nine_door.codec` must agree with these schemas byte for byte; the differential property
tests enforce that. This module is also the readable reference for reviewers: if a layout is
in doubt, this file (and SPEC §3.2) decides.

Strictness is expressed in the schema, not around it:

* the frame is ``Prefixed`` by its size field (which counts its own 4 bytes), so the body is
  parsed from exactly ``size − 7`` bytes and a ``Terminated`` rejects trailing bytes;
* strings (``NineString``) are ``len[2]`` + UTF-8 and a validator rejects NUL;
* ``count`` fields of Twrite/Rread/Rreaddir are ``Rebuild``-derived and bound ``Bytes``, so a
  count that differs from the data present fails as truncation or as trailing bytes.

The interpreted schemas cost 15–33 µs per message (see ``bench/bench_codec.py``), which is why
the server uses the fast path; tools and tests may use ``schema_decode``/``schema_encode``.
"""
from __future__ import annotations

from dataclasses import fields

from construct import (
    Bytes, ConstructError, Error, ExprAdapter, ExprValidator, GreedyBytes, GreedyRange, Int8ul,
    Int16ul, Int32ul, Int64ul, PascalString, Prefixed, PrefixedArray, Rebuild, Struct, Switch,
    Terminated, len_, this,
)

from nine_door import messages as m
from nine_door.errors import DecodeError

# --- primitives (SPEC §3.1) -------------------------------------------------------------------
#: ``s`` = len[2] + UTF-8 bytes, no NUL, no terminator.
NineString = ExprValidator(PascalString(Int16ul, "utf8"), lambda obj, ctx: "\x00" not in obj)
#: ``qid[13]`` = type[1] version[4] path[8].
QidSchema = Struct("type" / Int8ul, "version" / Int32ul, "path" / Int64ul)
#: ``size[4]`` counts itself; Prefixed wants the length of what follows it.
FrameSize = ExprAdapter(Int32ul, decoder=lambda obj, ctx: obj - 4, encoder=lambda obj, ctx: obj + 4)

# --- T bodies (SPEC §3.2) ---------------------------------------------------------------------
REQUEST_BODIES = {
    m.TVERSION: Struct("msize" / Int32ul, "version" / NineString),
    m.TAUTH: Struct("afid" / Int32ul, "uname" / NineString, "aname" / NineString,
                    "n_uname" / Int32ul),
    m.TATTACH: Struct("fid" / Int32ul, "afid" / Int32ul, "uname" / NineString,
                      "aname" / NineString, "n_uname" / Int32ul),
    m.TWALK: Struct("fid" / Int32ul, "newfid" / Int32ul,
                    "wnames" / PrefixedArray(Int16ul, NineString)),
    m.TLOPEN: Struct("fid" / Int32ul, "flags" / Int32ul),
    m.TREAD: Struct("fid" / Int32ul, "offset" / Int64ul, "count" / Int32ul),
    m.TWRITE: Struct("fid" / Int32ul, "offset" / Int64ul,
                     "count" / Rebuild(Int32ul, len_(this.data)), "data" / Bytes(this.count)),
    m.TCLUNK: Struct("fid" / Int32ul),
    m.TGETATTR: Struct("fid" / Int32ul, "request_mask" / Int64ul),
    m.TREADDIR: Struct("fid" / Int32ul, "offset" / Int64ul, "count" / Int32ul),
    m.TSTATFS: Struct("fid" / Int32ul),
    m.TFLUSH: Struct("oldtag" / Int16ul),
}

# --- R bodies (SPEC §3.2, §3.7) ---------------------------------------------------------------
REPLY_BODIES = {
    m.RVERSION: Struct("msize" / Int32ul, "version" / NineString),
    m.RATTACH: Struct("qid" / QidSchema),
    m.RWALK: Struct("qids" / PrefixedArray(Int16ul, QidSchema)),
    m.RLOPEN: Struct("qid" / QidSchema, "iounit" / Int32ul),
    m.RREAD: Struct("count" / Rebuild(Int32ul, len_(this.data)), "data" / Bytes(this.count)),
    m.RWRITE: Struct("count" / Int32ul),
    m.RCLUNK: Struct(),
    m.RGETATTR: Struct(
        "valid" / Int64ul, "qid" / QidSchema, "mode" / Int32ul, "uid" / Int32ul, "gid" / Int32ul,
        "nlink" / Int64ul, "rdev" / Int64ul, "size" / Int64ul, "blksize" / Int64ul,
        "blocks" / Int64ul, "atime_sec" / Int64ul, "atime_nsec" / Int64ul,
        "mtime_sec" / Int64ul, "mtime_nsec" / Int64ul, "ctime_sec" / Int64ul,
        "ctime_nsec" / Int64ul, "btime_sec" / Int64ul, "btime_nsec" / Int64ul,
        "gen" / Int64ul, "data_version" / Int64ul),
    m.RREADDIR: Struct("count" / Rebuild(Int32ul, len_(this.data)), "data" / Bytes(this.count)),
    m.RSTATFS: Struct("type" / Int32ul, "bsize" / Int32ul, "blocks" / Int64ul, "bfree" / Int64ul,
                      "bavail" / Int64ul, "files" / Int64ul, "ffree" / Int64ul, "fsid" / Int64ul,
                      "namelen" / Int32ul),
    m.RFLUSH: Struct(),
    m.RLERROR: Struct("ecode" / Int32ul),
}

#: One Treaddir entry, and a whole Rreaddir body of them (SPEC §3.7).
DirEntrySchema = Struct("qid" / QidSchema, "offset" / Int64ul, "type" / Int8ul,
                        "name" / NineString)
DirEntriesSchema = Struct("entries" / GreedyRange(DirEntrySchema), Terminated)


def _frame(bodies: dict, default) -> Struct:
    """``size[4] type[1] tag[2] body``: size-prefixed, exact, nothing after the body."""
    return Struct(
        "frame" / Prefixed(FrameSize, Struct(
            "type" / Int8ul,
            "tag" / Int16ul,
            "body" / Switch(this.type, bodies, default),
            Terminated,
        )),
        Terminated,
    )


#: Requests: unknown type bytes parse as an opaque body (the server answers per §3.8).
RequestFrame = _frame(REQUEST_BODIES, GreedyBytes)
#: Replies: unknown type bytes are an error.
ReplyFrame = _frame(REPLY_BODIES, Error)


# --- dataclass <-> container conversion -------------------------------------------------------
def _to_value(name: str, value):
    if name == "qid":
        return m.Qid(value.type, value.version, value.path)
    if name == "qids":
        return tuple(m.Qid(q.type, q.version, q.path) for q in value)
    if name == "wnames":
        return tuple(value)
    return value


def _from_value(name: str, value):
    if name == "qid":
        return dict(type=value.type, version=value.version, path=value.path)
    if name == "qids":
        return [dict(type=q.type, version=q.version, path=q.path) for q in value]
    if name == "wnames":
        return list(value)
    return value


def _tag_of(frame: bytes) -> int | None:
    return frame[5] | (frame[6] << 8) if len(frame) >= 7 else None


def schema_decode(frame: bytes, replies: bool = False):
    """Decode a frame with the construct schema; same contract as ``codec.decode``/``decode_reply``."""
    frame = bytes(frame)
    try:
        parsed = (ReplyFrame if replies else RequestFrame).parse(frame).frame
    except (ConstructError, UnicodeDecodeError) as exc:
        raise DecodeError(f"schema: {type(exc).__name__}", _tag_of(frame)) from None
    types = m.REPLY_TYPES if replies else m.REQUEST_TYPES
    cls = types.get(parsed.type)
    if cls is None:
        return m.Unsupported(parsed.type, parsed.tag)
    body = parsed.body
    values = {"tag": parsed.tag}
    for f in fields(cls):
        if f.name != "tag":
            values[f.name] = _to_value(f.name, body[f.name])
    return cls(**values)


def schema_encode(msg) -> bytes:
    """Encode a message dataclass with the construct schema."""
    mtype = m.TYPE_OF[type(msg)]
    bodies = REQUEST_BODIES if mtype in m.REQUEST_TYPES else REPLY_BODIES
    body = {f.name: _from_value(f.name, getattr(msg, f.name)) for f in fields(msg) if f.name != "tag"}
    frame = RequestFrame if bodies is REQUEST_BODIES else ReplyFrame
    try:
        return frame.build(dict(frame=dict(type=mtype, tag=msg.tag, body=body)))
    except (ConstructError, UnicodeEncodeError) as exc:
        raise ValueError(f"schema: {exc}") from None


def schema_decode_dirents(data: bytes) -> tuple[m.DirEntry, ...]:
    try:
        parsed = DirEntriesSchema.parse(bytes(data))
    except (ConstructError, UnicodeDecodeError) as exc:
        raise DecodeError(f"schema: {type(exc).__name__}") from None
    return tuple(m.DirEntry(_to_value("qid", e.qid), e.offset, e.type, e.name)
                 for e in parsed.entries)


def schema_encode_dirents(entries) -> bytes:
    return b"".join(
        DirEntrySchema.build(dict(qid=_from_value("qid", e.qid), offset=e.offset, type=e.type,
                                  name=e.name))
        for e in entries)
