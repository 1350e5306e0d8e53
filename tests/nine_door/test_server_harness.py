"""Shared test doubles for the NineDoor server tests: a driven clock, a recording launcher, a
message-level client that speaks raw frames (so tests see exactly the wire replies), and a door factory.

Kept as a ``test_server_*`` module so the file-ownership rules hold; it defines no tests itself.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from coh_rtc import testing

from nine_door import codec
from nine_door import messages as m
from nine_door.config import NineDoorConfig
from nine_door.server import ChannelBinding, NineDoor

SECRETS = testing.TICKET_SECRETS
START_MS = 1_700_000_000_000

# The console's TCP gate off, as the server tests were written against (no /proc/boot net line).
BASE_OVERRIDES = {"console.tcp.enable": False}


class FakeClock:
    """Test-driven time: ``advance(s)`` moves both the epoch and the monotonic clock."""

    def __init__(self, start_ms: int = START_MS) -> None:
        self.ms = start_ms
        self.mono = 1000.0

    def now_ms(self) -> int:
        return self.ms

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.ms += int(seconds * 1000)
        self.mono += seconds


@dataclass
class RecordingLauncher:
    started: list[tuple[str, str, str]] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)

    def start(self, worker_id: str, role: str, ticket: str) -> None:
        self.started.append((worker_id, role, ticket))

    def stop(self, worker_id: str) -> None:
        self.stopped.append(worker_id)


def resolved(**overrides) -> dict:
    """The compiled schema-1.0 manifest (coh_rtc.testing) with dotted-key overrides, e.g.
    ``{"secure9p.msize": 4096}``; an override of a key the manifest lacks is a KeyError."""
    return testing.resolved({**BASE_OVERRIDES, **overrides})


def make_door(overrides: dict | None = None, throttle=None, net_info=None):
    clock = FakeClock()
    launcher = RecordingLauncher()
    config = NineDoorConfig.from_resolved(resolved(**(overrides or {})), SECRETS, "ab" * 32)
    door = NineDoor(config, None, launcher, clock, throttle=throttle, net_info=net_info)
    return door, clock, launcher


class NineRemoteError(Exception):
    def __init__(self, errno: int) -> None:
        super().__init__(errno)
        self.errno = errno


class Raw:
    """A message-level client over one session (message transport unless ``stream=True``)."""

    def __init__(self, session, stream: bool = False) -> None:
        self.session = session
        self.stream = stream
        self._tag = 0

    def next_tag(self) -> int:
        self._tag = (self._tag + 1) % 0xFFFF
        return self._tag

    def send_frames(self, data: bytes) -> list:
        out = self.session.feed(data) if self.stream else self.session.handle_message(data)
        return [codec.decode_reply(frame) for frame in out]

    def rpc(self, msg):
        replies = self.send_frames(codec.encode(msg))
        assert len(replies) == 1, replies
        reply = replies[0]
        assert reply.tag == msg.tag
        if isinstance(reply, m.Rlerror):
            raise NineRemoteError(reply.ecode)
        return reply

    def errno(self, msg) -> int:
        try:
            reply = self.rpc(msg)
        except NineRemoteError as exc:
            return exc.errno
        raise AssertionError(f"expected Rlerror, got {reply!r}")

    # conveniences
    def version(self, msize: int = 8192, version: str = "9P2000.L"):
        return self.rpc(m.Tversion(m.NOTAG, msize, version))

    def attach(self, fid: int = 0, uname: str = "queen", aname: str = ""):
        return self.rpc(m.Tattach(self.next_tag(), fid, m.NOFID, uname, aname, m.NOFID))

    def walk(self, fid: int, newfid: int, *names: str):
        return self.rpc(m.Twalk(self.next_tag(), fid, newfid, tuple(names)))

    def lopen(self, fid: int, flags: int = m.O_RDONLY):
        return self.rpc(m.Tlopen(self.next_tag(), fid, flags))

    def read(self, fid: int, offset: int = 0, count: int = 8000) -> bytes:
        return self.rpc(m.Tread(self.next_tag(), fid, offset, count)).data

    def write(self, fid: int, data: bytes, offset: int = 0) -> int:
        return self.rpc(m.Twrite(self.next_tag(), fid, offset, data)).count

    def clunk(self, fid: int):
        return self.rpc(m.Tclunk(self.next_tag(), fid))

    def getattr(self, fid: int):
        return self.rpc(m.Tgetattr(self.next_tag(), fid, m.GETATTR_BASIC))

    def readdir(self, fid: int, offset: int = 0, count: int = 8000) -> tuple:
        return codec.decode_dirents(self.rpc(m.Treaddir(self.next_tag(), fid, offset, count)).data)

    # path helpers (fresh fids from 100 upward)
    _next_fid = 100

    def open_path(self, path: str, flags: int = m.O_RDONLY, root: int = 0) -> int:
        Raw._next_fid += 1
        fid = Raw._next_fid
        names = [p for p in path.split("/") if p]
        self.walk(root, fid, *names)
        self.lopen(fid, flags)
        return fid

    def cat(self, path: str) -> bytes:
        fid = self.open_path(path)
        out = b""
        while True:
            chunk = self.read(fid, len(out))
            if not chunk:
                break
            out += chunk
        self.clunk(fid)
        return out

    def append(self, path: str, data: bytes) -> int:
        fid = self.open_path(path, m.O_WRONLY | m.O_APPEND)
        try:
            return self.write(fid, data)
        finally:
            self.clunk(fid)

    def ls(self, path: str) -> list[str]:
        fid = self.open_path(path)
        names = [e.name for e in self.readdir(fid)]
        self.clunk(fid)
        return names


def queen(door: NineDoor, kind: str = "console", stream: bool = False) -> Raw:
    """A negotiated, attached ticket-less queen (fid 0 = root)."""
    raw = Raw(door.open_session(ChannelBinding(kind=kind, origin="serial" if kind == "console" else kind)),
              stream=stream)
    raw.version()
    raw.attach(0, "queen", "")
    return raw


def log_text(door: NineDoor) -> str:
    return "\n".join(door.log_lines())


# -- a real event loop in a thread (worker and interop tests) -------------------------------------
class ServedDoor:
    """NineDoor + EventPump running in a background thread; channels are AF_UNIX SOCK_SEQPACKET pairs.

    Everything that touches the door runs on the pump thread (the launcher is called from a ctl write
    that the pump thread is executing), so the single-threaded server needs no locks in tests either.
    """

    def __init__(self, overrides: dict | None = None, worker_runner=None, tcp: bool = False,
                 throttle=None) -> None:
        import socket
        import threading

        from root_task.pump import EventPump

        from nine_door.server import SystemClock

        self._socket = socket
        self.pump = EventPump()
        self.launcher = self
        self.started: list[tuple[str, str, str]] = []
        self.stopped: list[str] = []
        self.worker_threads: dict[str, threading.Thread] = {}
        self.worker_results: dict[str, int] = {}
        self.worker_runner = worker_runner
        self.audit_lines: list[str] = []
        config = NineDoorConfig.from_resolved(resolved(**(overrides or {})), SECRETS, "ab" * 32)
        self.door = NineDoor(config, None, self, SystemClock(), throttle=throttle)
        self.pump.call_every(0.02, self.door.on_tick)
        self.listener = None
        if tcp:
            from nine_door.tcp_listener import NinePListener

            self.listener = NinePListener(self.pump, self.door, "127.0.0.1", 0, self.audit_lines.append)
            self.listener.start()
        self._thread = threading.Thread(target=self.pump.run, name="pump", daemon=True)

    def run_in_thread(self) -> "ServedDoor":
        """Start the loop; create test-side channels before this (the pump is single-threaded)."""
        self._thread.start()
        return self

    # WorkerLauncher
    def start(self, worker_id: str, role: str, ticket: str) -> None:
        import threading

        self.started.append((worker_id, role, ticket))
        theirs = self._serve_channel(ChannelBinding(kind="channel", origin="channel", role=role,
                                                    worker_id=worker_id))
        if self.worker_runner is not None:
            def run() -> None:
                self.worker_results[worker_id] = self.worker_runner(theirs.detach(), worker_id, ticket)
            thread = threading.Thread(target=run, name=worker_id, daemon=True)
            self.worker_threads[worker_id] = thread
            thread.start()

    def stop(self, worker_id: str) -> None:
        self.stopped.append(worker_id)

    def channel(self, binding: ChannelBinding):
        """A client-side seqpacket socket for a new session; call before :meth:`run_in_thread`."""
        return self._serve_channel(binding)

    def _serve_channel(self, binding: ChannelBinding):
        ours, theirs = self._socket.socketpair(self._socket.AF_UNIX, self._socket.SOCK_SEQPACKET)
        session = self.door.open_session(binding)

        def on_readable() -> None:
            try:
                message = ours.recv(65536)
            except OSError:
                message = b""
            if not message:
                self.pump.remove_reader(ours)
                ours.close()
                session.close()
                return
            for reply in session.handle_message(message):
                ours.send(reply)

        self.pump.add_reader(ours, on_readable, source="ipc")
        return theirs

    def close(self) -> None:
        self.pump.stop()              # the periodic on_tick wakes the loop within 20 ms
        if self._thread.is_alive():
            self._thread.join(5)
        if self.listener is not None:
            self.listener.stop()
