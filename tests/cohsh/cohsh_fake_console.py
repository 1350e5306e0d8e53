"""A small fake console server speaking the SPEC §10.4 framing, for cohsh client tests.

It implements just enough of the §10.5 verbs (with the real framing module) to exercise AUTH, acks,
streams, errors, throttling and connection drops. It is a test double for the client, not a model of
the root task.
"""
from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field

from root_task.console.framing import Frame, FrameDecoder, Lost, Oversize, encode_frame

LINE_LIMIT = 256
GOOD_WORKER_TICKET = "cohesix-ticket-good"


@dataclass
class ConnState:
    role: str | None = None
    lines: list[str] = field(default_factory=list)


class FakeConsole:
    def __init__(self, token: str = "changeme", *, auth_reply: str | None = None) -> None:
        self.token = token
        self.auth_reply = auth_reply  # force a different AUTH answer
        # verb -> how many more times to drop the connection on it (TAIL: after the ack and one line)
        self.drops: dict[str, int] = {}
        self.silent: set[str] = set()  # verbs that never get an answer
        self.files: dict[str, list[str]] = {
            "/proc/boot": ["Cohesix boot: root-task online", "tick 1"],
            "/log/queen.log": ["Cohesix boot: root-task online"],
        }
        self.connections: list[ConnState] = []
        self.failures: list[float] = []
        self.lock = threading.Lock()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(8)
        self.port = self._listener.getsockname()[1]
        self._stop = False
        self._socks: list[socket.socket] = []
        threading.Thread(target=self._accept_loop, daemon=True).start()

    # -- plumbing -------------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self._stop:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            self.serve_socket(sock)

    def serve_socket(self, sock: socket.socket) -> None:
        """Serve one already-connected socket (TCP accept or one end of a socket pair)."""
        self._socks.append(sock)
        threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def socketpair(self) -> socket.socket:
        """Client end of a socket pair whose other end this server handles (like the mock system)."""
        client, server = socket.socketpair()
        self.serve_socket(server)
        return client

    def close(self) -> None:
        self._stop = True
        self._listener.close()
        for sock in self._socks:
            try:
                sock.close()
            except OSError:
                pass

    def all_lines(self) -> list[str]:
        return [line for conn in self.connections for line in conn.lines]

    def _serve(self, sock: socket.socket) -> None:
        state = ConnState()
        with self.lock:
            self.connections.append(state)
        decoder = FrameDecoder()
        authed = False
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    return
                for event in decoder.feed(data):
                    if isinstance(event, Lost):
                        return
                    if isinstance(event, Oversize):
                        sock.sendall(encode_frame("ERR FRAME reason=invalid-length"))
                        continue
                    assert isinstance(event, Frame)
                    line = event.payload.decode("utf-8", errors="replace")
                    state.lines.append(line)
                    if not authed:
                        reply = self.auth_reply or (
                            "OK AUTH" if line == f"AUTH {self.token}" else "ERR AUTH reason=invalid-token")
                        sock.sendall(encode_frame(reply))
                        if reply != "OK AUTH":
                            return
                        authed = True
                        continue
                    if len(line.encode()) > LINE_LIMIT:
                        sock.sendall(encode_frame("ERR FRAME reason=invalid-length"))
                        continue
                    replies = self.handle(line, state)
                    if replies is None:  # drop the connection right now
                        return
                    for reply in replies:
                        if reply == "<drop>":
                            return
                        sock.sendall(encode_frame(reply))
                    if replies and replies[0] == "OK QUIT":
                        return
        except OSError:
            return
        finally:
            try:
                sock.close()
            except OSError:
                pass

    # -- verbs ----------------------------------------------------------------------------------

    def _stream(self, ack: str, lines: list[str]) -> list[str]:
        return [ack, *lines, "END"]

    def handle(self, line: str, state: ConnState) -> list[str] | None:
        verb, _, rest = line.partition(" ")
        verb = verb.upper()
        args = rest.split()
        if verb in self.silent:
            return []
        if self.drops.get(verb, 0) > 0 and verb != "TAIL":
            self.drops[verb] -= 1
            return None
        if verb == "QUIT":
            return ["OK QUIT"]
        if verb == "PING":
            return ["PONG", "OK PING reply=pong"]
        if verb == "ATTACH":
            return [self._attach(state, args)]
        if verb not in ("LOG", "CAT", "TAIL", "LS", "ECHO"):
            return ["ERR PARSE reason=policy detail=unknown-verb"]
        if state.role is None:
            return [f"ERR {verb} reason=policy detail=unauthenticated"]
        if verb == "LOG":
            return self._stream("OK LOG", self.files["/log/queen.log"])
        path = args[0]
        if verb == "ECHO":
            payload = rest[len(path):].lstrip()
            if path.startswith("/queen") and state.role != "queen":
                return [f"ERR ECHO reason=policy detail=denied path={path} error=EACCES msg=permission denied"]
            self.files.setdefault(path, []).append(payload)
            return [f"OK ECHO path={path} bytes={len(payload.encode())}"]
        if path not in self.files:
            return [f"ERR {verb} reason=policy detail=invalid-path path={path} error=ENOENT msg=invalid path"]
        lines = self.files[path]
        if verb == "CAT":
            return self._stream(f"OK CAT path={path} data={lines[-1] if lines else ''}", lines)
        if verb == "LS":
            return self._stream(f"OK LS path={path} entries={len(lines)}", lines)
        if self.drops.get("TAIL", 0) > 0:
            self.drops["TAIL"] -= 1
            return [f"OK TAIL path={path}", lines[0], "<drop>"]
        return self._stream(f"OK TAIL path={path}", lines)

    def _attach(self, state: ConnState, args: list[str]) -> str:
        if state.role is not None:
            return "ERR ATTACH reason=busy detail=already-attached"
        now = time.monotonic()
        if self.failures and now - self.failures[-1] < 0.25:
            delay = int((0.25 - (now - self.failures[-1])) * 1000) + 1
            return f"ERR ATTACH reason=quota detail=throttled delay_ms={delay}"
        role = args[0].lower() if args else ""
        if role == "queen":
            state.role = "queen"
            return "OK ATTACH role=queen"
        if role == "worker-heartbeat":
            if len(args) > 1 and args[1] == GOOD_WORKER_TICKET:
                state.role = role
                return "OK ATTACH role=worker-heartbeat"
            self.failures.append(now)
            return "ERR ATTACH reason=policy detail=denied"
        self.failures.append(now)
        return "ERR ATTACH reason=policy detail=invalid-role"
