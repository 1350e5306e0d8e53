"""Namespace node kinds (SPEC §5.2): each kind implements the one file interface the session calls.

Why one interface: every kind has its own read/write contract (snapshot offsets, append-only logs,
line-processed ctl sinks, the telemetry ring's record stream). Modelled on hugelgupf/p9, whose
request handlers call methods of a ``File`` interface, the session calls the same five methods on
every node and never asks which kind it holds:

=========================================  ====================================================
``open(access, caller, path) -> handle``   per-open state (a snapshot, a read position, a listing)
``read(handle, offset, count, caller)``    the bytes of a Tread (``count`` already clamped)
``write(handle, offset, data, caller)``    bytes accepted by a Twrite
``readdir(handle, offset, count, caller)`` encoded dirents of a Treaddir (``handle`` None: not open)
``size()``, ``file_type``, ``wire_qid``    what Tgetattr reports besides the §5.3 mode bits
=========================================  ====================================================

The session has already applied everything generic — fid state, access mode, the §5.3 rights from
``namespace.rights`` (policy stays there), O_TRUNC, O_DIRECTORY — so a method only implements its
kind's contract; the base class gives the answer of a node that has no such operation. Per-open
state lives in the handle the node returns from ``open`` (one small class per kind), never in the
session's fid, so a new kind (cursor, GPU ctl/job/status, CAS pending/committed) is one node class
and at most one handle class. ``caller`` is the requesting session: nodes use it only to reach their
provider (``caller.door``) and, for directories, the session's view of the tree; they make no access
decision with it.
"""
from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing at boot (docs/build.md)

from .codec import dirent_size, encode_dirent, pack_qid
from .errors import EACCES, EBADF, EINVAL, EISDIR, ENOTDIR, NineError
from .messages import DT_DIR, DT_REG, O_WRONLY, S_IFDIR, S_IFREG, DirEntry, Qid

if TYPE_CHECKING:  # pragma: no cover
    from .session import Session

QTDIR = 0x80
QTAPPEND = 0x40
QTFILE = 0x00

# Access zones: what the §5.3 matrix keys on. Nodes carry a zone, policy maps (zone, identity) → rights.
ZONE_PUBLIC = "public"          # /, /proc, /log, /proc/boot
ZONE_LOG = "log"                # /log/queen.log
ZONE_QUEEN = "queen"            # /queen
ZONE_QUEEN_CTL = "queen-ctl"    # /queen/ctl
ZONE_WORKER_ROOT = "worker-root"  # /worker, /shard
ZONE_SHARD = "shard"            # /shard/<label>, /shard/<label>/worker (owner = the label, SPEC §8)
ZONE_WORKER_DIR = "worker-dir"  # /worker/<id>
ZONE_TELEMETRY = "telemetry"    # /worker/<id>/telemetry
ZONE_CURSOR = "cursor"          # /worker/<id>/cursor (queen only, SPEC §5.3)
ZONE_PROC_QUEEN = "proc-queen"  # /proc/9p, /proc/ingest and their files (queen only, SPEC §5.3, §12)
ZONE_CAS = "cas"                # <cas root> and committed CAS nodes (every role reads, SPEC §5.3)
ZONE_CAS_PENDING_DIR = "cas-pending-dir"  # a pending <epoch> and its chunks/ (queen only)
ZONE_CAS_PENDING = "cas-pending"  # pending manifest.cbor and chunks (queen R W)

LOG_RETAIN_BYTES = 1 << 20  # /log/queen.log keeps at most 1 MiB (SPEC §5.2)


class NoState:
    """The handle of an open that needs no per-open state (ctl sinks, write-only log opens)."""

    __slots__ = ()


NO_STATE = NoState()


