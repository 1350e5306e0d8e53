"""Secure9P wire codec — the fast path the server and client use on every frame.

The layouts are declared once, as ``construct`` schemas, in :mod:`nine_door.codec_schema`;
that module is the source of truth. Interpreted ``construct`` costs 15–33 µs per message,
which would dominate the server's per-request budget, so this module re-states the same
layouts with precompiled :class:`struct.Struct` objects (about 1 µs per message). The two are
kept identical by differential property tests (``tests/nine_door/test_codec_differential.py``):
for random valid messages both encoders produce the same bytes, and for random mutated bytes
both decoders accept or reject alike.

Public API
----------
``decode(frame) -> Request | Unsupported``
    Server side. ``frame`` is one whole frame including ``size[4]``. Supported T-messages
    decode to their dataclass; any other well-framed type byte (R numbers, Tlerror, 9P2000-only,
    the §3.8 create/xattr/lock family, unknown bytes) becomes ``Unsupported(type, tag)`` whose
    ``.errno`` is the §3.8 refusal. Raises only :class:`DecodeError` (``.tag`` when the tag
    could be read, ``.errno`` = EINVAL).
``decode_reply(frame) -> Reply``
    Client side: the R-messages of §3.2. Unknown type bytes raise :class:`DecodeError`.
``encode(msg) -> bytes``
    Any T- or R-message dataclass. Raises :class:`EncodeError` (a ``ValueError``) on values that
    cannot be represented (out-of-range integers, strings with NUL, > 65535 bytes).
``encode_rwalk`` / ``encode_rgetattr`` / ``encode_rlopen`` / … / ``pack_qid``
    Reply frames built straight from field values (qids as 13 packed bytes). They are the only
    implementation of those layouts: ``encode`` calls them for the R dataclasses, and the server
    calls them directly so its hot path builds no reply dataclass (a frozen dataclass costs
    0.3–2 µs to construct, more than packing the frame).
``FrameReader`` / ``frame_size`` / ``split_batch`` / ``Oversize``
    Framing lives in :mod:`nine_door.framing` (typed :class:`~nine_door.framing.FramingError`, a
    ``FramingLost``); the names are re-exported here so ``codec.FrameReader`` keeps working.
``encode_dirent`` / ``encode_dirents`` / ``decode_dirents`` / ``dirent_size``
    The Treaddir entry list carried in ``Rreaddir.data``.

Strictness (SPEC §3.1, §3.10): the size field must equal the frame length, every field must be
present (no truncation), nothing may follow the last field (no trailing bytes), strings are
``len[2]`` + UTF-8 with no NUL, and ``Twrite``/``Rread``/``Rreaddir`` ``count`` must equal the
data bytes present. The decoder never reads outside ``frame``.

Speed (issue 20; ``python3 bench/bench_codec.py``, decode + encode of a 12-message mix against a
plain-``struct`` codec without checks that returns tuples): 1.9–2.1× the plain codec before, about
1.2× now. Most of the gain is in decoding: messages are built by :func:`_decoded`'s constructors
instead of the frozen ``__init__`` (Rgetattr 2.8 → 0.4 µs; made on first use, so importing costs
nothing more); decode() checks the header inline; the strings' NUL check is a memchr. Encoding a
fixed layout is one whole-frame ``Struct.pack``. Every check of the strictness paragraph above is
still made, in the same order, with the same errors.
"""
from __future__ import annotations

import dataclasses
import struct
from collections.abc import Callable
from itertools import starmap

from nine_door.errors import DecodeError, FramingLost
# framing lives in nine_door/framing.py; re-exported for existing callers (codec.FrameReader, ...)
from nine_door.framing import FrameEvent, FrameReader, FramingError, Oversize, frame_size, split_batch  # noqa: F401
from nine_door.messages import (
    HEADER_SIZE, MAX_FRAME, DirEntry, Qid, Rattach, Rclunk, Rflush, Rgetattr, Rlerror, Rlopen,
    Rread, Rreaddir, Rstatfs, Rversion, Rwalk, Rwrite, Tattach, Tauth, Tclunk, Tflush, Tgetattr,
    Tlopen, Tread, Treaddir, Tstatfs, Tversion, Twalk, Twrite, Unsupported,
    TATTACH, TAUTH, TCLUNK, TFLUSH, TGETATTR, TLOPEN, TREAD, TREADDIR, TSTATFS, TVERSION, TWALK,
    TWRITE, RATTACH, RCLUNK, RFLUSH, RGETATTR, RLERROR, RLOPEN, RREAD, RREADDIR, RSTATFS,
    RVERSION, RWALK, RWRITE,
)

