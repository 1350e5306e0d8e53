"""/queen/ctl line processing and commands (SPEC §6), workers, budgets and revocation (§4.6, C6)."""
from __future__ import annotations

import pytest

from nine_door import errors as E
from nine_door import messages as m
from nine_door import tickets
from nine_door.jsonline import JsonLineError, parse_object
from nine_door.queen_ctl import Kill, SetBudget, SpawnHeartbeat, parse_command
from nine_door.server import ChannelBinding

try:
    from .test_server_harness import SECRETS, Raw, log_text, make_door, queen
except ImportError:  # pragma: no cover
    from test_server_harness import SECRETS, Raw, log_text, make_door, queen


def ctl(raw: Raw, text: str) -> int:
    return raw.append("/queen/ctl", text.encode())


def ctl_errno(raw: Raw, text: str) -> int:
    fid = raw.open_path("/queen/ctl", m.O_WRONLY | m.O_APPEND)
    try:
        return raw.errno(m.Twrite(raw.next_tag(), fid, 0, text.encode()))
    finally:
        raw.clunk(fid)


def worker_session(door, worker_id: str, ticket: str, kind: str = "channel") -> Raw:
    binding = ChannelBinding(kind=kind, origin=kind, role="worker-heartbeat" if kind == "channel" else None,
                             worker_id=worker_id if kind == "channel" else None)
    raw = Raw(door.open_session(binding))
    raw.version()
    raw.attach(0, f"worker-heartbeat:{worker_id}", ticket)
    return raw


# -- strict JSON (§6.1) -----------------------------------------------------------------------
@pytest.mark.parametrize("line", ['{"a":1,"a":2}', '[1]', '{"a":{"b":1,"b":1}}', '{"a":NaN}', '{"a":1}{"b":2}',
                                  '{', '', '{"a":"\\ud800"}', '{"\\udc80":1}', '{"a":["x","\\udfff"]}'])
def test_jsonline_rejects(line):
    with pytest.raises(JsonLineError):
        parse_object(line)


@pytest.mark.parametrize("line", [
    '{"spawn":"heartbeat"}', '{"spawn":"heartbeat","ticks":0}', '{"spawn":"heartbeat","ticks":true}',
    '{"spawn":"heartbeat","ticks":1.0}', '{"spawn":"heartbeat","ticks":9223372036854775808}',
    '{"spawn":"heartbeat","ticks":1,"extra":1}', '{"spawn":"Heartbeat","ticks":1}',
    '{"spawn":"heartbeat","ticks":1,"budget":{"ticks":1}}', '{"spawn":"heartbeat","ticks":1,"ticks":2}',
    '{"kill":"worker-01"}', '{"spawn":"heartbeat","ticks":1e3}', '{"kill":"worker-1","kill":"worker-1"}', '{"kill":"w1"}', '{"kill":"worker-1","spawn":"heartbeat"}', '{"budget":{}}',
    '{"budget":{"ttl_s":0}}', '{"bind":{"from":"/log"}}', '{"mount":{"service":"","at":"/x"}}', '{}',
    '{"spawn":"gpu","lease":{"gpu_id":"GPU-0","mem_mb":1,"streams":1,"ttl_s":1},"ticks":1}',
])
def test_parse_command_rejects(line):
    with pytest.raises(E.NineError) as info:
        parse_command(line)
    assert info.value.errno == E.EINVAL


def test_parse_command_accepts():
    assert parse_command('{"spawn":"heartbeat","ticks":5}') == SpawnHeartbeat(5, None, None)
    assert parse_command(' {"spawn":"heartbeat","ticks":5,"budget":{"ops":3}} ') == SpawnHeartbeat(5, None, 3)
    assert parse_command('{"kill":"worker-12"}') == Kill("worker-12")
    assert parse_command('{"budget":{"ttl_s":60}}') == SetBudget(60, None)


# -- line processing --------------------------------------------------------------------------
def test_line_processing_and_short_counts():
    door, _, _ = make_door()
    q = queen(door)
    fid = q.open_path("/queen/ctl", m.O_WRONLY | m.O_APPEND)
    assert q.errno(m.Twrite(1, fid, 0, b"\xff\n")) == E.EINVAL
    assert q.errno(m.Twrite(2, fid, 0, b"\n  \n{bad}\n")) == E.EINVAL           # first non-blank fails
    first = b'{"budget":{"ttl_s":60}}\r\n'
    data = first + b"\n" + b'{"kill":"worker-9"}\n' + b'{"budget":{"ops":1}}\n'
    assert q.write(fid, data) == len(first)                                    # short: line 2 failed
    assert door.default_budget.ttl_s == 60 and door.default_budget.ops == 10000  # line 3 not applied
    both = b'{"budget":{"ops":7}}\n{"budget":{"ttl_s":9}}'
    assert q.write(fid, both) == len(both)
    assert "updated default budget ttl=60 ops=10000" in door.log_lines()
    assert door.log_lines()[-1] == "updated default budget ttl=9 ops=7"


