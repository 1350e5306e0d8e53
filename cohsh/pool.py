"""Session pools (SPEC §11.7): a set of 9P sessions to one Cohesix system, leased one operation at a time.

``from cohsh.pool import Pool`` is the library; ``pool bench`` (cohsh/shell.py) and ``.coh`` scripts use
the same object. docs/cohsh.md "Session pools" is the user-facing description, with an example.

What a pool is:

* ``control`` control sessions and ``telemetry`` telemetry sessions (policy defaults 2 and 4, each
  1..16), each its own TCP connection to the 9P listener, each doing Tversion (msize = the policy's)
  and Tattach with the caller's identity and ticket. The listener requires a ticket on every attach
  (§3.14), so a ticket is minted from the configured secret (§4.7 resolution) when none is given; with
  neither, the pool fails with ``ticket required``.
* Server facts come from the server: the first control session reads ``/proc/boot`` for
  ``tags_per_session``, ``batch_frames`` and the ring ``frame_schema``.
* A session is **leased** for one operation and returned only once every reply it is owed has
  arrived (drained); a session that cannot be drained (its transport failed mid-operation) is closed
  and rebuilt on its next lease. No free session within 1 s → ``pool exhausted`` (EBUSY).
* Control sessions (``read``, ``write``, ``tail``) issue one request at a time, in order.
* Telemetry sessions carry appends. Appends to a log (``/log/…``) are pipelined: one record per
  Twrite, up to ``tags_per_session`` in flight, and — when ``batch_frames`` — packed by the batched
  Twrite builder, ``batch`` consecutive Twrite frames (distinct tags, total ≤ msize) in one transport
  write. Appends to a telemetry ring, a node that may answer short (§7.2), keep one Twrite in flight
  per fid and pack up to ``batch`` whole records into it: §3.13 rule 3 ("send nothing else on that fid
  until the tail is accepted") then holds by construction, so a short write can never let a later
  record overtake an earlier one. Other targets (ctl sinks, cursors) are control writes: one record
  per Twrite, one at a time, on a control session. Records the server would refuse part-way (larger
  than a Twrite or the ring, text that is not UTF-8) are refused before anything is sent.
* Short writes are retried per §3.13 with ``retry.short_write.{max_retries,backoff_ms}``: only the tail
  is resent, after ``backoff_ms × 2^k`` where ``k`` counts the retries since the last progress; after
  ``max_retries`` retries without progress the append fails with EAGAIN (``buffer-full``).
* Recovery: a session failing with ESTALE, EBADF or a transport error is discarded and rebuilt (a fresh
  connection, Tversion, Tattach). For a ``cbor_v1`` ring every frame not yet acknowledged is resent
  (the server acknowledges a frame whose ``seq`` is ≤ the writer's last accepted ``seq`` without storing
  it, §7.1, so the resend is idempotent). For text targets (logs, ``text`` rings) a record whose reply
  never came may or may not be stored, so it is never resent: the append fails with ``reason=cut`` and
  says how many records were acknowledged. Nothing is reported as done that was not acknowledged.

Frame seqs: a text record appended to a ``cbor_v1`` ring is wrapped in a Frame v1 (kind 0, ``ts`` =
now in ms, payload = the record without its final ``\\n``) whose ``seq`` is the current time in
microseconds since the Unix epoch, strictly increasing within the pool. The server keeps one last
``seq`` per writer identity, and a client cannot read it, so a time-based seq is what lets a new pool
(or a new process) write after an earlier one without its frames being taken for duplicates. Callers
who pass :class:`~nine_door.frame_v1.Frame` objects choose their own seqs.
"""
from __future__ import annotations

import os
import re
import select
import socket
import struct
import threading
import time
import tomllib
from collections import OrderedDict, deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import accumulate
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping, Sequence

from nine_door import messages as m
from nine_door.client import Client, ProtocolError, ShortWritePolicy, SocketStreamTransport
from nine_door.errors import (EACCES, EAGAIN, EBADF, EBUSY, EINVAL, EISDIR, EMSGSIZE, ENOENT, ENOTDIR,
                              EPERM, ERANGE, ERRNO_DESCRIPTIONS, ERRNO_NAMES, ESTALE, DecodeError,
                              NineError)
from nine_door.framing import FramingError
from nine_door.vocabulary import HOST_NINEP_PORT, MAX_MSIZE, WORKER_ROLES, canonical_role

__all__ = ["Pool", "PoolError", "PoolPolicy", "PoolOptions", "AppendResult", "Tail", "ServerInfo",
           "POOL_MIN", "POOL_MAX", "LEASE_TIMEOUT_S"]

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = "configs/root_task.toml"

POOL_MIN, POOL_MAX = 1, 16          # SPEC §14.2: client_policies.cohsh.pool.{control,telemetry}
LEASE_TIMEOUT_S = 1.0               # §11.7: no free session within 1 s → pool exhausted
CONNECT_TIMEOUT_S = 2.0
IO_TIMEOUT_S = 10.0                 # a reply that takes longer is treated as a lost transport
DEFAULT_BATCH = 4                   # §11.7: pool bench's default k
MAX_CACHED_FIDS = 16                # open append fids kept per session (LRU)

CONTROL, TELEMETRY = "control", "telemetry"
KIND_RING, KIND_LOG, KIND_OTHER = "ring", "log", "other"
SCHEMA_TEXT, SCHEMA_CBOR = "text", "cbor_v1"

_RING_PATH = re.compile(r"/(?:worker/[^/]+|shard/[^/]+/worker/[^/]+)/telemetry")
_BOOT_9P = re.compile(r"secure9p msize=(\d+) walk_depth=\d+ tags_per_session=(\d+) batch_frames=(true|false)")
_BOOT_TELEMETRY = re.compile(r"telemetry ring_bytes_per_worker=(\d+) frame_schema=(\S+)")
_BOOT_MANIFEST = re.compile(r"manifest\.sha256=([0-9a-f]+)")
_CURSOR = re.compile(r"cursor=(\d+) oldest=(\d+) next=(\d+)")

_TWRITE = struct.Struct("<IBHIQI")   # size type tag fid offset count (23 bytes, data follows)
_REPLY4 = struct.Struct("<IBHI")     # size type tag u32: Rwrite count / Rlerror ecode (11 bytes)
_T_WRITE, _R_WRITE, _R_LERROR = 118, 119, 7

# Failures of the transport itself (as opposed to a refusal, which arrives as Rlerror).
_TRANSPORT_ERRORS = (OSError, ProtocolError, FramingError, DecodeError, EOFError)