__all__ = [
    "decode", "decode_reply", "encode", "EncodeError", "FrameReader", "Oversize", "frame_size",
    "split_batch", "peek_tag", "encode_dirent", "encode_dirents", "decode_dirents",
    "dirent_size", "DecodeError", "FramingLost", "FramingError", "pack_qid", "encode_rlerror", "encode_rclunk",
    "encode_rflush", "encode_rwalk", "encode_rattach", "encode_rlopen", "encode_rread",
    "encode_rwrite", "encode_rgetattr", "encode_rreaddir", "encode_rstatfs", "encode_rversion",
]


class EncodeError(ValueError):
    """A message value that has no valid wire form (a bug in the caller, not bad input)."""


# --- precompiled layouts ----------------------------------------------------------------------
_HDR = struct.Struct("<IBH")            # size type tag
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_QID = struct.Struct("<BIQ")            # 13 bytes
_I = struct.Struct("<I")                # fid / ecode / count
_II = struct.Struct("<II")              # fid newfid | fid flags | fid afid
_IIH = struct.Struct("<IIH")            # Twalk fid newfid nwname
_IQ = struct.Struct("<IQ")              # fid request_mask
_IQI = struct.Struct("<IQI")            # fid offset count
_BIQI = struct.Struct("<BIQI")          # qid iounit
_GETATTR = struct.Struct("<QBIQIII" + "Q" * 15)   # valid qid mode uid gid nlink … (153)
_STATFS = struct.Struct("<IIQQQQQQI")   # 60
_DIRENT_FIXED = struct.Struct("<BIQQB")  # qid offset type (22), then name[s]

assert _GETATTR.size == 153 and _STATFS.size == 60 and _DIRENT_FIXED.size == 22

# Whole-frame layouts (header included) for the replies the server sends most: one pack per frame.
_F_U32 = struct.Struct("<IBHI")                    # Rlerror ecode, Rwrite count, Rread/Rreaddir count
_F_U16 = struct.Struct("<IBHH")                    # Rwalk nwqid
_F_QID_IOUNIT = struct.Struct("<IBH13sI")          # Rlopen
_F_QID = struct.Struct("<IBH13s")                  # Rattach
_F_GETATTR = struct.Struct("<IBHQ13s" + "III" + "Q" * 15)
_F_STATFS = struct.Struct("<IBHIIQQQQQQI")
_RLERROR_SIZE = _F_U32.size
_RGETATTR_SIZE = _F_GETATTR.size
assert _RGETATTR_SIZE == 7 + 153 and _F_STATFS.size == 7 + 60


# --- decoding helpers -------------------------------------------------------------------------
def _short(tag: int, what: str) -> DecodeError:
    return DecodeError(f"truncated {what}", tag)


def _long(tag: int, what: str) -> DecodeError:
    return DecodeError(f"trailing bytes after {what}", tag)


def _exact(f: bytes, n: int, tag: int, what: str) -> None:
    """Fixed-layout bodies: the frame must be exactly ``n`` bytes long."""
    if len(f) != n:
        raise (_short if len(f) < n else _long)(tag, what)


def _string(f: bytes, off: int, tag: int, what: str) -> tuple[str, int]:
    """``len[2]`` + UTF-8 without NUL; returns (text, offset after the string)."""
    if off + 2 > len(f):
        raise _short(tag, what)
    end = off + 2 + (f[off] | (f[off + 1] << 8))
    if end > len(f):
        raise _short(tag, what)
    raw = f[off + 2:end]
    # ``0 in raw`` is a memchr (~20 ns); ``b"\x00" in raw`` goes through the buffer protocol and a
    # substring search (~200 ns). bytes.decode() with no argument is strict UTF-8 without the
    # codec-name lookup (~30 ns less than decode("utf-8")).
    if 0 in raw:
        raise DecodeError(f"NUL byte in {what}", tag)
    try:
        return raw.decode(), end
    except UnicodeDecodeError:
        raise DecodeError(f"{what} is not valid UTF-8", tag) from None


def _end(f: bytes, off: int, tag: int, what: str) -> None:
    if off != len(f):
        raise _long(tag, what)


