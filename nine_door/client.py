"""A small synchronous 9P2000.L client (docs/internals.md "9P client").

Used by the console bridge, the workers, cohsh pools and the tests. It is deliberately
synchronous — one request in flight — because every in-guest user drives it from a single
cooperative event loop or from a worker process whose only job is that conversation; callers
that need pipelining use ``transport.send``/``transport.recv`` with :func:`codec.encode` directly.

* fids and tags are allocated internally: fids lowest-free-first (standard clients recycle fid
  numbers, and the server must cope, §3.9), tags cycling through 0..0xFFFE (never NOTAG);
* an Rlerror reply raises :class:`NineError` with its errno; a reply that does not match the
  request (wrong tag or type) raises :class:`ProtocolError`;
* a fid is forgotten locally when it is clunked, whatever the reply: a clunked fid is dead (R5).

Transports all offer ``send(frame)``, ``recv() -> frame`` and ``roundtrip(frame) -> frame``:
:class:`SocketStreamTransport` (TCP byte stream), :class:`SeqPacketTransport` (the
message-preserving in-VM channel; a reply message may carry several frames, §3.12) and
:class:`InProcessTransport` (calls ``session.handle_message`` directly; the console bridge).
"""
from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing in the guest (docs/build.md)

from nine_door import codec
from nine_door import messages as m
from nine_door.errors import EAGAIN, EINVAL, ENOENT, NineError
from nine_door.messages import DirEntry, Qid

__all__ = ["Client", "ShortWritePolicy", "Attr", "DirEntry", "Qid", "NineError", "ProtocolError",
           "SocketStreamTransport", "SeqPacketTransport", "InProcessTransport", "split_path"]

class ShortWritePolicy:
    """The retry parameters of §3.13's client rules: ``backoff_ms`` (the server's
    ``secure9p.short_write_policy.backoff_ms``) and ``max_retries`` (the IR's
    ``client_policies.retry.short_write.max_retries``)."""

    __slots__ = ("backoff_ms", "max_retries")

    def __init__(self, backoff_ms: int = 5, max_retries: int = 3) -> None:
        self.backoff_ms = backoff_ms
        self.max_retries = max_retries


#: The attributes ``Client.getattr`` returns are the Rgetattr fields (tag included).
Attr = m.Rgetattr

_RECV_CHUNK = 65536


class ProtocolError(Exception):
    """The peer's reply does not answer the request (wrong tag/type, no reply at all)."""


if TYPE_CHECKING:  # pragma: no cover - the interface for type checkers; duck-typed at run time
    from typing import Protocol

    class Transport(Protocol):
        def send(self, frame: bytes) -> None: ...
        def recv(self) -> bytes: ...
        def roundtrip(self, frame: bytes) -> bytes: ...


# --- transports -------------------------------------------------------------------------------
class _QueuedTransport:
    """What every transport shares: received frames wait in a queue; a round trip is send + recv."""

    def __init__(self) -> None:
        self._pending: deque[bytes] = deque()

    def send(self, frame: bytes) -> None:
        raise NotImplementedError

    def recv(self) -> bytes:
        raise NotImplementedError

    def roundtrip(self, frame: bytes) -> bytes:
        self.send(frame)
        return self.recv()


class _SocketTransport(_QueuedTransport):
    """A socket whose received bytes are cut into frames by :meth:`_frames`."""

    closed_text = "9P connection closed by peer"

    def __init__(self, sock) -> None:
        super().__init__()
        self.sock = sock

    def _frames(self, data: bytes) -> list[bytes]:
        raise NotImplementedError

    def recv(self) -> bytes:
        while not self._pending:
            data = self.sock.recv(_RECV_CHUNK)
            if not data:
                raise ConnectionError(self.closed_text)
            self._pending.extend(self._frames(data))
        return self._pending.popleft()

    def close(self) -> None:
        self.sock.close()


class SocketStreamTransport(_SocketTransport):
    """Frames over a connected stream socket (the 9P TCP listener, §3.14)."""

    def __init__(self, sock) -> None:
        super().__init__(sock)
        self._reader = codec.FrameReader(msize=m.MAX_FRAME)   # the server bounds reply sizes

    def send(self, frame: bytes) -> None:
        self.sock.sendall(frame)

    def _frames(self, data: bytes) -> list[bytes]:
        return self._reader.feed(data)


class SeqPacketTransport(_SocketTransport):
    """Frames over a message-preserving socket (SOCK_SEQPACKET pair: the in-VM channel).

    One ``send`` is one transport message; ``send_batch`` puts several frames in one message
    (§3.12). A received message is split into its frames, which ``recv`` returns one by one.
    """

    closed_text = "9P channel closed by peer"

    def send(self, frame: bytes) -> None:
        self.sock.send(frame)

    def send_batch(self, frames: Iterable[bytes]) -> None:
        self.sock.send(b"".join(frames))

    def _frames(self, data: bytes) -> list[bytes]:
        return codec.split_batch(data)