@dataclass(eq=False)
class Node:
    """Common node state (a boot-unique qid path, a content version, a change time) and the file
    interface's defaults: a node without a given operation answers what SPEC says for it."""

    name: str
    qid_path: int
    zone: str
    mtime_ns: int
    owner: str | None = None          # worker id owning this node (worker zones)
    parent: "DirNode | None" = None
    version: int = 0
    removed: bool = False
    # The 13-byte wire qid, kept current by __post_init__ and touch() (the only place the version
    # changes): every walk step, open and getattr answers it, so it is packed once per version.
    wire_qid: bytes = field(default=b"", init=False, repr=False)

    qid_type = QTFILE
    file_type = S_IFREG               # Tgetattr mode's type bits
    is_dir = False
    ingest = False                    # a telemetry sink: its Twrites feed /proc/ingest latency (§12)
    read_only = False                 # Tlopen for write → EPERM (committed CAS nodes, §13.1)
    dynamic = False                   # a directory whose children come from lookup() (CAS, §13.1)

    def __post_init__(self) -> None:
        self.wire_qid = pack_qid(self.qid_type, self.version, self.qid_path)

    def qid(self) -> tuple[int, int, int]:
        return (self.qid_type, self.version, self.qid_path)

    def touch(self, now_ns: int) -> None:
        """Record a content change: bump the qid version (mod 2^32) and the change time."""
        self.version = (self.version + 1) & 0xFFFFFFFF
        self.mtime_ns = now_ns
        self.wire_qid = pack_qid(self.qid_type, self.version, self.qid_path)

    # -- the file interface (defaults) -----------------------------------------------------------
    def size(self) -> int:
        return 0

    def open(self, access: int, caller: "Session", path: tuple[str, ...]) -> object:
        return NO_STATE

    def read(self, handle: object, offset: int, count: int, caller: "Session") -> bytes:
        return b""                    # a readable node without content reads as empty

    def write(self, handle: object, offset: int, data: bytes, caller: "Session") -> int:
        raise NineError(EACCES, "node is not writable")

    def readdir(self, handle: object, offset: int, count: int, caller: "Session") -> bytes:
        raise NineError(ENOTDIR, "not a directory")

    def lookup(self, name: str, ident: object) -> "Node | None":
        """A ``dynamic`` directory's child for a walk by ``ident`` (None: no such name for it)."""
        return None


class DirHandle:
    """An open directory: the visible path it was opened at and the listing of the last offset-0 read."""

    __slots__ = ("path", "listing")

    def __init__(self, path: tuple[str, ...]) -> None:
        self.path = path
        self.listing: list[DirEntry] | None = None


@dataclass(eq=False)
class DirNode(Node):
    children: dict[str, Node] = field(default_factory=dict)

    qid_type = QTDIR
    file_type = S_IFDIR
    is_dir = True

    def open(self, access: int, caller: "Session", path: tuple[str, ...]) -> DirHandle:
        return DirHandle(path)

    def read(self, handle: object, offset: int, count: int, caller: "Session") -> bytes:
        raise NineError(EISDIR, "use Treaddir on directories")

    def readdir(self, handle: DirHandle | None, offset: int, count: int, caller: "Session") -> bytes:
        """Entries from ``offset`` (an entry index) that fit in ``count``; offset 0 re-lists (§3.7)."""
        if handle is None:
            raise NineError(EBADF, "directory not open")
        if offset == 0 or handle.listing is None:
            handle.listing = [DirEntry(Qid(*child.qid()), index + 1, DT_DIR if child.is_dir else DT_REG, name)
                              for index, (name, child) in
                              enumerate(caller.view.listing(self, handle.path, caller.identity))]
        chunks: list[bytes] = []
        used = 0
        for entry in handle.listing[offset:]:
            size = dirent_size(entry.name)
            if used + size > count:
                if not chunks:
                    raise NineError(EINVAL, "first entry does not fit")
                break
            chunks.append(encode_dirent(entry))
            used += size
        return b"".join(chunks)


class ContentHandle:
    """An open of immutable content captured at Tlopen; reads are plain offsets into it."""

    __slots__ = ("content",)

    def __init__(self, content: bytes) -> None:
        self.content = content


@dataclass(eq=False)
class SnapshotNode(Node):
    """Read-only text generated when opened (``/proc/boot``)."""

    render: Callable[[], bytes] = field(default=lambda: b"")

    def size(self) -> int:
        return len(self.render())

    def open(self, access: int, caller: "Session", path: tuple[str, ...]) -> ContentHandle:
        return ContentHandle(self.render())

    def read(self, handle: ContentHandle, offset: int, count: int, caller: "Session") -> bytes:
        content = handle.content
        if offset >= len(content):
            return b""
        return content[offset:offset + count]


class LogView:
    """An open of ``/log/queen.log``: the log as it was at Tlopen, without a copy of its bytes.

    It names a range of one generation of the log's line list (see :class:`LogNode`): lines
    ``lo..hi-1`` of ``lines``, whose absolute offsets are in ``offsets``. Both objects are only ever
    appended to while they are the log's current generation and never changed after, so the range
    reads the same bytes for as long as the handle lives.
    """

    __slots__ = ("lines", "offsets", "lo", "hi", "base", "end")

    def __init__(self, lines: list, offsets: array, lo: int, hi: int) -> None:
        self.lines = lines
        self.offsets = offsets
        self.lo = lo
        self.hi = hi
        self.base = offsets[lo]       # absolute offset of the view's byte 0
        self.end = offsets[hi]        # absolute offset one past its last byte

    @property
    def size(self) -> int:
        return self.end - self.base

    def read(self, offset: int, count: int) -> bytes:
        pos = self.base + offset
        end = self.end
        if pos >= end or count <= 0:
            return b""
        stop = min(pos + count, end)
        offsets = self.offsets
        first = bisect_right(offsets, pos, self.lo, self.hi) - 1   # the line holding byte ``pos``
        past = bisect_left(offsets, stop, first + 1, self.hi + 1)  # one past the line holding stop-1
        skip = pos - offsets[first]
        if past == first + 1:
            return self.lines[first][skip:skip + stop - pos]
        return b"".join(self.lines[first:past])[skip:skip + stop - pos]


