"""Namespace tree, access matrix, per-session bind/mount (SPEC §5, C7) and the telemetry ring (§7.1–§7.3)."""
from __future__ import annotations

import pytest

from nine_door import errors as E
from nine_door import messages as m
from nine_door.server import ChannelBinding

try:
    from .test_server_harness import Raw, make_door, queen
except ImportError:  # pragma: no cover
    from test_server_harness import Raw, make_door, queen


def ctl(raw: Raw, text: str) -> int:
    return raw.append("/queen/ctl", text.encode())


def ctl_errno(raw: Raw, text: str) -> int:
    fid = raw.open_path("/queen/ctl", m.O_WRONLY)
    try:
        return raw.errno(m.Twrite(raw.next_tag(), fid, 0, text.encode()))
    finally:
        raw.clunk(fid)


def spawn_worker(door, q, launcher, ticks=1000):
    ctl(q, f'{{"spawn":"heartbeat","ticks":{ticks}}}')
    worker_id, role, ticket = launcher.started[-1]
    raw = Raw(door.open_session(ChannelBinding(kind="channel", role=role, worker_id=worker_id)))
    raw.version()
    raw.attach(0, f"{role}:{worker_id}", ticket)
    return worker_id, raw


def test_tree_qids_are_unique_and_types_match_kinds():
    door, _, _ = make_door()
    q = queen(door)
    qids = {}
    for path in ("proc", "proc/boot", "log", "log/queen.log", "queen", "queen/ctl", "worker"):
        reply = q.walk(0, 50, *path.split("/"))
        qids[path] = reply.qids[-1]
        q.clunk(50)
    assert len({qid.path for qid in qids.values()}) == len(qids)
    assert qids["proc/boot"].type == m.QTFILE
    assert qids["log/queen.log"].type == m.QTAPPEND and qids["queen/ctl"].type == m.QTAPPEND
    assert qids["worker"].type == m.QTDIR


def test_worker_view_of_access_matrix():
    door, _, launcher = make_door()
    q = queen(door)
    _, w = spawn_worker(door, q, launcher)
    assert w.cat("/proc/boot").startswith(b"Cohesix boot")
    assert w.cat("/log/queen.log").startswith(b"Cohesix boot")
    w.walk(0, 1, "log", "queen.log")
    assert w.errno(m.Tlopen(1, 1, m.O_WRONLY)) == E.EACCES         # log: R only for workers
    assert w.getattr(1).mode == m.S_IFREG | 0o444
    assert w.append("/worker/worker-1/telemetry", b"x\n") == 2


def test_queen_log_retention_drops_whole_oldest_lines():
    door, _, _ = make_door()
    line = "y" * 1023                                                # 1024 bytes with \n
    for _ in range(1100):
        door.log_append(line)
    log = door.ns.queen_log
    assert log.used <= 1 << 20
    assert door.log_lines()[0] == line                               # boot lines were dropped whole
    assert all(raw.endswith(b"\n") for raw in log.lines)


# -- bind / mount (§5.6, C7) --------------------------------------------------------------------
def test_bind_is_per_session_c7():
    door, _, launcher = make_door()
    a, b = queen(door), queen(door)
    assert ctl(a, '{"bind":{"from":"/queen","to":"/log/q"}}') > 0
    assert "bound /queen -> /log/q" in door.log_lines()
    assert "q" in a.ls("/log")
    a.walk(0, 1, "log", "q", "ctl")                                  # A sees /log/q/ctl
    b.walk(0, 1, "log")
    assert b.errno(m.Twalk(9, 1, 2, ("q",))) == E.ENOENT             # B does not
    assert len(b.walk(0, 3, "log", "q", "ctl").qids) == 1            # (multi-name: partial Rwalk)
    assert a.append("/log/q/ctl", b'{"budget":{"ops":5}}') > 0       # the bound ctl works
    _, w = spawn_worker(door, a, launcher)
    assert w.errno(m.Twalk(9, 0, 1, ("queen", "ctl"))) == E.EACCES   # a worker cannot even reach ctl


def test_mount_service_and_rules():
    door, _, _ = make_door()
    q = queen(door)
    ctl(q, '{"mount":{"service":"proc","at":"/log/p"}}')
    assert "mounted proc at /log/p" in door.log_lines()
    assert q.cat("/log/p/boot").startswith(b"Cohesix boot")
    assert q.ls("/log") == ["p", "queen.log"]
    assert ctl_errno(q, '{"mount":{"service":"gpu","at":"/log/g"}}') == E.ENOENT    # backend none
    assert ctl_errno(q, '{"mount":{"service":"nope","at":"/log/g"}}') == E.ENOENT
    assert ctl_errno(q, '{"mount":{"service":"log","at":"/"}}') == E.EINVAL
    assert ctl_errno(q, '{"mount":{"service":"log","at":"/queen"}}') == E.EINVAL
    assert ctl_errno(q, '{"mount":{"service":"log","at":"/queen/ctl"}}') == E.EINVAL
    assert ctl_errno(q, '{"mount":{"service":"log","at":"log/x"}}') == E.EINVAL
    assert ctl_errno(q, '{"mount":{"service":"log","at":"/missing/x"}}') == E.ENOENT


