"""Linux errno values used on the wire (SPEC §3.11) and the exceptions NineDoor raises.

One table so the server, the client and the console all name errors the same way.
"""
from __future__ import annotations

EPERM = 1
ENOENT = 2
EIO = 5          # an internal failure of one request (docs/spec-decisions.md)
EBADF = 9
EAGAIN = 11
EACCES = 13
EBUSY = 16
ENOTDIR = 20
EISDIR = 21
EINVAL = 22
ENOSPC = 28
ERANGE = 34
EMSGSIZE = 90
EOPNOTSUPP = 95
ESTALE = 116

ERRNO_NAMES: dict[int, str] = {
    EPERM: "EPERM", ENOENT: "ENOENT", EIO: "EIO", EBADF: "EBADF", EAGAIN: "EAGAIN", EACCES: "EACCES",
    EBUSY: "EBUSY", ENOTDIR: "ENOTDIR", EISDIR: "EISDIR", EINVAL: "EINVAL", ENOSPC: "ENOSPC",
    ERANGE: "ERANGE", EMSGSIZE: "EMSGSIZE", EOPNOTSUPP: "EOPNOTSUPP", ESTALE: "ESTALE",
}

# Lowercase standard descriptions, used by the console's `msg=` field (SPEC §10.6).
ERRNO_DESCRIPTIONS: dict[int, str] = {
    EPERM: "operation not permitted", ENOENT: "no such file or directory",
    EIO: "input/output error", EBADF: "bad file descriptor",
    EAGAIN: "resource temporarily unavailable", EACCES: "permission denied",
    EBUSY: "device or resource busy", ENOTDIR: "not a directory", EISDIR: "is a directory",
    EINVAL: "invalid argument", ENOSPC: "no space left on device", ERANGE: "numerical result out of range",
    EMSGSIZE: "message too long", EOPNOTSUPP: "operation not supported", ESTALE: "stale file handle",
}


class NineError(Exception):
    """A refusal that travels as Rlerror(errno)."""

    def __init__(self, errno: int, detail: str = "") -> None:
        super().__init__(f"{ERRNO_NAMES.get(errno, errno)}{': ' + detail if detail else ''}")
        self.errno = errno
        self.detail = detail

    @property
    def name(self) -> str:
        return ERRNO_NAMES.get(self.errno, str(self.errno))


class DecodeError(Exception):
    """The only exception the codec raises for bad input (SPEC §3.10)."""

    def __init__(self, message: str, tag: int | None = None, errno: int = EINVAL) -> None:
        super().__init__(message)
        self.tag = tag
        self.errno = errno


class FramingLost(Exception):
    """The transport's framing can no longer be trusted: close it without a reply."""
