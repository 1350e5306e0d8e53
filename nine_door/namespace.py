"""The synthetic namespace for schema 1.0/1.1 (SPEC §5.1), access policy (§5.3) and mount tables (§5.6).

Why the policy is a function of (zone, identity) and not per-node ACLs: the matrix in §5.3 is small and
identical for every worker, so nodes only record *which row* they are (their zone and owning worker) and
one function answers every access question. Walks, opens, readdir filtering and getattr mode bits all
ask the same function, so they cannot disagree.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from .errors import EACCES, EINVAL, ENOENT, ENOTDIR, NineError
from .nodes import (CtlNode, DirNode, LogNode, Node, SnapshotNode, ZONE_CAS, ZONE_CAS_PENDING,
                    ZONE_CAS_PENDING_DIR, ZONE_CURSOR, ZONE_LOG, ZONE_PROC_QUEEN, ZONE_PUBLIC, ZONE_QUEEN, ZONE_QUEEN_CTL, ZONE_SHARD, ZONE_TELEMETRY, ZONE_WORKER_DIR,
                    ZONE_WORKER_ROOT)
from .shards import ShardProvider, all_labels, shard_label
from .telemetry import SCHEMA_TEXT, CursorNode, RingNode

Path = tuple[str, ...]

# Paths a mount or bind target may never be: they would sever the session's control path (§5.6).
FORBIDDEN_TARGETS: frozenset[Path] = frozenset({(), ("queen",), ("queen", "ctl")})


@dataclass(frozen=True)
class Identity:
    """A session's principal: the queen, or a worker role with its worker id."""

    role: str
    worker_id: str | None = None

    @property
    def is_queen(self) -> bool:
        return self.role == "queen"

    def label(self) -> str:
        return self.role if self.worker_id is None else f"{self.role}:{self.worker_id}"


@dataclass(frozen=True)
class Rights:
    """§5.3 cell: read, write, walk-through-only.

    ``reach`` (may the caller walk to the node at all: R, W or T) is derived once here because
    every walk step asks it.
    """

    read: bool = False
    write: bool = False
    through: bool = False
    reach: bool = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "reach", self.read or self.write or self.through)


_NONE = Rights()
_R = Rights(read=True)
_W = Rights(write=True)
_RW = Rights(read=True, write=True)
_T = Rights(through=True)

_QUEEN_RIGHTS = {ZONE_PUBLIC: _R, ZONE_LOG: _RW, ZONE_QUEEN: _R, ZONE_QUEEN_CTL: _W,
                 ZONE_WORKER_ROOT: _R, ZONE_SHARD: _R, ZONE_WORKER_DIR: _R, ZONE_TELEMETRY: _RW, ZONE_CURSOR: _RW, ZONE_PROC_QUEEN: _R,
                 ZONE_CAS: _R, ZONE_CAS_PENDING_DIR: _R, ZONE_CAS_PENDING: _RW}


def rights(node: Node, ident: Identity) -> Rights:
    """The §5.3 access matrix (the cursor row: queen only; workers fall through to no rights)."""
    if ident.role == "queen":
        found = _QUEEN_RIGHTS.get(node.zone)
        return found if found is not None else _provider_rights(node, ident)
    zone = node.zone
    if zone == ZONE_PUBLIC:
        return _R
    if zone == ZONE_LOG or zone == ZONE_CAS:
        return _R
    if zone == ZONE_WORKER_ROOT:
        return _T
    if zone == ZONE_SHARD:     # walk-through only toward the worker's own directory (§5.3, §8)
        owner = node.owner
        return _T if owner == shard_label(ident.worker_id, len(owner)) else _NONE
    if zone == ZONE_WORKER_DIR:
        return _R if node.owner == ident.worker_id else _NONE
    if zone == ZONE_TELEMETRY:
        return _RW if node.owner == ident.worker_id else _NONE
    return _provider_rights(node, ident)


# Zones whose §5.3 rows a provider decides at run time (nine_door/gpu/nodes.py registers the /gpu rows:
# a worker-gpu's rights follow its current lease): zone → policy(node, identity) → Rights.
ZONE_POLICIES: dict[str, Callable[[Node, Identity], Rights]] = {}


def _provider_rights(node: Node, ident: Identity) -> Rights:
    policy = ZONE_POLICIES.get(node.zone)
    return policy(node, ident) if policy is not None else _NONE


