"""Real-socket tests of the TCP console (SPEC §10.4, §10.7, §10.8, conformance C9)."""
from __future__ import annotations

import struct

import pytest

from root_task.console.framing import encode_frame

from .fakes import FakeDoor, HybridClock, make_ctx
from .tcp_harness import Harness, wait_for


@pytest.fixture
def make_harness():
    made: list[Harness] = []

    def factory(door=None, clock=None, **cfg):
        h = Harness(make_ctx(door or FakeDoor(), clock or HybridClock(), **cfg))
        made.append(h)
        return h
    yield factory
    for h in made:
        h.stop()


def authed(h):
    p = h.connect()
    p.send("AUTH changeme")
    p.expect("OK AUTH")
    return p


def test_auth_attach_ping_cat_quit(make_harness):
    h = make_harness()
    p = h.connect()
    p.send_raw(bytes.fromhex("1100000041555448206368616e67656d65"))   # SPEC example bytes
    assert p.sock.recv(11) == bytes.fromhex("0b0000004f4b2041555448")
    p.attach_ping_cat_boot()
    p.send("quit")
    p.expect("OK QUIT")
    assert p.closed()
    assert wait_for(lambda: any("reason=quit" in a for a in h.audits))
    assert h.audit_for(1) == [
        "audit tcp.conn.open conn_id=1 peer=127.0.0.1:%d" % p.sock.getsockname()[1],
        "audit tcp.auth.ok conn_id=1",
        "audit console.attach conn_id=1 role=queen",
        "audit tcp.conn.close conn_id=1 reason=quit",
    ]


def test_wrong_token_closes_and_counts_failure(make_harness):
    h = make_harness()
    p = h.connect()
    p.send("AUTH nope")
    p.expect("ERR AUTH reason=invalid-token")
    assert p.closed()
    assert wait_for(lambda: "audit tcp.conn.close conn_id=1 reason=auth" in h.audits)
    assert "audit tcp.auth.fail conn_id=1 reason=invalid-token" in h.audits
    assert h.ctx.throttle.failures("127.0.0.1") == 1
    assert h.ctx.net.auth_failures == 1


@pytest.mark.parametrize("payload,reason", [
    ("HELLO", "expected-token"), ("AUTH ", "expected-token"), ("auth changeme", "expected-token"),
    ("AUTH " + "x" * 300, "invalid-length"),
])
def test_auth_refusals(make_harness, payload, reason):
    h = make_harness()
    p = h.connect()
    p.send(payload)
    p.expect(f"ERR AUTH reason={reason}")
    assert p.closed()


def test_frame_length_3_before_auth(make_harness):
    h = make_harness()
    p = h.connect()
    p.send_raw(struct.pack("<I", 3))
    p.expect("ERR AUTH reason=invalid-length")
    assert p.closed()
    assert wait_for(lambda: "audit tcp.conn.close conn_id=1 reason=auth" in h.audits)


def test_frame_length_3_after_auth_closes_without_reply(make_harness):
    h = make_harness()
    p = authed(h)
    p.send_raw(struct.pack("<I", 3))
    assert p.closed()
    assert wait_for(lambda: "audit tcp.conn.close conn_id=1 reason=frame" in h.audits)


def test_over_one_mib_after_auth_closes(make_harness):
    h = make_harness()
    p = authed(h)
    p.send_raw(struct.pack("<I", (1 << 20) + 1))
    assert p.closed()


@pytest.mark.parametrize("size", [8256, 9000, 8193])
def test_oversize_frame_after_auth_session_survives(make_harness, size):
    h = make_harness()
    p = authed(h)
    p.send_raw(struct.pack("<I", size) + b"x" * (size - 4))
    p.expect("ERR FRAME reason=invalid-length")
    p.send("PING")
    p.expect("PONG", "OK PING reply=pong")


def test_payload_over_line_limit_and_empty_payload(make_harness):
    h = make_harness()
    p = authed(h)
    p.send("ECHO /log/queen.log " + "y" * 300)
    p.expect("ERR FRAME reason=invalid-length")
    p.send("")
    p.expect("ERR PARSE reason=policy detail=empty-line")
    p.send("PING\r\n")
    p.expect("PONG", "OK PING reply=pong")