_ERRNO_REASON = {
    EACCES: "denied", EPERM: "denied", ENOENT: "invalid-path", ENOTDIR: "invalid-path",
    EISDIR: "invalid-path", EINVAL: "invalid-payload", EMSGSIZE: "too-big", EAGAIN: "buffer-full",
    EBUSY: "busy", ESTALE: "revoked", EBADF: "closed", ERANGE: "stale",
}


def errno_text(errno: int) -> str:
    """``permission denied (EACCES)``."""
    return f"{ERRNO_DESCRIPTIONS.get(errno, 'error')} ({ERRNO_NAMES.get(errno, errno)})"


class PoolError(Exception):
    """A pool operation that did not complete.

    ``reason`` is a token for ``ERR POOL BENCH reason=<token>`` (``policy``, ``unavailable``,
    ``ticket-required``, ``denied``, ``invalid-path``, ``invalid-payload``, ``too-big``, ``busy``,
    ``exhausted``, ``buffer-full``, ``revoked``, ``closed``, ``stale``, ``cut``, ``reordered``);
    ``errno`` the server's errno when one was involved; ``acknowledged`` the records of the failed
    append that the server acknowledged (they are stored; nothing after them is reported as done);
    ``transport`` is true when the 9P endpoint could not be reached or a session was lost with records
    of unknown fate (a one-shot cohsh exits 3, SPEC §11.3).
    """

    def __init__(self, reason: str, message: str, *, errno: int | None = None, acknowledged: int = 0,
                 transport: bool = False) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.errno = errno
        self.acknowledged = acknowledged
        self.transport = transport

    def line(self, verb: str = "POOL BENCH") -> str:
        return f"ERR {verb} reason={self.reason} msg={self.message}"


def _refusal(exc: NineError, what: str, acknowledged: int = 0) -> PoolError:
    reason = _ERRNO_REASON.get(exc.errno, "error")
    return PoolError(reason, f"{what}: {errno_text(exc.errno)}", errno=exc.errno, acknowledged=acknowledged)


