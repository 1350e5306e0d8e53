"""Capability tickets: payload format, minting and validation (SPEC §4.1, §4.3–§4.5, §4.7).

One implementation for every holder of a ticket: the root task mints worker tickets, NineDoor
and the console validate them, ``cohsh --mint-ticket`` imports this module (host packages may
import guest modules, so the format cannot drift).

Text form: ``cohesix-ticket-<payload hex>.<mac hex>`` (≤ 224 chars, lowercase hex), where
``mac = BLAKE3-keyed(BLAKE3(secret), payload)``. :func:`check` runs validation steps 1–6 of
§4.5 in the normative order, so the *first* failing step decides the reason; step 7 (the
worker record exists and matches) needs the server's worker table and is the caller's job.
"""
from __future__ import annotations

import re
import struct
from collections.abc import Callable
from dataclasses import dataclass

from nine_door import blake3

__all__ = [
    "ROLE_BYTES", "ROLE_LABELS", "WORKER_ROLES", "Scope", "Quotas", "TicketPayload",
    "TicketClaims", "TicketError", "encode_payload", "decode_payload", "mint", "check",
    "peek_role", "PREFIX", "MAX_TEXT_LEN",
]

PREFIX = "cohesix-ticket-"
MAX_TEXT_LEN = 224
PAYLOAD_VERSION = 1
MAX_STR = 255
MAX_SCOPES = 16

#: §4.1: canonical role label → ticket role byte. Bytes 3–255 are reserved and rejected.
ROLE_BYTES: dict[str, int] = {"queen": 0, "worker-heartbeat": 1, "worker-gpu": 2}
ROLE_LABELS: dict[int, str] = {v: k for k, v in ROLE_BYTES.items()}
WORKER_ROLES = frozenset({"worker-heartbeat", "worker-gpu"})

FLAG_TICKS = 1 << 0
FLAG_OPS = 1 << 1
FLAG_TTL = 1 << 2
FLAG_SUBJECT = 1 << 3
FLAG_SCOPES = 1 << 4
FLAG_QUOTAS = 1 << 5
_RESERVED_FLAGS = 0xC0

_TEXT_RE = re.compile(r"cohesix-ticket-((?:[0-9a-f]{2})+)\.([0-9a-f]{64})")
_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")
_U16 = struct.Struct("<H")


