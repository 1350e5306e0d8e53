"""One console session: the CONNECTED → AUTHENTICATED → ATTACHED state machine and the verb dispatcher.

Why transport-free: SPEC §10.1 says serial and TCP share one parser and one dispatcher, so this class
takes edited lines and returns the lines to send (:class:`Reply`); ``serial.py`` and ``tcp.py`` only
move bytes. Every file verb goes through the session's own NineDoor console-bridge session via the 9P
client, so access control is NineDoor's (§5.3) and the console never re-implements the namespace.

Usage::

    s = ConsoleSession(ctx, transport="tcp", origin_key="127.0.0.1", origin_label="tcp:127.0.0.1",
                       conn_id="7", audit=audit)
    s.authenticate()                    # TCP only, after `OK AUTH` (serial starts AUTHENTICATED)
    reply = s.handle_line("attach queen")   # Reply(lines=("OK ATTACH role=queen",), close=False)
    s.close()                           # releases the NineDoor session
"""
from __future__ import annotations

import binascii  # base64's codec itself; the base64 module costs an import on the boot path
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from nine_door import errors as E
from nine_door.errors import NineError
from root_task.console import acks
from root_task.console.context import Bridge, ConsoleContext, TicketRefusal, canonical_role
from root_task.console.parser import Command, ParseError, parse, validate_path

O_RDONLY, O_WRONLY, O_APPEND = 0, 1, 0x400
U64_MAX = 0xFFFFFFFFFFFFFFFF
MAX_STREAM_LINES = 256
SPLIT_BYTES = 4096
B64_CHUNK = 48
SUMMARY_LIMIT = 128
MAX_READ_BYTES = 2 * 1024 * 1024  # /log/queen.log retains 1 MiB; this bounds any single read

HELP_LINES = (
    "Cohesix console verbs:",
    "help | bi | caps | mem | ping | test | netstats | quit",
    "log | tail <path> | cat <path> | ls <path> | echo <path> <payload>",
    "attach <role> [ticket] | spawn <json> | kill <worker-id>",
)
ALWAYS_VERBS = ("help", "bi", "caps", "mem", "ping", "test", "netstats", "quit")
ATTACHED_VERBS = ("log", "tail", "cat", "ls", "echo")
QUEEN_VERBS = ("spawn", "kill")
NEEDS_ATTACH = frozenset(ATTACHED_VERBS + QUEEN_VERBS)
# Refusal details that count as attach failures for throttling (§10.7).
FAILURE_DETAILS = frozenset({"denied", "invalid-claims", "unknown-worker", "expired", "invalid-role"})


class State(Enum):
    CONNECTED = "connected"
    AUTHENTICATED = "authenticated"
    ATTACHED = "attached"


@dataclass(frozen=True)
class Reply:
    """Lines to send, in order (each one frame on TCP, one line on serial), and whether to close."""

    lines: tuple[str, ...]
    close: bool = False


class _VerbFailed(Exception):
    """Internal: abort a verb with an already-rendered ERR line."""

    def __init__(self, line: str) -> None:
        super().__init__(line)
        self.line = line