@pytest.mark.parametrize("line,errno", [
    ('{"bind":{"from":"/nope","to":"/log/x"}}', E.ENOENT),
    ('{"bind":{"from":"/log","to":"/log/x"}}', E.EINVAL),          # target inside source
    ('{"bind":{"from":"/proc","to":"/log/../x"}}', E.EINVAL),
    ('{"bind":{"from":"/proc","to":"/log/./x"}}', E.EINVAL),
    ('{"bind":{"from":"/proc","to":"/a/b/c/d/e/f/g/h/i"}}', E.EINVAL),
    ('{"bind":{"from":"/proc","to":"/log//x"}}', E.EINVAL),
])
def test_bind_rule_violations(line, errno):
    door, _, _ = make_door()
    assert ctl_errno(queen(door), line) == errno


def test_bind_source_resolved_at_walk_time_and_fids_keep_nodes():
    door, _, launcher = make_door()
    q = queen(door)
    spawn_worker(door, q, launcher)
    ctl(q, '{"bind":{"from":"/worker/worker-1","to":"/log/w"}}')
    q.walk(0, 1, "log", "w", "telemetry")
    ctl(q, '{"kill":"worker-1"}')
    q.walk(0, 2, "log")
    assert q.errno(m.Twalk(9, 2, 3, ("w",))) == E.ENOENT
    assert "w" not in q.ls("/log")
    assert q.errno(m.Tgetattr(9, 1, 0)) == E.ENOENT
    q.clunk(1)


def test_later_mount_entries_win_and_version_resets_table():
    door, _, _ = make_door()
    q = queen(door)
    ctl(q, '{"bind":{"from":"/proc","to":"/log/x"}}')
    ctl(q, '{"bind":{"from":"/queen","to":"/log/x"}}')
    assert q.ls("/log/x") == ["ctl"]
    q.version()
    q.attach(0)
    assert "x" not in q.ls("/log")


def test_static_ir_mounts_seed_every_session():
    door, _, _ = make_door({"namespace.mounts": [{"service": "proc", "at": "/log/p"}]})
    assert queen(door).cat("/log/p/boot").startswith(b"Cohesix boot")
    assert queen(door).ls("/log") == ["p", "queen.log"]


def test_mount_depth_limit_applies_to_visible_path():
    door, _, _ = make_door({"secure9p.walk_depth": 3})
    q = queen(door)
    ctl(q, '{"mount":{"service":"log","at":"/proc/a"}}')
    q.walk(0, 1, "proc", "a", "queen.log")
    assert q.errno(m.Twalk(9, 0, 2, ("proc", "a", "queen.log", "x"))) == E.EINVAL


# -- telemetry ring (§7.1–§7.3, text schema, unarmed) ----------------------------------------------
def test_ring_records_stream_reads():
    door, _, launcher = make_door()
    q = queen(door)
    _, w = spawn_worker(door, q, launcher)
    tel = w.open_path("/worker/worker-1/telemetry", m.O_WRONLY | m.O_APPEND)
    assert w.write(tel, b"a\nbb\nccc", offset=999) == 8                 # offset ignored; fragment completed
    assert w.errno(m.Twrite(9, tel, 0, b"\xff\n")) == E.EINVAL
    reader = q.open_path("/worker/worker-1/telemetry")
    assert q.read(reader, 0, 5) == b"a\nbb\n"                            # whole records only
    assert q.errno(m.Tread(9, reader, 0, 2)) == E.EINVAL                 # next record larger than count
    assert q.read(reader, 0, 100) == b"ccc\n"
    assert q.read(reader, 0, 100) == b""
    w.write(tel, b"d\n")
    assert q.read(reader, 0, 100) == b"d\n"
    attr = q.getattr(reader)
    assert attr.size == 11 and attr.qid.type == m.QTAPPEND and attr.qid.version == 2


def test_ring_wrap_evicts_oldest_logs_once_per_10s_and_reports_stale_reader():
    door, clock, launcher = make_door()
    q = queen(door)
    _, w = spawn_worker(door, q, launcher, ticks=10_000)
    tel = w.open_path("/worker/worker-1/telemetry", m.O_WRONLY | m.O_APPEND)
    reader = q.open_path("/worker/worker-1/telemetry")
    record = b"z" * 1023 + b"\n"
    for _ in range(64):
        w.write(tel, record)
    assert door.telemetry_bytes == 65536
    w.write(tel, record)                                                  # wrap: evicts record 1
    w.write(tel, record)                                                  # evicts record 2 (quiet window)
    wraps = [l for l in door.log_lines() if l.startswith("telemetry ring wrap")]
    assert wraps == ["telemetry ring wrap worker=worker-1 dropped_frames=1 dropped_bytes=1024 oldest=2"]
    clock.advance(10)
    door.on_tick()
    wraps = [l for l in door.log_lines() if l.startswith("telemetry ring wrap")]
    assert wraps[-1] == "telemetry ring wrap worker=worker-1 dropped_frames=1 dropped_bytes=1024 oldest=3"
    assert q.errno(m.Tread(9, reader, 0, 4096)) == E.ERANGE             # loss reported once …
    assert "telemetry cursor stale worker=worker-1 requested=1 oldest=3" in door.log_lines()
    assert q.read(reader, 0, 4096) == record * 4                         # … then reading continues