# --- decoded messages without the frozen __init__ ---------------------------------------------
def _decoded(cls: type) -> type:
    """A constructor with ``cls``'s signature, for field values the decoder has already checked.

    Why: the frozen ``__init__`` of a message dataclass stores every field with a generic
    ``object.__setattr__(self, name, value)`` call (its own ``__setattr__`` refuses), and that was
    most of the decoder's time: Rgetattr (21 fields) 2.8 µs, Qid 0.5 µs, Tclunk 0.43 µs per object.

    How: a plain (mutable) slotted dataclass with the same fields in the same order — hence the same
    instance layout — whose generated ``__init__`` stores each field with a specialised slot store,
    and whose ``__post_init__`` then sets the instance's class to ``cls``. What comes back is an
    ordinary ``cls`` instance: ``type(msg) is cls``, same field values, ``==``, ``hash``, ``repr``, and
    still frozen (``msg.tag = 1`` raises ``FrozenInstanceError``). Rgetattr 0.4 µs, Tclunk 0.25 µs.

    Valid only because ``cls``'s ``__init__`` does nothing but store its arguments: no defaults, no
    ``__post_init__``, no ``InitVar`` — checked here, so a message class that grows any of them is
    refused (TypeError) rather than built without its checks; tests/nine_door/test_codec_fastpath.py
    builds every message class this way. The twin's one generated method is an ordinary dataclass
    method, so ``root_task.precompiled`` serves it like the others (no ``exec`` of our own).

    Measured and not kept (Rgetattr): ``object.__new__`` + each slot descriptor's ``__set__`` 1.8 µs;
    ``map(object.__setattr__, ...)`` 2.6 µs; the class's ``__setstate__`` 5.1 µs; a mutable subclass
    2.7 µs. Swapping ``__class__`` in each decoder instead of in ``__post_init__`` saves ~45 ns per
    object but doubles every decoder's return statement.
    """
    if not _init_only_stores_fields(cls):
        raise TypeError(f"{cls.__name__}: __init__ is more than field stores; decode it with {cls.__name__}()")

    def __post_init__(self) -> None:
        self.__class__ = cls

    # Annotated ``object`` rather than make_dataclass's default, the string 'typing.Any', which
    # dataclasses parses per field (a regex and module look-ups): ~10 % less time to make a twin.
    return dataclasses.make_dataclass(
        f"Decoded{cls.__name__}", [(name, object) for name in cls.__slots__], slots=True, repr=False,
        eq=False, match_args=False,
        namespace={"__doc__": f"Builds a {cls.__name__} from decoded fields (see _decoded).",
                   "__module__": __name__, "__post_init__": __post_init__})


def _init_only_stores_fields(cls: type) -> bool:
    """A frozen, slotted dataclass whose ``__init__`` just stores every field, in slot order."""
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.init or not params.frozen or hasattr(cls, "__post_init__"):
        return False
    fields = dataclasses.fields(cls)
    if len(fields) != len(cls.__dataclass_fields__):      # InitVar / ClassVar pseudo-fields
        return False
    if getattr(cls, "__slots__", None) != tuple(f.name for f in fields):
        return False
    return all(f.init and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
               for f in fields)


class _Constructors(dict):
    """``_NEW[cls]`` is :func:`_decoded`'s constructor for ``cls``, made the first time it is needed.

    Lazily because the guest imports this module on its boot path, and making all 27 twins costs
    ~2 ms on the host even with ``root_task.precompiled`` (dataclass processing, not compiling),
    many times that under TCG; a server meets only the types its clients send. The price is one
    dict subscript per decoded object (~20 ns).
    """

    def __missing__(self, cls: type) -> type:
        self[cls] = new = _decoded(cls)
        return new


_NEW = _Constructors()


def warm_decoders() -> None:
    """Make every message class's constructor now. The image build calls this while it records the
    guest's dataclass methods (image/dataclass_cache.py), so in the guest each twin's ``__init__`` comes
    from the precompiled table instead of being compiled on the first decode of its type."""
    for cls in (Tversion, Tauth, Tattach, Twalk, Tlopen, Tread, Twrite, Tclunk, Tgetattr, Treaddir, Tstatfs,
                Tflush, Unsupported, Rversion, Rattach, Rwalk, Rlopen, Rread, Rwrite, Rclunk, Rgetattr,
                Rreaddir, Rstatfs, Rflush, Rlerror, Qid, DirEntry):
        _NEW[cls]


