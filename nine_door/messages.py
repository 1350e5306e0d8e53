"""The Secure9P message vocabulary (SPEC §3.1, §3.2, §3.7, §3.8) as typed, frozen dataclasses.

Why dataclasses and not dicts: the server, the client and the tests all pattern-match on message
*types*, and a frozen value can be put in logs, compared in tests and shared between threads
without copying. Every message carries its ``tag`` first so error replies can always be
addressed. Field names are the 9P2000.L field names and are also the field names of the
``construct`` schemas in :mod:`nine_door.codec_schema` (the source of truth for the layout).

Length/count fields that are fully determined by the payload (``Twrite.count``,
``Rread.count``, ``Twalk.nwname``, ``Rwalk.nwqid``) are not stored: the codec derives them, so
a message value can never be internally inconsistent.
"""
from __future__ import annotations

from dataclasses import dataclass


# --- wire constants (SPEC §3.1) --------------------------------------------------------------
NOTAG = 0xFFFF
NOFID = 0xFFFFFFFF
HEADER_SIZE = 7            # size[4] type[1] tag[2]
IOHDRSZ = 24               # iounit = msize - IOHDRSZ
MAX_FRAME = 1 << 20        # 1 MiB: beyond this the framing is considered lost (SPEC §3.10)
VERSION_9P2000L = "9P2000.L"
VERSION_UNKNOWN = "unknown"

QTDIR = 0x80
QTAPPEND = 0x40
QTFILE = 0x00

# Tlopen flags (SPEC §3.5, generic Linux encoding).
O_RDONLY = 0
O_WRONLY = 1
O_RDWR = 2
O_ACCMODE = 3
O_CREAT = 0x40
O_EXCL = 0x80
O_TRUNC = 0x200
O_APPEND = 0x400
O_NONBLOCK = 0x800
O_LARGEFILE = 0x8000
O_DIRECTORY = 0x10000
O_CLOEXEC = 0x80000

# Treaddir entry types.
DT_DIR = 4
DT_REG = 8

# Rgetattr constants (SPEC §3.7).
GETATTR_BASIC = 0x7FF
GETATTR_ALL = 0x3FFF
S_IFDIR = 0o040000
S_IFREG = 0o100000

# Rstatfs constants (SPEC §3.7).
V9FS_MAGIC = 0x01021997

# --- message type numbers (SPEC §3.2, §3.8) ---------------------------------------------------
TLERROR, RLERROR = 6, 7
TSTATFS, RSTATFS = 8, 9
TLOPEN, RLOPEN = 12, 13
TLCREATE = 14
TSYMLINK = 16
TMKNOD = 18
TRENAME = 20
TREADLINK = 22
TGETATTR, RGETATTR = 24, 25
TSETATTR = 26
TXATTRWALK = 30
TXATTRCREATE = 32
TREADDIR, RREADDIR = 40, 41
TFSYNC = 50
TLOCK = 52
TGETLOCK = 54
TLINK = 70
TMKDIR = 72
TRENAMEAT = 74
TUNLINKAT = 76
TVERSION, RVERSION = 100, 101
TAUTH, RAUTH = 102, 103
TATTACH, RATTACH = 104, 105
RERROR = 107
TFLUSH, RFLUSH = 108, 109
TWALK, RWALK = 110, 111
TOPEN = 112
TCREATE = 114
TREAD, RREAD = 116, 117
TWRITE, RWRITE = 118, 119
TCLUNK, RCLUNK = 120, 121
TREMOVE = 122
TSTAT = 124
TWSTAT = 126

# §3.8: type bytes the server refuses with something other than EINVAL. Every other type byte
# that is not a supported T-message (R numbers, Tlerror, 9P2000-only messages, unknown bytes)
# gets EINVAL. Tauth is decoded as a real message (it is answered ENOENT).
_EPERM_TYPES = frozenset({TLCREATE, TSYMLINK, TMKNOD, TRENAME, TSETATTR, TLINK, TMKDIR,
                          TRENAMEAT, TUNLINKAT, TREMOVE})
_EOPNOTSUPP_TYPES = frozenset({TXATTRWALK, TXATTRCREATE, TFSYNC, TLOCK, TGETLOCK})


@dataclass(frozen=True, slots=True)
class Qid:
    """qid[13] = type[1] version[4] path[8]: the server's identity for a node."""

    type: int
    version: int
    path: int


@dataclass(frozen=True, slots=True)
class DirEntry:
    """One Treaddir entry: ``qid[13] offset[8] type[1] name[s]`` (SPEC §3.7)."""

    qid: Qid
    offset: int
    type: int
    name: str


# --- T-messages (client → server) -------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Tversion:
    tag: int
    msize: int
    version: str


@dataclass(frozen=True, slots=True)
class Tauth:
    tag: int
    afid: int
    uname: str
    aname: str
    n_uname: int


@dataclass(frozen=True, slots=True)
class Tattach:
    tag: int
    fid: int
    afid: int
    uname: str
    aname: str
    n_uname: int


@dataclass(frozen=True, slots=True)
class Twalk:
    tag: int
    fid: int
    newfid: int
    wnames: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Tlopen:
    tag: int
    fid: int
    flags: int