def validate_name(name: str) -> None:
    """§3.4 component rule: 1–255 UTF-8 bytes, no ``/`` or NUL, not ``.`` or ``..`` (else EINVAL)."""
    if name in (".", "..") or "/" in name or "\x00" in name:
        raise NineError(EINVAL, f"bad path component {name!r}")
    # A character is at most 4 UTF-8 bytes, so 1..63 characters is always 1..252 bytes: only
    # longer names need encoding to be measured (this runs for every walk name).
    if not 0 < len(name) < 64:
        size = len(name.encode("utf-8", "surrogatepass"))
        if not 1 <= size <= 255:
            raise NineError(EINVAL, "path component length out of range")


def parse_abs_path(text: str, walk_depth: int) -> Path:
    """An absolute path for bind/mount (§5.6): leading ``/``, valid components, depth ≤ walk_depth."""
    if not text.startswith("/"):
        raise NineError(EINVAL, "path is not absolute")
    if text == "/":
        return ()
    parts = tuple(text[1:].split("/"))
    for part in parts:
        validate_name(part)
    if len(parts) > walk_depth:
        raise NineError(EINVAL, "path deeper than walk_depth")
    return parts


def fmt_path(path: Path) -> str:
    return "/" + "/".join(path)


@dataclass(frozen=True)
class MountEntry:
    """Session mount table row: visible ``target`` → global ``source`` path, resolved at walk time."""

    target: Path
    source: Path
    label: str   # "bind" or "mount:<service>", for diagnostics