def test_only_queen_can_open_ctl_and_workers_are_confined_c6():
    door, clock, launcher = make_door()
    q = queen(door)
    assert ctl(q, '{"spawn":"heartbeat","ticks":5}') == 31
    assert ctl(q, '{"spawn":"heartbeat","ticks":5}') == 31
    ticket = launcher.started[0][2]
    w = worker_session(door, "worker-1", ticket)
    assert w.errno(m.Twalk(1, 0, 1, ("queen", "ctl"))) == E.EACCES
    assert w.errno(m.Twalk(1, 0, 1, ("queen",))) == E.EACCES
    assert len(w.walk(0, 1, "worker", "worker-2", "telemetry").qids) == 1   # partial: stops at EACCES
    w.walk(0, 2, "worker")
    assert w.errno(m.Twalk(1, 2, 3, ("worker-2",))) == E.EACCES
    assert w.errno(m.Tlopen(1, 2, m.O_RDONLY)) == E.EACCES   # T: walk-through only, listing → EACCES
    assert w.ls("/worker/worker-1") == ["telemetry"]
    assert w.getattr(2).mode == m.S_IFDIR | 0o111
    assert w.ls("/") == ["log", "proc", "worker"]


def test_spawn_creates_worker_and_mints_ticket_c6():
    door, clock, launcher = make_door()
    q = queen(door)
    ctl(q, '{"spawn":"heartbeat","ticks":5}')
    assert q.ls("/worker") == ["worker-1"]
    assert q.ls("/worker/worker-1") == ["telemetry"]
    assert "spawned worker-1 ticks=5 ttl=300 ops=10000" in door.log_lines()
    (worker_id, role, ticket), = launcher.started
    assert (worker_id, role) == ("worker-1", "worker-heartbeat")
    claims = tickets.check(ticket, SECRETS.get, "worker-heartbeat", "worker-1", clock.now_ms())
    assert (claims.ticks, claims.ops, claims.ttl_s, claims.issued_at_ms) == (5, 10000, 300, clock.now_ms())
    assert door.live_workers == 1 and door.telemetry_capacity == 65536


def test_heartbeats_kill_and_estale_c6():
    door, clock, launcher = make_door()
    q = queen(door)
    ctl(q, '{"spawn":"heartbeat","ticks":100}')
    w = worker_session(door, "worker-1", launcher.started[0][2])
    fid = w.open_path("/worker/worker-1/telemetry", m.O_WRONLY | m.O_APPEND)
    for n in (1, 2, 3):
        assert w.write(fid, f"heartbeat {n}\n".encode()) == len(f"heartbeat {n}\n")
    assert q.cat("/worker/worker-1/telemetry") == b"heartbeat 1\nheartbeat 2\nheartbeat 3\n"
    assert door.telemetry_bytes == 36
    qfid = q.open_path("/worker/worker-1/telemetry")
    ctl(q, '{"kill":"worker-1"}')
    lines = door.log_lines()
    assert lines[-2:] == ["killed worker-1", "revoked worker-1: killed by queen"]
    assert launcher.stopped == ["worker-1"]
    assert w.errno(m.Twrite(9, fid, 0, b"heartbeat 4\n")) == E.ESTALE
    assert w.errno(m.Tclunk(9, fid)) == E.ESTALE
    assert q.errno(m.Tread(9, qfid, 0, 100)) == E.ENOENT         # removed node: ENOENT …
    q.clunk(qfid)                                                 # … except clunk
    assert q.ls("/worker") == []
    assert ctl_errno(q, '{"kill":"worker-1"}') == E.ENOENT
    ctl(q, '{"spawn":"heartbeat","ticks":1}')
    assert q.ls("/worker") == ["worker-2"]                        # ids never reused