# --- T-message decoders (frame, tag) -> message -----------------------------------------------
# The header was checked by decode(): at least 7 bytes, size field == len(frame).
def _version_decoder(cls: type[Tversion] | type[Rversion]) -> Callable[[bytes, int], Tversion | Rversion]:
    """Tversion and Rversion share one layout, ``msize[4] version[s]`` (SPEC §3.3)."""
    name = cls.__name__

    def decode(f: bytes, tag: int) -> Tversion | Rversion:
        if len(f) < 11:
            raise _short(tag, name)
        version, off = _string(f, 11, tag, f"{name} version")
        _end(f, off, tag, name)
        return _NEW[cls](tag, _U32.unpack_from(f, 7)[0], version)

    return decode


_d_tversion = _version_decoder(Tversion)


def _d_tauth(f: bytes, tag: int) -> Tauth:
    if len(f) < 11:
        raise _short(tag, "Tauth")
    uname, off = _string(f, 11, tag, "Tauth uname")
    aname, off = _string(f, off, tag, "Tauth aname")
    if off + 4 != len(f):
        raise (_short if off + 4 > len(f) else _long)(tag, "Tauth")
    return _NEW[Tauth](tag, _U32.unpack_from(f, 7)[0], uname, aname, _U32.unpack_from(f, off)[0])


def _d_tattach(f: bytes, tag: int) -> Tattach:
    if len(f) < 15:
        raise _short(tag, "Tattach")
    fid, afid = _II.unpack_from(f, 7)
    uname, off = _string(f, 15, tag, "Tattach uname")
    aname, off = _string(f, off, tag, "Tattach aname")
    if off + 4 != len(f):
        raise (_short if off + 4 > len(f) else _long)(tag, "Tattach")
    return _NEW[Tattach](tag, fid, afid, uname, aname, _U32.unpack_from(f, off)[0])


# Decoded wname lists by their wire bytes (``nwname`` and the names): clients walk the same few paths
# over and over (the session memoizes the walks themselves for the same reason), and looking the bytes
# up costs a fraction of decoding and checking the names again. Only names that passed every check are
# stored, so a hit returns exactly what decoding the same bytes would; entries are short (at most
# _WALK_MEMO_KEY bytes) and the table is emptied when full, so hostile walks cost it nothing lasting.
_WALK_NAMES: dict[bytes, tuple[str, ...]] = {}
_WALK_MEMO_ENTRIES = 256
_WALK_MEMO_KEY = 256


def _d_twalk(f: bytes, tag: int) -> Twalk:
    if len(f) < 17:
        raise _short(tag, "Twalk")
    fid, newfid, nwname = _IIH.unpack_from(f, 7)
    key = f[15:]
    names = _WALK_NAMES.get(key)
    if names is not None:
        return _NEW[Twalk](tag, fid, newfid, names)
    names = _walk_names(f, tag, nwname)
    if len(key) <= _WALK_MEMO_KEY:
        if len(_WALK_NAMES) >= _WALK_MEMO_ENTRIES:
            _WALK_NAMES.clear()
        _WALK_NAMES[key] = names
    return _NEW[Twalk](tag, fid, newfid, names)


def _walk_names(f: bytes, tag: int, nwname: int) -> tuple[str, ...]:
    """Twalk's ``nwname`` names from offset 17 to the end of the frame, every check applied."""
    off = 17
    size = len(f)
    names = []
    for _ in range(nwname):
        # _string inlined: walk names are the hottest strings the server decodes. Any problem
        # (truncation, bad UTF-8, NUL) is handed back to _string, which raises the precise error.
        end = off + 2 + (f[off] | (f[off + 1] << 8)) if off + 2 <= size else size + 1
        try:
            name = f[off + 2:end].decode() if end <= size else None
        except UnicodeDecodeError:
            name = None
        if name is None or "\x00" in name:
            _string(f, off, tag, "Twalk wname")
        names.append(name)
        off = end
    if off != size:
        raise _long(tag, "Twalk")
    return tuple(names)


def _d_tlopen(f: bytes, tag: int) -> Tlopen:
    if len(f) != 15:
        _exact(f, 15, tag, "Tlopen")
    fid, flags = _II.unpack_from(f, 7)
    return _NEW[Tlopen](tag, fid, flags)


def _d_tread(f: bytes, tag: int) -> Tread:
    if len(f) != 23:
        _exact(f, 23, tag, "Tread")
    fid, offset, count = _IQI.unpack_from(f, 7)
    return _NEW[Tread](tag, fid, offset, count)


def _d_twrite(f: bytes, tag: int) -> Twrite:
    if len(f) < 23:
        raise _short(tag, "Twrite")
    fid, offset, count = _IQI.unpack_from(f, 7)
    if 23 + count != len(f):
        raise DecodeError(f"Twrite count {count} != {len(f) - 23} data bytes", tag)
    return _NEW[Twrite](tag, fid, offset, f[23:])