class _Lost(Exception):
    """The session's transport failed (or answered ESTALE/EBADF). ``unknown``: records sent whose fate
    is unknown (no reply came)."""

    def __init__(self, reason: str, unknown: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.unknown = unknown


# -- policy ---------------------------------------------------------------------------------------
def _check_range(where: str, key: str, value: object, low: int, high: int) -> int:
    if type(value) is not int:
        raise PoolError("policy", f"{where}{key} = {value!r} is not an integer")
    if not low <= value <= high:
        raise PoolError("policy", f"{where}{key} = {value} is outside {low}..{high}")
    return value


@dataclass(frozen=True)
class PoolPolicy:
    """The client policy (``cohsh_policy.toml``, SPEC §15.2); validated on construction.

    ``msize`` is what Tversion asks for; ``tags_per_session`` and ``batch_frames`` are only fallbacks
    for a server whose ``/proc/boot`` does not state them (the server's values win).
    """

    control: int = 2
    telemetry: int = 4
    max_retries: int = 3
    backoff_ms: int = 5
    msize: int = MAX_MSIZE
    tags_per_session: int = 32
    batch_frames: bool = True
    manifest_sha256: str | None = None
    source: str = "policy"          # how errors name the policy (the file path when loaded)

    def __post_init__(self) -> None:
        where = f"{self.source}: "
        _check_range(where, "pool.control", self.control, POOL_MIN, POOL_MAX)
        _check_range(where, "pool.telemetry", self.telemetry, POOL_MIN, POOL_MAX)
        _check_range(where, "retry.short_write.max_retries", self.max_retries, 0, 16)
        _check_range(where, "retry.short_write.backoff_ms", self.backoff_ms, 1, 10000)
        _check_range(where, "secure9p.msize", self.msize, 512, MAX_MSIZE)
        _check_range(where, "secure9p.tags_per_session", self.tags_per_session, 1, 1024)
        if type(self.batch_frames) is not bool:
            raise PoolError("policy", f"{where}secure9p.batch_frames = {self.batch_frames!r} is not a boolean")

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "PoolPolicy":
        """Load a generated ``cohsh_policy.toml``; a missing table or key keeps its default."""
        source = str(path)
        try:
            with open(path, "rb") as fh:
                doc = tomllib.load(fh)
        except OSError as exc:
            raise PoolError("policy", f"cannot read policy {source}: {exc.strerror or exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise PoolError("policy", f"policy {source} is not valid TOML: {exc}") from None

        def table(name: str) -> dict:
            node: object = doc
            for part in name.split("."):
                node = node.get(part, {}) if isinstance(node, dict) else None
            if not isinstance(node, dict):
                raise PoolError("policy", f"{source}: [{name}] is not a table")
            return node

        pool, retry, s9p, meta = table("pool"), table("retry.short_write"), table("secure9p"), table("meta")
        defaults = cls()
        return cls(
            control=pool.get("control", defaults.control),
            telemetry=pool.get("telemetry", defaults.telemetry),
            max_retries=retry.get("max_retries", defaults.max_retries),
            backoff_ms=retry.get("backoff_ms", defaults.backoff_ms),
            msize=s9p.get("msize", defaults.msize),
            tags_per_session=s9p.get("tags_per_session", defaults.tags_per_session),
            batch_frames=s9p.get("batch_frames", defaults.batch_frames),
            manifest_sha256=meta.get("manifest_sha256") if isinstance(meta.get("manifest_sha256"), str) else None,
            source=source,
        )

    def with_sizes(self, control: int | None, telemetry: int | None) -> "PoolPolicy":
        if control is None and telemetry is None:
            return self
        return PoolPolicy(control if control is not None else self.control,
                          telemetry if telemetry is not None else self.telemetry,
                          self.max_retries, self.backoff_ms, self.msize, self.tags_per_session,
                          self.batch_frames, self.manifest_sha256, "pool")


@dataclass(frozen=True)
class ServerInfo:
    """What the pool learnt from ``/proc/boot`` (SPEC §5.4)."""

    msize: int
    tags_per_session: int
    batch_frames: bool
    frame_schema: str
    manifest_sha256: str | None
    ring_bytes: int = 65536           # telemetry.ring_bytes_per_worker (before 1.2: 65536, §7.1)

    @classmethod
    def parse(cls, boot: str, policy: PoolPolicy) -> "ServerInfo":
        s9p = _BOOT_9P.search(boot)
        telemetry = _BOOT_TELEMETRY.search(boot)
        manifest = _BOOT_MANIFEST.search(boot)
        return cls(
            msize=int(s9p.group(1)) if s9p else policy.msize,
            tags_per_session=max(1, int(s9p.group(2))) if s9p else policy.tags_per_session,
            batch_frames=(s9p.group(3) == "true") if s9p else policy.batch_frames,
            frame_schema=telemetry.group(2) if telemetry else SCHEMA_TEXT,   # before 1.2 rings are text
            manifest_sha256=manifest.group(1) if manifest else None,
            ring_bytes=int(telemetry.group(1)) if telemetry else 65536,
        )


# -- identity and tickets ---------------------------------------------------------------------------
def _config_path(path: str) -> str:
    """A relative IR path that does not exist from the current directory is tried from the repository."""
    candidate = Path(path)
    if not candidate.is_absolute() and not candidate.exists() and (REPO_ROOT / candidate).exists():
        return str(REPO_ROOT / candidate)
    return path


def resolve_ticket(role: str, subject: str | None, ticket: str | None, *, secret: str | None = None,
                   ticket_config: str | None = None, env: Mapping[str, str] | None = None,
                   now_ms: Callable[[], int] = lambda: int(time.time() * 1000)) -> str:
    """The ticket a pool attaches with: ``ticket`` when given, else one minted from the secret found as
    ``cohsh --mint-ticket`` finds it (§4.7: ``secret``, ``COHSH_TICKET_SECRET``, the role's entry in
    ``ticket_config`` / ``COHSH_TICKET_CONFIG`` / ``configs/root_task.toml``). Else ``ticket required``."""
    if ticket:
        return ticket
    from cohsh.mint import secret_from_config
    from nine_door.tickets import mint

    env = os.environ if env is None else env
    found = secret or env.get("COHSH_TICKET_SECRET")
    if not found:
        config = ticket_config or env.get("COHSH_TICKET_CONFIG") or DEFAULT_CONFIG
        found = secret_from_config(_config_path(config), role, env)
    if not found:
        raise PoolError("ticket-required", f"ticket required: no ticket given and no ticket secret for role {role}")
    if role in WORKER_ROLES and not subject:
        raise PoolError("ticket-required", f"ticket required: role {role} needs a ticket or a subject to mint one")
    return mint(found, role, subject=subject, issued_at_ms=now_ms())


def attach_names(role: str, subject: str | None, ticket: str) -> tuple[str, str]:
    """``(uname, aname)`` of §4.2: ``queen``; ``<role>:<id>`` when the worker id is known; else an empty
    uname, so the identity comes from the ticket."""
    if role == "queen":
        return "queen", ticket
    return (f"{role}:{subject}" if subject else ""), ticket


def classify(path: str) -> str:
    """``ring`` (a telemetry ring: may answer short), ``log`` (``/log/…``: all-or-nothing appends, never
    short) or ``other``."""
    if _RING_PATH.fullmatch(path):
        return KIND_RING
    if path.startswith("/log/"):
        return KIND_LOG
    return KIND_OTHER


# -- results ---------------------------------------------------------------------------------------
@dataclass
class AppendResult:
    """What ``append_many`` did: ``records`` acknowledged (all of them), ``twrites`` sent, ``short_writes``
    (Rwrite count < requested), ``retries`` (Twrites resent: short-write tails, EAGAIN, and resends
    after a rebuild), ``recoveries`` (sessions rebuilt), ``resent`` (records resent after a rebuild)."""

    records: int = 0
    twrites: int = 0
    short_writes: int = 0
    retries: int = 0
    recoveries: int = 0
    resent: int = 0


@dataclass
class Tail:
    """Records read by ``tail``: ``records`` (``Frame`` objects for a ``cbor_v1`` ring, else ``bytes``
    lines with their ``\\n``), ``start`` (ring: the rseq of the first; file: its byte offset),
    ``cursor`` (pass it to the next ``tail`` to continue), ``missed`` (records between the requested
    cursor and what the server still held: consumed or evicted)."""

    records: list
    start: int
    cursor: int
    missed: int = 0


# -- one session ------------------------------------------------------------------------------------
class _Transport(SocketStreamTransport):
    """The stream transport with TCP_QUICKACK before each blocking read: replies to a pipelined burst
    may arrive in several segments, and a delayed ACK would otherwise hold the next one back ~40 ms
    (a server without TCP_NODELAY waits for that ACK; Nagle)."""

    _quickack = getattr(socket, "TCP_QUICKACK", None)
    pipelined = False       # set while several replies are owed; one at a time, the ACK rides on the
                            # next request, and a quick ACK would only add a packet per round trip

    def recv(self) -> bytes:
        pending = self._pending
        while not pending:
            if self.pipelined and self._quickack is not None:
                try:
                    self.sock.setsockopt(socket.IPPROTO_TCP, self._quickack, 1)
                except OSError:
                    self._quickack = None
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError(self.closed_text)
            pending.extend(self._frames(data))
        return pending.popleft()


class _Session:
    """One pooled 9P session. Used by one lease holder at a time; ``connect`` (re)builds it."""

    def __init__(self, pool: "Pool", kind: str, index: int) -> None:
        self.pool = pool
        self.kind = kind
        self.index = index
        self.sock: socket.socket | None = None
        self.client: Client | None = None
        self.transport: _Transport | None = None
        self.fids: OrderedDict[str, int] = OrderedDict()   # path → fid opened for append
        self.owed = 0           # replies not yet received (a session is returned drained, or closed)
        self.builds = 0

    @property
    def alive(self) -> bool:
        return self.client is not None

    @property
    def local_port(self) -> int | None:
        try:
            return self.sock.getsockname()[1] if self.sock is not None else None
        except OSError:
            return None

    def connect(self) -> None:
        pool = self.pool
        self.discard()
        if pool._closed:
            raise PoolError("closed", "the pool is closed")
        where = f"{pool.host}:{pool.port}"
        try:
            sock = socket.create_connection((pool.host, pool.port), timeout=pool.connect_timeout_s)
        except OSError as exc:
            raise PoolError("unavailable", f"cannot reach 9P at {where}: {exc.strerror or exc}",
                            transport=True) from None
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(pool.io_timeout_s)
            transport = _Transport(sock)
            client = Client(transport)
            client.version(pool.policy.msize)
            client.attach(*pool.attach_names)
        except NineError as exc:
            sock.close()
            reason = "throttled" if exc.errno == EAGAIN else "denied"
            raise PoolError(reason, f"attach as {pool.role} refused by {where}: {errno_text(exc.errno)}",
                            errno=exc.errno) from None
        except _TRANSPORT_ERRORS as exc:
            sock.close()
            raise PoolError("unavailable", f"9P handshake with {where} failed: {_describe(exc)}",
                            transport=True) from None
        self.sock, self.transport, self.client = sock, transport, client
        self.owed = 0
        self.builds += 1

    def healthy(self) -> bool:
        """Whether the idle connection still looks usable: not closed by the peer, no stray bytes.
        Checked when a session is leased, so a session the server closed while it sat in the pool is
        rebuilt before anything is sent on it (nothing is then of unknown fate)."""
        sock = self.sock
        if sock is None or self.transport is None or self.transport._pending:
            return False
        try:
            readable, _, _ = select.select([sock], [], [], 0)
        except (OSError, ValueError):
            return False
        return not readable   # readable while idle: closed by the peer, or a byte nobody asked for

    def discard(self) -> None:
        """Close the connection; the next lease rebuilds it."""
        sock, self.sock, self.client, self.transport = self.sock, None, None, None
        self.fids.clear()
        self.owed = 0
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    def open_append(self, path: str) -> int:
        """A fid open ``O_WRONLY|O_APPEND`` on ``path`` (cached). NineError → PoolError; transport → _Lost."""
        fid = self.fids.get(path)
        if fid is not None:
            self.fids.move_to_end(path)
            return fid
        client = self.client
        assert client is not None
        try:
            fid = client.open(path, m.O_WRONLY | m.O_APPEND)
        except NineError as exc:
            if exc.errno in (ESTALE, EBADF):
                raise _Lost(f"open answered {ERRNO_NAMES.get(exc.errno)}") from None
            raise _refusal(exc, f"cannot append to {path}") from None
        except _TRANSPORT_ERRORS as exc:
            raise _Lost(_describe(exc)) from None
        self.fids[path] = fid
        if len(self.fids) > MAX_CACHED_FIDS:
            _, old = self.fids.popitem(last=False)
            try:
                client.clunk(old)
            except NineError:
                pass
            except _TRANSPORT_ERRORS as exc:
                raise _Lost(_describe(exc)) from None
        return fid

    def forget(self, path: str) -> None:
        """Clunk the cached fid of ``path`` (after a refusal: the node may be gone)."""
        fid = self.fids.pop(path, None)
        if fid is not None and self.client is not None:
            try:
                self.client.clunk(fid)
            except NineError:
                pass
            except _TRANSPORT_ERRORS:
                self.discard()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout):
        return "timed out waiting for a reply"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or exc.__class__.__name__


# -- the append engine --------------------------------------------------------------------------------
class _Append:
    """One ``append_many`` on one leased telemetry session.

    ``units[i]`` is the data of one Twrite; ``done[i]`` its bytes committed so far. Units are sent in
    order, at most ``window`` in flight, ``batch`` frames per transport write; ``prefix`` is the number
    of leading units wholly committed, so everything before it is acknowledged.
    """

    def __init__(self, pool: "Pool", session: _Session, path: str, units: list[bytes], counts: list[int],
                 window: int, batch: int, idempotent: bool,
                 progress: Callable[[int, int], None] | None) -> None:
        self.pool = pool
        self.session = session
        self.path = path
        self.units = units
        self.lens = [len(u) for u in units]
        self.cum = list(accumulate(counts))
        self.total = self.cum[-1] if self.cum else 0
        self.done = [0] * len(units)
        self.sent_no = [0] * len(units)   # send order of each unit's latest Twrite (reorder check)
        self.sends = 0
        self.window = max(1, window)
        self.batch = max(1, min(batch, self.window))
        self.msize = pool.msize
        self.idempotent = idempotent
        self.progress = progress
        self.step = max(1, self.total // 200)
        self.next_report = self.step
        self.reported = 0
        self.prefix = 0
        self.next_i = 0
        self.inflight: dict[int, int] = {}
        self.free = list(range(self.window - 1, -1, -1))
        self.stop: tuple[int, str, int] | None = None     # (unit, "short"|"again"|"lost"|"error", errno)
        self.result = AppendResult()
        self.fid = 0
        self.rebuilds_without_progress = 0
        self.progress_mark = 0

    @property
    def acknowledged(self) -> int:
        return self.cum[self.prefix - 1] if self.prefix else 0

    def run(self) -> AppendResult:
        self._open()
        return self.resume()

    def resume(self, lost: _Lost | None = None) -> AppendResult:
        """Drive the append to the end from the current state (a pending ``stop`` is resolved first,
        a pending loss recovered first)."""
        while True:
            try:
                if lost is not None:
                    pending, lost = lost, None
                    self._recover(pending)
                if self.stop is not None:
                    self._resolve_stop()
                self.session.transport.pipelined = self.window > 1
                try:
                    self._pump()
                finally:
                    if self.session.transport is not None:
                        self.session.transport.pipelined = False
                if self.stop is None:
                    break
            except _Lost as exc:
                lost = exc
        self.result.records = self.total
        if self.progress is not None and self.reported < self.total:
            self.progress(self.total, self.total)
        return self.result

    def _open(self) -> None:
        for attempt in range(2):
            try:
                if not self.session.alive:
                    self.session.connect()
                self.fid = self.session.open_append(self.path)
                return
            except _Lost as lost:
                self.session.discard()
                if attempt:
                    raise PoolError("cut", f"9P session lost while opening {self.path}: {lost.reason}",
                                    transport=True) from None

    # -- the pipelined loop -----------------------------------------------------------------------
    def _pump(self) -> None:
        session = self.session
        sock = session.sock
        recv = session.transport.recv
        pack = _TWRITE.pack
        unpack = _REPLY4.unpack_from
        units, lens, done = self.units, self.lens, self.done
        inflight, free = self.inflight, self.free
        n = len(units)
        fid, batch, msize = self.fid, self.batch, self.msize
        result = self.result
        while True:
            # Send whole batches while the window has room for one (the last may be smaller).
            while self.stop is None and self.next_i < n:
                i = self.next_i
                while i < n and done[i] == lens[i]:       # already committed (after a rebuild)
                    i += 1
                self.next_i = i
                if i >= n or len(free) < min(batch, n - i):
                    break
                parts: list[bytes] = []
                size = frames = 0
                while i < n and free and frames < batch:
                    if done[i] == lens[i]:
                        i += 1
                        continue
                    data = units[i] if not done[i] else units[i][done[i]:]
                    if parts and size + 23 + len(data) > msize:
                        break
                    tag = free.pop()
                    self.sends += 1
                    self.sent_no[i] = self.sends
                    parts.append(pack(23 + len(data), _T_WRITE, tag, fid, 0, len(data)))
                    parts.append(data)
                    size += 23 + len(data)
                    frames += 1
                    inflight[tag] = i
                    i += 1
                self.next_i = i
                session.owed = len(inflight)
                result.twrites += frames
                try:
                    sock.sendall(b"".join(parts))
                except _TRANSPORT_ERRORS as exc:
                    raise _Lost(_describe(exc), unknown=len(inflight)) from None
            if not inflight:
                if self.stop is not None or self.prefix >= n:
                    session.owed = 0
                    return
                if self.next_i >= n:          # defensive: rescan from the first unit not committed
                    self.next_i = self.prefix
                continue
            try:
                frame = recv()
                size, typ, tag, value = unpack(frame)
            except (_TRANSPORT_ERRORS + (struct.error,)) as exc:
                raise _Lost(_describe(exc), unknown=len(inflight)) from None
            i = inflight.pop(tag, None)
            if i is None or len(frame) != 11:
                raise _Lost(f"unexpected reply (type {typ}, tag {tag})", unknown=len(inflight) + 1)
            free.append(tag)
            session.owed = len(inflight)
            if typ == _R_WRITE:
                want = lens[i] - done[i]
                if value == want:
                    done[i] = lens[i]
                elif value < want:
                    done[i] += value
                    result.short_writes += 1
                    self._stop(i, "short", 0)
                else:
                    raise _Lost(f"Rwrite count {value} exceeds the {want} bytes sent", unknown=len(inflight))
            elif typ == _R_LERROR:
                if value == EAGAIN:
                    self._stop(i, "again", value)
                elif value in (ESTALE, EBADF):
                    self._stop(i, "lost", value)
                else:
                    self._stop(i, "error", value)
            else:
                raise _Lost(f"unexpected reply type {typ} to Twrite", unknown=len(inflight))
            prefix = self.prefix
            while prefix < n and done[prefix] == lens[prefix]:
                prefix += 1
            if prefix != self.prefix:
                self.prefix = prefix
                if self.progress is not None and self.cum[prefix - 1] >= self.next_report:
                    self.reported = self.cum[prefix - 1]
                    self.next_report = self.reported + self.step
                    self.progress(self.reported, self.total)

    def _stop(self, unit: int, what: str, errno: int) -> None:
        """Remember the first unit (in send order) that did not complete; the loop then sends nothing
        more and drains what is in flight."""
        if self.stop is None or unit < self.stop[0]:
            self.stop = (unit, what, errno)

    def _resolve_stop(self) -> None:
        assert self.stop is not None
        unit, what, errno = self.stop
        mark = self.sent_no[unit]
        later = [j for j in range(unit + 1, self.next_i) if self.done[j] and self.sent_no[j] > mark]
        if later and what != "error":
            # Only possible for a node that answers short although it was not classified as a ring.
            self.stop = None
            raise PoolError("reordered", f"{self.path} committed Twrite {later[0] + 1} after a short "
                            f"write of Twrite {unit + 1}; order cannot be kept",
                            acknowledged=self.acknowledged)
        if what == "error":
            self.stop = None
            self.session.forget(self.path)
            after = f", and {len(later)} Twrites after it were committed" if later else ""
            raise PoolError(_ERRNO_REASON.get(errno, "error"),
                            f"append {self.acknowledged + 1} of {self.total} to {self.path}: "
                            f"{errno_text(errno)}; {self.acknowledged} acknowledged before it{after}",
                            errno=errno, acknowledged=self.acknowledged)
        self.stop = None
        self.next_i = unit
        if what == "lost":
            raise _Lost(f"the server answered {ERRNO_NAMES.get(errno, errno)}")
        self._retry_tail(unit)
        self.next_i = unit + 1

    def _retry_tail(self, unit: int) -> None:
        """§3.13: resend exactly the tail on the same fid, nothing else meanwhile, waiting
        ``backoff_ms × 2^k`` before each resend (k = resends without progress); fail with EAGAIN after
        ``max_retries`` resends without progress."""
        policy = self.pool.policy
        session = self.session
        no_progress = 0
        while self.done[unit] < self.lens[unit]:
            if no_progress >= policy.max_retries:
                raise PoolError("buffer-full", f"{self.path} accepted nothing after {no_progress} retries "
                                f"({errno_text(EAGAIN)}); {self.acknowledged} of {self.total} acknowledged",
                                errno=EAGAIN, acknowledged=self.acknowledged)
            self.pool.sleep(policy.backoff_ms * (2 ** no_progress) / 1000)
            tail = self.units[unit][self.done[unit]:]
            self.result.retries += 1
            self.result.twrites += 1
            session.owed = 1
            try:
                session.sock.sendall(_TWRITE.pack(23 + len(tail), _T_WRITE, 0, self.fid, 0, len(tail)) + tail)
                frame = session.transport.recv()
                _, typ, tag, value = _REPLY4.unpack_from(frame)
            except (_TRANSPORT_ERRORS + (struct.error,)) as exc:
                raise _Lost(_describe(exc), unknown=1) from None
            session.owed = 0
            if typ == _R_WRITE and tag == 0 and value <= len(tail):
                count = value
            elif typ == _R_LERROR and value == EAGAIN:
                count = 0
            elif typ == _R_LERROR and value in (ESTALE, EBADF):
                raise _Lost(f"the server answered {ERRNO_NAMES.get(value, value)}")
            elif typ == _R_LERROR:
                raise PoolError(_ERRNO_REASON.get(value, "error"),
                                f"append to {self.path}: {errno_text(value)}; "
                                f"{self.acknowledged} of {self.total} acknowledged",
                                errno=value, acknowledged=self.acknowledged)
            else:
                raise _Lost(f"unexpected reply type {typ} tag {tag}", unknown=1)
            if count:
                self.done[unit] += count
                no_progress = 0
                if self.done[unit] < self.lens[unit]:
                    self.result.short_writes += 1
            else:
                no_progress += 1
        while self.prefix < len(self.units) and self.done[self.prefix] == self.lens[self.prefix]:
            self.prefix += 1

    # -- recovery ---------------------------------------------------------------------------------
    def _recover(self, lost: _Lost) -> None:
        """Rebuild the session and resend what is not acknowledged (idempotent targets only)."""
        unknown = lost.unknown
        pending = sum(1 for j in range(self.prefix, self.next_i) if self.done[j] < self.lens[j])
        self.session.discard()
        self.inflight.clear()
        self.free[:] = list(range(self.window - 1, -1, -1))
        self.stop = None
        if unknown and not self.idempotent:
            raise PoolError("cut", f"9P session lost ({lost.reason}) with {unknown} appends to {self.path} "
                            f"unacknowledged; text records are not resent; {self.acknowledged} of "
                            f"{self.total} acknowledged", acknowledged=self.acknowledged, transport=True)
        if self.prefix > self.progress_mark:
            self.progress_mark = self.prefix
            self.rebuilds_without_progress = 0
        policy = self.pool.policy
        while True:
            if self.rebuilds_without_progress > policy.max_retries:
                raise PoolError("cut", f"9P session lost ({lost.reason}); no progress after "
                                f"{self.rebuilds_without_progress} rebuilds; {self.acknowledged} of "
                                f"{self.total} appends to {self.path} acknowledged",
                                acknowledged=self.acknowledged, transport=True)
            self.pool.sleep(policy.backoff_ms * (2 ** self.rebuilds_without_progress) / 1000)
            self.rebuilds_without_progress += 1
            try:
                self.session.connect()
                self.fid = self.session.open_append(self.path)
                break
            except _Lost as again:
                lost = again
                self.session.discard()
            except PoolError as exc:
                if exc.reason != "unavailable":
                    exc.acknowledged = self.acknowledged
                    raise
                lost = _Lost(exc.message)
        self.result.recoveries += 1
        self.result.retries += pending
        self.result.resent += sum(self.cum[j] - (self.cum[j - 1] if j else 0)
                                  for j in range(self.prefix, self.next_i) if self.done[j] < self.lens[j])
        self.next_i = self.prefix


# -- the pool ---------------------------------------------------------------------------------------
class Pool:
    """A session pool (SPEC §11.7). Thread-safe: concurrent callers lease different sessions.

    ``host``/``port``: the 9P TCP endpoint (``cohesix-host --9p-port``, or the QEMU forward of the
    guest listener). Identity: ``role`` (default ``queen``) and, for worker roles, ``subject`` (the
    worker id); ``ticket`` as given, else minted (see :func:`resolve_ticket`). ``policy``: a
    :class:`PoolPolicy` (``PoolPolicy.from_file("out/cohsh_policy.toml")``); ``control``/``telemetry``
    override its sizes. Sessions are opened by :meth:`open` (or the first operation) and closed by
    :meth:`close` (or leaving a ``with`` block).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = HOST_NINEP_PORT, *, role: str = "queen",
                 subject: str | None = None, ticket: str | None = None, secret: str | None = None,
                 ticket_config: str | None = None, env: Mapping[str, str] | None = None,
                 policy: PoolPolicy | None = None, control: int | None = None,
                 telemetry: int | None = None, lease_timeout_s: float = LEASE_TIMEOUT_S,
                 connect_timeout_s: float = CONNECT_TIMEOUT_S, io_timeout_s: float = IO_TIMEOUT_S,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        label = canonical_role(role)
        if label is None:
            raise PoolError("policy", f"unknown role {role}")
        self.policy = (policy or PoolPolicy()).with_sizes(control, telemetry)
        self.host, self.port = host, port
        self.role, self.subject = label, subject
        self._ticket_args = (ticket, secret, ticket_config, env)
        self.attach_names: tuple[str, str] = ("", "")
        self.lease_timeout_s = lease_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.io_timeout_s = io_timeout_s
        self.sleep = sleep
        self.info: ServerInfo | None = None
        self.msize = self.policy.msize
        self._sessions = {CONTROL: [_Session(self, CONTROL, i) for i in range(self.policy.control)],
                          TELEMETRY: [_Session(self, TELEMETRY, i) for i in range(self.policy.telemetry)]}
        self._free = {kind: deque(sessions) for kind, sessions in self._sessions.items()}
        self._cond = threading.Condition()
        self._open_lock = threading.Lock()
        self._opened = False
        self._closed = False
        self._seq_lock = threading.Lock()
        self._last_seq = 0

    # -- life cycle -------------------------------------------------------------------------------
    def __enter__(self) -> "Pool":
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> "Pool":
        """Resolve the ticket, connect every session (the first alone, so a refused ticket costs one
        attach failure, not one per session), and read the server's facts from ``/proc/boot``."""
        with self._open_lock:
            if self._closed:
                raise PoolError("closed", "the pool is closed")
            if self._opened:
                return self
            ticket, secret, config, env = self._ticket_args
            self.attach_names = attach_names(self.role, self.subject, resolve_ticket(
                self.role, self.subject, ticket, secret=secret, ticket_config=config, env=env))
            sessions = self._sessions[CONTROL] + self._sessions[TELEMETRY]
            try:
                first = sessions[0]
                first.connect()
                self.msize = first.client.msize or self.policy.msize
                try:
                    boot = first.client.read_all("/proc/boot").decode("utf-8", "replace")
                except NineError:
                    boot = ""
                except _TRANSPORT_ERRORS as exc:
                    raise PoolError("unavailable", f"9P session to {self.host}:{self.port} lost: "
                                    f"{_describe(exc)}", transport=True) from None
                self.info = ServerInfo.parse(boot, self.policy)
                for session in sessions[1:]:
                    session.connect()
            except BaseException:
                for session in sessions:
                    session.discard()
                raise
            self._opened = True
            return self

    def close(self) -> None:
        """Close every session (leased ones as soon as they are returned)."""
        with self._open_lock:
            self._closed = True
            for sessions in self._sessions.values():
                for session in sessions:
                    session.discard()
        with self._cond:
            self._cond.notify_all()

    @property
    def window(self) -> int:
        """Twrites one telemetry session keeps in flight (the server's ``tags_per_session``)."""
        return self.info.tags_per_session if self.info else self.policy.tags_per_session

    @property
    def frame_schema(self) -> str:
        return self.info.frame_schema if self.info else SCHEMA_TEXT

    def sessions(self) -> list[tuple[str, int, int | None]]:
        """``(kind, index, local TCP port or None)`` of every session (diagnostics, tests)."""
        return [(s.kind, s.index, s.local_port) for kind in (CONTROL, TELEMETRY) for s in self._sessions[kind]]

    # -- leasing -----------------------------------------------------------------------------------
    @contextmanager
    def lease(self, kind: str = TELEMETRY) -> Iterator[_Session]:
        """Lease one session of ``kind`` for one operation; ``pool exhausted`` after ``lease_timeout_s``.

        The session comes back rebuilt if it had been discarded. It is returned when the block ends; one
        still owed replies (its operation failed mid-flight) is closed first, so the next holder never
        sees a stray reply.
        """
        session = self._acquire(kind)
        try:
            yield session
        finally:
            self._release(session)

    def _acquire(self, kind: str) -> _Session:
        if not self._opened:
            self.open()
        with self._cond:
            free = self._free[kind]
            if not free:
                deadline = time.monotonic() + self.lease_timeout_s
                while not free:
                    if self._closed:
                        raise PoolError("closed", "the pool is closed")
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise PoolError("exhausted", f"pool exhausted: no free {kind} session within "
                                        f"{self.lease_timeout_s:g} s ({errno_text(EBUSY)})", errno=EBUSY)
                    self._cond.wait(left)
            session = free.popleft()
        try:
            if session.client is None or not session.healthy():
                session.connect()
        except BaseException:
            self._release(session)
            raise
        return session

    def _release(self, session: _Session) -> None:
        if session.owed or self._closed:
            session.discard()
        with self._cond:
            self._free[session.kind].append(session)
            self._cond.notify()

    # -- appends -----------------------------------------------------------------------------------
    def append(self, path: str, record: str | bytes | object) -> None:
        """Append one record (text line, bytes, or a ``Frame`` for a ``cbor_v1`` ring).

        The common case — the Twrite is accepted whole — is one request and its reply on a leased
        telemetry session with a cached open fid; anything else (short write, refusal, lost session)
        continues in the same engine as ``append_many``, with the same rules."""
        if not self._opened:
            self.open()
        kind = classify(path)
        schema = self.frame_schema if kind == KIND_RING else SCHEMA_TEXT
        data = self._encode([record], schema, kind)[0]
        self._check_records([data], kind, schema, self.msize - m.IOHDRSZ)
        session = self._acquire(_session_kind(kind))
        try:
            job = None
            try:
                fid = session.open_append(path)
            except _Lost as lost:
                job = _Append(self, session, path, [data], [1], 1, 1, schema == SCHEMA_CBOR, None)
                job._open()                        # rebuilds once (nothing was sent)
                fid = None
                job.resume()
            if fid is not None:
                session.owed = 1
                try:
                    session.sock.sendall(_TWRITE.pack(23 + len(data), _T_WRITE, 0, fid, 0, len(data)) + data)
                    frame = session.transport.recv()
                    _, typ, tag, value = _REPLY4.unpack_from(frame)
                except (_TRANSPORT_ERRORS + (struct.error,)) as exc:
                    job = _Append(self, session, path, [data], [1], 1, 1, schema == SCHEMA_CBOR, None)
                    job.fid, job.next_i = fid, 1
                    job.resume(_Lost(_describe(exc), unknown=1))
                    return
                session.owed = 0
                if typ == _R_WRITE and tag == 0 and value == len(data) and len(frame) == 11:
                    return
                job = _Append(self, session, path, [data], [1], 1, 1, schema == SCHEMA_CBOR, None)
                job.fid, job.next_i, job.sends, job.sent_no[0] = fid, 1, 1, 1
                if len(frame) != 11 or tag != 0 or typ not in (_R_WRITE, _R_LERROR) or (
                        typ == _R_WRITE and value > len(data)):
                    job.resume(_Lost(f"unexpected reply (type {typ}, tag {tag})", unknown=1))
                elif typ == _R_WRITE:
                    job.done[0] = value
                    job.result.short_writes += 1
                    job._stop(0, "short", 0)
                    job.resume()
                else:
                    job._stop(0, "again" if value == EAGAIN else "lost" if value in (ESTALE, EBADF) else "error",
                              value)
                    job.resume()
        finally:
            self._release(session)

    def append_many(self, path: str, records: Iterable[str | bytes | object], *, batch: int | None = None,
                    progress: Callable[[int, int], None] | None = None) -> AppendResult:
        """Append ``records`` to ``path`` in order through one leased telemetry session.

        ``batch``: log targets — Twrite frames per transport write (default 4, at most the window);
        rings — records per Twrite (default: as many as fit in ``iounit``). ``progress(done, total)`` is
        called as acknowledgements arrive. Raises :class:`PoolError`; its ``acknowledged`` says how many
        leading records are stored.
        """
        kind = classify(path)
        if not self._opened:
            self.open()
        schema = self.frame_schema if kind == KIND_RING else SCHEMA_TEXT
        encoded = self._encode(records, schema, kind)
        iounit = self.msize - m.IOHDRSZ
        if batch is not None and batch < 1:
            raise PoolError("policy", f"batch must be at least 1, got {batch}")
        self._check_records(encoded, kind, schema, iounit)
        if not encoded:
            return AppendResult()
        if kind == KIND_RING:
            units, counts = _pack(encoded, iounit, batch)
            window, frames_per_write = 1, 1
        elif kind == KIND_LOG:
            units, counts = encoded, [1] * len(encoded)
            window = self.window
            frames_per_write = (batch or DEFAULT_BATCH) if (self.info is None or self.info.batch_frames) else 1
        else:
            units, counts = encoded, [1] * len(encoded)
            window, frames_per_write = 1, 1
        session = self._acquire(_session_kind(kind))
        try:
            job = _Append(self, session, path, units, counts, window, frames_per_write,
                          idempotent=schema == SCHEMA_CBOR, progress=progress)
            return job.run()
        finally:
            self._release(session)

    def _check_records(self, encoded: list[bytes], kind: str, schema: str, iounit: int) -> None:
        """Refuse, before anything is sent, what the server would refuse part-way (so an append never
        fails half-written for a reason known in advance): a record larger than one Twrite or than the
        ring, and text that is not UTF-8 (logs and ``text`` rings require it, §5.2, §7.1)."""
        capacity = self.info.ring_bytes if (kind == KIND_RING and self.info is not None) else None
        for index, data in enumerate(encoded):
            if len(data) > iounit or (capacity is not None and len(data) > capacity):
                limit = min(iounit, capacity) if capacity is not None else iounit
                raise PoolError("too-big", f"record {index + 1} is {len(data)} bytes; at most {limit} fit "
                                f"({errno_text(EMSGSIZE)})", errno=EMSGSIZE)
            if kind != KIND_OTHER and schema == SCHEMA_TEXT:
                try:
                    data.decode("utf-8")
                except UnicodeDecodeError:
                    raise PoolError("invalid-payload", f"record {index + 1} is not UTF-8 "
                                    f"({errno_text(EINVAL)})", errno=EINVAL) from None

    def next_seq(self) -> int:
        """A Frame v1 ``seq``: microseconds since the Unix epoch, strictly increasing in this pool."""
        with self._seq_lock:
            seq = max(self._last_seq + 1, time.time_ns() // 1000)
            self._last_seq = seq
            return seq

    def _encode(self, records: Iterable[object], schema: str, kind: str) -> list[bytes]:
        out: list[bytes] = []
        if schema == SCHEMA_CBOR:
            from nine_door.frame_v1 import KIND_TEXT, Frame, FrameError, encode
        for record in records:
            if schema == SCHEMA_CBOR:
                if not isinstance(record, Frame):
                    data = record.encode("utf-8") if isinstance(record, str) else bytes(record)
                    if data.endswith(b"\n"):
                        data = data[:-1]
                    record = Frame(self.next_seq(), int(time.time() * 1000), KIND_TEXT, data)
                try:
                    out.append(encode(record))
                except FrameError as exc:
                    raise PoolError("invalid-payload", f"record {len(out) + 1} is not a valid frame: {exc}",
                                    errno=EINVAL) from None
                continue
            if isinstance(record, str):
                data = record.encode("utf-8")
            elif isinstance(record, (bytes, bytearray, memoryview)):
                data = bytes(record)
            else:
                raise PoolError("invalid-payload", f"record {len(out) + 1} of a {schema} target must be "
                                f"str or bytes, not {type(record).__name__}", errno=EINVAL)
            if kind != KIND_OTHER and not data.endswith(b"\n"):
                data += b"\n"          # a line record: packed records must not run together
            out.append(data)
        return out

    # -- control operations ------------------------------------------------------------------------
    def _control(self, what: str, op: Callable[[Client], object], *, idempotent: bool) -> object:
        with self.lease(CONTROL) as session:
            for attempt in range(2):
                try:
                    return op(session.client)
                except NineError as exc:
                    if exc.errno in (ESTALE, EBADF) and attempt == 0:
                        session.connect()
                        continue
                    raise _refusal(exc, what) from None
                except _TRANSPORT_ERRORS as exc:
                    session.discard()
                    if not idempotent or attempt:
                        unknown = "; the outcome is unknown" if not idempotent else ""
                        raise PoolError("cut", f"{what}: 9P session lost ({_describe(exc)}){unknown}",
                                        transport=True) from None
                    session.connect()
        raise AssertionError("unreachable")

    def read(self, path: str) -> bytes:
        """The content of ``path`` (a snapshot, or a ring's records from the open's position)."""
        return self._control(f"read {path}", lambda c: c.read_all(path), idempotent=True)  # type: ignore[return-value]

    def write(self, path: str, data: str | bytes) -> int:
        """One control write (``/queen/ctl`` lines, a cursor value), §3.13 short-write rules applied."""
        payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        policy = ShortWritePolicy(self.policy.backoff_ms, self.policy.max_retries)

        def op(client: Client) -> int:
            fid = client.open(path, m.O_WRONLY | m.O_APPEND)
            try:
                return client.write_all(fid, payload, policy, self.sleep)
            finally:
                client.clunk(fid)

        return self._control(f"write {path}", op, idempotent=False)  # type: ignore[return-value]

    def tail(self, path: str, cursor: int | None = None, *, commit: bool = False,
             limit: int | None = None) -> Tail:
        """Records of ``path`` from ``cursor`` on.

        Rings (``/worker/<id>/telemetry``): the read starts where the server opens it (the committed
        cursor when armed, else the oldest record, §7.3); ``cursor`` is an rseq — records before it are
        skipped, records between it and the first one held are counted in ``missed``. ``commit=True``
        (queen) then writes the returned cursor to ``<worker dir>/cursor``, consuming what was read
        (§7.4). Exact positions need the cursor file (queen, schema ≥ 1.2) and are exact while the ring is
        armed; an unarmed ring may evict between the two reads. Other files: ``cursor`` is a byte offset
        in the content and records are its lines.
        """
        ring = classify(path) == KIND_RING
        cursor_path = path.rsplit("/", 1)[0] + "/cursor"

        def op(client: Client) -> Tail:
            start = 0
            committed = None
            if ring and (cursor is not None or commit):
                line = client.read_all(cursor_path).decode("ascii", "replace")
                found = _CURSOR.search(line)
                if found is None:
                    raise PoolError("invalid-payload", f"unexpected content in {cursor_path}: {line.strip()!r}")
                committed, oldest = int(found.group(1)), int(found.group(2))
                start = committed if committed >= 1 else oldest
            data = client.read_all(path)
            if ring:
                records = _ring_records(data, self.frame_schema)
            else:
                start = cursor or 0
                records = data[start:].splitlines(keepends=True)
                return Tail(records[:limit] if limit is not None else records, start,
                            start + sum(len(r) for r in (records[:limit] if limit is not None else records)))
            missed = 0
            if cursor is not None:
                if cursor > start:
                    records = records[cursor - start:]
                    start = cursor
                else:
                    missed = start - cursor
            if limit is not None:
                records = records[:limit]
            tail = Tail(records, start, start + len(records), missed)
            if commit and committed is not None and tail.cursor > committed:
                fid = client.open(cursor_path, m.O_WRONLY)
                try:
                    client.write(fid, 0, str(tail.cursor).encode())
                finally:
                    client.clunk(fid)
            return tail

        return self._control(f"tail {path}", op, idempotent=not commit)  # type: ignore[return-value]


def _session_kind(kind: str) -> str:
    """Appends to logs and rings travel on telemetry sessions; anything else (a ctl sink, a cursor)
    is a control write, one request at a time on a control session (§11.7)."""
    return TELEMETRY if kind in (KIND_RING, KIND_LOG) else CONTROL


def _pack(records: Sequence[bytes], iounit: int, per_twrite: int | None) -> tuple[list[bytes], list[int]]:
    """Whole records packed into Twrite payloads of at most ``iounit`` bytes and ``per_twrite`` records."""
    units: list[bytes] = []
    counts: list[int] = []
    current: list[bytes] = []
    size = 0
    limit = per_twrite or len(records)
    for data in records:
        if current and (size + len(data) > iounit or len(current) >= limit):
            units.append(b"".join(current))
            counts.append(len(current))
            current, size = [], 0
        current.append(data)
        size += len(data)
    if current:
        units.append(b"".join(current))
        counts.append(len(current))
    return units, counts


def _ring_records(data: bytes, schema: str) -> list:
    if schema == SCHEMA_CBOR:
        from nine_door.frame_v1 import split_frames

        frames, _, _ = split_frames(data)
        return [frame for frame, _raw in frames]
    return data.splitlines(keepends=True)


# -- cohsh wiring -----------------------------------------------------------------------------------
@dataclass
class PoolOptions:
    """How cohsh builds its pool (from ``--9p-host``/``--9p-port``, ``--policy``, ``--ticket`` …).

    ``endpoint`` (``--transport mock``) supplies host and port when the pool is first needed.
    """

    host: str = "127.0.0.1"
    port: int = HOST_NINEP_PORT
    endpoint: Callable[[], tuple[str, int]] | None = None
    policy: PoolPolicy = field(default_factory=PoolPolicy)
    role: str | None = None
    ticket: str | None = None
    subject: str | None = None
    secret: str | None = None
    ticket_config: str | None = None
    env: Mapping[str, str] | None = None

    def make(self, role: str, ticket: str | None) -> Pool:
        host, port = self.host, self.port
        if self.endpoint is not None:
            try:
                host, port = self.endpoint()
            except (OSError, RuntimeError) as exc:
                raise PoolError("unavailable", f"no 9P endpoint: {exc}", transport=True) from None
        return Pool(host, port, role=role, subject=self.subject, ticket=ticket, secret=self.secret,
                    ticket_config=self.ticket_config, env=self.env, policy=self.policy)