def test_tick_budget_exhaustion_c6():
    door, clock, launcher = make_door()
    q = queen(door)
    ctl(q, '{"spawn":"heartbeat","ticks":1}')
    w = worker_session(door, "worker-1", launcher.started[0][2])
    fid = w.open_path("/worker/worker-1/telemetry", m.O_WRONLY | m.O_APPEND)
    assert w.write(fid, b"heartbeat 1\n") == 12
    assert w.errno(m.Twrite(9, fid, 0, b"heartbeat 2\n")) == E.ESTALE
    assert door.log_lines()[-1] == "revoked worker-1: tick budget exhausted"
    assert launcher.stopped == ["worker-1"]
    assert door.live_workers == 0


def test_ops_budget_exhaustion():
    door, clock, launcher = make_door()
    q = queen(door)
    ctl(q, '{"spawn":"heartbeat","ticks":10,"budget":{"ops":3}}')
    w = worker_session(door, "worker-1", launcher.started[0][2])
    w.walk(0, 1)
    w.walk(0, 2)
    w.walk(0, 3)
    assert w.errno(m.Twalk(9, 0, 4, ())) == E.ESTALE
    assert door.log_lines()[-1] == "revoked worker-1: operation budget exhausted"


def test_ttl_enforced_on_request_and_proactively():
    door, clock, launcher = make_door()
    q = queen(door)
    ctl(q, '{"spawn":"heartbeat","ticks":10,"budget":{"ttl_s":5}}')
    ctl(q, '{"spawn":"heartbeat","ticks":10,"budget":{"ttl_s":5}}')
    w = worker_session(door, "worker-1", launcher.started[0][2])
    clock.advance(4.9)
    door.on_tick()
    w.walk(0, 1)
    clock.advance(0.1)
    assert w.errno(m.Twalk(9, 0, 2, ())) == E.ESTALE
    assert "revoked worker-1: ticket ttl expired" in door.log_lines()
    door.on_tick()                                                   # worker-2 has no session
    assert door.log_lines()[-1] == "revoked worker-2: ticket ttl expired"
    assert door.live_workers == 0


def test_worker_ticket_ttl_tighter_than_spawn():
    door, clock, launcher = make_door()
    q = queen(door)
    ctl(q, '{"spawn":"heartbeat","ticks":10}')
    short = tickets.mint(SECRETS["worker-heartbeat"], "worker-heartbeat", subject="worker-1", ttl_s=2,
                         issued_at_ms=0)
    w = worker_session(door, "worker-1", short)
    clock.advance(2)
    assert w.errno(m.Twalk(9, 0, 2, ())) == E.ESTALE
    assert door.log_lines()[-1] == "revoked worker-1: ticket ttl expired"


def test_spawn_limits_and_disabled_roles():
    door, _, _ = make_door({"system.max_workers": 1})
    q = queen(door)
    ctl(q, '{"spawn":"heartbeat","ticks":1}')
    assert ctl_errno(q, '{"spawn":"heartbeat","ticks":1}') == E.EBUSY
    door2, _, _ = make_door({"roles.worker-heartbeat.enable": False})
    assert ctl_errno(queen(door2), '{"spawn":"heartbeat","ticks":1}') == E.EPERM
    gpu = '{"spawn":"gpu","lease":{"gpu_id":"GPU-0","mem_mb":1,"streams":1,"ttl_s":1}}'
    assert ctl_errno(q, gpu) == E.ENOENT
    door3, _, _ = make_door({"roles.worker-gpu.enable": False})
    assert ctl_errno(queen(door3), gpu) == E.EPERM


def test_spawn_uses_updated_default_budget():
    door, _, _ = make_door()
    q = queen(door)
    ctl(q, '{"budget":{"ttl_s":60}}')
    ctl(q, '{"spawn":"heartbeat","ticks":3,"budget":{"ops":9}}')
    assert door.log_lines()[-1] == "spawned worker-1 ticks=3 ttl=60 ops=9"