def _d_tclunk(f: bytes, tag: int) -> Tclunk:
    if len(f) != 11:
        _exact(f, 11, tag, "Tclunk")
    return _NEW[Tclunk](tag, _I.unpack_from(f, 7)[0])


def _d_tgetattr(f: bytes, tag: int) -> Tgetattr:
    if len(f) != 19:
        _exact(f, 19, tag, "Tgetattr")
    fid, request_mask = _IQ.unpack_from(f, 7)
    return _NEW[Tgetattr](tag, fid, request_mask)


def _d_treaddir(f: bytes, tag: int) -> Treaddir:
    _exact(f, 23, tag, "Treaddir")
    fid, offset, count = _IQI.unpack_from(f, 7)
    return _NEW[Treaddir](tag, fid, offset, count)


def _d_tstatfs(f: bytes, tag: int) -> Tstatfs:
    _exact(f, 11, tag, "Tstatfs")
    return _NEW[Tstatfs](tag, _I.unpack_from(f, 7)[0])


def _d_tflush(f: bytes, tag: int) -> Tflush:
    _exact(f, 9, tag, "Tflush")
    return _NEW[Tflush](tag, f[7] | (f[8] << 8))


# --- R-message decoders -----------------------------------------------------------------------
def _qid(f: bytes, off: int) -> Qid:
    qtype, version, path = _QID.unpack_from(f, off)
    return _NEW[Qid](qtype, version, path)


_d_rversion = _version_decoder(Rversion)


def _d_rattach(f: bytes, tag: int) -> Rattach:
    _exact(f, 20, tag, "Rattach")
    return _NEW[Rattach](tag, _qid(f, 7))


def _d_rwalk(f: bytes, tag: int) -> Rwalk:
    if len(f) < 9:
        raise _short(tag, "Rwalk")
    nwqid = f[7] | (f[8] << 8)
    if len(f) != 9 + 13 * nwqid:
        _exact(f, 9 + 13 * nwqid, tag, "Rwalk")
    # The length is exact, so the rest is whole qids: one C loop unpacks and builds them.
    return _NEW[Rwalk](tag, tuple(starmap(_NEW[Qid], _QID.iter_unpack(f[9:]))))


def _d_rlopen(f: bytes, tag: int) -> Rlopen:
    if len(f) != 24:
        _exact(f, 24, tag, "Rlopen")
    qtype, version, path, iounit = _BIQI.unpack_from(f, 7)
    return _NEW[Rlopen](tag, _NEW[Qid](qtype, version, path), iounit)


def _d_counted(f: bytes, tag: int, what: str) -> bytes:
    if len(f) < 11:
        raise _short(tag, what)
    count = _U32.unpack_from(f, 7)[0]
    if 11 + count != len(f):
        raise DecodeError(f"{what} count {count} != {len(f) - 11} data bytes", tag)
    return f[11:]


def _d_rread(f: bytes, tag: int) -> Rread:
    return _NEW[Rread](tag, _d_counted(f, tag, "Rread"))


def _d_rwrite(f: bytes, tag: int) -> Rwrite:
    if len(f) != 11:
        _exact(f, 11, tag, "Rwrite")
    return _NEW[Rwrite](tag, _U32.unpack_from(f, 7)[0])


def _d_rclunk(f: bytes, tag: int) -> Rclunk:
    _exact(f, 7, tag, "Rclunk")
    return _NEW[Rclunk](tag)


def _d_rgetattr(f: bytes, tag: int) -> Rgetattr:
    if len(f) != 7 + 153:
        _exact(f, 7 + 153, tag, "Rgetattr")
    v = _GETATTR.unpack_from(f, 7)
    return _NEW[Rgetattr](tag, v[0], _NEW[Qid](v[1], v[2], v[3]), *v[4:])


def _d_rreaddir(f: bytes, tag: int) -> Rreaddir:
    return _NEW[Rreaddir](tag, _d_counted(f, tag, "Rreaddir"))


def _d_rstatfs(f: bytes, tag: int) -> Rstatfs:
    _exact(f, 7 + 60, tag, "Rstatfs")
    return _NEW[Rstatfs](tag, *_STATFS.unpack_from(f, 7))


def _d_rflush(f: bytes, tag: int) -> Rflush:
    _exact(f, 7, tag, "Rflush")
    return _NEW[Rflush](tag)


