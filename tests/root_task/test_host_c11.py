"""SPEC §16 C11 over real TCP against the host run mode: 4 sessions × 10 000 interleaved pipelined appends
(one reply per tag, counts equal payload lengths, per-fid order), a duplicate in-flight tag (EINVAL, the
original still answered), a window overflow (EBUSY), and a 2-frame batch on a message channel with
``batch_frames = false`` (EBUSY ×2)."""
from __future__ import annotations

import socket
import threading

from coh_rtc.testing import TICKET_SECRETS, write_ir
from nine_door import codec
from nine_door import errors as E
from nine_door import messages as m
from nine_door import tickets

SESSIONS, APPENDS, DEPTH = 4, 10_000, 32
QUEEN = tickets.mint(TICKET_SECRETS["queen"], "queen")


def host(tmp_path, overrides):
    from root_task.host import start_in_process

    return start_in_process(str(write_ir(tmp_path, overrides, schema="1.2")))


class Conn:
    """A raw 9P connection: frames out in bursts, replies read back and matched by tag."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.send(m.Tversion(m.NOTAG, 8192, "9P2000.L"))
        assert isinstance(self.recv(1)[0], m.Rversion)
        self.send(m.Tattach(0, 0, m.NOFID, "queen", QUEEN, m.NOFID))
        assert isinstance(self.recv(1)[0], m.Rattach)

    def send(self, *msgs) -> None:
        self.sock.sendall(b"".join(codec.encode(msg) for msg in msgs))

    def recv(self, n: int) -> list:
        out = []
        while len(out) < n:
            while len(self.buf) < 4 or len(self.buf) < int.from_bytes(self.buf[:4], "little"):
                chunk = self.sock.recv(65536)
                assert chunk, "connection closed"
                self.buf += chunk
            size = int.from_bytes(self.buf[:4], "little")
            out.append(codec.decode_reply(self.buf[:size]))
            self.buf = self.buf[size:]
        return out

    def open_log(self, fid: int) -> None:
        self.send(m.Twalk(1, 0, fid, ("log", "queen.log")), m.Tlopen(2, fid, m.O_WRONLY | m.O_APPEND))
        assert [type(r) for r in self.recv(2)] == [m.Rwalk, m.Rlopen]


def test_c11_four_sessions_of_ten_thousand_pipelined_appends(tmp_path):
    system = host(tmp_path, {})
    failures: list[str] = []

    def session(n: int) -> None:
        try:
            conn = Conn(system.ninep_port)
            conn.open_log(1)
            next_i, answered = 0, 0
            while answered < APPENDS:
                burst = []
                while next_i < APPENDS and next_i - answered < DEPTH:
                    burst.append(m.Twrite(next_i % DEPTH, 1, 0, f"s{n}-{next_i}".encode()))
                    next_i += 1
                conn.send(*burst)
                replies = conn.recv(len(burst))
                assert sorted(r.tag for r in replies) == sorted(w.tag for w in burst)   # one reply per tag
                by_tag = {r.tag: r for r in replies}
                for w in burst:
                    assert by_tag[w.tag] == m.Rwrite(w.tag, len(w.data)), by_tag[w.tag]
                answered += len(burst)
            conn.sock.close()
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            failures.append(f"session {n}: {exc!r}")

    try:
        threads = [threading.Thread(target=session, args=(n,)) for n in range(SESSIONS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not failures, failures
        lines = system.task.door.log_lines()
    finally:
        system.stop()
    for n in range(SESSIONS):                      # every append once, in send order per fid
        mine = [line for line in lines if line.startswith(f"s{n}-")]
        assert mine == [f"s{n}-{i}" for i in range(APPENDS)]
    starts = [next(i for i, line in enumerate(lines) if line == f"s{n}-0") for n in range(SESSIONS)]
    ends = [next(i for i, line in enumerate(lines) if line == f"s{n}-{APPENDS - 1}") for n in range(SESSIONS)]
    assert max(starts) < min(ends)                 # the four sessions really were interleaved


def test_c11_duplicate_tag_and_window_overflow_over_tcp(tmp_path):
    system = host(tmp_path, {"secure9p.tags_per_session": 4})
    try:
        conn = Conn(system.ninep_port)
        conn.send(m.Tgetattr(5, 0, m.GETATTR_BASIC), m.Tgetattr(5, 0, m.GETATTR_BASIC))
        first, second = conn.recv(2)
        assert isinstance(first, m.Rgetattr) and first.tag == 5           # the original is answered
        assert second == m.Rlerror(5, E.EINVAL)
        conn.send(*(m.Tgetattr(10 + i, 0, m.GETATTR_BASIC) for i in range(10)))
        replies = conn.recv(10)
        assert [type(r) for r in replies[:4]] == [m.Rgetattr] * 4
        assert replies[4:] == [m.Rlerror(14 + i, E.EBUSY) for i in range(6)]
        conn.sock.close()
    finally:
        system.stop()


def test_c11_a_two_frame_batch_without_batch_frames_is_ebusy_twice():
    """The in-VM channel (a message transport, §3.14): a served door's SOCK_SEQPACKET channel."""
    try:
        from tests.nine_door.test_server_harness import ServedDoor
    except ImportError:  # pragma: no cover
        from test_server_harness import ServedDoor
    from nine_door.server import ChannelBinding

    served = ServedDoor({"secure9p.batch_frames": False, "secure9p.tags_per_session": 8})
    channel = served.channel(ChannelBinding(kind="channel", origin="channel"))
    served.run_in_thread()
    try:
        channel.send(codec.encode(m.Tversion(m.NOTAG, 8192, "9P2000.L")))
        assert isinstance(codec.decode_reply(channel.recv(8192)), m.Rversion)
        channel.send(codec.encode(m.Tattach(1, 0, m.NOFID, "queen", "", m.NOFID)))
        assert isinstance(codec.decode_reply(channel.recv(8192)), m.Rattach)
        channel.send(codec.encode(m.Tgetattr(2, 0, 1)) + codec.encode(m.Tgetattr(3, 0, 1)))
        replies = [codec.decode_reply(channel.recv(8192)) for _ in range(2)]
        assert replies == [m.Rlerror(2, E.EBUSY), m.Rlerror(3, E.EBUSY)]
    finally:
        channel.close()
        served.close()