# -- worker attach rules (§4.2, §4.5, §3.14) ------------------------------------------------------
def test_worker_attach_failures():
    door, clock, launcher = make_door()
    q = queen(door)
    ctl(q, '{"spawn":"heartbeat","ticks":5}')
    ticket = launcher.started[0][2]
    binding = ChannelBinding(kind="channel", origin="channel", role="worker-heartbeat", worker_id="worker-1")

    def attach_errno(uname, aname, b=binding):
        raw = Raw(door.open_session(b))
        raw.version()
        return raw.errno(m.Tattach(1, 0, m.NOFID, uname, aname, m.NOFID))

    assert attach_errno("worker-heartbeat:worker-1", "") == E.EACCES               # ticket mandatory
    assert attach_errno("worker-heartbeat:worker-1", ticket[:-1] + "0") == E.EACCES  # bad MAC
    assert attach_errno("queen", "") == E.EACCES                                    # channel binding
    other = tickets.mint(SECRETS["worker-heartbeat"], "worker-heartbeat", subject="worker-2")
    assert attach_errno("worker-heartbeat:worker-2", other) == E.EACCES             # binding again
    console = ChannelBinding(kind="console", origin="serial")
    assert attach_errno("worker-heartbeat:worker-2", other, console) == E.ENOENT     # no record
    gpu_ticket = tickets.mint(SECRETS["worker-gpu"], "worker-gpu", subject="worker-1")
    assert attach_errno("worker-gpu:worker-1", gpu_ticket, console) == E.EINVAL     # role mismatch
    expired = tickets.mint(SECRETS["worker-heartbeat"], "worker-heartbeat", subject="worker-1", ttl_s=1,
                           issued_at_ms=clock.now_ms() - 5000)
    assert attach_errno("worker-heartbeat:worker-1", expired) == E.EACCES
    denials = [l for l in door.log_lines() if l.startswith("9p attach denied")]
    assert "9p attach denied origin=channel uname=worker-heartbeat:worker-1 errno=13" in denials
    # empty uname: identity from the ticket
    raw = Raw(door.open_session(console))
    raw.version()
    raw.attach(0, "", ticket)
    assert raw.session.identity.worker_id == "worker-1"
    # a second attach on the same session with another identity → EACCES
    assert raw.errno(m.Tattach(2, 1, m.NOFID, "queen", "", m.NOFID)) == E.EACCES


def test_queen_ticket_on_tcp_and_throttle_hook():
    class Throttle:
        def __init__(self):
            self.failures, self.successes, self.block = [], [], False

        def check(self, origin, now_ms):
            return (not self.block, "throttled", 250)

        def record_failure(self, origin, now_ms):
            self.failures.append(origin)

        def record_success(self, origin):
            self.successes.append(origin)

    throttle = Throttle()
    door, clock, _ = make_door(throttle=throttle)
    tcp = ChannelBinding(kind="tcp", origin="9p:10.0.2.2")

    def attach_errno(uname, aname):
        raw = Raw(door.open_session(tcp))
        raw.version()
        return raw.errno(m.Tattach(1, 0, m.NOFID, uname, aname, m.NOFID))

    assert attach_errno("queen", "") == E.EACCES
    assert attach_errno("queen", tickets.mint("wrong", "queen")) == E.EACCES
    assert throttle.failures == ["10.0.2.2", "10.0.2.2"]
    raw = Raw(door.open_session(tcp))
    raw.version()
    raw.attach(0, "queen", tickets.mint(SECRETS["queen"], "queen"))
    assert throttle.successes == ["10.0.2.2"]
    throttle.block = True
    assert attach_errno("queen", tickets.mint(SECRETS["queen"], "queen")) == E.EAGAIN
    lines = door.log_lines()
    assert "9p attach denied origin=9p:10.0.2.2 uname=queen errno=13" in lines
    assert lines[-1] == "console throttled origin=9p:10.0.2.2 detail=throttled delay_ms=250"


def test_queen_ticket_mount_spec_applies_session_mount():
    door, _, _ = make_door()
    payload = tickets.encode_payload(tickets.TicketPayload(0, mount_service="proc", mount_at="/log/p"))
    text = f"{tickets.PREFIX}{payload.hex()}.{tickets._mac(SECRETS['queen'], payload).hex()}"
    raw = Raw(door.open_session(ChannelBinding(kind="tcp", origin="9p:127.0.0.1")))
    raw.version()
    raw.attach(0, "queen", text)
    assert raw.cat("/log/p/boot").startswith(b"Cohesix boot")


def test_mem_stats_counts():
    door, _, launcher = make_door()
    q = queen(door)
    ctl(q, '{"spawn":"heartbeat","ticks":5}')
    worker_session(door, "worker-1", launcher.started[0][2])
    stats = door.mem_stats()
    assert stats == {"workers": 1, "sessions": 2, "telemetry_bytes": 0, "telemetry_capacity": 65536,
                     "cas_bytes": 0}
    q.session.close()
    assert door.mem_stats()["sessions"] == 1
    assert "worker-1" in log_text(door)