def _d_rlerror(f: bytes, tag: int) -> Rlerror:
    if len(f) != 11:
        _exact(f, 11, tag, "Rlerror")
    return _NEW[Rlerror](tag, _U32.unpack_from(f, 7)[0])


_REQUEST_DECODERS: dict[int, Callable] = {
    TVERSION: _d_tversion, TAUTH: _d_tauth, TATTACH: _d_tattach, TWALK: _d_twalk,
    TLOPEN: _d_tlopen, TREAD: _d_tread, TWRITE: _d_twrite, TCLUNK: _d_tclunk,
    TGETATTR: _d_tgetattr, TREADDIR: _d_treaddir, TSTATFS: _d_tstatfs, TFLUSH: _d_tflush,
}
_REPLY_DECODERS: dict[int, Callable] = {
    RVERSION: _d_rversion, RATTACH: _d_rattach, RWALK: _d_rwalk, RLOPEN: _d_rlopen,
    RREAD: _d_rread, RWRITE: _d_rwrite, RCLUNK: _d_rclunk, RGETATTR: _d_rgetattr,
    RREADDIR: _d_rreaddir, RSTATFS: _d_rstatfs, RFLUSH: _d_rflush, RLERROR: _d_rlerror,
}


def _bad_header(frame: bytes) -> DecodeError:
    """The error for a frame whose header decode() refused (short, or size != length)."""
    if len(frame) < HEADER_SIZE:
        return DecodeError(f"frame of {len(frame)} bytes is shorter than the 7-byte header")
    size, _, tag = _HDR.unpack_from(frame)
    return DecodeError(f"size field {size} != frame length {len(frame)}", tag)


def decode(frame: bytes):
    """Decode one request frame (server side); see the module docstring. The header checks, then
    :func:`decode_framed` (the server's sessions call that directly: their frames come from framing)."""
    if type(frame) is not bytes:
        frame = bytes(frame)
    if len(frame) < HEADER_SIZE or _U32.unpack_from(frame)[0] != len(frame):
        raise _bad_header(frame)
    return decode_framed(frame)


def decode_framed(frame: bytes):
    """:func:`decode` for a frame that framing has already cut: ``bytes`` whose size field equals its
    length (≥ 7). Every frame a session executes comes that way (``FrameReader``, ``split_batch``,
    ``Session._execute_whole``'s checked cut, the one-frame checks of ``Session.feed`` and the TCP
    listener), so the header checks are not repeated per request; the body checks are the same."""
    fn = _REQUEST_DECODERS.get(frame[4])
    if fn is None:
        return _NEW[Unsupported](frame[4], frame[5] | (frame[6] << 8))
    return fn(frame, frame[5] | (frame[6] << 8))


# decode_reply() checks the header inline (no helper call: a client decodes every reply).
def decode_reply(frame: bytes):
    """Decode one reply frame (client side); unknown type bytes raise :class:`DecodeError`."""
    if type(frame) is not bytes:
        frame = bytes(frame)
    if len(frame) < HEADER_SIZE:
        raise _bad_header(frame)
    size, mtype, tag = _HDR.unpack_from(frame)
    if size != len(frame):
        raise _bad_header(frame)
    fn = _REPLY_DECODERS.get(mtype)
    if fn is None:
        raise DecodeError(f"unexpected reply type {mtype}", tag)
    return fn(frame, tag)


def peek_tag(frame: bytes) -> int | None:
    """The tag of a frame if at least the header is present (for addressing error replies)."""
    return frame[5] | (frame[6] << 8) if len(frame) >= HEADER_SIZE else None


# --- encoding ---------------------------------------------------------------------------------
def _s(text: str) -> bytes:
    raw = text.encode("utf-8")           # surrogates raise UnicodeEncodeError (a ValueError)
    if len(raw) > 0xFFFF:
        raise EncodeError("string longer than 65535 bytes")
    if 0 in raw:                         # a memchr; see _string
        raise EncodeError("string contains NUL")
    return _U16.pack(len(raw)) + raw


def _qb(q: Qid) -> bytes:
    return _QID.pack(q.type, q.version, q.path)     # = pack_qid(...), one call less per qid


def pack_qid(qtype: int, version: int, path: int) -> bytes:
    """The 13-byte wire qid (nodes cache it; it changes only with the node's version)."""
    return _QID.pack(qtype, version, path)


# --- reply frames from field values -----------------------------------------------------------
# Each builder returns a whole frame. ``qid`` arguments are 13 packed bytes (see pack_qid).
# Values out of range raise struct.error; ``encode`` turns that into EncodeError.
_pack_u32_frame = _F_U32.pack
_pack_hdr = _HDR.pack