class TicketError(Exception):
    """A ticket failed validation; ``reason`` ∈ {invalid-claims, denied, expired}."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}{': ' + detail if detail else ''}")
        self.reason = reason
        self.detail = detail


class PayloadError(ValueError):
    """The payload bytes are not a valid §4.3 payload."""


@dataclass(frozen=True, slots=True)
class Scope:
    path: str
    verb: int          # 0 read, 1 write, 2 read-write
    rate_per_s: int


@dataclass(frozen=True, slots=True)
class Quotas:
    bandwidth_bytes: int
    cursor_resumes: int
    cursor_advances: int


@dataclass(frozen=True, slots=True)
class TicketPayload:
    """The decoded §4.3 payload. ``None`` means the flag for that field is clear.

    ``flags`` is derived from which optional fields are present, so a payload value always
    encodes to exactly one byte string and decoding then re-encoding is the identity.
    """

    role: int
    ticks: int | None = None
    ops: int | None = None
    ttl_s: int | None = None
    subject: str | None = None
    issued_at_ms: int = 0
    mount_service: str = ""
    mount_at: str = ""
    scopes: tuple[Scope, ...] | None = None
    quotas: Quotas | None = None
    version: int = PAYLOAD_VERSION

    @property
    def flags(self) -> int:
        return ((FLAG_TICKS if self.ticks is not None else 0)
                | (FLAG_OPS if self.ops is not None else 0)
                | (FLAG_TTL if self.ttl_s is not None else 0)
                | (FLAG_SUBJECT if self.subject is not None else 0)
                | (FLAG_SCOPES if self.scopes is not None else 0)
                | (FLAG_QUOTAS if self.quotas is not None else 0))


@dataclass(frozen=True, slots=True)
class TicketClaims:
    """What a validated ticket grants (the result of :func:`check`)."""

    role: str
    subject: str | None
    ticks: int | None
    ops: int | None
    ttl_s: int | None
    issued_at_ms: int
    mount_service: str
    mount_at: str

    def deadline_ms(self, attach_ms: int) -> int | None:
        """Ticket deadline (§4.6): issue time + TTL, or attach time + TTL when issued_at is 0."""
        if self.ttl_s is None:
            return None
        base = self.issued_at_ms if self.issued_at_ms else attach_ms
        return base + self.ttl_s * 1000


# --- payload codec ----------------------------------------------------------------------------
def _str(text: str) -> bytes:
    raw = text.encode("utf-8")
    if len(raw) > MAX_STR:
        raise PayloadError(f"string longer than {MAX_STR} bytes")
    return _U16.pack(len(raw)) + raw


def encode_payload(p: TicketPayload) -> bytes:
    """Serialise a payload (SPEC §4.3 field order). Raises PayloadError on unencodable values."""
    try:
        out = bytearray((p.version, p.role, p.flags))
        for value in (p.ticks, p.ops, p.ttl_s):
            if value is not None:
                out += _U64.pack(value)
        if p.subject is not None:
            out += _str(p.subject)
        out += _U64.pack(p.issued_at_ms)
        out += _str(p.mount_service) + _str(p.mount_at)
        if p.scopes is not None:
            if len(p.scopes) > MAX_SCOPES:
                raise PayloadError(f"more than {MAX_SCOPES} scopes")
            out.append(len(p.scopes))
            for scope in p.scopes:
                out += _str(scope.path) + bytes((scope.verb,)) + _U32.pack(scope.rate_per_s)
        if p.quotas is not None:
            q = p.quotas
            out += _U64.pack(q.bandwidth_bytes) + _U32.pack(q.cursor_resumes) \
                + _U32.pack(q.cursor_advances)
    except (struct.error, ValueError, OverflowError) as exc:
        if isinstance(exc, PayloadError):
            raise
        raise PayloadError(str(exc)) from None
    return bytes(out)


class _Reader:
    """Bounds-checked cursor over the payload; every short read is a PayloadError."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise PayloadError("short payload")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def u8(self) -> int:
        return self.take(1)[0]

    def u32(self) -> int:
        return _U32.unpack(self.take(4))[0]

    def u64(self) -> int:
        return _U64.unpack(self.take(8))[0]

    def str(self) -> str:
        n = _U16.unpack(self.take(2))[0]
        if n > MAX_STR:
            raise PayloadError(f"string length {n} > {MAX_STR}")
        try:
            return self.take(n).decode("utf-8")
        except UnicodeDecodeError:
            raise PayloadError("string is not valid UTF-8") from None


def decode_payload(data: bytes) -> TicketPayload:
    """Strictly parse a payload: version 1, known role, no reserved flags, no trailing bytes."""
    r = _Reader(bytes(data))
    version = r.u8()
    if version != PAYLOAD_VERSION:
        raise PayloadError(f"unsupported payload version {version}")
    role = r.u8()
    if role not in ROLE_LABELS:
        raise PayloadError(f"reserved role byte {role}")
    flags = r.u8()
    if flags & _RESERVED_FLAGS:
        raise PayloadError("reserved flag bits set")
    ticks = r.u64() if flags & FLAG_TICKS else None
    ops = r.u64() if flags & FLAG_OPS else None
    ttl_s = r.u64() if flags & FLAG_TTL else None
    subject = r.str() if flags & FLAG_SUBJECT else None
    issued_at_ms = r.u64()
    mount_service = r.str()
    mount_at = r.str()
    scopes = None
    if flags & FLAG_SCOPES:
        n = r.u8()
        if n > MAX_SCOPES:
            raise PayloadError(f"{n} scopes > {MAX_SCOPES}")
        items = []
        for _ in range(n):
            path = r.str()
            verb = r.u8()
            if verb > 2:
                raise PayloadError(f"bad scope verb {verb}")
            items.append(Scope(path, verb, r.u32()))
        scopes = tuple(items)
    quotas = Quotas(r.u64(), r.u32(), r.u32()) if flags & FLAG_QUOTAS else None
    if r.pos != len(r.data):
        raise PayloadError("trailing bytes after payload")
    return TicketPayload(role, ticks, ops, ttl_s, subject, issued_at_ms, mount_service, mount_at,
                         scopes, quotas, version)


