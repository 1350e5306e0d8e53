"""The console against the real NineDoor server and 9P client (no fakes), serial session and TCP."""
from __future__ import annotations


import pytest

from nine_door import tickets
from nine_door.config import NineDoorConfig
from nine_door.server import NineDoor
from root_task.console.context import ConsoleConfig, ConsoleContext
from root_task.console.session import ConsoleSession, State
from root_task.console.throttle import Throttle

from .fakes import HybridClock
from .tcp_harness import Harness, wait_for

SECRETS = {"queen": "bootstrap", "worker-heartbeat": "worker", "worker-gpu": "worker-gpu"}


def make(**cfg):
    clock = HybridClock()
    throttle = Throttle()
    door = NineDoor(NineDoorConfig(ticket_secrets=SECRETS), clock=clock, throttle=throttle)
    ctx = ConsoleContext(door=door, config=ConsoleConfig(ticket_secrets=SECRETS, **cfg),
                         throttle=throttle, clock=clock)
    return ctx, door


def serial(ctx):
    return ConsoleSession(ctx, transport="serial", origin_key="serial", origin_label="serial",
                          conn_id="serial", audit=lambda line: None)


def run(s, line):
    return list(s.handle_line(line).lines)


def test_queen_flow_through_real_ninedoor():
    ctx, door = make()
    s = serial(ctx)
    boot = run(s, "bi")
    assert boot[0] == "OK BOOTINFO" and boot[1] == "Cohesix boot: root-task online" and boot[-1] == "END"
    assert run(s, "attach queen") == ["OK ATTACH role=queen"]
    assert run(s, "ls /") == ["OK LS path=/ entries=4", "log", "proc", "queen", "worker", "END"]
    assert run(s, "ls /nope") == [
        "ERR LS reason=policy detail=invalid-path path=/nope error=ENOENT msg=invalid path"]
    assert run(s, 'spawn {"spawn":"heartbeat","ticks":5}') == ['OK SPAWN payload={"spawn":"heartbeat","ticks":5}']
    assert run(s, "echo /worker/worker-1/telemetry hello") == [
        "OK ECHO path=/worker/worker-1/telemetry bytes=5"]
    assert run(s, "cat /worker/worker-1/telemetry") == [
        "OK CAT path=/worker/worker-1/telemetry data=hello", "hello", "END"]
    assert run(s, "echo /proc/boot x") == [
        "ERR ECHO reason=policy detail=denied path=/proc/boot error=EACCES msg=permission denied"]
    assert run(s, "spawn {bad") == [
        "ERR SPAWN reason=policy detail=invalid-payload error=EINVAL msg=invalid argument"]
    assert run(s, "echo /log/queen.log operator note") == ["OK ECHO path=/log/queen.log bytes=13"]
    assert run(s, "kill worker-1") == ["OK KILL id=worker-1"]
    log = run(s, "log")
    assert log[-4:] == ["operator note", "killed worker-1", "revoked worker-1: killed by queen", "END"]
    mem = run(s, "mem")
    assert "sessions=1" in mem and "workers=0" in mem
    assert run(s, "quit") == ["OK QUIT"]
    assert door.attached_sessions == 0


def test_worker_console_session_and_revocation():
    ctx, door = make()
    queen = serial(ctx)
    run(queen, "attach queen")
    run(queen, 'spawn {"spawn":"heartbeat","ticks":100}')
    ticket = tickets.mint("worker", "worker-heartbeat", subject="worker-1")
    w = ConsoleSession(ctx, transport="tcp", origin_key="10.0.0.2", origin_label="tcp:10.0.0.2", conn_id="2",
                       audit=lambda line: None)
    w.authenticate()
    assert run(w, f"attach worker {ticket}") == ["OK ATTACH role=worker-heartbeat"]
    assert run(w, "echo /worker/worker-1/telemetry beat") == ["OK ECHO path=/worker/worker-1/telemetry bytes=4"]
    assert run(w, "cat /queen/ctl")[0].startswith("ERR CAT reason=policy detail=denied path=/queen/ctl error=EACCES")
    assert run(w, "kill worker-1") == ["ERR KILL reason=policy detail=denied"]
    run(queen, "kill worker-1")
    assert run(w, "cat /proc/boot") == [
        "ERR CAT reason=cut detail=revoked path=/proc/boot error=ESTALE msg=stale file handle"]
    assert w.state is State.AUTHENTICATED


def test_unknown_worker_and_throttle_logged_in_queen_log():
    ctx, door = make()
    s = serial(ctx)
    ticket = tickets.mint("worker", "worker-heartbeat", subject="worker-5")
    assert run(s, f"attach worker {ticket}") == ["ERR ATTACH reason=policy detail=unknown-worker"]
    assert run(s, f"attach worker {ticket}") == ["ERR ATTACH reason=quota detail=throttled delay_ms=250"]
    lines = door.log_lines()
    assert "console attach denied origin=serial role=worker-heartbeat detail=unknown-worker" in lines
    assert "console throttled origin=serial detail=throttled delay_ms=250" in lines


@pytest.fixture
def harness():
    ctx, door = make()
    h = Harness(ctx)
    yield h, door
    h.stop()


def test_c9_over_tcp_with_real_ninedoor(harness):
    h, door = harness
    p = h.connect()
    p.send("AUTH changeme")
    p.expect("OK AUTH")
    p.attach_ping_cat_boot()
    p.send_raw((8256).to_bytes(4, "little") + b"{" * 8252)
    p.expect("ERR FRAME reason=invalid-length")
    p.send("PING")
    p.expect("PONG", "OK PING reply=pong")
    p.send("quit")
    p.expect("OK QUIT")
    assert p.closed()
    # bad worker ticket (well-formed, wrong MAC) then retry → denied then throttled
    bad = tickets.mint("not-the-secret", "worker-heartbeat", subject="worker-1")
    q = h.connect()
    q.send("AUTH changeme")
    q.expect("OK AUTH")
    q.send(f"ATTACH worker {bad}")
    q.expect("ERR ATTACH reason=policy detail=denied")
    q.send(f"ATTACH worker {bad}")
    q.expect("ERR ATTACH reason=quota detail=throttled delay_ms=250")
    # the same throttle gates NineDoor's 9P Tattach from that IP (shared state)
    assert h.ctx.throttle.check("127.0.0.1", h.ctx.clock.now_ms()).detail == "throttled"
    r = h.connect()
    r.send("AUTH wrong")
    r.expect("ERR AUTH reason=invalid-token")
    assert r.closed()
    assert wait_for(lambda: "audit tcp.conn.close conn_id=1 reason=quit" in h.audits)
    assert wait_for(lambda: "audit tcp.conn.close conn_id=3 reason=auth" in h.audits)
    assert door.attached_sessions == 0
