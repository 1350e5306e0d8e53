"""The 9P TCP listener (SPEC §3.14, §10.8): accepts standard 9P2000.L clients into NineDoor sessions.

Why it is glue only: all protocol work happens in :meth:`Session.feed`; this module moves bytes between
non-blocking sockets and sessions from the root task's event pump (source ``net``), caps concurrent
connections at 64, and reports each connection's open/close as an audit line. It never blocks: replies
that do not fit in the socket buffer are queued and flushed from a writer callback.

Limits (docs/ninedoor.md, "Listener limits"):

- Fairness (SPEC §2.4): the listener executes at most ``FRAMES_PER_ITERATION`` frames per pump iteration
  over all its connections, at most ``FRAMES_PER_SLICE`` from one connection before the next one with
  work gets a turn. At a frame boundary the session executes up to a slice of whole frames itself and
  says where it stopped (:meth:`Session.feed_frames`, one walk of a burst); anything else (a partial,
  oversize or broken frame) goes through a :class:`~nine_door.framing.FrameBoundaries` tracker that walks
  the chunk ahead of the session, so the session is handed whole slices of frames. The rest of the chunk
  waits (and the socket is not read) until a later iteration. Other sources (serial, the TCP console, timers) run between
  slices.
- Back-pressure before execution: a connection with more than ``MAX_PENDING_OUT`` bytes of unsent
  replies executes nothing more until the client reads; at most one slice of replies is added past it.
- Framing loss: the frames before a bad size field are executed and their replies are sent before the
  connection closes (reason ``framing``); the bytes from the bad size field on are never executed.
- Handshake: a connection that has not completed Tversion and a successful Tattach within
  ``handshake_timeout_s`` (default ``HANDSHAKE_TIMEOUT_S``) is closed (reason ``timeout``), so clients
  that never speak cannot hold the 64 slots.
- Failures: an exception from a session (a server defect, not a refusal) is logged to
  ``/log/queen.log`` and closes that one connection (reason ``error``); every other connection is served.
"""
from __future__ import annotations

import collections
import socket
from collections.abc import Callable
from dataclasses import dataclass, field

from .errors import FramingLost
from .framing import FrameBoundaries, size_field
from .messages import HEADER_SIZE
from .server import ChannelBinding, NineDoor
from .sockio import drain, recv_step, update_interest

MAX_CONNECTIONS = 64
ACCEPT_BATCH = 64          # SPEC §2.4: at most 64 work items per callback
FRAMES_PER_ITERATION = 64  # SPEC §2.4: frames the listener executes per pump iteration, all connections
FRAMES_PER_SLICE = 16      # frames one connection executes before the next connection with work
MAX_PENDING_OUT = 1 << 20  # execute nothing more for a connection with more than 1 MiB of unsent replies
HANDSHAKE_TIMEOUT_S = 5.0  # Tversion + Tattach must complete within this of accept (as the console's AUTH)
LINGER_S = 2.0             # a closing connection's queued replies may drain this long


@dataclass(eq=False)
class _Conn:
    conn_id: int
    sock: socket.socket
    peer: str
    session: object
    bounds: FrameBoundaries = field(default_factory=FrameBoundaries)
    inbuf: bytes = b""         # received bytes not yet handed to the session
    inpos: int = 0
    out: bytearray = field(default_factory=bytearray)
    reading: bool = False
    writing: bool = False
    queued: bool = False       # in the listener's run queue
    closing: str | None = None  # close reason once closing (replies still draining)
    timers: list = field(default_factory=list)

    @property
    def has_input(self) -> bool:
        return self.inpos < len(self.inbuf)