def test_bad_worker_ticket_then_retry_throttled(make_harness):
    h = make_harness()
    p = authed(h)
    p.send("ATTACH worker cohesix-ticket-00.00")
    p.expect("ERR ATTACH reason=policy detail=denied")
    p.send("ATTACH worker cohesix-ticket-00.00")
    p.expect("ERR ATTACH reason=quota detail=throttled delay_ms=250")
    door = h.ctx.door
    assert "console attach denied origin=tcp:127.0.0.1 role=worker-heartbeat detail=denied" in door.log
    assert "console throttled origin=tcp:127.0.0.1 detail=throttled delay_ms=250" in door.log


def test_busy_when_max_sessions_reached(make_harness):
    h = make_harness(max_sessions=1)
    first = authed(h)
    second = h.connect()
    second.expect("ERR AUTH reason=busy")
    assert second.closed()
    first.send("PING")
    first.expect("PONG", "OK PING reply=pong")
    assert wait_for(lambda: "audit tcp.conn.close conn_id=2 reason=auth" in h.audits)


def test_auth_timeout(make_harness):
    h = make_harness(auth_timeout_s=0.2)
    p = h.connect()
    p.expect("ERR AUTH reason=timeout")
    assert p.closed()
    assert wait_for(lambda: "audit tcp.conn.close conn_id=1 reason=timeout" in h.audits)


def test_idle_timeout(make_harness):
    h = make_harness(idle_timeout_s=0.3)
    p = authed(h)
    p.expect("ERR CONSOLE reason=cut detail=timeout")
    assert p.closed()
    assert wait_for(lambda: "audit tcp.conn.close conn_id=1 reason=timeout" in h.audits)


def test_auth_lockout_after_three_bad_tokens(make_harness):
    clock = HybridClock()
    h = make_harness(clock=clock)
    for _ in range(3):
        p = h.connect()
        p.send("AUTH wrong")
        p.expect("ERR AUTH reason=invalid-token")
        assert p.closed()
    p = h.connect()
    p.send("AUTH changeme")
    p.expect("ERR AUTH reason=rate-limited delay_ms=90000")
    assert p.closed()
    clock.ms += 90_000
    authed(h)


def test_eof_and_shutdown_audit(make_harness):
    h = make_harness()
    p = authed(h)
    p.close()
    assert wait_for(lambda: "audit tcp.conn.close conn_id=1 reason=eof" in h.audits)
    q = authed(h)
    h.call(lambda: h.server.close_all(reason="shutdown"))
    assert q.closed()
    assert "audit tcp.conn.close conn_id=2 reason=shutdown" in h.audits
    opens = [a for a in h.audits if "tcp.conn.open" in a]
    closes = [a for a in h.audits if "tcp.conn.close" in a]
    assert len(opens) == len(closes) == 2


def test_pipelined_frames_in_one_write(make_harness):
    h = make_harness()
    p = h.connect()
    p.send_raw(encode_frame("AUTH changeme") + b"".join(encode_frame("PING") for _ in range(200)))
    p.expect("OK AUTH")
    for _ in range(200):
        p.expect("PONG", "OK PING reply=pong")
    assert h.ctx.net.frames_rx == 201


def test_slow_reader_does_not_stall_others(make_harness):
    door = FakeDoor()
    door.files["/log/queen.log"] = ("z" * 200 + "\n").encode() * 4000     # ~800 KB per LOG reply
    h = make_harness(door=door)
    hog = authed(h)
    hog.send("ATTACH queen")
    hog.sock.setsockopt(__import__("socket").SOL_SOCKET, __import__("socket").SO_RCVBUF, 4096)
    for _ in range(20):                    # never read: replies pile up server-side
        hog.send("LOG")
    other = authed(h)
    for _ in range(5):
        other.send("PING")
        other.expect("PONG", "OK PING reply=pong")
    # the hog is either paused (backpressure) or dropped for exceeding its output bound
    conns = h.call(lambda: [(c.reading, len(c.out)) for c in h.server._conns.values()])
    assert all(not reading or pending < 64 * 1024 for reading, pending in conns)


def test_port_reports_the_bound_port_when_started_with_port_zero(make_harness):
    """Like the 9P listener, the server's ``port`` is the bound one (host mode starts with port 0)."""
    h = make_harness()
    assert h.server.port == h.server.address[1] != 0
