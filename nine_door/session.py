"""One Secure9P session: framing, tag window, fid table and the per-message rules of SPEC §3.

Why the session owns framing: a session *is* one transport connection (§3.14), so stream reassembly
(TCP) and batch splitting (in-VM channel) belong to it, and a decode error never leaves the session.
Shared state (namespace, worker records, the log) lives in :class:`nine_door.server.NineDoor`; the session
asks the server for identity, budgets and ctl effects.

Requests are executed synchronously in arrival order, so a request is in flight only between its
receipt and its reply. On a message transport all frames of one message are *received together*: the
tag window and the duplicate-tag rule (§3.12) are applied to the whole batch before execution.

Why handlers return encoded frames: every request costs decode → checks → handler → encode on one
CPython thread, and a frozen reply dataclass (0.3–2 µs to build) plus the generic ``codec.encode``
lookup cost more than the handler's own work. Handlers therefore call the ``codec.encode_r*``
builders — the same functions ``codec.encode`` uses for the R dataclasses, so there is still one
implementation of each reply layout — and answer qids from each node's cached wire form.

Why the session never asks a node's kind: the generic rules of §3 (fid states, access modes, the
§5.3 rights, O_TRUNC/O_DIRECTORY) are applied here, and everything kind-specific is a call of the
node file interface (``open``/``read``/``write``/``readdir``/``size``, see ``nodes.py``), whose
per-open state is the handle ``open`` returned, kept in :attr:`Fid.handle`.

Why a failing request never ends the session: :meth:`Session._execute` answers any exception other
than a refusal with Rlerror EIO, logs ``9p request failed type=<T> errno=5 error=<class>`` to
``/log/queen.log`` and a traceback summary to stderr, and goes on serving (docs/ninedoor.md).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from time import monotonic_ns as _monotonic_ns

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing at boot (docs/build.md)

from . import codec
from .errors import (EACCES, EBADF, EBUSY, EINVAL, EIO, EISDIR, EMSGSIZE, ENOENT, ENOTDIR, EPERM,
                     ESTALE, DecodeError, NineError)
from .codec import (encode_rattach, encode_rclunk, encode_rflush, encode_rgetattr, encode_rlerror,
                    encode_rlopen, encode_rread, encode_rreaddir, encode_rstatfs, encode_rversion,
                    encode_rwalk, encode_rwrite)
from .messages import (GETATTR_BASIC, HEADER_SIZE, IOHDRSZ, NOFID, NOTAG, O_ACCMODE, O_DIRECTORY, O_RDONLY, O_RDWR,
                       O_TRUNC, O_WRONLY, TFLUSH, V9FS_MAGIC, VERSION_9P2000L, VERSION_UNKNOWN, Tattach,
                       Tauth, Tclunk, Tflush, Tgetattr, Tlopen, Tread, Treaddir, Tstatfs, Tversion, Twalk,
                       Twrite, Unsupported)
from .framing import size_field
from .namespace import Identity, MountEntry, SessionView, parse_abs_path, rights

if TYPE_CHECKING:  # pragma: no cover
    from .budgets import WorkerRecord
    from .nodes import Node
    from .server import ChannelBinding, NineDoor

PRE_VERSION_MSIZE = 8192  # until Tversion succeeds, frames above 8192 are oversize (§3.3)
MIN_MSIZE = 512
# Live fids per session. SPEC sets no limit; each fid holds a node reference and its open's handle
# (O(1): no open copies content), so the bound caps a session's table, not content. Linux v9fs needs a
# few per walked dentry and open file, far below this. A Tattach/Twalk that would bind one more → EBUSY
# (SPEC §3.11's errno for a full per-session resource; docs/spec-decisions.md).
MAX_FIDS_PER_SESSION = 256


@dataclass(eq=False, slots=True)
class Fid:
    """A live fid: the node it names, the visible path it was reached by, and its open state.

    ``handle`` is whatever ``node.open`` returned (the node's per-open state); the session only
    passes it back to the node."""

    node: "Node"
    path: tuple[str, ...]
    mode: int | None = None           # O_RDONLY / O_WRONLY / O_RDWR once opened
    handle: object = None             # set by Tlopen

    @property
    def opened(self) -> bool:
        return self.mode is not None


@dataclass
class SessionStats:
    """Per-session counters (observability, tests).

    Requests are counted per message class (a dict update on the hot path); ``counts`` gives the
    per-name view on demand.
    """

    requests: int = 0
    errors: int = 0
    replies: int = 0
    by_type: dict[type, int] = field(default_factory=dict)

    @property
    def counts(self) -> dict[str, int]:
        return {cls.__name__: n for cls, n in self.by_type.items()}


class Session:
    """Per-connection protocol state machine; create through :meth:`NineDoor.open_session`."""

    def __init__(self, door: "NineDoor", binding: "ChannelBinding", session_id: int) -> None:
        self.door = door
        self.binding = binding
        self.session_id = session_id
        self.msize: int | None = None          # None until a successful Tversion (see _set_msize)
        self._iounit = PRE_VERSION_MSIZE - IOHDRSZ
        self.identity: Identity | None = None
        self.worker: "WorkerRecord | None" = None
        self.first_aname: str | None = None
        self.ticket_deadline_ms: int | None = None
        self.revoked = False
        self.closed = False
        self.fids: dict[int, Fid] = {}
        self._fid_limit_logged = False
        self.view = SessionView(door.ns, door.config.walk_depth)
        self._reader = codec.FrameReader(PRE_VERSION_MSIZE)
        self.stats = SessionStats()
        self._reset_mounts()

    # -- transport entry points -----------------------------------------------------------------
    def feed(self, data: bytes) -> list[bytes]:
        """Stream transport: any chunk in, whole reply frames out, in request order.

        Every complete frame of ``data`` is executed before returning, so a transport that sends
        the returned list in one write answers a pipelined burst with one syscall. The reader's
        limit follows the negotiated msize (:meth:`_set_msize`), so a Tversion applies to the
        frames buffered behind it. Raises FramingLost: the transport must be closed.

        §3.12 on a stream: the frames of one call are in flight together (none of their replies is
        sent before the call returns), so the tag window and the duplicate-tag rule apply to them as
        to the frames of one batch message.
        """
        reader = self._reader
        outstanding = self.door.outstanding
        if reader.idle and data.__class__ is bytes and len(data) >= HEADER_SIZE \
                and size_field(data)[0] == len(data) <= reader.msize:
            # Exactly one whole frame and nothing buffered: the one-request-at-a-time client. The
            # reader would hand back ``data`` itself; one frame alone is always inside the window
            # (tags_per_session ≥ 1) and has no in-flight tag to clash with.
            outstanding.admit()
            try:
                return [self._execute(data)]
            finally:
                outstanding.done(1)
        out: list[bytes] = []
        in_flight: set[int] = set()
        try:
            if reader.idle and data.__class__ is bytes:
                pos = self._execute_whole(data, 0, len(data), in_flight, out)
                if pos == len(data):
                    return out
                data = data[pos:]                  # what it stopped at: the reader's cases
            reader.push(data)
            pop = reader.pop
            execute = self._execute
            window = self.door.config.tags_per_session
            while True:
                event = pop()
                if event is None:
                    return out
                outstanding.admit()                # answered when the caller sends ``out``
                if event.__class__ is bytes:
                    refusal = _admission(event, in_flight, window)
                    out.append(execute(event) if refusal is None else self._error(codec.peek_tag(event), refusal))
                else:                              # codec.Oversize: read and dropped (§3.10)
                    out.append(self._error(event.tag, EMSGSIZE))
        finally:
            outstanding.done(len(out))

    def feed_frames(self, data: bytes, start: int, max_frames: int) -> tuple[list[bytes], int]:
        """Stream transport at a frame boundary: execute the whole frames of ``data`` from ``start``, at
        most ``max_frames``, stopping before anything else (a partial or oversize frame, a bad size
        field); returns the replies (in order, §3.12 as in :meth:`feed`) and the offset it stopped at.

        Why: the TCP listener must count the frames it lets a connection execute (fairness, SPEC §2.4).
        Walking a burst for its boundaries and then again to execute it cost ~2 300 instructions per
        frame more than one walk doing both. What this stops at is handed to :meth:`feed` by the caller,
        with its boundary tracker, which handles every case. Nothing is executed while the stream
        reader holds bytes (not at a boundary)."""
        out: list[bytes] = []
        if not self._reader.idle:
            return out, start
        try:
            return out, self._execute_whole(data, start, max_frames, set(), out)
        finally:
            self.door.outstanding.done(len(out))

    def _execute_whole(self, data: bytes, pos: int, max_frames: int, in_flight: set, out: list) -> int:
        """Admit and execute the whole frames within msize from ``pos`` (at most ``max_frames``), their
        replies appended to ``out``; returns where it stopped. The limit is read per frame, so a
        Tversion applies to the frames behind it."""
        reader = self._reader
        execute = self._execute
        outstanding = self.door.outstanding
        window = self.door.config.tags_per_session
        append = out.append
        end = len(data)
        while max_frames and end - pos >= HEADER_SIZE:
            size, mtype, tag = _HEADER(data, pos)
            if size < HEADER_SIZE or size > reader.msize or end - pos < size:
                break
            frame = data[pos:pos + size]
            pos += size
            max_frames -= 1
            outstanding.current += 1              # admitted; answered when the caller sends ``out``
            # §3.12 admission, as _admission (inline: it runs for every pipelined frame)
            if tag in in_flight:
                append(self._error(tag, EINVAL))
                continue
            if mtype != TFLUSH:
                if len(in_flight) >= window:
                    append(self._error(tag, EBUSY))
                    continue
                in_flight.add(tag)
            append(execute(frame))
        return pos

    def handle_message(self, message: bytes) -> list[bytes]:
        """Message transport: one message of 1..N whole frames in, one reply per frame out (§3.12)."""
        frames = codec.split_batch(message)
        limit = self._limit()
        if sum(len(f) for f in frames) > limit:
            return [self._error(codec.peek_tag(f), EMSGSIZE) for f in frames]
        if len(frames) > 1 and not self.door.config.batch_frames:
            return [self._error(codec.peek_tag(f), EBUSY) for f in frames]
        # Admission: all frames of the message arrive together; duplicates, then the window.
        in_flight: set[int] = set()
        window = self.door.config.tags_per_session
        admitted: list[bytes | None] = []
        replies: list[bytes | None] = []
        for frame in frames:
            refusal = _admission(frame, in_flight, window)
            if refusal is None:
                replies.append(None)
                admitted.append(frame)
            else:
                replies.append(self._error(codec.peek_tag(frame), refusal))
                admitted.append(None)
        outstanding = self.door.outstanding
        outstanding.admit(len(admitted))          # every frame of the message is in flight (§3.12)
        try:
            for index, frame in enumerate(admitted):
                if frame is not None:
                    replies[index] = self._execute(frame)
        finally:
            outstanding.done(len(admitted))        # answered when the caller sends the replies
        return [reply for reply in replies if reply is not None]

    def close(self) -> None:
        """Transport ended: release fids, leave the worker's session set, forget the session."""
        if self.closed:
            return
        self.closed = True
        self._clear_identity()
        self.fids.clear()
        self.door._session_closed(self)

    # -- helpers ----------------------------------------------------------------------------------
    @property
    def attached(self) -> bool:
        return self.identity is not None and not self.closed and not self.revoked

    @property
    def iounit(self) -> int:
        return self._iounit

    def _limit(self) -> int:
        return self.msize if self.msize is not None else PRE_VERSION_MSIZE

    def _set_msize(self, msize: int | None) -> None:
        """The one place msize changes: keeps iounit and the stream reader's limit in step."""
        self.msize = msize
        limit = self._limit()
        self._iounit = limit - IOHDRSZ
        self._reader.msize = limit

    def _error(self, tag: int | None, errno: int) -> bytes:
        self.stats.errors += 1
        return encode_rlerror(NOTAG if tag is None else tag, errno)

    def _reset_mounts(self) -> None:
        entries = []
        for mount in self.door.config.mounts:
            source = self.door.provider_root(mount.service)
            if source is None:
                continue
            target = parse_abs_path(mount.at, self.door.config.walk_depth)
            entries.append(MountEntry(target, source, f"mount:{mount.service}"))
        self.view.reset_mounts(entries)

    def _clear_identity(self) -> None:
        if self.worker is not None:
            self.worker.sessions.discard(self)
        self.identity = None
        self.worker = None
        self.first_aname = None
        self.ticket_deadline_ms = None

    def _fid_table_full(self) -> None:
        """EBUSY for a bind beyond MAX_FIDS_PER_SESSION; logged once per session, so a client that
        keeps hitting the limit cannot flood the audit log."""
        if not self._fid_limit_logged:
            self._fid_limit_logged = True
            self.door.log_append(f"9p fid limit reached session={self.session_id} "
                                 f"origin={self.binding.origin} limit={MAX_FIDS_PER_SESSION}")
        raise NineError(EBUSY, "fid table full")

    def _get_fid(self, fid: int) -> Fid:
        entry = self.fids.get(fid)
        if entry is None:
            raise NineError(EBADF, f"fid {fid} is not live")
        return entry

    def _live_fid(self, fid: int) -> Fid:
        """A live fid whose node still exists (removed nodes answer ENOENT, §3.9)."""
        entry = self.fids.get(fid)
        if entry is None:
            raise NineError(EBADF, f"fid {fid} is not live")
        if entry.node.removed:
            raise NineError(ENOENT, "node was removed")
        return entry

    # -- dispatch ---------------------------------------------------------------------------------
    def _execute(self, frame: bytes) -> bytes:
        """One whole frame in, its reply frame out; no exception escapes but framing loss.

        ``frame`` is ``bytes`` whose size field equals its length: every caller has it from framing
        (the reader, ``split_batch``, the checked cut of :meth:`_execute_whole` or the one-frame check),
        so the decode skips the header checks."""
        stats = self.stats
        stats.requests += 1
        try:
            msg = _decode(frame)
        except DecodeError as exc:
            tag = exc.tag if exc.tag is not None else codec.peek_tag(frame)
            return self._error(tag, exc.errno)
        except Exception as exc:  # noqa: BLE001 - a codec defect is one request's failure too
            return self._failed(codec.peek_tag(frame), f"type-{frame[4]}", exc)
        cls = msg.__class__
        counts = stats.by_type
        counts[cls] = counts.get(cls, 0) + 1
        try:
            # The gates only matter for a revoked, un-negotiated or worker session; a negotiated
            # queen session (most traffic) skips the call.
            if self.revoked or self.msize is None or self.worker is not None:
                self._gate(cls)
            reply = _HANDLERS[cls](self, msg)       # every class decode returns has one
        except NineError as exc:
            return self._error(msg.tag, exc.errno)
        except Exception as exc:  # noqa: BLE001 - one request's defect must not end the server
            return self._failed(msg.tag, cls.__name__, exc)
        stats.replies += 1
        return reply

    def _failed(self, tag: int, type_name: str, exc: Exception) -> bytes:
        """A request raised something other than a refusal: EIO, one log line, a stderr summary.

        The log line names only the message type and the exception class (the exception text may
        carry client bytes, e.g. lone surrogates, that neither the log nor a terminal can take).
        Neither report may raise: whatever broke may be the log itself."""
        try:
            self.door.log_append(f"9p request failed type={type_name} errno={EIO} "
                                 f"error={exc.__class__.__name__}")
        except Exception:  # noqa: BLE001
            pass
        try:
            import sys
            import traceback  # only on this path: costly to import on the emulated CPU
            sys.stderr.write(f"nine_door: session {self.session_id} {type_name} failed, answered EIO\n")
            traceback.print_exception(exc, limit=-4, file=sys.stderr)
        except Exception:  # noqa: BLE001
            pass
        return self._error(tag, EIO)

    def _gate(self, cls: type) -> None:
        """Session-level refusals in SPEC order: ESTALE (§4.6), EINVAL before Tversion (§3.3), then
        the worker's deadline and ops budget, charged for every request but Tversion/Tattach."""
        if self.revoked:
            raise NineError(ESTALE, "session revoked")
        if cls is Tversion:
            return
        if self.msize is None:
            raise NineError(EINVAL, "session not negotiated")
        if self.worker is not None and cls is not Tattach:
            self.door.charge_request(self)         # ESTALE + revocation when exhausted

    def _unsupported(self, msg: Unsupported) -> bytes:
        raise NineError(msg.errno, "outside the Secure9P subset")

    def _version(self, msg: Tversion) -> bytes:
        if msg.msize < MIN_MSIZE:
            raise NineError(EINVAL, "msize below 512")
        self.fids.clear()
        self._clear_identity()
        self._reset_mounts()
        server_msize = self.door.config.msize
        if msg.version != VERSION_9P2000L:
            self._set_msize(None)
            return encode_rversion(msg.tag, server_msize, VERSION_UNKNOWN)
        self._set_msize(min(msg.msize, server_msize))
        return encode_rversion(msg.tag, self.msize, VERSION_9P2000L)

    def _auth(self, msg: Tauth) -> bytes:
        raise NineError(ENOENT, "authentication is carried in Tattach")

    def _attach(self, msg: Tattach):
        if msg.afid != NOFID:
            raise NineError(EBADF, "afid must be NOFID")
        if msg.fid == NOFID or msg.fid in self.fids:
            raise NineError(EBADF, "fid is live")
        if len(self.fids) >= MAX_FIDS_PER_SESSION:
            self._fid_table_full()
        if self.identity is not None and msg.uname == "" and msg.aname == self.first_aname:
            pass                                   # inherits the session identity (§3.3)
        else:
            result = self.door.authenticate(self, msg.uname, msg.aname)
            if self.identity is not None:
                if result.identity != self.identity:
                    raise NineError(EACCES, "a session carries one identity")
            else:
                if result.mount is not None:       # queen ticket mount spec: a session mount (§4.3)
                    self.door.add_provider_mount(self, *result.mount)
                self.identity = result.identity
                self.worker = result.worker
                self.first_aname = msg.aname
                self.ticket_deadline_ms = result.ticket_deadline_ms
                if result.worker is not None:
                    result.worker.sessions.add(self)
                    self.door.watch_deadline(result.worker, result.ticket_deadline_ms)
        root = self.door.ns.root
        self.fids[msg.fid] = Fid(root, ())
        return encode_rattach(msg.tag, root.wire_qid)

    def _walk(self, msg: Twalk) -> bytes:
        fids = self.fids
        src = self._live_fid(msg.fid)
        newfid = msg.newfid
        if newfid != msg.fid and (newfid == NOFID or newfid in fids):
            raise NineError(EBADF, "newfid is live")
        if src.mode is not None and newfid == msg.fid:
            raise NineError(EINVAL, "cannot walk an opened fid in place")
        if newfid != msg.fid and len(fids) >= MAX_FIDS_PER_SESSION:
            self._fid_table_full()
        wnames = msg.wnames
        nodes, path = self.view.walk(src.node, src.path, wnames, self.identity)
        qids = [node.wire_qid for node in nodes]
        if len(nodes) == len(wnames):
            fids[newfid] = Fid(nodes[-1] if nodes else src.node, path)
        return encode_rwalk(msg.tag, qids)             # a short Rwalk leaves newfid unbound (§3.4)

    def _lopen(self, msg: Tlopen) -> bytes:
        fid = self._get_fid(msg.fid)
        if fid.opened:
            raise NineError(EINVAL, "fid already open")
        node = fid.node
        if node.removed:
            raise NineError(ENOENT, "node was removed")
        access = msg.flags & O_ACCMODE
        if access == O_ACCMODE:
            raise NineError(EINVAL, "bad access mode")
        if node.is_dir:
            if access != O_RDONLY:
                raise NineError(EISDIR, "directories open read-only")
        elif msg.flags & O_DIRECTORY:
            raise NineError(ENOTDIR, "O_DIRECTORY on a file")
        if access != O_RDONLY and node.read_only:
            raise NineError(EPERM, "node is read-only")     # committed CAS nodes (§13.1)
        allowed = rights(node, self.identity)
        if access in (O_RDONLY, O_RDWR) and not allowed.read:
            raise NineError(EACCES, "no read permission")
        if access in (O_WRONLY, O_RDWR) and not allowed.write:
            raise NineError(EACCES, "no write permission")
        if msg.flags & O_TRUNC:
            raise NineError(EPERM, "no node is truncatable")
        fid.handle = node.open(access, self, fid.path)
        fid.mode = access
        return encode_rlopen(msg.tag, node.wire_qid, self._iounit)

    def _read(self, msg: Tread) -> bytes:
        fid = self._live_fid(msg.fid)
        if fid.mode not in (O_RDONLY, O_RDWR):
            raise NineError(EBADF, "fid not open for reading")
        count = msg.count if msg.count < self._iounit else self._iounit
        return encode_rread(msg.tag, fid.node.read(fid.handle, msg.offset, count, self))

    def _write(self, msg: Twrite) -> bytes:
        fid = self._live_fid(msg.fid)
        if fid.mode not in (O_WRONLY, O_RDWR):
            raise NineError(EBADF, "fid not open for writing")
        node = fid.node
        stats = self.door.ingest
        started = _monotonic_ns() if node.ingest else None      # telemetry writes feed /proc/ingest
        try:
            count = node.write(fid.handle, msg.offset, msg.data, self)
            if count < len(msg.data):
                stats.note_short(len(msg.data), count)
            return encode_rwrite(msg.tag, count)
        finally:
            if started is not None:
                stats.note_latency(_monotonic_ns() - started)

    def _clunk(self, msg: Tclunk) -> bytes:
        if self.fids.pop(msg.fid, None) is None:
            raise NineError(EBADF, f"fid {msg.fid} is not live")
        return encode_rclunk(msg.tag)

    def _getattr(self, msg: Tgetattr) -> bytes:
        fid = self._live_fid(msg.fid)
        node = fid.node
        allowed = rights(node, self.identity)
        mode = node.file_type
        if allowed.read:
            mode |= 0o444
        if allowed.write:
            mode |= 0o222
        if node.is_dir and allowed.reach:
            mode |= 0o111
        size = node.size()
        sec, nsec = divmod(node.mtime_ns, 1_000_000_000)
        return encode_rgetattr(msg.tag, GETATTR_BASIC, node.wire_qid, mode, 0, 0, 1, 0, size,
                               self._iounit, (size + 511) // 512, sec, nsec, sec, nsec, sec, nsec,
                               0, 0, 0, 0)

    def _readdir(self, msg: Treaddir) -> bytes:
        fid = self._live_fid(msg.fid)
        count = min(msg.count, self._iounit)
        return encode_rreaddir(msg.tag, fid.node.readdir(fid.handle, msg.offset, count, self))

    def _statfs(self, msg: Tstatfs) -> bytes:
        self._get_fid(msg.fid)
        return encode_rstatfs(msg.tag, V9FS_MAGIC, 4096, 0, 0, 0, self.door.ns.node_count, 0, 0, 255)

    def _flush(self, msg: Tflush) -> bytes:
        # Requests run to completion before the next one is read, so oldtag is never still in flight.
        return encode_rflush(msg.tag)


_decode = codec.decode_framed            # _execute's frames come from framing (see there)
_HEADER = struct.Struct("<IBH").unpack_from   # size, type, tag of the frame at an offset (§3.1)


def _admission(frame: bytes, in_flight: set, window: int) -> int | None:
    """§3.12 for one frame arriving while ``in_flight`` tags await their replies: EINVAL for a tag
    already in flight (checked first), EBUSY when the window is full (Tflush is exempt); else None,
    and the tag is now in flight. ``Session._execute_whole`` applies the same rule inline (the call
    cost ~800 instructions per pipelined frame); test_server_pipeline covers both paths."""
    tag = frame[5] | (frame[6] << 8)
    if tag in in_flight:
        return EINVAL
    if frame[4] == TFLUSH:
        return None
    if len(in_flight) >= window:
        return EBUSY
    in_flight.add(tag)
    return None

# Message class → handler: one dict lookup instead of an isinstance chain per request.
_HANDLERS = {
    Tversion: Session._version, Tauth: Session._auth, Tattach: Session._attach,
    Twalk: Session._walk, Tlopen: Session._lopen, Tread: Session._read, Twrite: Session._write,
    Tclunk: Session._clunk, Tgetattr: Session._getattr, Treaddir: Session._readdir,
    Tstatfs: Session._statfs, Tflush: Session._flush, Unsupported: Session._unsupported,
}