class InProcessTransport(_QueuedTransport):
    """Calls ``session.handle_message(frame)`` in-process (the console bridge, tests)."""

    def __init__(self, session) -> None:
        super().__init__()
        self.session = session

    def send(self, frame: bytes) -> None:
        for message in self.session.handle_message(frame):
            self._pending.extend(codec.split_batch(message))

    def recv(self) -> bytes:
        if not self._pending:
            raise ProtocolError("the session produced no reply")
        return self._pending.popleft()

    def close(self) -> None:
        close = getattr(self.session, "close", None)
        if close is not None:
            close()


# --- helpers ----------------------------------------------------------------------------------
def split_path(path: str) -> list[str]:
    """``/proc/boot`` → ``["proc", "boot"]``; ``/`` → ``[]``. Validation is the server's job."""
    return [part for part in path.split("/") if part]


class _FidPool:
    """Lowest-free fid numbers; a released number is reused first (like standard clients)."""

    def __init__(self) -> None:
        self._free: list[int] = []
        self._next = 0
        self.live: set[int] = set()

    def take(self) -> int:
        while True:
            if self._free:
                fid = heapq.heappop(self._free)
            else:
                fid = self._next
                self._next += 1
            if fid not in self.live:          # skip numbers the caller bound explicitly
                self.live.add(fid)
                return fid

    def release(self, fid: int) -> None:
        if fid in self.live:
            self.live.discard(fid)
            heapq.heappush(self._free, fid)

    def reset(self) -> None:
        self.__init__()


_EXPECTED = {
    m.Tversion: m.Rversion, m.Tattach: m.Rattach, m.Twalk: m.Rwalk, m.Tlopen: m.Rlopen,
    m.Tread: m.Rread, m.Twrite: m.Rwrite, m.Tclunk: m.Rclunk, m.Tgetattr: m.Rgetattr,
    m.Treaddir: m.Rreaddir, m.Tstatfs: m.Rstatfs, m.Tflush: m.Rflush,
}