def encode_rlerror(tag: int, ecode: int) -> bytes:
    return _pack_u32_frame(_RLERROR_SIZE, RLERROR, tag, ecode)


def encode_rclunk(tag: int) -> bytes:
    return _pack_hdr(HEADER_SIZE, RCLUNK, tag)


def encode_rflush(tag: int) -> bytes:
    return _pack_hdr(HEADER_SIZE, RFLUSH, tag)


def encode_rwalk(tag: int, qids) -> bytes:
    """``qids``: a sequence of 13-byte packed qids."""
    return _F_U16.pack(9 + 13 * len(qids), RWALK, tag, len(qids)) + b"".join(qids)


def encode_rattach(tag: int, qid: bytes) -> bytes:
    return _F_QID.pack(_F_QID.size, RATTACH, tag, qid)


def encode_rlopen(tag: int, qid: bytes, iounit: int) -> bytes:
    return _F_QID_IOUNIT.pack(_F_QID_IOUNIT.size, RLOPEN, tag, qid, iounit)


def encode_rread(tag: int, data: bytes) -> bytes:
    return _pack_u32_frame(11 + len(data), RREAD, tag, len(data)) + data


def encode_rreaddir(tag: int, data: bytes) -> bytes:
    return _pack_u32_frame(11 + len(data), RREADDIR, tag, len(data)) + data


def encode_rwrite(tag: int, count: int) -> bytes:
    return _pack_u32_frame(11, RWRITE, tag, count)


def encode_rversion(tag: int, msize: int, version: str) -> bytes:
    body = _U32.pack(msize) + _s(version)
    return _pack_hdr(HEADER_SIZE + len(body), RVERSION, tag) + body


def encode_rgetattr(tag: int, valid: int, qid: bytes, mode: int, uid: int, gid: int, nlink: int,
                    rdev: int, size: int, blksize: int, blocks: int, atime_sec: int,
                    atime_nsec: int, mtime_sec: int, mtime_nsec: int, ctime_sec: int,
                    ctime_nsec: int, btime_sec: int, btime_nsec: int, gen: int,
                    data_version: int) -> bytes:
    return _F_GETATTR.pack(_RGETATTR_SIZE, RGETATTR, tag, valid, qid, mode, uid, gid, nlink, rdev,
                           size, blksize, blocks, atime_sec, atime_nsec, mtime_sec, mtime_nsec,
                           ctime_sec, ctime_nsec, btime_sec, btime_nsec, gen, data_version)


def encode_rstatfs(tag: int, fs_type: int, bsize: int, blocks: int, bfree: int, bavail: int,
                   files: int, ffree: int, fsid: int, namelen: int) -> bytes:
    return _F_STATFS.pack(_F_STATFS.size, RSTATFS, tag, fs_type, bsize, blocks, bfree, bavail,
                          files, ffree, fsid, namelen)


# T-messages (the client side), one function per type that returns the whole frame. Fixed layouts
# are one whole-frame pack. The string-bearing ones pack their fixed fields first and the header
# last, in field order, so a message with several bad values fails on the same one as ever.
_F_II = struct.Struct("<IBHII")         # Tlopen
_F_IQ = struct.Struct("<IBHIQ")         # Tgetattr
_F_IQI = struct.Struct("<IBHIQI")       # Tread, Treaddir, Twrite (+ data)


def _framed(mtype: int, tag: int, body: bytes) -> bytes:
    return _pack_hdr(HEADER_SIZE + len(body), mtype, tag) + body


def _e_tversion(m: Tversion) -> bytes:
    return _framed(TVERSION, m.tag, _U32.pack(m.msize) + _s(m.version))


def _e_tauth(m: Tauth) -> bytes:
    return _framed(TAUTH, m.tag, _U32.pack(m.afid) + _s(m.uname) + _s(m.aname) + _U32.pack(m.n_uname))


def _e_tattach(m: Tattach) -> bytes:
    return _framed(TATTACH, m.tag, _II.pack(m.fid, m.afid) + _s(m.uname) + _s(m.aname)
                   + _U32.pack(m.n_uname))


def _e_twalk(m: Twalk) -> bytes:
    return _framed(TWALK, m.tag, _IIH.pack(m.fid, m.newfid, len(m.wnames)) + b"".join(map(_s, m.wnames)))


def _e_twrite(m: Twrite) -> bytes:
    # len() before bytes(): a non-sized ``data`` (an int) is refused, never turned into zero bytes.
    return _F_IQI.pack(23 + len(m.data), TWRITE, m.tag, m.fid, m.offset, len(m.data)) + bytes(m.data)


