"""TCP console server on the event pump (SPEC §10.4, §10.7, §10.8).

Constructor and lifecycle (used by ``root_task.boot``)::

    server = TcpConsoleServer(pump, ctx, host, port, audit)   # audit(line) gets "audit tcp.…" lines
    server.start()                    # bind + listen (port 0 picks a free port: see server.address)
    server.close_all(reason="shutdown")

Per connection: ``AUTH <token>`` within ``ctx.config.auth_timeout_s`` (5 s) → ``OK AUTH``; then one
frame per line through a :class:`~root_task.console.session.ConsoleSession`. Idle for
``console.idle_timeout_s`` → ``ERR CONSOLE reason=cut detail=timeout`` and close.

Why everything is non-blocking and bounded: one slow or hostile client must never stall the loop or
other sessions. Each callback handles at most ``EventPump.BATCH`` accepts or frames; leftovers are
resumed from a zero-delay timer. Output is queued per connection and flushed when the socket is
writable; while a connection has more than ``HIGH_WATER`` bytes unsent, it is not read (backpressure),
and a connection whose queue exceeds ``MAX_OUTPUT_BYTES`` is dropped (``reason=error``). Closing after
a final reply lingers at most ``LINGER_S`` for the reply to drain.
"""
from __future__ import annotations

import collections
import socket
from collections.abc import Callable
from dataclasses import dataclass, field

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing at boot (docs/build.md)
if TYPE_CHECKING:
    from typing import Any

from nine_door.repeat_lines import RepeatCoalescer
from nine_door.sockio import drain, recv_step, update_interest
from root_task.console import acks
from root_task.console.context import ConsoleContext
from root_task.console.framing import FrameDecoder, Lost, Oversize, encode_frame
from root_task.console.line_editor import clean_payload, decoded_length
from root_task.console.session import ConsoleSession, State

BATCH = 64
HIGH_WATER = 64 * 1024
MAX_OUTPUT_BYTES = 4 * 1024 * 1024
LINGER_S = 2.0
AUTH_PREFIX = "AUTH "


@dataclass(eq=False)
class _Conn:
    sock: socket.socket
    conn_id: int
    ip: str
    port: int
    session: ConsoleSession
    decoder: FrameDecoder = field(default_factory=FrameDecoder)
    out: bytearray = field(default_factory=bytearray)
    pending: collections.deque = field(default_factory=collections.deque)
    reading: bool = False
    writing: bool = False
    closing: bool = False
    closed: bool = False
    close_reason: str = "error"
    last_rx: float = 0.0
    timers: list = field(default_factory=list)
    resume_scheduled: bool = False


