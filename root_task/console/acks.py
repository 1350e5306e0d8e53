"""Console acknowledgements (SPEC §10.5, §10.6): the OK/ERR grammar and the errno → detail table.

Why a module of its own: every verb of both transports, and cohsh's expectations, depend on these exact
strings; building them in one place keeps the field order (reason, detail, delay_ms, path, error, msg)
and the errno mapping identical everywhere.
"""
from __future__ import annotations

from dataclasses import dataclass

from nine_door import errors as E

REASONS = ("busy", "quota", "cut", "policy")

# errno → (reason, detail) per SPEC §10.6. ENOSPC (CAS store full) is not listed by the SPEC; it is a
# capacity refusal, so it is reported as quota/buffer-full (documented in docs/console.md).
_ERRNO_TABLE: dict[int, tuple[str, str]] = {
    E.ENOENT: ("policy", "invalid-path"),
    E.ENOTDIR: ("policy", "invalid-path"),
    E.EISDIR: ("policy", "invalid-path"),
    E.EACCES: ("policy", "denied"),
    E.EPERM: ("policy", "denied"),
    E.EINVAL: ("policy", "invalid-payload"),
    E.EAGAIN: ("quota", "buffer-full"),
    E.ENOSPC: ("quota", "buffer-full"),
    E.EMSGSIZE: ("quota", "too-big"),
    E.ERANGE: ("quota", "stale"),
    E.EBUSY: ("busy", "busy"),
    E.EBADF: ("cut", "closed"),
    E.ESTALE: ("cut", "revoked"),
    E.EOPNOTSUPP: ("policy", "unsupported"),
}


@dataclass(frozen=True)
class Refusal:
    """A structured ERR line; :meth:`render` gives the wire text."""

    verb: str
    reason: str
    detail: str
    delay_ms: int | None = None
    path: str | None = None
    error: str | None = None
    msg: str | None = None

    def render(self) -> str:
        parts = [f"ERR {self.verb.upper()} reason={self.reason} detail={self.detail}"]
        if self.delay_ms is not None:
            parts.append(f"delay_ms={self.delay_ms}")
        if self.path is not None:
            parts.append(f"path={self.path}")
        if self.error is not None:
            parts.append(f"error={self.error}")
        if self.msg is not None:
            parts.append(f"msg={self.msg}")
        return " ".join(parts)


def ok(verb: str, details: str = "") -> str:
    """``OK <VERB>[ <details>]``."""
    return f"OK {verb.upper()}" + (f" {details}" if details else "")


def err(verb: str, reason: str, detail: str, *, delay_ms: int | None = None, path: str | None = None,
        error: str | None = None, msg: str | None = None) -> str:
    """``ERR <VERB> reason=… detail=… [delay_ms=…] [path=…] [error=…] [msg=…]`` (SPEC §10.6)."""
    if reason not in REASONS:
        raise ValueError(f"unknown reason {reason!r}")
    return Refusal(verb, reason, detail, delay_ms, path, error, msg).render()


def transport_err(kind: str, reason: str, delay_ms: int | None = None) -> str:
    """Short form for transport refusals: ``ERR AUTH reason=…`` / ``ERR FRAME reason=…`` (§10.4)."""
    return f"ERR {kind.upper()} reason={reason}" + (f" delay_ms={delay_ms}" if delay_ms is not None else "")


def parse_error(detail: str) -> str:
    return err("PARSE", "policy", detail)


def errno_msg(errno: int, on_path: bool) -> str:
    """``msg=`` text: ENOENT/EINVAL on paths → ``invalid path``; EACCES/EPERM fixed; else strerror."""
    if on_path and errno in (E.ENOENT, E.EINVAL):
        return "invalid path"
    return E.ERRNO_DESCRIPTIONS.get(errno, f"error {errno}")


def errno_refusal(verb: str, errno: int, *, path: str | None = None, on_path: bool = False) -> str:
    """Map a NineDoor errno to an ERR line.

    ``on_path`` is true when the errno came from resolving the path (the walk): EINVAL there means a
    bad path (``invalid-path``), while EINVAL from a write means a bad payload (``invalid-payload``).
    """
    reason, detail = _ERRNO_TABLE.get(errno, ("policy", "invalid-payload"))
    if on_path and errno == E.EINVAL:
        detail = "invalid-path"
    return err(verb, reason, detail, path=path, error=E.ERRNO_NAMES.get(errno, str(errno)),
               msg=errno_msg(errno, on_path))


def invalid_path(verb: str, path: str) -> str:
    """The §10.2 refusal for a syntactically bad console path."""
    return err(verb, "policy", "invalid-path", path=path, error="EINVAL", msg="invalid path")
