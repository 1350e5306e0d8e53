"""The CAS nodes (SPEC §5.2 "upload", §13.1): directories whose children come from the store, and the
two upload kinds, ``manifest.cbor`` and ``chunks/<sha256 hex>``.

Why the nodes hold no policy: every rule of §13 (positioned appends, commit, rejection, capacity,
garbage collection) is in :class:`nine_door.cas.store.CasStore`; a node forwards its file-interface
call to the store and only reports its own state (pending or committed, bytes received). A node
changes kind in place when it commits — qid type QTAPPEND → QTFILE, zone pending → committed,
``read_only`` on — so fids walked before the commit see the committed node.

Why the directories are ``dynamic``: upload nodes exist without creation messages (§13.1), so a walk
asks the directory (``lookup``) instead of its ``children`` dict, which holds only what Treaddir
lists (committed nodes, and pending ones that received bytes).
"""
from __future__ import annotations

from dataclasses import dataclass, field

TYPE_CHECKING = False

from ..errors import EBUSY, NineError
from ..nodes import QTAPPEND, QTFILE, ZONE_CAS, DirNode, Node

if TYPE_CHECKING:  # pragma: no cover
    from ..session import Session
    from .store import CasStore


@dataclass(eq=False)
class CasDirNode(DirNode):
    """``<root>``, ``<root>/<epoch>`` and ``<epoch>/chunks``: children by :meth:`CasStore.lookup`."""

    store: "CasStore | None" = None
    epoch: int | None = None          # the epoch of an epoch directory or its chunks/
    role: str = "root"                # "root", "epoch" or "chunks"
    committed: bool = False

    dynamic = True

    def lookup(self, name: str, ident) -> Node | None:
        return self.store.lookup(self, name, ident)


@dataclass(eq=False)
class UploadNode(Node):
    """A pending-then-committed upload: ``data`` is what was received (pending) or the content."""

    store: "CasStore | None" = None
    epoch: int | None = None
    data: bytearray | bytes = field(default_factory=bytearray)   # bytes once committed
    committed: bool = False

    qid_type = QTAPPEND

    def size(self) -> int:
        return len(self.data)

    def commit(self, now_ns: int) -> None:
        """Become committed: read-only, immutable, QTFILE, readable by every role (§5.2, §5.3).

        The content becomes ``bytes``: immutable as the node now is, and a Tread of a whole chunk then
        returns it without a copy (a full slice of ``bytes`` is the object itself)."""
        self.data = bytes(self.data)
        self.committed = True
        self.read_only = True
        self.qid_type = QTFILE
        self.zone = ZONE_CAS
        self.touch(now_ns)

    def open(self, access: int, caller: "Session", path: tuple[str, ...]) -> tuple[str, ...]:
        return path                   # the handle: the visible path (names the epoch for log lines)

    def read(self, handle: object, offset: int, count: int, caller: "Session") -> bytes:
        if not self.committed:
            raise NineError(EBUSY, "upload is pending")
        return bytes(self.data[offset:offset + count])   # no copy for a whole committed chunk


@dataclass(eq=False)
class ManifestNode(UploadNode):
    def write(self, handle: object, offset: int, data: bytes, caller: "Session") -> int:
        return self.store.manifest_write(self, offset, data)


@dataclass(eq=False)
class ChunkNode(UploadNode):
    """One chunk, shared by every epoch path that names it (content addressing, §13.1)."""

    hasher: object = None             # hashlib sha256 of ``data`` while pending

    def write(self, handle: tuple[str, ...], offset: int, data: bytes, caller: "Session") -> int:
        return self.store.chunk_write(self, handle, offset, data)