class Namespace:
    """The global tree: boot nodes plus worker directories created and removed at runtime."""

    def __init__(self, now_ns: Callable[[], int], ring_capacity: int, ring_schema: str = SCHEMA_TEXT,
                 cursor_files: bool = False, shard_width: int = 0, legacy_alias: bool = True) -> None:
        self._now_ns = now_ns
        self._next_qid_path = 1
        self.ring_capacity = ring_capacity
        self.ring_schema = ring_schema
        self.cursor_files = cursor_files          # schema ≥ 1.2 (§5.1)
        self.node_count = 0
        # Bumped by every change to the tree's shape (a node linked in or removed); session views
        # drop their walk memos when it moves (SessionView.walk).
        self.generation = 0
        self.root = self._new(DirNode, "", ZONE_PUBLIC, None)
        self.proc = self.mkdir(self.root, "proc", ZONE_PUBLIC)
        self.log_dir = self.mkdir(self.root, "log", ZONE_PUBLIC)
        self.queen_dir = self.mkdir(self.root, "queen", ZONE_QUEEN)
        # §8: with sharding (width 1 or 2) workers live under /shard/<label>/worker, every label made
        # now; /worker is the canonical root without sharding and an alias of the same nodes with it.
        self.shard_width = shard_width
        self.shards: dict[str, ShardProvider] = {}
        if shard_width:
            self.shard_root = self.mkdir(self.root, "shard", ZONE_WORKER_ROOT)
            for label in all_labels(shard_width):
                shard_dir = self.mkdir(self.shard_root, label, ZONE_SHARD, owner=label)
                self.shards[label] = ShardProvider(label, self.mkdir(shard_dir, "worker", ZONE_SHARD, owner=label))
        self.worker_root: DirNode | None = None
        if not shard_width or legacy_alias:
            self.worker_root = self.mkdir(self.root, "worker", ZONE_WORKER_ROOT)
        self.queen_log: LogNode = self._attach(self.log_dir, self._new(LogNode, "queen.log", ZONE_LOG, None))
        self.proc_boot: SnapshotNode | None = None
        self.queen_ctl: CtlNode | None = None

    # -- construction -------------------------------------------------------------------------
    def _new(self, cls, name: str, zone: str, owner: str | None, **extra) -> Node:
        node = cls(name=name, qid_path=self._next_qid_path, zone=zone, mtime_ns=self._now_ns(),
                   owner=owner, **extra)
        self._next_qid_path += 1
        self.node_count += 1
        return node

    def _attach(self, parent: DirNode, node: Node) -> Node:
        node.parent = parent
        parent.children[node.name] = node
        self.generation += 1
        return node

    def mkdir(self, parent: DirNode, name: str, zone: str, owner: str | None = None) -> DirNode:
        return self._attach(parent, self._new(DirNode, name, zone, owner))  # type: ignore[return-value]

    def add_snapshot(self, parent: DirNode, name: str, render: Callable[[], bytes],
                     zone: str = ZONE_PUBLIC) -> SnapshotNode:
        node = self._attach(parent, self._new(SnapshotNode, name, zone, None, render=render))
        return node  # type: ignore[return-value]

    # for providers that add node kinds of their own (nine_door/observability.py)
    new_node = _new
    attach = _attach

    def add_ctl(self, parent: DirNode, name: str, zone: str, handler: Callable[..., int]) -> CtlNode:
        return self._attach(parent, self._new(CtlNode, name, zone, None, handler=handler))  # type: ignore

    def create_worker(self, worker_id: str) -> tuple[DirNode, RingNode]:
        """Spawn side effect (§6.3): the worker directory at its canonical path (§8) with ``telemetry``
        and, schema ≥ 1.2, ``cursor``; with sharding and the legacy alias, ``/worker/<id>`` is the same
        node (one more name for it, not a copy)."""
        if self.shard_width:
            shard = self.shards[shard_label(worker_id, self.shard_width)]
            directory = self.mkdir(shard.worker_dir, worker_id, ZONE_WORKER_DIR, owner=worker_id)
            shard.workers[worker_id] = directory
            if self.worker_root is not None:
                self.worker_root.children[worker_id] = directory
        else:
            directory = self.mkdir(self.worker_root, worker_id, ZONE_WORKER_DIR, owner=worker_id)
        ring = self._attach(directory, self._new(RingNode, "telemetry", ZONE_TELEMETRY, worker_id,
                                                 capacity=self.ring_capacity, schema=self.ring_schema))
        if self.cursor_files:
            self._attach(directory, self._new(CursorNode, "cursor", ZONE_CURSOR, worker_id, ring=ring))
        return directory, ring  # type: ignore[return-value]

    def remove_worker(self, directory: DirNode) -> None:
        """Kill/revocation side effect: the worker's directory leaves its shard and the alias."""
        worker_id = directory.name
        if self.shard_width:
            self.shards[shard_label(worker_id, self.shard_width)].workers.pop(worker_id, None)
            if self.worker_root is not None and self.worker_root.children.get(worker_id) is directory:
                del self.worker_root.children[worker_id]
        self.remove(directory)

    def remove(self, node: Node) -> None:
        """Unlink a subtree; its nodes are marked removed so live fids on them answer ENOENT."""
        self.generation += 1
        if node.parent is not None:
            node.parent.children.pop(node.name, None)
        stack = [node]
        while stack:
            current = stack.pop()
            current.removed = True
            self.node_count -= 1
            if isinstance(current, DirNode):
                stack.extend(current.children.values())

    # -- lookup -------------------------------------------------------------------------------
    def lookup_global(self, path: Iterable[str]) -> Node | None:
        """Resolve a path in the global tree (no session mounts, no access checks)."""
        node: Node = self.root
        for name in path:
            if not isinstance(node, DirNode):
                return None
            child = node.children.get(name)
            if child is None:
                return None
            node = child
        return node


WALK_MEMO_ENTRIES = 128   # per session; a full memo is simply cleared