# Every encodable message type -> a function returning its whole frame. The R-messages go through
# the public builders above, so the server's direct calls and ``encode`` share one implementation of
# every reply layout.
_ENCODERS: dict[type, Callable] = {
    Tversion: _e_tversion,
    Tauth: _e_tauth,
    Tattach: _e_tattach,
    Twalk: _e_twalk,
    Tlopen: lambda m: _F_II.pack(15, TLOPEN, m.tag, m.fid, m.flags),
    Tread: lambda m: _F_IQI.pack(23, TREAD, m.tag, m.fid, m.offset, m.count),
    Twrite: _e_twrite,
    Tclunk: lambda m: _pack_u32_frame(11, TCLUNK, m.tag, m.fid),
    Tgetattr: lambda m: _F_IQ.pack(19, TGETATTR, m.tag, m.fid, m.request_mask),
    Treaddir: lambda m: _F_IQI.pack(23, TREADDIR, m.tag, m.fid, m.offset, m.count),
    Tstatfs: lambda m: _pack_u32_frame(11, TSTATFS, m.tag, m.fid),
    Tflush: lambda m: _F_U16.pack(9, TFLUSH, m.tag, m.oldtag),
    Rversion: lambda m: encode_rversion(m.tag, m.msize, m.version),
    Rattach: lambda m: encode_rattach(m.tag, _qb(m.qid)),
    Rwalk: lambda m: encode_rwalk(m.tag, [_qb(q) for q in m.qids]),
    Rlopen: lambda m: encode_rlopen(m.tag, _qb(m.qid), m.iounit),
    Rread: lambda m: encode_rread(m.tag, bytes(m.data)),
    Rwrite: lambda m: encode_rwrite(m.tag, m.count),
    Rclunk: lambda m: encode_rclunk(m.tag),
    Rgetattr: lambda m: encode_rgetattr(
        m.tag, m.valid, _qb(m.qid), m.mode, m.uid, m.gid, m.nlink, m.rdev, m.size, m.blksize,
        m.blocks, m.atime_sec, m.atime_nsec, m.mtime_sec, m.mtime_nsec, m.ctime_sec, m.ctime_nsec,
        m.btime_sec, m.btime_nsec, m.gen, m.data_version),
    Rreaddir: lambda m: encode_rreaddir(m.tag, bytes(m.data)),
    Rstatfs: lambda m: encode_rstatfs(m.tag, m.type, m.bsize, m.blocks, m.bfree, m.bavail,
                                      m.files, m.ffree, m.fsid, m.namelen),
    Rflush: lambda m: encode_rflush(m.tag),
    Rlerror: lambda m: encode_rlerror(m.tag, m.ecode),
}


def encode(msg) -> bytes:
    """Encode a message dataclass to one whole frame (size field included)."""
    fn = _ENCODERS.get(type(msg))
    if fn is None:
        raise EncodeError(f"cannot encode {type(msg).__name__}")
    try:
        return fn(msg)
    except struct.error as exc:
        raise EncodeError(f"{type(msg).__name__}: {exc}") from None


# --- Treaddir entries -------------------------------------------------------------------------
def dirent_size(name: str) -> int:
    """Bytes one entry with this name occupies in an Rreaddir body."""
    return _DIRENT_FIXED.size + 2 + len(name.encode("utf-8"))


def encode_dirent(entry: DirEntry) -> bytes:
    try:
        name = _s(entry.name)
        q = entry.qid
        return _DIRENT_FIXED.pack(q.type, q.version, q.path, entry.offset, entry.type) + name
    except struct.error as exc:
        raise EncodeError(f"DirEntry: {exc}") from None


def encode_dirents(entries) -> bytes:
    return b"".join(encode_dirent(e) for e in entries)


def decode_dirents(data: bytes) -> tuple[DirEntry, ...]:
    """Parse an Rreaddir body: whole entries only, strict strings, nothing left over."""
    data = bytes(data)
    out = []
    off = 0
    while off < len(data):
        if off + _DIRENT_FIXED.size > len(data):
            raise DecodeError("truncated directory entry")
        qtype, version, path, offset, dtype = _DIRENT_FIXED.unpack_from(data, off)
        name, off = _string(data, off + _DIRENT_FIXED.size, None, "directory entry name")
        out.append(_NEW[DirEntry](_NEW[Qid](qtype, version, path), offset, dtype, name))
    return tuple(out)