class ConsoleSession:
    """See module docstring. Not thread-safe: driven from the event pump only."""

    def __init__(self, ctx: ConsoleContext, *, transport: str, origin_key: str, origin_label: str,
                 conn_id: str, audit: Callable[[str], None] | None = None) -> None:
        if transport not in ("serial", "tcp"):
            raise ValueError(f"unknown transport {transport!r}")
        self.ctx = ctx
        self.transport = transport
        self.origin_key = origin_key
        self.origin_label = origin_label
        self.conn_id = conn_id
        self._audit = audit if audit is not None else ctx.audit
        self.state = State.CONNECTED if transport == "tcp" else State.AUTHENTICATED
        self.role: str | None = None
        self.subject: str | None = None
        self._bridge: Bridge | None = None
        self._root_fid: int | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    def authenticate(self) -> None:
        if self.state is State.CONNECTED:
            self.state = State.AUTHENTICATED

    def detach(self) -> None:
        """Release the NineDoor session and return to AUTHENTICATED."""
        if self._bridge is not None:
            self._bridge.close()
        self._bridge = None
        self._root_fid = None
        self.role = None
        self.subject = None
        if self.state is State.ATTACHED:
            self.state = State.AUTHENTICATED

    def close(self) -> None:
        self.detach()

    @property
    def session_id(self) -> str | None:
        return self._bridge.session_id if self._bridge is not None else None

    def verbs_allowed(self) -> tuple[str, ...]:
        if self.state is State.CONNECTED:
            return ()
        if self.state is State.AUTHENTICATED:
            return ALWAYS_VERBS + ("attach",)
        verbs = ALWAYS_VERBS + ATTACHED_VERBS
        return verbs + QUEEN_VERBS if self.role == "queen" else verbs

    # -- input ---------------------------------------------------------------------------------
    def handle_too_long(self) -> Reply:
        return Reply((acks.parse_error("line-too-long"),))

    def handle_line(self, line: str) -> Reply:
        """Dispatch one edited line. Never raises for bad input or NineDoor refusals."""
        if self.state is State.CONNECTED:
            raise RuntimeError("handle_line before AUTH")
        parsed = parse(line, self.ctx.config.limits)
        if isinstance(parsed, ParseError):
            return Reply((acks.parse_error(parsed.detail),))
        verb = parsed.verb
        if verb in NEEDS_ATTACH and self.state is not State.ATTACHED:
            return Reply((acks.err(verb, "policy", "unauthenticated"),))
        if verb in QUEEN_VERBS and self.role != "queen":
            return Reply((acks.err(verb, "policy", "denied"),))
        handler = getattr(self, f"_verb_{verb}")
        try:
            return handler(parsed)
        except _VerbFailed as failed:
            return Reply((failed.line,))
        except NineError as exc:  # not mapped closer to the call site
            return Reply((self._errno_line(verb, exc.errno),))
        except Exception:  # noqa: BLE001 - a broken bridge must not take the event loop down
            self.detach()
            return Reply((acks.err(verb, "cut", "closed", msg="console bridge failed"),))

    # -- simple verbs --------------------------------------------------------------------------
    def _verb_help(self, _: Command) -> Reply:
        return self._stream(acks.ok("HELP"), list(HELP_LINES))

    def _verb_ping(self, _: Command) -> Reply:
        return Reply(("PONG", acks.ok("PING", "reply=pong")))

    def _verb_test(self, _: Command) -> Reply:
        return Reply((acks.err("TEST", "policy", "host-only"),))

    def _verb_quit(self, _: Command) -> Reply:
        self.detach()
        return Reply((acks.ok("QUIT"),), close=self.transport == "tcp")

    def _verb_caps(self, _: Command) -> Reply:
        lines = [f"role={self.role or 'none'}", f"session={self.session_id or 'none'}",
                 "verbs=" + " ".join(self.verbs_allowed())]
        return self._stream(acks.ok("CAPS"), lines)

    def _verb_mem(self, _: Command) -> Reply:
        values = self.ctx.mem_counters()
        keys = ("workers", "sessions", "telemetry_bytes", "telemetry_capacity", "cas_bytes",
                "dropped_input_bytes")
        return self._stream(acks.ok("MEM"), [f"{k}={values.get(k, 0)}" for k in keys])

    def _verb_netstats(self, _: Command) -> Reply:
        n = self.ctx.net
        lines = [f"tcp_sessions={n.tcp_sessions}", f"tcp_total={n.tcp_total}", f"frames_rx={n.frames_rx}",
                 f"frames_tx={n.frames_tx}", f"auth_failures={n.auth_failures}"]
        return self._stream(acks.ok("NETSTATS"), lines)

    def _verb_bi(self, cmd: Command) -> Reply:
        """Boot info is read through NineDoor's /proc/boot (a transient queen bridge when unattached)."""
        if self._bridge is not None:
            data = self._read_file(cmd.verb, "/proc/boot", ["proc", "boot"], self._bridge, self._root_fid)
        else:
            bridge = self.ctx.open_bridge(self.origin_label)
            try:
                root = bridge.client.attach(uname="queen", aname="")
                data = self._read_file(cmd.verb, "/proc/boot", ["proc", "boot"], bridge, root)
            finally:
                bridge.close()
        return self._stream(acks.ok("BOOTINFO"), content_lines(data))

    # -- attach --------------------------------------------------------------------------------
    def _verb_attach(self, cmd: Command) -> Reply:
        if self.state is State.ATTACHED:
            return Reply((acks.err("ATTACH", "busy", "already-attached"),))
        now = self.ctx.throttle_now_ms()
        verdict = self.ctx.throttle.check(self.origin_key, now)
        if not verdict.ok:
            self.ctx.log_append(f"console throttled origin={self.origin_label} detail={verdict.detail} "
                                f"delay_ms={verdict.delay_ms}")
            return Reply((acks.err("ATTACH", "quota", verdict.detail, delay_ms=verdict.delay_ms),))
        word = cmd.args[0]
        ticket = cmd.args[1] if len(cmd.args) > 1 else None
        role = canonical_role(word)
        if role is None:
            return self._attach_refused(word.lower(), "invalid-role", now)
        if not self.ctx.config.role_enabled.get(role, True):
            return self._attach_refused(role, "denied", now)
        subject: str | None = None
        if ticket is not None:
            try:
                subject = self.ctx.validate_ticket(role, ticket).subject
            except TicketRefusal as refusal:
                return self._attach_refused(role, refusal.detail, now)
        elif role != "queen":
            return self._attach_refused(role, "invalid-claims", now)   # worker roles need a ticket
        if role != "queen" and not subject:
            return self._attach_refused(role, "invalid-claims", now)
        uname = role if role == "queen" else f"{role}:{subject}"
        bridge = self.ctx.open_bridge(self.origin_label)
        try:
            root = bridge.client.attach(uname=uname, aname=ticket or "")
        except NineError as exc:
            bridge.close()
            if exc.errno in (E.ENOENT, E.EINVAL):
                return self._attach_refused(role, "unknown-worker", now)
            if exc.errno == E.EACCES:
                return self._attach_refused(role, "denied", now)
            if exc.errno == E.EAGAIN:   # NineDoor's own view of the shared throttle
                return Reply((acks.err("ATTACH", "quota", "throttled"),))
            return Reply((self._errno_line("attach", exc.errno),))
        except Exception:
            bridge.close()
            raise
        self._bridge, self._root_fid = bridge, root
        self.role, self.subject = role, subject
        self.state = State.ATTACHED
        self.ctx.throttle.record_success(self.origin_key)
        self._audit(f"audit console.attach conn_id={self.conn_id} role={role}")
        return Reply((acks.ok("ATTACH", f"role={role}"),))

    def _attach_refused(self, role: str, detail: str, now: float) -> Reply:
        if detail in FAILURE_DETAILS:
            self.ctx.throttle.record_failure(self.origin_key, now)
        self.ctx.log_append(f"console attach denied origin={self.origin_label} role={role} detail={detail}")
        reason = "quota" if detail == "expired" else "policy"
        return Reply((acks.err("ATTACH", reason, detail),))

    # -- file verbs ----------------------------------------------------------------------------
    def _verb_log(self, cmd: Command) -> Reply:
        data = self._read_file(cmd.verb, None, ["log", "queen.log"])
        return self._stream(acks.ok("LOG"), content_lines(data))

    def _verb_cat(self, cmd: Command) -> Reply:
        path = cmd.args[0]
        data = self._read_file(cmd.verb, path, self._names(cmd.verb, path))
        lines = content_lines(data)
        details = f"path={path} data="
        summary = cat_summary(data, SUMMARY_LIMIT - len(details))
        return self._stream(acks.ok("CAT", details + summary), lines[:MAX_STREAM_LINES])

    def _verb_tail(self, cmd: Command) -> Reply:
        path = cmd.args[0]
        data = self._read_file(cmd.verb, path, self._names(cmd.verb, path))
        return self._stream(acks.ok("TAIL", f"path={path}"), content_lines(data)[-MAX_STREAM_LINES:])

    def _verb_ls(self, cmd: Command) -> Reply:
        path = cmd.args[0]
        names = self._names(cmd.verb, path)
        client = self._client()
        fid = self._walk(cmd.verb, path, names)
        try:
            self._call(cmd.verb, path, client.lopen, fid, O_RDONLY)
            entries = self._call(cmd.verb, path, client.readdir, fid)
        finally:
            self._clunk(fid)
        listed = [_entry_name(e) for e in entries]
        listed = [n for n in listed if n not in (".", "..")]
        return self._stream(acks.ok("LS", f"path={path} entries={len(listed)}"), listed)

    def _verb_echo(self, cmd: Command) -> Reply:
        path = cmd.args[0]
        names = self._names(cmd.verb, path)
        payload = cmd.rest or ""
        offset = 0
        cas_root = self.ctx.config.cas_root
        if cas_root and (path == cas_root or path.startswith(cas_root + "/")) and payload.startswith("b64:"):
            try:
                data = binascii.a2b_base64(payload[4:], strict_mode=True)
            except ValueError:
                return Reply((acks.err("ECHO", "policy", "invalid-payload", path=path, error="EINVAL",
                                       msg="invalid argument"),))
            offset = U64_MAX
        else:
            data = (payload + "\n").encode("utf-8")
        written = self._append(cmd.verb, path, names, data, offset)
        if written < len(data):
            return Reply((acks.err("ECHO", "quota", "buffer-full", path=path),))
        count = len(data) if offset == U64_MAX else len(payload.encode("utf-8"))
        return Reply((acks.ok("ECHO", f"path={path} bytes={count}"),))

    def _verb_spawn(self, cmd: Command) -> Reply:
        body = cmd.rest or ""
        data = (body + "\n").encode("utf-8")
        written = self._append(cmd.verb, None, ["queen", "ctl"], data, 0)
        if written < len(data):
            return Reply((acks.err("SPAWN", "quota", "buffer-full"),))
        return Reply((acks.ok("SPAWN", f"payload={body}"),))

    def _verb_kill(self, cmd: Command) -> Reply:
        worker_id = cmd.args[0]
        line = '{"kill":"' + worker_id.replace("\\", "\\\\").replace('"', '\\"') + '"}\n'
        self._append(cmd.verb, None, ["queen", "ctl"], line.encode("utf-8"), 0)
        return Reply((acks.ok("KILL", f"id={worker_id}"),))

    # -- NineDoor helpers ----------------------------------------------------------------------
    def _client(self):
        assert self._bridge is not None
        return self._bridge.client

    def _names(self, verb: str, path: str) -> list[str]:
        names = validate_path(path, self.ctx.config.walk_depth)
        if names is None:
            raise _VerbFailed(acks.invalid_path(verb, path))
        return names

    def _errno_line(self, verb: str, errno: int, path: str | None = None, on_path: bool = False) -> str:
        if errno == E.ESTALE:
            self.detach()   # §10.6: revoked → the console session returns to AUTHENTICATED
        return acks.errno_refusal(verb, errno, path=path, on_path=on_path)

    def _call(self, verb: str, path: str | None, fn, *args, on_path: bool = False):
        try:
            return fn(*args)
        except NineError as exc:
            raise _VerbFailed(self._errno_line(verb, exc.errno, path, on_path)) from exc

    def _walk(self, verb: str, path: str | None, names: list[str], bridge: Bridge | None = None,
              root: int | None = None) -> int:
        bridge = bridge or self._bridge
        root = self._root_fid if root is None else root
        return self._call(verb, path, bridge.client.walk, root, names, on_path=True)

    def _clunk(self, fid: int, bridge: Bridge | None = None) -> None:
        bridge = bridge or self._bridge
        if bridge is None:
            return
        try:
            bridge.client.clunk(fid)
        except NineError:
            pass

    def _read_file(self, verb: str, path: str | None, names: list[str], bridge: Bridge | None = None,
                   root: int | None = None) -> bytes:
        bridge = bridge or self._bridge
        fid = self._walk(verb, path, names, bridge, root)
        try:
            self._call(verb, path, bridge.client.lopen, fid, O_RDONLY)
            chunk = max(1, self.ctx.config.msize - 24)
            out = bytearray()
            while len(out) < MAX_READ_BYTES:
                data = self._call(verb, path, bridge.client.read, fid, len(out), chunk)
                if not data:
                    break
                out += data
            return bytes(out)
        finally:
            self._clunk(fid, bridge)

    def _append(self, verb: str, path: str | None, names: list[str], data: bytes, offset: int) -> int:
        client = self._client()
        fid = self._walk(verb, path, names)
        try:
            self._call(verb, path, client.lopen, fid, O_WRONLY | O_APPEND)
            return self._call(verb, path, client.write, fid, offset, data)
        finally:
            self._clunk(fid)

    @staticmethod
    def _stream(ack: str, lines: list[str]) -> Reply:
        return Reply((ack, *split_lines(lines), "END"))