# --- MAC and text -----------------------------------------------------------------------------
def _mac(secret: str, payload: bytes) -> bytes:
    return blake3.keyed_hash(blake3.hash(secret.encode("utf-8")), payload)


def mint(secret: str, role: str, subject: str | None = None, ticks: int | None = None,
         ops: int | None = None, ttl_s: int | None = None, issued_at_ms: int = 0) -> str:
    """Mint a ticket text (SPEC §4.7). Never sets SCOPES/QUOTAS; mount strings are empty.

    Requiring a subject for worker roles is the CLI's rule (its own exit code and message), so
    it is not enforced here; such a ticket would simply fail validation step 5.
    """
    if role not in ROLE_BYTES:
        raise ValueError(f"unknown role {role!r}")
    payload = encode_payload(TicketPayload(ROLE_BYTES[role], ticks, ops, ttl_s, subject,
                                           issued_at_ms))
    return f"{PREFIX}{payload.hex()}.{_mac(secret, payload).hex()}"


def _split(text: str) -> tuple[bytes, bytes]:
    """Step 1 (text shape). Returns (payload, mac) or raises invalid-claims."""
    if not isinstance(text, str) or len(text) > MAX_TEXT_LEN:
        raise TicketError("invalid-claims", "ticket text too long")
    match = _TEXT_RE.fullmatch(text)
    if match is None:
        raise TicketError("invalid-claims", "malformed ticket text")
    return bytes.fromhex(match.group(1)), bytes.fromhex(match.group(2))


def peek_role(text: str) -> str | None:
    """The role label an (unverified) ticket claims, or None if it cannot be read.

    For attaches with an empty ``uname`` (§4.2): the server must pick the secret to verify with
    before anything is trusted; :func:`check` then verifies MAC and role against that label.
    """
    try:
        payload, _ = _split(text)
    except TicketError:
        return None
    if len(payload) < 2 or payload[0] != PAYLOAD_VERSION:
        return None
    return ROLE_LABELS.get(payload[1])


def check(text: str, secret_for_role: Callable[[str], str | None], requested_role: str,
          requested_subject: str | None, now_ms: int) -> TicketClaims:
    """Validate a ticket for ``requested_role`` (SPEC §4.5 steps 1–6, in order).

    ``secret_for_role(label)`` returns the role's secret or None (no secret configured → the MAC
    cannot verify → *denied*). ``requested_subject`` is the worker id named by the uname or
    console command, or None when the caller names none. Raises :class:`TicketError`.
    """
    import hmac  # on first use: it imports hashlib, which the boot path does not need

    payload_bytes, mac = _split(text)                                      # step 1
    secret = secret_for_role(requested_role) if requested_role in ROLE_BYTES else None
    expected = _mac(secret, payload_bytes) if secret is not None else bytes(32)
    if not hmac.compare_digest(expected, mac) or secret is None:           # step 2
        raise TicketError("denied", "MAC does not verify for the requested role")
    try:                                                                   # step 3
        payload = decode_payload(payload_bytes)
    except PayloadError as exc:
        raise TicketError("invalid-claims", str(exc)) from None
    if payload.scopes is not None or payload.quotas is not None:
        raise TicketError("invalid-claims", "SCOPES/QUOTAS are not supported")
    role = ROLE_LABELS[payload.role]
    if role in WORKER_ROLES and (payload.mount_service or payload.mount_at):
        raise TicketError("invalid-claims", "mount spec on a worker ticket")
    if role != requested_role:                                             # step 4
        raise TicketError("denied", f"ticket role {role} != requested {requested_role}")
    if role in WORKER_ROLES:                                               # step 5
        if payload.subject is None:
            raise TicketError("invalid-claims", "worker ticket without subject")
        if requested_subject is not None and payload.subject != requested_subject:
            raise TicketError("denied", "subject does not match the requested worker")
    if payload.ttl_s is not None and payload.issued_at_ms != 0:            # step 6
        if payload.issued_at_ms + payload.ttl_s * 1000 <= now_ms:
            raise TicketError("expired", "ticket ttl elapsed")
    return TicketClaims(role, payload.subject, payload.ticks, payload.ops, payload.ttl_s,
                        payload.issued_at_ms, payload.mount_service, payload.mount_at)