class TcpConsoleServer:
    def __init__(self, pump: Any, ctx: ConsoleContext, host: str, port: int,
                 audit: Callable[[str], None] | None = None) -> None:
        self.pump = pump
        self.ctx = ctx
        self.host = host
        self.port = port
        self.audit = audit if audit is not None else ctx.audit
        self._listener: socket.socket | None = None
        self._conns: dict[int, _Conn] = {}
        self._next_id = 0
        # §10.7 lockout refusals of AUTH, coalesced per origin (nine_door/repeat_lines.py)
        self.throttle_lines = RepeatCoalescer()
        self._throttle_flush = None

    # -- lifecycle -----------------------------------------------------------------------------
    @property
    def address(self) -> tuple[str, int]:
        assert self._listener is not None, "start() first"
        return self._listener.getsockname()[:2]

    @property
    def active(self) -> int:
        return len(self._conns)

    def start(self) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.port))
        listener.listen(64)
        listener.setblocking(False)
        self._listener = listener
        self.port = listener.getsockname()[1]  # the bound port, also when started with port 0
        self.pump.add_reader(listener, self._on_accept, source="net")

    def close_all(self, reason: str = "shutdown") -> None:
        for conn in list(self._conns.values()):
            self._finish_close(conn, reason)
        if self._listener is not None:
            self.pump.remove_reader(self._listener)
            self._listener.close()
            self._listener = None

    def adopt(self, sock: socket.socket, peer: tuple) -> None:
        """Serve an already-connected socket as a new TCP-console connection (AUTH first).

        Used by ``cohsh --transport mock``: the in-process system hands one end of a socketpair here,
        so the mock speaks exactly the same framed protocol as a real TCP client.
        """
        self._admit(sock, peer)

    # -- accept --------------------------------------------------------------------------------
    def _on_accept(self) -> None:
        if self._listener is None:
            return
        for _ in range(BATCH):
            try:
                sock, peer = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            try:
                self._admit(sock, peer)
            except Exception:  # noqa: BLE001 - one bad accept must not take the listener down
                sock.close()

    def _admit(self, sock: socket.socket, peer: tuple) -> None:
        sock.setblocking(False)
        self._next_id += 1
        conn_id = self._next_id
        ip, port = str(peer[0]), int(peer[1])
        self.ctx.net.tcp_total += 1
        self.audit(f"audit tcp.conn.open conn_id={conn_id} peer={ip}:{port}")
        if len(self._conns) >= self.ctx.config.max_sessions:
            try:
                sock.send(encode_frame(acks.transport_err("AUTH", "busy")))
                self.ctx.net.frames_tx += 1
            except OSError:
                pass
            sock.close()
            self.audit(f"audit tcp.auth.fail conn_id={conn_id} reason=busy")
            self.audit(f"audit tcp.conn.close conn_id={conn_id} reason=auth")
            return
        session = ConsoleSession(self.ctx, transport="tcp", origin_key=ip, origin_label=f"tcp:{ip}",
                                 conn_id=str(conn_id), audit=self.audit)
        decoder = FrameDecoder(max_len=8192)
        conn = _Conn(sock, conn_id, ip, port, session, decoder, last_rx=self.pump_clock())
        self._conns[conn_id] = conn
        self.ctx.net.tcp_sessions = len(self._conns)
        conn.timers.append(self.pump.call_later(self.ctx.config.auth_timeout_s,
                                                lambda: self._guarded(conn, self._auth_timeout)))
        self._update_interest(conn)

    def pump_clock(self) -> float:
        return self.ctx.clock.monotonic()

    # -- input ---------------------------------------------------------------------------------
    def _guarded(self, conn: _Conn, fn: Callable[[_Conn], None]) -> None:
        """Run a per-connection callback; a bug drops that connection, never the event loop."""
        try:
            fn(conn)
        except Exception:  # noqa: BLE001
            try:
                self._finish_close(conn, "error")
            except Exception:  # noqa: BLE001
                conn.closed = True
                self._conns.pop(conn.conn_id, None)

    def _on_readable(self, conn: _Conn) -> None:
        if conn.closed or conn.closing:
            return
        data = recv_step(conn.sock)
        if data is None:
            return
        if isinstance(data, str):
            self._finish_close(conn, data)
            return
        conn.pending.extend(conn.decoder.feed(data))
        self._process(conn)

    def _process(self, conn: _Conn) -> None:
        conn.resume_scheduled = False
        handled = 0
        while conn.pending and handled < BATCH and not conn.closing and not conn.closed:
            event = conn.pending.popleft()
            handled += 1
            if conn.session.state is State.CONNECTED:
                self._handle_auth(conn, event)
            else:
                self._handle_frame(conn, event)
        if conn.closed:
            return
        if conn.closing:
            conn.pending.clear()
        elif conn.pending and not conn.resume_scheduled:
            conn.resume_scheduled = True
            self.pump.call_later(0, lambda: self._guarded(conn, self._process))
        self._flush(conn)

    def _handle_auth(self, conn: _Conn, event) -> None:
        if isinstance(event, (Lost, Oversize)):
            return self._auth_fail(conn, "invalid-length")
        self.ctx.net.frames_rx += 1
        if decoded_length(event.payload) > self.ctx.config.limits.line:
            return self._auth_fail(conn, "invalid-length")
        verdict = self.ctx.throttle.check_lockout(conn.ip, self.ctx.throttle_now_ms())
        if not verdict.ok:
            self._log_throttled(f"tcp:{conn.ip}", f"console throttled origin=tcp:{conn.ip} "
                                f"detail={verdict.detail} delay_ms={verdict.delay_ms}")
            return self._auth_fail(conn, "rate-limited", delay_ms=verdict.delay_ms)
        text = event.payload.decode("utf-8", errors="replace")
        if not text.startswith(AUTH_PREFIX) or len(text) == len(AUTH_PREFIX):
            return self._auth_fail(conn, "expected-token")
        given = event.payload[len(AUTH_PREFIX):]
        import hashlib  # on first use: the boot path does not need them
        import hmac

        # The image keeps only SHA-256(token) (console.auth_token_sha256); compare digests in constant time.
        digest = hashlib.sha256(given).hexdigest()
        if not hmac.compare_digest(digest, self.ctx.config.auth_token_sha256):
            self.ctx.throttle.record_failure(conn.ip, self.ctx.throttle_now_ms())
            self.ctx.net.auth_failures += 1
            return self._auth_fail(conn, "invalid-token")
        conn.session.authenticate()
        self._cancel_timers(conn)
        conn.last_rx = self.pump_clock()
        self._schedule_idle(conn, self.ctx.config.idle_timeout_s)
        self.audit(f"audit tcp.auth.ok conn_id={conn.conn_id}")
        self._send(conn, "OK AUTH")

    def _log_throttled(self, origin: str, line: str) -> None:
        """One refusal line, coalesced per origin; a pending count is flushed from a timer."""
        for text in self.throttle_lines.offer(origin, line, self.pump_clock()):
            self.ctx.log_append(text)
        if self.throttle_lines.pending and self._throttle_flush is None:
            self._throttle_flush = self.pump.call_later(self.throttle_lines.interval_s, self._flush_throttled)

    def _flush_throttled(self) -> None:
        self._throttle_flush = None
        for text in self.throttle_lines.due(self.pump_clock()):
            self.ctx.log_append(text)
        if self.throttle_lines.pending:
            self._throttle_flush = self.pump.call_later(self.throttle_lines.interval_s / 4,
                                                        self._flush_throttled)

    def _auth_fail(self, conn: _Conn, reason: str, delay_ms: int | None = None) -> None:
        self._send(conn, acks.transport_err("AUTH", reason, delay_ms))
        self.audit(f"audit tcp.auth.fail conn_id={conn.conn_id} reason={reason}")
        self._begin_close(conn, "auth")

    def _handle_frame(self, conn: _Conn, event) -> None:
        if isinstance(event, Lost):
            self._finish_close(conn, "frame")
            return
        conn.last_rx = self.pump_clock()
        self.ctx.net.frames_rx += 1
        if isinstance(event, Oversize) or decoded_length(event.payload) > self.ctx.config.limits.line:
            self._send(conn, acks.transport_err("FRAME", "invalid-length"))
            return
        reply = conn.session.handle_line(clean_payload(event.payload))
        for line in reply.lines:
            self._send(conn, line)
        if reply.close:
            self._begin_close(conn, "quit")

    # -- timers --------------------------------------------------------------------------------
    def _auth_timeout(self, conn: _Conn) -> None:
        if conn.closed or conn.closing or conn.session.state is not State.CONNECTED:
            return
        self._send(conn, acks.transport_err("AUTH", "timeout"))
        self.audit(f"audit tcp.auth.fail conn_id={conn.conn_id} reason=timeout")
        self._begin_close(conn, "timeout")

    def _schedule_idle(self, conn: _Conn, delay_s: float) -> None:
        conn.timers.append(self.pump.call_later(max(0.0, delay_s),
                                                lambda: self._guarded(conn, self._idle_check)))

    def _idle_check(self, conn: _Conn) -> None:
        if conn.closed or conn.closing:
            return
        conn.timers = [t for t in conn.timers if not getattr(t, "cancelled", False)]
        idle_for = self.pump_clock() - conn.last_rx
        limit = self.ctx.config.idle_timeout_s
        if idle_for < limit:
            self._schedule_idle(conn, limit - idle_for)
            return
        self._send(conn, acks.err("CONSOLE", "cut", "timeout"))
        self._begin_close(conn, "timeout")

    @staticmethod
    def _cancel_timers(conn: _Conn) -> None:
        for timer in conn.timers:
            timer.cancel()
        conn.timers.clear()

    # -- output --------------------------------------------------------------------------------
    def _send(self, conn: _Conn, line: str) -> None:
        if conn.closed:
            return
        frame = encode_frame(line)
        if len(conn.out) + len(frame) > MAX_OUTPUT_BYTES:
            conn.out.clear()
            self._finish_close(conn, "error")
            return
        conn.out += frame
        self.ctx.net.frames_tx += 1

    def _flush(self, conn: _Conn) -> None:
        if conn.closed:
            return
        if not drain(conn.sock, conn.out):
            self._finish_close(conn, conn.close_reason if conn.closing else "error")
            return
        if conn.closing and not conn.out:
            self._finish_close(conn, conn.close_reason)
            return
        self._update_interest(conn)

    def _on_writable(self, conn: _Conn) -> None:
        if not conn.closed:
            self._flush(conn)

    def _update_interest(self, conn: _Conn) -> None:
        want_read = not conn.closing and not conn.pending and len(conn.out) < HIGH_WATER
        if want_read == conn.reading and bool(conn.out) == conn.writing:
            return
        update_interest(self.pump, conn, want_read, bool(conn.out),
                        lambda: self._guarded(conn, self._on_readable),
                        lambda: self._guarded(conn, self._on_writable))

    # -- close ---------------------------------------------------------------------------------
    def _begin_close(self, conn: _Conn, reason: str) -> None:
        """Stop reading, let the queued reply drain (at most LINGER_S), then close."""
        if conn.closing or conn.closed:
            return
        conn.closing = True
        conn.close_reason = reason
        self._cancel_timers(conn)
        conn.timers.append(self.pump.call_later(LINGER_S, lambda: self._finish_close(conn, reason)))
        self._flush(conn)

    def _finish_close(self, conn: _Conn, reason: str) -> None:
        if conn.closed:
            return
        conn.closed = True
        self._cancel_timers(conn)
        if conn.reading:
            self.pump.remove_reader(conn.sock)
        if conn.writing:
            self.pump.remove_writer(conn.sock)
        conn.reading = conn.writing = False
        try:
            conn.sock.close()
        except OSError:
            pass
        conn.session.close()
        self._conns.pop(conn.conn_id, None)
        self.ctx.net.tcp_sessions = len(self._conns)
        self.audit(f"audit tcp.conn.close conn_id={conn.conn_id} reason={reason}")