# -- content helpers (pure; unit and property tested) ------------------------------------------
def _entry_name(entry) -> str:
    name = getattr(entry, "name", entry)
    return name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)


def is_text(data: bytes) -> bool:
    """Text = valid UTF-8 without control bytes other than ``\\t``, ``\\n``, ``\\r``."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return not any((ord(c) < 0x20 and c not in "\t\n\r") or c == "\x7f" for c in text)


def content_lines(data: bytes) -> list[str]:
    """File content → stream lines: text split at ``\\n`` (``\\r`` removed), or ``b64:`` lines of 48 bytes."""
    if not data:
        return []
    if not is_text(data):
        return ["b64:" + binascii.b2a_base64(data[i:i + B64_CHUNK], newline=False).decode("ascii")
                for i in range(0, len(data), B64_CHUNK)]
    text = data.decode("utf-8").replace("\r", "")
    lines = text.split("\n")
    if text.endswith("\n"):
        lines.pop()
    return lines


def split_utf8(line: str, limit: int = SPLIT_BYTES) -> list[str]:
    """Split at ``limit``-byte boundaries without cutting a UTF-8 sequence."""
    raw = line.encode("utf-8")
    if len(raw) <= limit:
        return [line]
    parts: list[str] = []
    start = 0
    while start < len(raw):
        end = min(start + limit, len(raw))
        while end < len(raw) and (raw[end] & 0xC0) == 0x80:
            end -= 1
        parts.append(raw[start:end].decode("utf-8"))
        start = end
    return parts


def split_lines(lines: list[str]) -> list[str]:
    out: list[str] = []
    for line in lines:
        out.extend(split_utf8(line))
    return out


def cat_summary(data: bytes, budget: int) -> str:
    """§10.5 CAT summary: the longest run of the last non-empty lines (oldest first, ``|``-joined)
    that fits ``budget`` characters; the last line alone is truncated to fit; binary → ``b64:…``."""
    if budget <= 0 or not data:
        return ""
    if not is_text(data):
        first = binascii.b2a_base64(data[:B64_CHUNK], newline=False).decode("ascii")
        return ("b64:" + first)[:budget]
    lines = [line for line in content_lines(data) if line.strip()]
    if not lines:
        return ""
    picked: list[str] = []
    used = 0
    for line in reversed(lines):
        cost = len(line) + (1 if picked else 0)
        if used + cost > budget:
            break
        picked.append(line)
        used += cost
    if not picked:
        return lines[-1][:budget]
    return "|".join(reversed(picked))