@dataclass(frozen=True, slots=True)
class Tread:
    tag: int
    fid: int
    offset: int
    count: int


@dataclass(frozen=True, slots=True)
class Twrite:
    """``count`` on the wire is ``len(data)``; a frame where they differ does not decode."""

    tag: int
    fid: int
    offset: int
    data: bytes


@dataclass(frozen=True, slots=True)
class Tclunk:
    tag: int
    fid: int


@dataclass(frozen=True, slots=True)
class Tgetattr:
    tag: int
    fid: int
    request_mask: int


@dataclass(frozen=True, slots=True)
class Treaddir:
    tag: int
    fid: int
    offset: int
    count: int


@dataclass(frozen=True, slots=True)
class Tstatfs:
    tag: int
    fid: int


@dataclass(frozen=True, slots=True)
class Tflush:
    tag: int
    oldtag: int


# --- R-messages (server → client) -------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Rversion:
    tag: int
    msize: int
    version: str


@dataclass(frozen=True, slots=True)
class Rattach:
    tag: int
    qid: Qid


@dataclass(frozen=True, slots=True)
class Rwalk:
    tag: int
    qids: tuple[Qid, ...]


@dataclass(frozen=True, slots=True)
class Rlopen:
    tag: int
    qid: Qid
    iounit: int


@dataclass(frozen=True, slots=True)
class Rread:
    tag: int
    data: bytes


@dataclass(frozen=True, slots=True)
class Rwrite:
    tag: int
    count: int


@dataclass(frozen=True, slots=True)
class Rclunk:
    tag: int


@dataclass(frozen=True, slots=True)
class Rgetattr:
    """The 153-byte Rgetattr body (SPEC §3.7). Doubles as the client's ``Attr``."""

    tag: int
    valid: int
    qid: Qid
    mode: int
    uid: int
    gid: int
    nlink: int
    rdev: int
    size: int
    blksize: int
    blocks: int
    atime_sec: int
    atime_nsec: int
    mtime_sec: int
    mtime_nsec: int
    ctime_sec: int
    ctime_nsec: int
    btime_sec: int
    btime_nsec: int
    gen: int
    data_version: int


@dataclass(frozen=True, slots=True)
class Rreaddir:
    """``data`` is the packed entry list; see :func:`nine_door.codec.encode_dirents`."""

    tag: int
    data: bytes


@dataclass(frozen=True, slots=True)
class Rstatfs:
    tag: int
    type: int
    bsize: int
    blocks: int
    bfree: int
    bavail: int
    files: int
    ffree: int
    fsid: int
    namelen: int


@dataclass(frozen=True, slots=True)
class Rflush:
    tag: int


@dataclass(frozen=True, slots=True)
class Rlerror:
    tag: int
    ecode: int


@dataclass(frozen=True, slots=True)
class Unsupported:
    """A well-framed request whose type byte is outside the subset (SPEC §3.8).

    The decoder only validated size/type/tag; the body is not interpreted. ``errno`` is the
    refusal the §3.8 table prescribes, so the server answers ``Rlerror(tag, msg.errno)``.
    """

    type: int
    tag: int

    @property
    def errno(self) -> int:
        return unsupported_errno(self.type)


def unsupported_errno(mtype: int) -> int:
    """The §3.8 refusal for a type byte that is not a supported T-message."""
    if mtype in _EPERM_TYPES:
        return 1        # EPERM: the namespace is server-owned (R8)
    if mtype in _EOPNOTSUPP_TYPES:
        return 95       # EOPNOTSUPP
    if mtype == TAUTH:
        return 2        # ENOENT (only reached if a caller builds Unsupported(TAUTH, …) itself)
    return 22           # EINVAL: Treadlink, Tlerror, 9P2000-only, R-numbers, unknown bytes


Request = (Tversion | Tauth | Tattach | Twalk | Tlopen | Tread | Twrite | Tclunk | Tgetattr | Treaddir | Tstatfs
           | Tflush)
Reply = (Rversion | Rattach | Rwalk | Rlopen | Rread | Rwrite | Rclunk | Rgetattr | Rreaddir | Rstatfs | Rflush
         | Rlerror)
Message = Request | Reply | Unsupported

#: dataclass → type byte, for every encodable message.
TYPE_OF: dict[type, int] = {
    Tversion: TVERSION, Rversion: RVERSION, Tauth: TAUTH, Tattach: TATTACH, Rattach: RATTACH,
    Twalk: TWALK, Rwalk: RWALK, Tlopen: TLOPEN, Rlopen: RLOPEN, Tread: TREAD, Rread: RREAD,
    Twrite: TWRITE, Rwrite: RWRITE, Tclunk: TCLUNK, Rclunk: RCLUNK, Tgetattr: TGETATTR,
    Rgetattr: RGETATTR, Treaddir: TREADDIR, Rreaddir: RREADDIR, Tstatfs: TSTATFS,
    Rstatfs: RSTATFS, Tflush: TFLUSH, Rflush: RFLUSH, Rlerror: RLERROR,
}
REQUEST_TYPES: dict[int, type] = {v: k for k, v in TYPE_OF.items() if k.__name__[0] == "T"}
REPLY_TYPES: dict[int, type] = {v: k for k, v in TYPE_OF.items() if k.__name__[0] == "R"}