# --- the client -------------------------------------------------------------------------------
class Client:
    """Synchronous 9P2000.L client over one transport (one session). Not thread-safe."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self.msize: int | None = None
        self.root: int | None = None
        self._fids = _FidPool()
        self._tag = -1

    # -- plumbing ---------------------------------------------------------------------------------
    @property
    def iounit(self) -> int:
        return (self.msize or 8192) - m.IOHDRSZ

    @property
    def live_fids(self) -> frozenset[int]:
        return frozenset(self._fids.live)

    def next_tag(self) -> int:
        self._tag = (self._tag + 1) % m.NOTAG
        return self._tag

    def rpc(self, request):
        """Send one request, return its reply; Rlerror → NineError, mismatch → ProtocolError."""
        reply = codec.decode_reply(self.transport.roundtrip(codec.encode(request)))
        if reply.tag != request.tag:
            raise ProtocolError(f"reply tag {reply.tag} != request tag {request.tag}")
        if isinstance(reply, m.Rlerror):
            raise NineError(reply.ecode, type(request).__name__)
        if type(reply) is not _EXPECTED[type(request)]:
            raise ProtocolError(f"{type(request).__name__} answered by {type(reply).__name__}")
        return reply

    # -- the protocol -----------------------------------------------------------------------------
    def version(self, msize: int = 8192, version: str = m.VERSION_9P2000L) -> int:
        """Negotiate; returns the msize. The server forgets all fids, so this client does too."""
        reply = self.rpc(m.Tversion(m.NOTAG, msize, version))
        if reply.version != version:
            raise NineError(EINVAL, f"server answered version {reply.version!r}")
        self._fids.reset()
        self.root = None
        self.msize = reply.msize
        return reply.msize

    def attach(self, uname: str, aname: str = "", fid: int | None = None) -> int:
        """Attach as ``uname`` with ticket text ``aname``; returns the fid of ``/``."""
        fid = self._bind(fid)
        try:
            self.rpc(m.Tattach(self.next_tag(), fid, m.NOFID, uname, aname, m.NOFID))
        except BaseException:
            self._fids.release(fid)
            raise
        if self.root is None:
            self.root = fid
        return fid

    def walk(self, fid: int, names: Iterable[str], newfid: int | None = None) -> int:
        """Walk ``names`` from ``fid`` to a new fid (``[]`` clones). Partial walk → ENOENT."""
        names = tuple(names)
        same = newfid == fid
        target = fid if same else self._bind(newfid)
        try:
            reply = self.rpc(m.Twalk(self.next_tag(), fid, target, names))
        except BaseException:
            if not same:
                self._fids.release(target)
            raise
        if len(reply.qids) != len(names):
            if not same:
                self._fids.release(target)
            stop = names[len(reply.qids)] if len(reply.qids) < len(names) else "?"
            raise NineError(ENOENT, f"walk stopped at {stop!r}")
        return target

    def lopen(self, fid: int, flags: int = m.O_RDONLY) -> m.Rlopen:
        return self.rpc(m.Tlopen(self.next_tag(), fid, flags))

    def read(self, fid: int, offset: int, count: int) -> bytes:
        return self.rpc(m.Tread(self.next_tag(), fid, offset, min(count, self.iounit))).data

    def write(self, fid: int, offset: int, data: bytes) -> int:
        """One Twrite of at most ``iounit`` bytes; returns the count the server committed."""
        return self.rpc(m.Twrite(self.next_tag(), fid, offset, bytes(data[:self.iounit]))).count

    def clunk(self, fid: int) -> None:
        """Release ``fid``; it is dead locally even if the server refuses (R5)."""
        try:
            self.rpc(m.Tclunk(self.next_tag(), fid))
        finally:
            self._fids.release(fid)
            if fid == self.root:
                self.root = None

    def readdir_page(self, fid: int, offset: int, count: int | None = None) -> tuple[DirEntry, ...]:
        count = self.iounit if count is None else min(count, self.iounit)
        return codec.decode_dirents(self.rpc(m.Treaddir(self.next_tag(), fid, offset, count)).data)

    def readdir(self, fid: int) -> list[DirEntry]:
        """Every entry of an opened directory, paging from offset 0 until an empty reply."""
        entries: list[DirEntry] = []
        offset = 0
        while page := self.readdir_page(fid, offset):
            entries.extend(page)
            offset = page[-1].offset
        return entries

    def getattr(self, fid: int, request_mask: int = m.GETATTR_BASIC) -> Attr:
        return self.rpc(m.Tgetattr(self.next_tag(), fid, request_mask))

    def statfs(self, fid: int) -> m.Rstatfs:
        return self.rpc(m.Tstatfs(self.next_tag(), fid))

    def flush(self, oldtag: int) -> None:
        self.rpc(m.Tflush(self.next_tag(), oldtag))

    # -- conveniences (paths from the attach root) ------------------------------------------------
    def open(self, path: str, flags: int = m.O_RDONLY) -> int:
        """Walk from the root to ``path`` and open it; the caller clunks the returned fid."""
        if self.root is None:
            raise ProtocolError("not attached")
        fid = self.walk(self.root, split_path(path))
        try:
            self.lopen(fid, flags)
        except BaseException:
            self.clunk(fid)
            raise
        return fid

    def read_all(self, path: str) -> bytes:
        """The whole content of ``path`` (reads until a 0-byte reply)."""
        fid = self.open(path, m.O_RDONLY)
        try:
            out = bytearray()
            while chunk := self.read(fid, len(out), self.iounit):
                out += chunk
            return bytes(out)
        finally:
            self.clunk(fid)

    def append(self, path: str, data: bytes) -> int:
        """Append ``data`` in ``iounit`` pieces; stops at the first short write (§3.13).

        Returns the number of bytes committed; a result below ``len(data)`` tells the caller to
        apply its own retry policy to the tail.
        """
        fid = self.open(path, m.O_WRONLY | m.O_APPEND)
        try:
            done = 0
            while done < len(data):
                piece = data[done:done + self.iounit]
                count = self.write(fid, 0, piece)
                done += count
                if count < len(piece):
                    break
            return done
        finally:
            self.clunk(fid)

    def write_all(self, fid: int, data: bytes, policy: "ShortWritePolicy | None" = None,
                  sleep: "Callable[[float], None] | None" = None) -> int:
        """Write ``data`` through ``fid`` following the §3.13 client rules; returns ``len(data)``.

        (1) ``[0, count)`` of each reply is committed and never resent; (2) exactly the tail is resent
        on the same fid; (3) nothing else is sent on the fid meanwhile; (4) before retry ``attempt``
        (0-based) wait ``backoff_ms × 2^attempt``, counting attempts without progress (a short count
        that committed something resets them); (5) after ``max_retries`` retries without progress raise
        :class:`NineError` EAGAIN. An EAGAIN reply (short writes disabled on the server) counts as no
        progress. Pieces larger than ``iounit`` are sent one ``iounit`` at a time.
        """
        policy = policy or ShortWritePolicy()
        if sleep is None:
            import time

            sleep = time.sleep
        view = memoryview(data)
        done = attempt = 0
        while done < len(data):
            piece = bytes(view[done:done + self.iounit])
            try:
                count = self.write(fid, 0, piece)
            except NineError as exc:
                if exc.errno != EAGAIN:
                    raise
                count = 0
            if count:
                done += count
                attempt = 0
                continue
            if attempt >= policy.max_retries:
                raise NineError(EAGAIN, f"no progress after {attempt} retries ({done} of {len(data)} bytes)")
            sleep(policy.backoff_ms * (2 ** attempt) / 1000)
            attempt += 1
        return done

    def listdir(self, path: str) -> list[str]:
        """Names in directory ``path`` (sorted bytewise by the server, §3.7)."""
        fid = self.open(path, m.O_RDONLY)
        try:
            return [entry.name for entry in self.readdir(fid)]
        finally:
            self.clunk(fid)

    def close(self) -> None:
        close = getattr(self.transport, "close", None)
        if close is not None:
            close()

    # -- internals --------------------------------------------------------------------------------
    def _bind(self, fid: int | None) -> int:
        if fid is None:
            return self._fids.take()
        self._fids.live.add(fid)
        return fid