class SessionView:
    """A session's view of the namespace: the global tree seen through its mount table (§5.6).

    ``mounts`` is changed only through :meth:`add_mount` and :meth:`reset_mounts`, which also drop
    the walk memo (see :meth:`walk`).
    """

    def __init__(self, namespace: Namespace, walk_depth: int) -> None:
        self.ns = namespace
        self.walk_depth = walk_depth
        self.mounts: list[MountEntry] = []
        self._walks: dict[tuple[Node, Path, Path], tuple[list[Node], Path]] = {}
        self._walks_generation = namespace.generation
        self._walks_ident: Identity | None = None

    def walk(self, node: Node, visible: Path, names: Path,
             ident: Identity | None) -> tuple[list[Node], Path]:
        """§3.4 walk of ``names`` from ``node`` (seen at ``visible``).

        Returns the nodes reached, one per name, and the visible path of the last one. A failure
        on the first name raises (EINVAL for bad names or depth, then ENOTDIR/ENOENT/EACCES); a
        failure on a later name returns the successful prefix. Complete walks are memoized:
        clients walk the same few paths over and over, and a walk's outcome depends only on the
        names, the starting point, the tree, the mount table and the identity, so the memo is
        dropped whenever the tree's generation, the mount table or the identity changes.
        """
        if not names:
            return [], visible
        key = (node, visible, names)
        if self._walks_generation != self.ns.generation or self._walks_ident is not ident:
            self._forget_walks(ident)
        else:
            hit = self._walks.get(key)
            if hit is not None:
                return hit
        depth = self.walk_depth
        if len(names) > depth:
            raise NineError(EINVAL, "too many walk names")
        for name in names:
            validate_name(name)
        if len(visible) + len(names) > depth:
            raise NineError(EINVAL, "walk deeper than walk_depth")
        nodes: list[Node] = []
        for name in names:
            try:
                node = self.step(node, visible, name, ident)
            except NineError:
                if not nodes:                      # failure on the first name: the caller's error
                    raise
                return nodes, visible              # partial walk (never memoized)
            visible += (name,)
            nodes.append(node)
        if len(self._walks) >= WALK_MEMO_ENTRIES:
            self._walks.clear()
        self._walks[key] = (nodes, visible)
        return nodes, visible

    def _forget_walks(self, ident: Identity | None) -> None:
        self._walks.clear()
        self._walks_generation = self.ns.generation
        self._walks_ident = ident

    def reset_mounts(self, entries: Iterable[MountEntry]) -> None:
        """Replace the mount table (session start and Tversion, §5.6)."""
        self.mounts[:] = entries
        self._walks.clear()

    def _mount_for(self, visible: Path) -> MountEntry | None:
        for entry in reversed(self.mounts):       # later entries win for the same target
            if entry.target == visible:
                return entry
        return None

    def step(self, node: Node, visible: Path, name: str, ident: Identity | None) -> Node:
        """One walk step from ``node`` (seen at ``visible``) to ``name``, with mounts and access.

        Raises ENOTDIR (walk from a file), ENOENT (missing name or vanished bind source) or EACCES.
        """
        if not node.is_dir:
            raise NineError(ENOTDIR, "walk from a non-directory")
        entry = self._mount_for(visible + (name,)) if self.mounts else None
        if entry is not None:
            child = self.ns.lookup_global(entry.source)
        elif node.dynamic:                         # CAS upload directories (§13.1)
            child = node.lookup(name, ident)
        else:
            child = node.children.get(name)
        if child is None or child.removed:
            raise NineError(ENOENT, f"{fmt_path(visible + (name,))} not found")
        if ident is not None and not rights(child, ident).reach:
            raise NineError(EACCES, f"{fmt_path(visible + (name,))} not reachable")
        return child

    def resolve(self, path: Path, ident: Identity | None) -> Node:
        node: Node = self.ns.root
        for depth in range(len(path)):
            node = self.step(node, path[:depth], path[depth], ident)
        return node

    def listing(self, node: DirNode, visible: Path, ident: Identity) -> list[tuple[str, Node]]:
        """Children visible to the caller, sorted bytewise: real children ∪ mount targets below."""
        entries: dict[str, Node] = dict(node.children)
        for entry in self.mounts:
            if len(entry.target) == len(visible) + 1 and entry.target[:-1] == visible:
                source = self.ns.lookup_global(entry.source)
                if source is None:
                    entries.pop(entry.target[-1], None)
                else:
                    entries[entry.target[-1]] = source
        visible_entries = [(name, child) for name, child in entries.items()
                           if not child.removed and rights(child, ident).reach]
        visible_entries.sort(key=lambda item: item[0].encode("utf-8"))
        return visible_entries

    def add_mount(self, target: Path, source: Path, label: str) -> None:
        """Apply the §5.6 rules, then append the entry (errors: EINVAL, ENOENT, ENOTDIR)."""
        if target in FORBIDDEN_TARGETS:
            raise NineError(EINVAL, "target would sever the control path")
        if target[:len(source)] == source:
            raise NineError(EINVAL, "target lies inside the source")
        if self.ns.lookup_global(source) is None:
            raise NineError(ENOENT, f"{fmt_path(source)} not found")
        parent = self.resolve(target[:-1], None)
        if not isinstance(parent, DirNode):
            raise NineError(ENOTDIR, "target parent is not a directory")
        self.mounts.append(MountEntry(target, source, label))
        self._walks.clear()
