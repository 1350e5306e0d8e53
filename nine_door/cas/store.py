"""The content-addressed update store under ``cas.store.root`` (SPEC §13).

What it keeps, and why that shape:

* **One chunk table** (``chunks``: hex name → :class:`ChunkNode`), pending and committed alike: a chunk
  is stored once whatever epoch path uploaded it, so a walk to ``<e>/chunks/<hex>`` under any epoch
  reaches the same node, and an upload interrupted under one epoch resumes under another.
* **One epoch table** (``epochs``: epoch → :class:`EpochDir`), pending and committed. A pending epoch
  comes into being when the queen walks to it (§13.1: no creation messages); it is listed by Treaddir
  only once something was received through it.
* **Capacity**: at most 64 MiB of chunk bytes, pending included (a write beyond → ENOSPC); at most 8
  committed epochs (committing a ninth removes the lowest and every chunk it alone referenced).

Walk-created entries are bounded too, because a walk may create them: at most
``MAX_IDLE_CHUNKS`` pending chunks and ``MAX_PENDING_EPOCHS`` pending epochs; beyond that the
oldest *untouched* pending entry (no bytes) is dropped — its fids answer ENOENT — and a pending
epoch with bytes is dropped only when all are in use (docs/spec-decisions.md, "CAS").

Every rejection of §13.2/§13.3 discards the pending bytes, logs its §5.5 line and raises the SPEC
errno; nothing is ever half-committed: a manifest commits by flipping its nodes after every check
passed, and a chunk commits only when its bytes hash to its name.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

TYPE_CHECKING = False

from ..errors import EACCES, EINVAL, EMSGSIZE, ENOENT, ENOSPC, EPERM, NineError
from ..nodes import ZONE_CAS, ZONE_CAS_PENDING, ZONE_CAS_PENDING_DIR
from . import manifest as mf
from .nodes import CasDirNode, ChunkNode, ManifestNode

if TYPE_CHECKING:  # pragma: no cover
    from ..namespace import Namespace

STORE_BYTES = 64 << 20          # §13.3: chunk bytes held, pending included
RETAINED_EPOCHS = 8             # §13.3
MAX_IDLE_CHUNKS = 1024          # walk-created pending chunks that received nothing
MAX_PENDING_EPOCHS = 64         # walk-created pending epochs (bytes or not)
U64_MAX = (1 << 64) - 1
_HEX = frozenset("0123456789abcdef")


def _new_sha256():
    """A new SHA-256 hasher. ``hashlib`` is imported for the first chunk, not with this module: the store
    is built at boot, where importing hashlib (it probes for OpenSSL's ``_hashlib``) costs emulated CPU."""
    import hashlib

    return hashlib.sha256()


def parse_epoch(name: str) -> int | None:
    """§1.3 epoch: decimal u64 without leading zeros (``0`` allowed); None otherwise."""
    if not name or not name.isascii() or not name.isdigit() or (name[0] == "0" and len(name) > 1):
        return None
    value = int(name)
    return value if value <= U64_MAX else None


def is_chunk_name(name: str) -> bool:
    return len(name) == 64 and _HEX.issuperset(name)


@dataclass(eq=False)
class EpochDir:
    """The nodes of one epoch: its directory, ``manifest.cbor`` and ``chunks/``."""

    epoch: int
    directory: CasDirNode
    manifest: ManifestNode
    chunks_dir: CasDirNode
    committed: bool = False
    decoded: mf.Manifest | None = None
    # Chunks the queen reached or wrote through this pending epoch's ``chunks/`` (uploaded, resumed or
    # skipped as already committed): the chunks a push for this epoch counts on until it commits.
    claimed: set[str] = field(default_factory=set)


class CasStore:
    """The store and its directory tree; NineDoor creates one when ``cas.enable`` is on."""

    def __init__(self, ns: "Namespace", name: str, chunk_bytes: int, delta_enable: bool,
                 pubkey: bytes | None, log: Callable[[str], None], now_ns: Callable[[], int],
                 capacity: int = STORE_BYTES, retained: int = RETAINED_EPOCHS) -> None:
        self.ns = ns
        self.chunk_bytes = chunk_bytes
        self.delta_enable = delta_enable
        self.pubkey = pubkey
        self.log = log
        self.now_ns = now_ns
        self.capacity = capacity
        self.retained = retained
        self.root: CasDirNode = ns.attach(ns.root, ns.new_node(CasDirNode, name, ZONE_CAS, None, store=self))
        self.chunks: dict[str, ChunkNode] = {}
        self.idle: dict[str, ChunkNode] = {}    # pending chunks holding no bytes, oldest first
        self.epochs: dict[int, EpochDir] = {}
        self.committed: list[int] = []          # ascending
        self.refs: dict[str, int] = {}          # chunk → committed epochs referencing it
        self.bytes_used = 0                     # chunk bytes, pending and committed

    # -- walks (§13.1) ------------------------------------------------------------------------------
    def lookup(self, directory: CasDirNode, name: str, ident) -> object:
        queen = ident is not None and ident.is_queen
        if directory.role == "root":
            epoch = parse_epoch(name)
            if epoch is None:
                return None
            entry = self.epochs.get(epoch)
            if entry is not None and entry.committed:
                return entry.directory
            if not queen:
                return None
            return (entry or self._new_epoch(epoch)).directory
        entry = self.epochs.get(directory.epoch)
        if entry is None or entry.directory.removed:
            return None
        if directory.role == "epoch":
            if name == "chunks":
                return entry.chunks_dir
            if name == "manifest.cbor":
                return entry.manifest if (entry.committed or queen) else None
            return None
        if not is_chunk_name(name):                # chunks/
            return None
        if entry.committed:
            return directory.children.get(name)    # only the chunks its manifest references
        chunk = self.chunks.get(name)
        if chunk is not None and chunk.committed:
            if queen:
                entry.claimed.add(name)
            return chunk
        if not queen:
            return None
        entry.claimed.add(name)
        return chunk or self._new_chunk(name)

    def _new_epoch(self, epoch: int) -> EpochDir:
        pending = [e for e in self.epochs.values() if not e.committed]
        if len(pending) >= MAX_PENDING_EPOCHS:
            idle = [e for e in pending if not self._epoch_has_bytes(e)]
            self._drop_pending_epoch((idle or pending)[0])
        ns = self.ns
        directory = ns.new_node(CasDirNode, str(epoch), ZONE_CAS_PENDING_DIR, None, store=self, epoch=epoch,
                                role="epoch")
        directory.parent = self.root
        manifest = ns.new_node(ManifestNode, "manifest.cbor", ZONE_CAS_PENDING, None, store=self, epoch=epoch)
        manifest.parent = directory
        chunks_dir = ns.new_node(CasDirNode, "chunks", ZONE_CAS_PENDING_DIR, None, store=self, epoch=epoch,
                                 role="chunks")
        chunks_dir.parent = directory
        directory.children["chunks"] = chunks_dir
        entry = self.epochs[epoch] = EpochDir(epoch, directory, manifest, chunks_dir)
        return entry

    def _new_chunk(self, name: str) -> ChunkNode:
        if len(self.idle) >= MAX_IDLE_CHUNKS:
            self._forget_chunk(next(iter(self.idle.values())))
            self.ns.generation += 1                 # memoized walks to it must not return it
        chunk = self.ns.new_node(ChunkNode, name, ZONE_CAS_PENDING, None, store=self, hasher=_new_sha256())
        self.chunks[name] = self.idle[name] = chunk
        return chunk

    # -- listing state ------------------------------------------------------------------------------
    def _epoch_has_bytes(self, entry: EpochDir) -> bool:
        return bool(entry.manifest.data) or bool(entry.chunks_dir.children)

    def _relist(self, entry: EpochDir) -> None:
        """Treaddir shows a pending epoch (and its manifest) once it received bytes (§13.1)."""
        children = entry.directory.children
        if entry.committed or entry.manifest.data:
            children["manifest.cbor"] = entry.manifest
        else:
            children.pop("manifest.cbor", None)
        name = str(entry.epoch)
        if entry.committed or self._epoch_has_bytes(entry):
            self.root.children[name] = entry.directory
        else:
            self.root.children.pop(name, None)

    def _epoch_of(self, path: tuple[str, ...]) -> EpochDir | None:
        """The pending epoch a chunk was reached through (``…/<epoch>/chunks/<hex>``), if any."""
        if len(path) < 3 or path[-2] != "chunks":
            return None
        epoch = parse_epoch(path[-3])
        entry = self.epochs.get(epoch) if epoch is not None else None
        return entry if entry is not None and not entry.committed else None

    # -- chunk uploads (§13.3) ----------------------------------------------------------------------
    def chunk_write(self, chunk: ChunkNode, path: tuple[str, ...], offset: int, data: bytes) -> int:
        if chunk.committed:
            raise NineError(EPERM, "chunk is committed")
        received = len(chunk.data)
        if offset != received and offset != U64_MAX:
            raise NineError(EINVAL, f"positioned append expects offset {received}")
        if received + len(data) > self.chunk_bytes:
            raise NineError(EMSGSIZE, "chunk would exceed chunk_bytes")
        if self.bytes_used + len(data) > self.capacity:
            raise NineError(ENOSPC, "CAS store is full")
        if not data:
            return 0
        if not chunk.data:
            self.idle.pop(chunk.name, None)
        chunk.data += data
        chunk.hasher.update(data)
        self.bytes_used += len(data)
        entry = self._epoch_of(path)
        if entry is not None and chunk.name not in entry.chunks_dir.children:
            entry.chunks_dir.children[chunk.name] = chunk
            self._relist(entry)
        digest = chunk.hasher.copy().hexdigest()
        if digest == chunk.name:
            chunk.commit(self.now_ns())    # in place: walks memoized to it stay right (no generation bump)
            chunk.hasher = None
        elif len(chunk.data) == self.chunk_bytes:
            epoch = entry.epoch if entry is not None else "-"
            self.log(f"cas-chunk rejected epoch={epoch} expected={chunk.name} actual={digest} "
                     f"bytes={len(chunk.data)}")
            self._discard_chunk(chunk)
            raise NineError(EINVAL, "chunk digest does not match its name")
        else:
            chunk.touch(self.now_ns())
        return len(data)

    def _discard_chunk(self, chunk: ChunkNode) -> None:
        self.bytes_used -= len(chunk.data)
        chunk.data = bytearray()
        chunk.hasher = _new_sha256()
        chunk.touch(self.now_ns())
        self.idle[chunk.name] = chunk
        for entry in self.epochs.values():
            if not entry.committed and entry.chunks_dir.children.get(chunk.name) is chunk:
                del entry.chunks_dir.children[chunk.name]
                self._relist(entry)

    def _forget_chunk(self, chunk: ChunkNode) -> None:
        """Remove a chunk from the store (GC, or an idle pending entry making room)."""
        if self.chunks.get(chunk.name) is chunk:
            del self.chunks[chunk.name]
        if self.idle.get(chunk.name) is chunk:
            del self.idle[chunk.name]
        self.bytes_used -= len(chunk.data)
        chunk.removed = True
        self.ns.node_count -= 1
        for entry in self.epochs.values():
            if entry.chunks_dir.children.get(chunk.name) is chunk:
                del entry.chunks_dir.children[chunk.name]
                if not entry.committed:
                    self._relist(entry)

    # -- manifest uploads and commit (§13.2) --------------------------------------------------------
    def manifest_write(self, node: ManifestNode, offset: int, data: bytes) -> int:
        entry = self.epochs.get(node.epoch)
        if node.committed or entry is None:
            raise NineError(EPERM, "manifest is committed")
        received = len(node.data)
        if offset != received and offset != U64_MAX:
            raise NineError(EINVAL, f"positioned append expects offset {received}")
        if received + len(data) > mf.MAX_MANIFEST_BYTES:
            self._reject(entry, EMSGSIZE, "too-big")
        if not data:
            return 0
        node.data += data
        node.touch(self.now_ns())
        self._relist(entry)
        try:
            mf.item_end(bytes(node.data))
        except mf.Incomplete:
            return len(data)
        except mf.ManifestError:
            self._reject(entry, EINVAL, "invalid-manifest")
        self._commit(entry)
        return len(data)

    def _reject(self, entry: EpochDir, errno: int, reason: str) -> None:
        self.log(f"cas-manifest rejected epoch={entry.epoch} reason={reason}")
        entry.manifest.data = bytearray()
        entry.manifest.touch(self.now_ns())
        self._relist(entry)
        raise NineError(errno, reason)

    def check(self, entry: EpochDir, raw: bytes) -> tuple[mf.Manifest, list["ChunkNode"]]:
        """Every §13.2 check, in the table's order; a failure rejects (discard, log, raise)."""
        try:
            manifest = mf.decode(raw)
        except mf.ManifestError:
            self._reject(entry, EINVAL, "invalid-manifest")
        if manifest.epoch != entry.epoch or manifest.chunk_bytes != self.chunk_bytes:
            self._reject(entry, EINVAL, "invalid-manifest")
        if self.committed and manifest.epoch <= self.committed[-1]:
            self._reject(entry, EINVAL, "epoch-not-increasing")
        if manifest.delta is not None:
            base = self.epochs.get(manifest.delta.base_epoch)
            if (not self.delta_enable or base is None or not base.committed
                    or base.decoded.payload_sha256 != manifest.delta.base_sha256):
                self._reject(entry, EINVAL, "invalid-delta")
        if self.pubkey is not None:
            if manifest.signature is None:
                self._reject(entry, EACCES, "missing-signature")
            from .ed25519 import verify   # only a signing store needs it
            if not verify(self.pubkey, manifest.signed_bytes(), manifest.signature):
                self._reject(entry, EACCES, "signature-failed")
        chunks = []
        for digest in manifest.chunks:
            chunk = self.chunks.get(digest.hex())
            if chunk is None or not chunk.committed:
                self._reject(entry, ENOENT, "missing-chunk")
            chunks.append(chunk)
        for index, chunk in enumerate(chunks):
            if len(chunk.data) != manifest.chunk_size(index):
                self._reject(entry, EINVAL, "chunk-size")
        payload = _new_sha256()
        for chunk in chunks:
            payload.update(chunk.data)
        if payload.digest() != manifest.payload_sha256:
            self._reject(entry, EINVAL, "payload-mismatch")
        return manifest, chunks

    def _commit(self, entry: EpochDir) -> None:
        manifest, chunks = self.check(entry, bytes(entry.manifest.data))
        now = self.now_ns()
        entry.committed = True
        entry.decoded = manifest
        entry.manifest.commit(now)
        for node in (entry.directory, entry.chunks_dir):
            node.zone = ZONE_CAS
            node.committed = True
            node.touch(now)
        entry.chunks_dir.children = {chunk.name: chunk for chunk in chunks}
        for name in entry.chunks_dir.children:
            self.refs[name] = self.refs.get(name, 0) + 1
        self.committed.append(entry.epoch)
        self._relist(entry)
        self.ns.generation += 1
        self.log(f"cas-manifest accepted epoch={entry.epoch} kind={manifest.kind} "
                 f"payload_sha256={manifest.payload_sha256.hex()} chunks={len(manifest.chunks)}")
        while len(self.committed) > self.retained:
            self._drop_committed(self.epochs[self.committed[0]])
        self._collect_abandoned(entry.epoch)

    def _collect_abandoned(self, newest: int) -> None:
        """After epoch ``newest`` commits: what an abandoned push left behind goes.

        A pending epoch below ``newest`` can never commit (§13.2 ``epoch-not-increasing``), so it is
        dropped (its fids answer ENOENT, as for any dropped pending epoch). Then every chunk holding
        bytes that no retained epoch references and no remaining pending epoch has claimed (reached or
        written through its ``chunks/``) is removed, so it stops counting toward the 64 MiB. A push in
        progress for a later epoch keeps everything it uploaded, resumed, or skipped because it was
        already committed: the queen's walk to it through that epoch claimed it. One ``cas-gc`` line
        says what went (docs/spec-decisions.md, "CAS")."""
        dead = [e for e in self.epochs.values() if not e.committed and e.epoch < newest]
        for entry in dead:
            self._drop_pending_epoch(entry)
        claimed: set[str] = set()
        for entry in self.epochs.values():
            if not entry.committed:
                claimed |= entry.claimed
        garbage = [chunk for name, chunk in self.chunks.items()
                   if chunk.data and name not in self.refs and name not in claimed]
        freed = sum(len(chunk.data) for chunk in garbage)
        for chunk in garbage:
            self._forget_chunk(chunk)
        if dead or garbage:
            self.ns.generation += 1
            self.log(f"cas-gc after epoch={newest} pending_epochs={len(dead)} chunks={len(garbage)} "
                     f"bytes={freed}")

    # -- removal ------------------------------------------------------------------------------------
    def _drop_committed(self, entry: EpochDir) -> None:
        """GC (§13.3): the lowest epoch goes, with every chunk no longer referenced."""
        self.committed.remove(entry.epoch)
        self._unlink_epoch(entry)
        for name in entry.chunks_dir.children:
            left = self.refs[name] - 1
            if left:
                self.refs[name] = left
                continue
            del self.refs[name]
            chunk = self.chunks.get(name)
            if chunk is not None:
                self._forget_chunk(chunk)

    def _drop_pending_epoch(self, entry: EpochDir) -> None:
        for chunk in entry.chunks_dir.children.values():
            chunk.parent = None
        entry.chunks_dir.children = {}
        self._unlink_epoch(entry)

    def _unlink_epoch(self, entry: EpochDir) -> None:
        if self.epochs.get(entry.epoch) is entry:
            del self.epochs[entry.epoch]
        self.root.children.pop(str(entry.epoch), None)
        for node in (entry.directory, entry.manifest, entry.chunks_dir):
            node.removed = True
            self.ns.node_count -= 1
        self.ns.generation += 1

    # -- introspection ------------------------------------------------------------------------------
    def committed_manifest(self, epoch: int) -> mf.Manifest | None:
        entry = self.epochs.get(epoch)
        return entry.decoded if entry is not None and entry.committed else None
