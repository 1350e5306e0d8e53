"""The 9P TCP listener (SPEC §3.14, §10.8): accepts standard 9P2000.L clients into NineDoor sessions.

Why it is glue only: all protocol work happens in :meth:`Session.feed`; this module moves bytes between
non-blocking sockets and sessions from the root task's event pump (source ``net``), caps concurrent
connections at 64, and reports each connection's open/close as an audit line. It never blocks: replies
that do not fit in the socket buffer are queued and flushed from a writer callback, and a connection
whose queue grows past a bound stops being read until it drains (back-pressure, not unbounded memory).
"""
from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass, field

from .errors import FramingLost
from .server import ChannelBinding, NineDoor
from .sockio import drain, recv_step

MAX_CONNECTIONS = 64
ACCEPT_BATCH = 64          # SPEC §2.4: at most 64 work items per callback
MAX_PENDING_OUT = 1 << 20  # stop reading a connection with more than 1 MiB of unsent replies


@dataclass(eq=False)
class _Conn:
    conn_id: int
    sock: socket.socket
    peer: str
    session: object
    out: bytearray = field(default_factory=bytearray)
    reading: bool = True
    writing: bool = False


class NinePListener:
    """Listening socket + per-connection sessions, driven by an :class:`root_task.pump.EventPump`."""

    def __init__(self, pump, door: NineDoor, host: str, port: int, audit: Callable[[str], None]) -> None:
        self.pump = pump
        self.door = door
        self.host = host
        self.requested_port = port
        self.audit = audit
        self.sock: socket.socket | None = None
        self.conns: dict[int, _Conn] = {}
        self._next_conn_id = 1

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
            try:
                client, addr = self.sock.accept()  # type: ignore[union-attr]
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            conn_id = self._next_conn_id
            self._next_conn_id += 1
            peer = f"{addr[0]}:{addr[1]}"
            if len(self.conns) >= MAX_CONNECTIONS:
                # SPEC §3.14: further connections are closed immediately; still audited once each.
                self.audit(f"audit 9p.conn.open conn_id={conn_id} peer={peer}")
                client.close()
                self.audit(f"audit 9p.conn.close conn_id={conn_id} reason=error")
                continue
            client.setblocking(False)
            session = self.door.open_session(ChannelBinding(kind="tcp", origin=f"9p:{addr[0]}"))
            conn = _Conn(conn_id, client, peer, session)
            self.conns[conn_id] = conn
            self.audit(f"audit 9p.conn.open conn_id={conn_id} peer={peer}")
            self.pump.add_reader(client, lambda c=conn: self._on_readable(c), source="net")

    # -- per connection -------------------------------------------------------------------------
    def _on_readable(self, conn: _Conn) -> None:
        if conn.conn_id not in self.conns:
            return
        data = recv_step(conn.sock)
        if data is None:
            return
        if isinstance(data, str):
            self._close(conn, data)
            return
        try:
            replies = conn.session.feed(data)
        except FramingLost:
            self._close(conn, "framing")
            return
        if replies:
            self._send(conn, b"".join(replies))

    def _send(self, conn: _Conn, data: bytes) -> None:
        """All replies to one read go out in one write. With nothing queued (the usual case) they
        are sent straight from ``data``; only what the socket does not take is queued."""
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
        self._flush(conn)

    def _flush(self, conn: _Conn) -> None:
        if conn.conn_id not in self.conns:
            return
        if not drain(conn.sock, conn.out):
            self._close(conn, "error")
            return
        if conn.out and not conn.writing:
            self.pump.add_writer(conn.sock, lambda c=conn: self._flush(c))
            conn.writing = True
        elif not conn.out and conn.writing:
            self.pump.remove_writer(conn.sock)
            conn.writing = False
        # back-pressure: pause reading while too much output is queued
        if len(conn.out) > MAX_PENDING_OUT and conn.reading:
            self.pump.remove_reader(conn.sock)
            conn.reading = False
        elif len(conn.out) <= MAX_PENDING_OUT and not conn.reading:
            self.pump.add_reader(conn.sock, lambda c=conn: self._on_readable(c), source="net")
            conn.reading = True

    def _close(self, conn: _Conn, reason: str) -> None:
        if self.conns.pop(conn.conn_id, None) is None:
            return
        if conn.reading:
            self.pump.remove_reader(conn.sock)
        if conn.writing:
            self.pump.remove_writer(conn.sock)
        try:
            conn.sock.close()
        finally:
            conn.session.close()
            self.audit(f"audit 9p.conn.close conn_id={conn.conn_id} reason={reason}")