class NinePListener:
    """Listening socket + per-connection sessions, driven by an :class:`root_task.pump.EventPump`."""

    def __init__(self, pump, door: NineDoor, host: str, port: int, audit: Callable[[str], None],
                 handshake_timeout_s: float = HANDSHAKE_TIMEOUT_S,
                 frames_per_iteration: int = FRAMES_PER_ITERATION,
                 frames_per_slice: int = FRAMES_PER_SLICE,
                 max_pending_out: int = MAX_PENDING_OUT) -> None:
        self.pump = pump
        self.door = door
        self.host = host
        self.requested_port = port
        self.audit = audit
        self.handshake_timeout_s = handshake_timeout_s
        self.frames_per_iteration = max(1, frames_per_iteration)
        self.frames_per_slice = max(1, frames_per_slice)
        self.max_pending_out = max_pending_out
        self.sock: socket.socket | None = None
        self.conns: dict[int, _Conn] = {}
        self._next_conn_id = 1
        self._runq: collections.deque[_Conn] = collections.deque()
        self._budget_iteration = -1
        self._budget = 0
        self._resume_deferred = False

    @property
    def port(self) -> int:
        """The bound port (useful when started with port 0)."""
        assert self.sock is not None, "listener not started"
        return self.sock.getsockname()[1]

    def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.requested_port))
        sock.listen(MAX_CONNECTIONS)
        sock.setblocking(False)
        self.sock = sock
        self.pump.add_reader(sock, self._on_accept, source="net")

    def stop(self) -> None:
        """Close every connection (reason ``shutdown``) and the listening socket."""
        self.close_all("shutdown")
        if self.sock is not None:
            self.pump.remove_reader(self.sock)
            self.sock.close()
            self.sock = None

    def close_all(self, reason: str = "shutdown") -> None:
        for conn in list(self.conns.values()):
            self._close(conn, reason)

    # -- accept -----------------------------------------------------------------------------------
    def _on_accept(self) -> None:
        for _ in range(ACCEPT_BATCH):
            if self.sock is None:
                return
            try:
                client, addr = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            try:
                self._admit(client, addr)
            except Exception as exc:  # noqa: BLE001 - one bad accept must not take the listener down
                self._report("accept", None, exc)
                client.close()

    def _admit(self, client: socket.socket, addr) -> None:
        conn_id = self._next_conn_id
        self._next_conn_id += 1
        peer = f"{addr[0]}:{addr[1]}"
        if len(self.conns) >= MAX_CONNECTIONS:
            # SPEC §3.14: further connections are closed immediately; still audited once each.
            self.audit(f"audit 9p.conn.open conn_id={conn_id} peer={peer}")
            client.close()
            self.audit(f"audit 9p.conn.close conn_id={conn_id} reason=error")
            return
        client.setblocking(False)
        # Replies to one slice leave in one write already; Nagle would hold a pipelining client's next
        # burst behind the peer's delayed ACK (measured: 720 appends/s at depth 32 without this).
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        session = self.door.open_session(ChannelBinding(kind="tcp", origin=f"9p:{addr[0]}"))
        conn = _Conn(conn_id, client, peer, session)
        self.conns[conn_id] = conn
        self.audit(f"audit 9p.conn.open conn_id={conn_id} peer={peer}")
        if self.handshake_timeout_s is not None:
            conn.timers.append(self.pump.call_later(
                self.handshake_timeout_s, lambda: self._guarded(conn, self._handshake_check)))
        self._update_interest(conn)

    # -- per connection ---------------------------------------------------------------------------
    def _guarded(self, conn: _Conn, step: Callable[[_Conn], None]) -> None:
        """Run one connection's step; a defect closes that connection (logged), never the loop."""
        if conn.conn_id not in self.conns:
            return
        try:
            step(conn)
        except Exception as exc:  # noqa: BLE001
            self._report("connection", conn, exc)
            try:
                self._close(conn, "error")
            except Exception:  # noqa: BLE001
                self.conns.pop(conn.conn_id, None)

    def _report(self, where: str, conn: _Conn | None, exc: Exception) -> None:
        """One ``/log/queen.log`` line (class name only: the text may carry client bytes)."""
        conn_part = f" conn_id={conn.conn_id}" if conn is not None else ""
        try:
            self.door.log_append(f"9p listener failed where={where}{conn_part} error={exc.__class__.__name__}")
        except Exception:  # noqa: BLE001 - the log itself may be what broke
            pass

    def _handshake_check(self, conn: _Conn) -> None:
        session = conn.session
        if conn.closing is None and (session.msize is None or session.identity is None):
            self._close(conn, "timeout")

    def _on_readable(self, conn: _Conn) -> None:
        if conn.closing is not None or conn.has_input:
            return
        data = recv_step(conn.sock)
        if data is None:
            return
        if data.__class__ is str:
            self._close(conn, data)
            return
        if not self._runq and self._take_budget() > 0 and conn.bounds.idle and len(data) >= HEADER_SIZE \
                and size_field(data)[0] == len(data):
            self._serve_one_frame(conn, data)   # one request in flight, nobody waiting: the usual case
            return
        conn.inbuf, conn.inpos = data, 0
        self._enqueue(conn)
        self._run_queue()

    def _serve_one_frame(self, conn: _Conn, frame: bytes) -> None:
        """A chunk that is exactly one whole frame (a client with one request in flight): what
        :meth:`_serve_slice` would do, without walking the chunk for boundaries (the tracker is idle
        before and after it) or slicing it. The session checks it against msize (``Session.feed``)."""
        if len(conn.out) > self.max_pending_out:
            conn.inbuf, conn.inpos = frame, 0     # resumed from _flush once the client reads
            self._update_interest(conn)
            return
        self._budget -= 1
        if not self._execute(conn, frame):
            return
        if conn.reading and not conn.out:
            return                                # interest unchanged: still reading, nothing queued
        self._update_interest(conn)

    def _enqueue(self, conn: _Conn) -> None:
        if not conn.queued:
            conn.queued = True
            self._runq.append(conn)

    def _take_budget(self) -> int:
        iteration = self.pump.iterations
        if iteration != self._budget_iteration:
            self._budget_iteration = iteration
            self._budget = self.frames_per_iteration
        return self._budget

    def _run_queue(self) -> None:
        """Serve queued connections round-robin, one slice each, until this iteration's budget is spent;
        connections still holding input wait for the next iteration (their sockets are not read)."""
        runq = self._runq
        while runq and self._take_budget() > 0:
            conn = runq.popleft()
            conn.queued = False
            if conn.conn_id not in self.conns:
                continue
            self._guarded(conn, self._serve_slice)
            if conn.conn_id in self.conns and conn.has_input and conn.closing is None \
                    and len(conn.out) <= self.max_pending_out:
                self._enqueue(conn)
        if runq and not self._resume_deferred:
            self._resume_deferred = True        # one resume per iteration, however often this runs
            self.pump.defer(self._resume_queue, source="net")

    def _resume_queue(self) -> None:
        """The deferred continuation of :meth:`_run_queue` (next iteration, fresh budget)."""
        self._resume_deferred = False
        self._run_queue()

    def _serve_slice(self, conn: _Conn) -> None:
        inbuf, inpos = conn.inbuf, conn.inpos
        if conn.closing is not None or inpos >= len(inbuf):
            return
        if len(conn.out) > self.max_pending_out:
            return                              # resumed from _flush once the client reads
        budget = self._budget
        limit = budget if budget < self.frames_per_slice else self.frames_per_slice
        if conn.bounds.idle:
            # At a frame boundary (a pipelined burst): the session counts the whole frames as it executes
            # them, so the chunk is walked once. Whatever it stops at (a partial, oversize or broken
            # frame) takes the boundary walk below: now when it is first, else in the next slice.
            replies, pos = conn.session.feed_frames(inbuf, inpos, limit)
            if replies:
                self._budget = budget - len(replies)
                self._consumed(conn, pos)
                self._send_replies(conn, replies)
                self._update_interest(conn)
                return
        chunk = inbuf if inpos == 0 else memoryview(inbuf)[inpos:]
        cut, frames, lost = conn.bounds.advance(chunk, limit)
        self._budget = budget - frames
        piece = chunk if cut == len(chunk) and inpos == 0 else bytes(chunk[:cut])
        self._consumed(conn, len(inbuf) if lost is not None else inpos + cut)   # nothing after a loss runs
        if piece and not self._execute(conn, piece):
            return
        if lost is not None:
            self._begin_close(conn, "framing")
            return
        self._update_interest(conn)

    def _execute(self, conn: _Conn, data: bytes) -> bool:
        """Hand whole frames to the session and send its replies in one write; False when the session
        lost framing (the connection is closed)."""
        try:
            replies = conn.session.feed(data)
        except FramingLost:
            self._close(conn, "framing")
            return False
        if replies:
            self._send_replies(conn, replies)
        return True

    @staticmethod
    def _consumed(conn: _Conn, end: int) -> None:
        """The received chunk up to ``end`` has been handed to the session: keep only what follows."""
        if end >= len(conn.inbuf):
            conn.inbuf, conn.inpos = b"", 0
        else:
            conn.inpos = end

    def _send_replies(self, conn: _Conn, replies: list[bytes]) -> None:
        """One slice's replies in one write (see :meth:`_send`)."""
        self._send(conn, replies[0] if len(replies) == 1 else b"".join(replies))

    def _send(self, conn: _Conn, data: bytes) -> None:
        """All replies to one slice go out in one write. With nothing queued (the usual case) they
        are sent straight from ``data``; only what the socket does not take is queued."""
        if conn.conn_id not in self.conns:
            return
        if not conn.out:
            try:
                sent = conn.sock.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self._close(conn, "error")
                return
            if sent == len(data):
                return
            data = memoryview(data)[sent:]
        conn.out += data
        self._update_interest(conn)

    def _flush(self, conn: _Conn) -> None:
        if not drain(conn.sock, conn.out):
            self._close(conn, "error")
            return
        if conn.closing is not None and not conn.out:
            self._close(conn, conn.closing)
            return
        if conn.has_input and not conn.queued and len(conn.out) <= self.max_pending_out:
            self._enqueue(conn)                 # back-pressure lifted: execute the rest of the chunk
            self._run_queue()
            if conn.conn_id not in self.conns:
                return
        self._update_interest(conn)

    def _update_interest(self, conn: _Conn) -> None:
        """Read only when nothing received is waiting and replies are below the bound; write while
        anything is queued."""
        if conn.conn_id not in self.conns:
            return
        want_read = conn.closing is None and not conn.has_input and len(conn.out) <= self.max_pending_out
        if want_read == conn.reading and bool(conn.out) == conn.writing:
            return                                   # the usual case: no callbacks to make
        update_interest(self.pump, conn, want_read, bool(conn.out),
                        lambda c=conn: self._guarded(c, self._on_readable),
                        lambda c=conn: self._guarded(c, self._flush))

    def _begin_close(self, conn: _Conn, reason: str) -> None:
        """Stop reading; close once the queued replies drained (at most ``LINGER_S``)."""
        if not conn.out:
            self._close(conn, reason)
            return
        conn.closing = reason
        conn.timers.append(self.pump.call_later(
            LINGER_S, lambda: self._guarded(conn, lambda c: self._close(c, reason))))
        self._update_interest(conn)

    def _close(self, conn: _Conn, reason: str) -> None:
        if self.conns.pop(conn.conn_id, None) is None:
            return
        for timer in conn.timers:
            timer.cancel()
        conn.timers.clear()
        if conn.reading:
            self.pump.remove_reader(conn.sock)
        if conn.writing:
            self.pump.remove_writer(conn.sock)
        conn.reading = conn.writing = False
        conn.inbuf, conn.inpos = b"", 0
        try:
            conn.sock.close()
        finally:
            try:
                conn.session.close()
            finally:
                self.audit(f"audit 9p.conn.close conn_id={conn.conn_id} reason={reason}")
