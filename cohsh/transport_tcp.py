"""The console client (SPEC §10.4, §11.6): framed lines over a stream socket.

Why the socket comes from a ``Connector``: TCP, the in-process mock and QEMU differ only in how the
console socket is obtained; AUTH, acks, streams, keepalive and reconnection are the same code for all
three, so the mock cannot drift from the real path.
"""
from __future__ import annotations

import collections
import re
import socket
import threading
import time
from dataclasses import dataclass
from typing import Callable

from root_task.console.framing import Frame, FrameDecoder, Lost, encode_frame

Connector = Callable[[], socket.socket]

# Acks whose OK opens a stream of content lines terminated by ``END`` (SPEC §10.5).
STREAMING_VERBS = frozenset({"HELP", "BOOTINFO", "CAPS", "MEM", "NETSTATS", "LOG", "TAIL", "CAT", "LS"})
_ACK = re.compile(r"(OK|ERR) [A-Z]")
MAX_REISSUES = 3


class TransportLost(Exception):
    """The console connection is gone (or never came up)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class AuthRejected(TransportLost):
    """The server answered AUTH with anything but the exact frame ``OK AUTH``."""

    def __init__(self, reply: str) -> None:
        super().__init__(f"AUTH rejected: {reply}")
        self.reply = reply


class CommandInterrupted(Exception):
    """The connection broke during a command that is not safe to repeat; it was not re-issued."""


@dataclass(frozen=True)
class TcpPolicy:
    """Client timing of SPEC §11.6 (overridable only so tests need not wait for real seconds)."""

    read_timeout_s: float = 2.0
    ack_timeout_s: float = 5.0
    stream_timeout_s: float = 30.0
    keepalive_idle_s: float = 15.0
    reconnect_delays_ms: tuple[int, ...] = (200, 400, 800)
    reconnect_ceiling_ms: int = 2000


@dataclass(frozen=True)
class Reply:
    """One command's answer: lines before the ack (e.g. ``PONG``), the ack, streamed content."""

    pre: tuple[str, ...]
    ack: str
    content: tuple[str, ...] = ()


def is_ack(line: str) -> bool:
    return _ACK.match(line) is not None


def opens_stream(ack: str) -> bool:
    parts = ack.split()
    return len(parts) >= 2 and parts[0] == "OK" and parts[1] in STREAMING_VERBS


def tcp_connector(host: str, port: int, timeout_s: float = 5.0) -> Connector:
    def connect() -> socket.socket:
        return socket.create_connection((host, port), timeout=timeout_s)

    return connect


class _Link:
    """One connected socket plus its frame decoder."""

    def __init__(self, sock: socket.socket, policy: TcpPolicy, clock: Callable[[], float]) -> None:
        self._sock = sock
        self._policy = policy
        self._clock = clock
        self._decoder = FrameDecoder()
        self._lines: collections.deque[str] = collections.deque()
        self.last_traffic = clock()

    def send(self, text: str) -> None:
        try:
            self._sock.settimeout(self._policy.read_timeout_s)
            self._sock.sendall(encode_frame(text))
        except OSError as exc:
            raise TransportLost(f"send failed: {exc}") from None
        self.last_traffic = self._clock()

    def _feed(self, data: bytes) -> None:
        self.last_traffic = self._clock()
        for event in self._decoder.feed(data):
            if isinstance(event, Frame):
                self._lines.append(event.payload.decode("utf-8", errors="replace"))
            elif isinstance(event, Lost):
                raise TransportLost("console framing lost")
            # Oversize frames from the server carry no line we could show; they are skipped.

    def read_line(self, deadline: float, waiting_for: str) -> str:
        while not self._lines:
            remaining = deadline - self._clock()
            if remaining <= 0:
                raise TransportLost(f"timed out waiting for {waiting_for}")
            try:
                self._sock.settimeout(min(self._policy.read_timeout_s, remaining))
                data = self._sock.recv(65536)
            except (socket.timeout, TimeoutError):
                continue
            except OSError as exc:
                raise TransportLost(str(exc)) from None
            if not data:
                raise TransportLost("connection closed by peer")
            self._feed(data)
        return self._lines.popleft()

    def poll(self) -> list[str]:
        """Lines that arrived unsolicited since the last command; raises if the peer closed."""
        try:
            self._sock.setblocking(False)
            while True:
                try:
                    data = self._sock.recv(65536)
                except (BlockingIOError, InterruptedError):
                    break
                if not data:
                    raise TransportLost("connection closed by peer")
                self._feed(data)
        except TransportLost:
            raise
        except OSError as exc:
            raise TransportLost(str(exc)) from None
        out = list(self._lines)
        self._lines.clear()
        return out

    def close(self) -> None:
        try:
            self._sock.close()
        except OSError:
            pass