@dataclass(eq=False)
class LogNode(Node):
    """``/log/queen.log``: append-only UTF-8 lines, whole oldest lines dropped past 1 MiB.

    Why generations instead of a deque: every Tlopen for reading must see the log as it was at the
    open (the pre-1.2 snapshot contract), and copying up to 1 MiB per open let 200 fids pin 200 MiB.
    The lines live in a list (one *generation*) with a parallel array of absolute byte offsets; a
    read open records a range of it (:class:`LogView`, O(1), no bytes copied). Appends extend the
    list, eviction only advances ``_first``; once the evicted prefix reaches half the retention the
    log starts a new generation holding just the retained lines (pointers copied, not bytes) and
    never touches the old one again, so views on it stay valid. Memory: the current generation holds
    at most ``1.5 × retain_bytes`` of lines, and an older one is only kept alive by views of it —
    pinning one more generation takes another ``retain_bytes / 2`` of log appended, whatever the
    number of fids.
    """

    retain_bytes: int = LOG_RETAIN_BYTES
    used: int = 0
    _lines: list = field(default_factory=list, init=False, repr=False)   # of bytes, each ending b"\n"
    _offsets: array = field(default_factory=lambda: array("q", [0]), init=False, repr=False)
    _first: int = field(default=0, init=False, repr=False)   # index of the oldest retained line

    qid_type = QTAPPEND

    @property
    def lines(self) -> list[bytes]:
        """The retained lines, oldest first (a new list)."""
        return self._lines[self._first:]

    def size(self) -> int:
        return self.used

    def content(self) -> bytes:
        return b"".join(self._lines[self._first:])

    def view(self) -> LogView:
        """The log as it is now, as a read open sees it (shares the lines, copies nothing)."""
        return LogView(self._lines, self._offsets, self._first, len(self._lines))

    def open(self, access: int, caller: "Session", path: tuple[str, ...]) -> object:
        return NO_STATE if access == O_WRONLY else self.view()

    def read(self, handle: LogView, offset: int, count: int, caller: "Session") -> bytes:
        return handle.read(offset, count)

    def write(self, handle: object, offset: int, data: bytes, caller: "Session") -> int:
        return caller.door.client_log_append(self, data)

    def append_server_line(self, line: str, now_ns: int) -> None:
        self._append([line.encode("utf-8") + b"\n"], now_ns)

    def append_client_data(self, data: bytes, now_ns: int) -> int:
        """Client append: UTF-8 or EINVAL, a final fragment gets a newline, all-or-nothing."""
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            raise NineError(EINVAL, "log data is not UTF-8") from None
        if not data:
            return 0
        self._append(_split_on_lf(data), now_ns)
        return len(data)

    def _append(self, lines: list[bytes], now_ns: int) -> None:
        store = self._lines
        offsets = self._offsets
        end = offsets[-1]
        for line in lines:
            store.append(line)
            end += len(line)
            offsets.append(end)
            self.used += len(line)
        first = self._first
        while self.used > self.retain_bytes and len(store) - first > 1:
            self.used -= len(store[first])
            first += 1
        if first and offsets[first] - offsets[0] >= self.retain_bytes // 2:   # a new generation
            self._lines = store[first:]
            self._offsets = offsets[first:]
            first = 0
        self._first = first
        self.touch(now_ns)


@dataclass(eq=False)
class CtlNode(Node):
    """A line-processed control sink; the write handler is supplied by its provider."""

    handler: Callable[..., int] | None = None

    qid_type = QTAPPEND

    def write(self, handle: object, offset: int, data: bytes, caller: "Session") -> int:
        return self.handler(caller, data)


def _split_on_lf(data: bytes) -> list[bytes]:
    """Lines ending at ``\\n`` only (not splitlines' ``\\r``, ``\\v``, …); a final fragment gets one."""
    if not data:
        return []
    parts = data.split(b"\n")
    records = [part + b"\n" for part in parts[:-1]]
    if parts[-1]:
        records.append(parts[-1] + b"\n")
    return records
