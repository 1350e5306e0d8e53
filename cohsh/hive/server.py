"""The hive's HTTP layer: one page, its static assets, an event stream and an action endpoint.

Why the stdlib ``ThreadingHTTPServer``: the hive serves one operator's browser on loopback — a handful
of connections, one of them a long-lived event stream — so a thread per connection is plenty, and it
keeps ``cohsh`` free of a web-framework dependency (and of an async runtime next to the pool's
blocking sockets). docs/hive.md says more.

Routes (all behind the token, :mod:`cohsh.hive.auth`; anything else → 403 with an empty body):

* ``GET /`` (``/?token=…`` sets the cookie and redirects to ``/``) — the page;
* ``GET /static/<name>`` — files of ``cohsh/hive/static`` (names listed at start; nothing else);
* ``GET /events`` — ``text/event-stream``: a ``snapshot`` event, then a ``delta`` per collector tick;
* ``GET /api/state`` — the snapshot as JSON;
* ``POST /api/action`` — a JSON action (:mod:`cohsh.hive.actions`); ``application/json`` only, and an
  ``Origin`` header, when sent, must be this server's (no cross-site form posts).

Every refusal is logged (``hive: refused …``) without the token or the query string.
"""
from __future__ import annotations

import json
import mimetypes
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

from cohsh.hive import auth, sse
from cohsh.hive.actions import MAX_ACTION_BYTES, ActionResult

STATIC_DIR = Path(__file__).resolve().parent / "static"
KEEPALIVE_S = 15.0
SECURITY_HEADERS = (
    ("Cache-Control", "no-store"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
                                "connect-src 'self'; frame-ancestors 'none'"),
)


class HiveApp:
    """What the handler needs: the token, the snapshot/delta source, the action runner."""

    def __init__(self, token: str, snapshot: Callable[[], tuple[int, str]], hub,
                 act: Callable[[object], ActionResult], log: Callable[[str], None] = lambda s: None) -> None:
        self.token = token
        self.snapshot = snapshot
        self.hub = hub
        self.act = act
        self.log = log
        self.static = {p.name: p for p in STATIC_DIR.iterdir() if p.is_file()}
        self.stopping = threading.Event()


class HiveHandler(BaseHTTPRequestHandler):
    server_version = "cohsh-hive"
    sys_version = ""
    protocol_version = "HTTP/1.1"
    app: HiveApp

    def log_message(self, format: str, *args) -> None:    # quiet: refusals are logged explicitly
        pass

    # -- plumbing ----------------------------------------------------------------------------------
    def _send(self, status: int, body: bytes = b"", ctype: str = "text/plain; charset=utf-8",
              headers: tuple[tuple[str, str], ...] = ()) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for name, value in SECURITY_HEADERS + headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _refuse(self, status: int, why: str) -> None:
        path = urlsplit(self.path).path[:120]
        self.app.log(f"hive: refused {self.command} {path} from {self.client_address[0]}: {why}")
        self.close_connection = True
        self._send(status, b"")

    def _authorised(self) -> str | None:
        how = auth.check(self.app.token, self.headers.get("Cookie"), urlsplit(self.path).query)
        if how is None:
            self._refuse(403, "missing or wrong session token")
        return how

    def _json(self, status: int, obj: object) -> None:
        self._send(status, json.dumps(obj, separators=(",", ":")).encode(), "application/json")

    # -- methods -----------------------------------------------------------------------------------
    def do_GET(self) -> None:
        how = self._authorised()
        if how is None:
            return
        path = urlsplit(self.path).path
        if how == "url":        # set the cookie and drop the token from the address bar
            self._send(303, b"", headers=(("Location", path if path.startswith("/") else "/"),
                                          ("Set-Cookie", auth.set_cookie(self.app.token))))
            return
        if path in ("/", "/index.html"):
            self._static("index.html")
        elif path.startswith("/static/"):
            self._static(path[len("/static/"):])
        elif path == "/events":
            self._events()
        elif path == "/api/state":
            _, text = self.app.snapshot()
            self._send(200, text.encode(), "application/json")
        else:
            self._send(404, b"not found\n")

    do_HEAD = do_GET

    def do_POST(self) -> None:
        if self._authorised() is None:
            return
        if urlsplit(self.path).path != "/api/action":
            self._send(404, b"not found\n")
            return
        origin = self.headers.get("Origin")
        if origin is not None and origin != f"http://{self.headers.get('Host', '')}":
            self._refuse(403, f"cross-origin action from {origin[:80]}")
            return
        if (self.headers.get("Content-Type") or "").split(";")[0].strip() != "application/json":
            self._refuse(415, "actions must be application/json")
            return
        try:
            length = int(self.headers.get("Content-Length") or "-1")
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_ACTION_BYTES:
            self._refuse(413, f"action body of {length} bytes")
            return
        body = self.rfile.read(length)
        try:
            action = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            self._refuse(400, "action is not JSON")
            return
        result = self.app.act(action)
        if not result.ok:
            self.app.log(f"hive: action refused: {result.message}")
        self._json(200 if result.ok else 422, result.to_json())

    def do_PUT(self) -> None:
        if self._authorised() is not None:
            self._send(405, b"")

    do_DELETE = do_PATCH = do_OPTIONS = do_PUT

    # -- content -----------------------------------------------------------------------------------
    def _static(self, name: str) -> None:
        file = self.app.static.get(name)
        if file is None:
            self._send(404, b"not found\n")
            return
        ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if ctype.startswith("text/") or ctype.endswith("javascript"):
            ctype += "; charset=utf-8"
        self._send(200, file.read_bytes(), ctype)

    def _events(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Connection", "close")
        for name, value in SECURITY_HEADERS:
            self.send_header(name, value)
        self.end_headers()
        self.close_connection = True
        hub = self.app.hub
        try:
            version, text = self.app.snapshot()
            self.wfile.write(sse.encode(text, "snapshot", str(version)))
            self.wfile.flush()
            quiet_since = time.monotonic()
            while not self.app.stopping.is_set() and not hub.closed:
                deltas = hub.since(version, 1.0)
                if deltas is None:             # this reader fell behind: start over
                    version, text = self.app.snapshot()
                    self.wfile.write(sse.encode(text, "snapshot", str(version)))
                elif deltas:
                    self.wfile.write(b"".join(sse.encode(t, "delta", str(v)) for v, t in deltas))
                    version = deltas[-1][0]
                elif time.monotonic() - quiet_since > KEEPALIVE_S:
                    self.wfile.write(sse.comment("keep-alive"))
                else:
                    continue
                self.wfile.flush()
                quiet_since = time.monotonic()
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError):
            return


class HiveHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def handle_error(self, request, client_address) -> None:
        """One failed request is a log line, never the end of the server (nor a traceback on stderr)."""
        import sys

        exc = sys.exc_info()[1]
        app: HiveApp = self.RequestHandlerClass.app     # type: ignore[attr-defined]
        app.log(f"hive: request from {client_address[0]} failed: {type(exc).__name__}: {exc}")


def make_server(app: HiveApp, host: str, port: int) -> HiveHTTPServer:
    handler = type("BoundHiveHandler", (HiveHandler,), {"app": app})
    return HiveHTTPServer((host, port), handler)