class ConsoleClient:
    """A console session: AUTH, one command at a time, acks and streams, optional reconnection.

    ``reconnect`` is true only for the interactive shell (SPEC §11.6); script and one-shot modes get
    ``TransportLost`` on the first loss and exit 3. ``notify`` receives the client's own status lines
    (``[cohsh][tcp] …``) and unsolicited server lines.
    """

    def __init__(
        self,
        connector: Connector,
        token: str,
        *,
        reconnect: bool = False,
        policy: TcpPolicy = TcpPolicy(),
        notify: Callable[[str], None] = lambda line: None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._connector = connector
        self._token = token
        self._reconnect = reconnect
        self._policy = policy
        self._notify = notify
        self._sleep = sleep
        self._clock = clock
        self._link: _Link | None = None
        self._lost: str | None = None  # why the link broke, while it is broken
        self._attach_line: str | None = None
        self._lock = threading.RLock()

    # -- connection lifecycle -------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._link is not None

    def connect(self) -> None:
        """Open a fresh connection and authenticate (raises ``TransportLost``/``AuthRejected``)."""
        with self._lock:
            if self._link is not None:
                self._link.close()
            self._link = self._open()
            self._lost = None

    def _open(self) -> _Link:
        try:
            sock = self._connector()
        except OSError as exc:
            raise TransportLost(f"cannot connect: {exc}") from None
        link = _Link(sock, self._policy, self._clock)
        try:
            link.send(f"AUTH {self._token}")
            reply = link.read_line(self._clock() + self._policy.ack_timeout_s, "the AUTH reply")
        except TransportLost:
            link.close()
            raise
        if reply != "OK AUTH":
            link.close()
            raise AuthRejected(reply)
        return link

    def remember_attach(self, wire_line: str) -> None:
        """Cache the last successful ATTACH so a reconnect can restore the session."""
        self._attach_line = wire_line

    def close(self) -> None:
        """End the connection deliberately (no reconnect will be attempted for it)."""
        with self._lock:
            if self._link is not None:
                self._link.close()
            self._link = None
            self._lost = None
            self._attach_line = None

    def quit(self) -> Reply | None:
        """Send ``quit``, read ``OK QUIT`` and close; ``None`` when there was no live connection."""
        with self._lock:
            link = self._link
            reply: Reply | None = None
            if link is not None:
                try:
                    reply = self._exchange(link, "quit")
                except TransportLost:
                    reply = None
            self.close()
            return reply

    def _drop(self, reason: str) -> None:
        if self._link is not None:
            self._link.close()
        self._link = None
        self._lost = reason

    # -- commands -------------------------------------------------------------------------

    def _exchange(self, link: _Link, line: str) -> Reply:
        link.send(line)
        deadline = self._clock() + self._policy.ack_timeout_s
        pre: list[str] = []
        while True:
            got = link.read_line(deadline, "an acknowledgement")
            if is_ack(got):
                ack = got
                break
            pre.append(got)
        content: list[str] = []
        if opens_stream(ack):
            deadline = self._clock() + self._policy.stream_timeout_s
            while True:
                got = link.read_line(deadline, "the end of the stream")
                if got == "END":
                    break
                content.append(got)
        return Reply(tuple(pre), ack, tuple(content))

    def request(self, line: str, *, read_only: bool = False) -> Reply:
        """Send one console line and return its reply.

        A connection found broken before sending is restored first (interactive) and the command is
        then sent normally. A loss during the command is restored and the command re-issued only if
        it is ``read_only``; otherwise ``CommandInterrupted`` is raised after reconnecting.
        """
        with self._lock:
            self._ensure_link()
            reissues = 0
            while True:
                assert self._link is not None
                try:
                    return self._exchange(self._link, line)
                except TransportLost as exc:
                    self._drop(exc.reason)
                    self._recover(exc.reason)
                    if not read_only or reissues >= MAX_REISSUES:
                        raise CommandInterrupted("connection lost") from None
                    reissues += 1

    def _ensure_link(self) -> None:
        if self._link is None:
            if self._lost is not None:
                self._recover(self._lost)
            else:
                self._link = self._open()
            return
        try:
            for stray in self._link.poll():
                self._notify(f"[console] {stray}" if is_ack(stray) else stray)
        except TransportLost as exc:
            self._drop(exc.reason)
            self._recover(exc.reason)

    def _recover(self, reason: str) -> None:
        """Reconnect per SPEC §11.6, or raise ``TransportLost`` when that is not allowed or fails."""
        if not self._reconnect:
            raise TransportLost(reason)
        self._notify(f"[cohsh][tcp] connection lost: {reason}")
        attempts = len(self._policy.reconnect_delays_ms)
        for n, delay_ms in enumerate(self._policy.reconnect_delays_ms, start=1):
            delay_ms = min(delay_ms, self._policy.reconnect_ceiling_ms)
            self._notify(f"[cohsh][tcp] reconnect attempt #{n} (delay={delay_ms}ms)")
            self._sleep(delay_ms / 1000.0)
            try:
                link = self._open()
            except TransportLost:
                continue
            if self._attach_line is not None:
                try:
                    reply = self._exchange(link, self._attach_line)
                except TransportLost:
                    link.close()
                    continue
                if not reply.ack.startswith("OK ATTACH"):
                    link.close()
                    continue
            self._link = link
            self._lost = None
            return
        raise TransportLost(f"{reason} (gave up after {attempts} reconnect attempts)")

    def keepalive(self) -> None:
        """Interactive idle keepalive: ``PING`` after ``keepalive_idle_s`` without traffic, silently.

        Never blocks a running command (it skips when the client is busy); a loss found here only
        marks the link broken, and the next command reports and repairs it.
        """
        if not self._lock.acquire(blocking=False):
            return
        try:
            link = self._link
            if link is None or self._clock() - link.last_traffic < self._policy.keepalive_idle_s:
                return
            try:
                self._exchange(link, "PING")
            except TransportLost as exc:
                self._drop(exc.reason)
        finally:
            self._lock.release()
