"""Small test doubles for the console: a fake NineDoor namespace and 9P client.

Why: the console's session logic (acks, streaming, summary, throttling, detail mapping) is tested here
independently of NineDoor; ``test_real_ninedoor.py`` runs the same console against the real server.
The fake honours just enough of SPEC §5.3: the queen may do anything, workers may read ``/proc`` and
``/log`` and may not touch ``/queen/ctl``.
"""
from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass, field

from nine_door import errors as E
from nine_door.errors import NineError
from root_task.console.context import Bridge, Claims, ConsoleConfig, ConsoleContext, TicketRefusal
from root_task.console.throttle import Throttle

BOOT = "Cohesix boot: root-task online\nspawned user-component endpoint 1\ntick 1\n"


@dataclass
class ManualClock:
    ms: int = 1_700_000_000_000

    def now_ms(self) -> int:
        return self.ms

    def monotonic(self) -> float:
        return self.ms / 1000.0


@dataclass
class HybridClock:
    """Manual epoch ms (throttle/tickets, so delays are exact) + real monotonic (socket timeouts)."""

    ms: int = 1_700_000_000_000

    def now_ms(self) -> int:
        return self.ms

    def monotonic(self) -> float:
        return time.monotonic()


@dataclass
class Entry:
    name: str


@dataclass
class FakeDoor:
    files: dict = field(default_factory=lambda: {
        "/proc/boot": BOOT.encode(),
        "/log/queen.log": b"Cohesix boot: root-task online\n",
        "/bin.dat": bytes(range(256)) * 2,
        "/empty": b"",
    })
    dirs: dict = field(default_factory=lambda: {
        "/": ["proc", "log", "queen", "worker", "bin.dat", "empty"],
        "/proc": ["boot"], "/log": ["queen.log"], "/queen": ["ctl"], "/worker": []})
    workers: set = field(default_factory=set)
    log: list = field(default_factory=list)
    sessions_opened: int = 0
    sessions_closed: int = 0
    short_next_write: bool = False
    stale: bool = False
    writes: list = field(default_factory=list)

    def log_append(self, line: str) -> None:
        self.files["/log/queen.log"] += (line + "\n").encode()
        self.log.append(line)

    def open_bridge(self, origin: str) -> Bridge:
        self.sessions_opened += 1
        return Bridge(FakeSession(self), FakeClient(self))


class FakeSession:
    _ids = itertools.count(1)

    def __init__(self, door: FakeDoor) -> None:
        self.door = door
        self.session_id = next(self._ids)

    def close(self) -> None:
        self.door.sessions_closed += 1


class FakeClient:
    def __init__(self, door: FakeDoor) -> None:
        self.door = door
        self.fids: dict[int, str] = {}
        self.opened: dict[int, int] = {}
        self.uname = None
        self._next = itertools.count(1)

    def version(self, msize=8192):
        return msize

    def attach(self, uname, aname=""):
        role, _, wid = uname.partition(":")
        if role != "queen" and wid not in self.door.workers:
            raise NineError(E.ENOENT)
        self.uname = uname
        fid = next(self._next)
        self.fids[fid] = "/"
        return fid

    def _check(self):
        if self.door.stale:
            raise NineError(E.ESTALE)

    def walk(self, fid, names):
        self._check()
        path = self.fids[fid]
        for name in names:
            if path not in self.door.dirs:
                raise NineError(E.ENOTDIR)
            if name not in self.door.dirs[path]:
                raise NineError(E.ENOENT)
            path = (path.rstrip("/") + "/" + name)
            if path in ("/queen", "/queen/ctl") and self.uname != "queen":
                raise NineError(E.EACCES)
        new = next(self._next)
        self.fids[new] = path
        return new

    def lopen(self, fid, flags):
        self._check()
        path = self.fids[fid]
        if path in self.door.dirs and flags & 3:
            raise NineError(E.EISDIR)
        if path == "/proc/boot" and flags & 3:
            raise NineError(E.EACCES)
        self.opened[fid] = flags
        return (None, 8192 - 24)

    def read(self, fid, offset, count):
        self._check()
        data = self.door.files[self.fids[fid]]
        return data[offset:offset + count]

    def readdir(self, fid):
        path = self.fids[fid]
        if path not in self.door.dirs:
            raise NineError(E.ENOTDIR)
        return [Entry(".")] + [Entry(n) for n in self.door.dirs[path]]

    def write(self, fid, offset, data):
        self._check()
        path = self.fids[fid]
        self.door.writes.append((path, offset, bytes(data)))
        if self.door.short_next_write:
            self.door.short_next_write = False
            return 0
        if path == "/queen/ctl":
            try:
                cmd = json.loads(data)
            except ValueError:
                raise NineError(E.EINVAL)
            if "kill" in cmd:
                if cmd["kill"] not in self.door.workers:
                    raise NineError(E.ENOENT)
                self.door.workers.discard(cmd["kill"])
            elif "spawn" in cmd:
                wid = f"worker-{len(self.door.workers) + 1}"
                self.door.workers.add(wid)
            else:
                raise NineError(E.EINVAL)
            return len(data)
        self.door.files[path] = self.door.files.get(path, b"") + data
        return len(data)

    def clunk(self, fid):
        self.fids.pop(fid, None)


def fake_validator(role: str, ticket: str, now_ms: int) -> Claims:
    """Tickets of the form ``ok:<subject>``, ``expired``, ``claims``; anything else is denied."""
    if ticket.startswith("ok:"):
        return Claims(ticket[3:] or None)
    if ticket == "expired":
        raise TicketRefusal("expired")
    if ticket == "claims":
        raise TicketRefusal("invalid-claims")
    raise TicketRefusal("denied")


def make_ctx(door: FakeDoor | None = None, clock: ManualClock | None = None, **config) -> ConsoleContext:
    door = door or FakeDoor()
    return ConsoleContext(door=door, config=ConsoleConfig(**config), throttle=Throttle(),
                          clock=clock or ManualClock(), bridge_factory=door.open_bridge,
                          ticket_validator=fake_validator)
