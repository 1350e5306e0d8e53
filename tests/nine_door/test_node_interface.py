"""The node file interface (issue 12, Foundations): the session calls one set of methods on every node
kind and keeps per-open state only as the handle the node returned; a new kind is one class."""
from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from nine_door import errors as E
from nine_door import messages as m
from nine_door import nodes
from nine_door.nodes import ZONE_LOG, ZONE_PUBLIC, LogNode, Node

try:
    from .test_server_harness import make_door, queen
except ImportError:  # pragma: no cover
    from test_server_harness import make_door, queen

SESSION_SOURCE = Path(nodes.__file__).with_name("session.py")
NODE_KINDS = {name for name, value in vars(nodes).items() if isinstance(value, type) and issubclass(value, Node)}


def test_session_core_never_asks_a_node_kind():
    tree = ast.parse(SESSION_SOURCE.read_text())
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
             and node.func.id in ("isinstance", "type")]
    assert calls == [], [ast.unparse(c) for c in calls]
    kinds_named = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)} & (NODE_KINDS - {"Node"})
    assert kinds_named == set()
    # Only the base class is imported, and only for type checking.
    runtime_imports = [node for node in tree.body if isinstance(node, ast.ImportFrom) and node.module == "nodes"]
    assert runtime_imports == []


@dataclass
class CounterHandle:
    reads: int = 0


@dataclass(eq=False)
class CounterNode(Node):
    """A test kind: every read of an open answers how often that open was read; writes are summed."""

    written: list = field(default_factory=list)

    def open(self, access, caller, path):
        return CounterHandle()

    def read(self, handle, offset, count, caller):
        handle.reads += 1
        return f"{handle.reads}\n".encode()[:count]

    def write(self, handle, offset, data, caller):
        self.written.append((offset, data, caller.session_id))
        return len(data)

    def size(self):
        return 7


def add_counter(door, zone=ZONE_PUBLIC) -> CounterNode:
    ns = door.ns
    return ns._attach(ns.proc, ns._new(CounterNode, "counter", zone, None))


def test_a_new_kind_is_one_class_with_per_open_state_in_its_handle():
    door, _, _ = make_door()
    add_counter(door)
    q = queen(door)
    a = q.open_path("/proc/counter")
    b = q.open_path("/proc/counter")
    assert [q.read(a), q.read(a), q.read(b)] == [b"1\n", b"2\n", b"1\n"]
    assert q.read(a, count=1) == b"3"                   # count reaches the node (clamped to iounit)
    assert q.session.fids[a].handle is not q.session.fids[b].handle
    attrs = q.getattr(a)
    assert (attrs.mode, attrs.size) == (m.S_IFREG | 0o444, 7)
    assert q.errno(m.Treaddir(q.next_tag(), a, 0, 100)) == E.ENOTDIR     # base-class default


def test_new_kind_write_goes_through_policy_then_the_node():
    door, _, _ = make_door()
    node = add_counter(door, ZONE_LOG)                  # queen RW in the §5.3 matrix
    q = queen(door)
    fid = q.open_path("/proc/counter", m.O_WRONLY)
    assert q.write(fid, b"abc", offset=5) == 3
    assert node.written == [(5, b"abc", q.session.session_id)]
    q.clunk(fid)
    fid = q.open_path("/proc/counter")                  # read-only open: the session refuses, not the node
    assert q.errno(m.Twrite(q.next_tag(), fid, 0, b"x")) == E.EBADF
    assert len(node.written) == 1


def test_kind_defaults_keep_their_errnos():
    door, _, _ = make_door()
    q = queen(door)
    q.walk(0, 1, "proc")
    assert q.errno(m.Treaddir(q.next_tag(), 1, 0, 100)) == E.EBADF        # directory not open
    q.lopen(1)
    assert q.errno(m.Tread(q.next_tag(), 1, 0, 100)) == E.EISDIR         # dir read
    assert q.readdir(1)[0].name == "boot"
    assert q.session.fids[1].handle.listing is not None                 # listing kept per open
    q.walk(0, 2, "proc", "boot")
    q.lopen(2)
    assert q.errno(m.Treaddir(q.next_tag(), 2, 0, 100)) == E.ENOTDIR


def test_ring_positions_are_per_open():
    door, _, launcher = make_door()
    q = queen(door)
    q.append("/queen/ctl", b'{"spawn":"heartbeat","ticks":100}')
    worker_id = launcher.started[-1][0]
    q.append(f"/worker/{worker_id}/telemetry", b"one\ntwo\n")
    a = q.open_path(f"/worker/{worker_id}/telemetry")
    b = q.open_path(f"/worker/{worker_id}/telemetry")
    assert q.read(a, count=4) == b"one\n"
    assert q.read(b) == b"one\ntwo\n"
    assert q.read(a) == b"two\n"


# -- LogView: the log as it was at open, without a copy ----------------------------------------
def fresh_log(retain: int) -> LogNode:
    return LogNode(name="queen.log", qid_path=1, zone=ZONE_LOG, mtime_ns=0, retain_bytes=retain)


@settings(max_examples=150, deadline=None)
@given(retain=st.integers(1, 300),
       steps=st.lists(st.one_of(st.tuples(st.just("append"), st.binary(max_size=40)),
                                st.tuples(st.just("line"), st.text(st.characters(blacklist_categories=("Cs",),
                                                                              blacklist_characters="\n"),
                                                                max_size=30)),
                                st.tuples(st.just("open"), st.none())), max_size=60),
       reads=st.lists(st.tuples(st.integers(0, 400), st.integers(0, 400)), min_size=1, max_size=8))
def test_log_views_read_the_log_as_of_their_open(retain, steps, reads):
    log = fresh_log(retain)
    views = []
    for op, arg in steps:
        if op == "append":
            try:
                log.append_client_data(arg, 0)
            except Exception:  # noqa: BLE001 - non-UTF-8 is refused (EINVAL), the log unchanged
                pass
        elif op == "line":
            log.append_server_line(arg, 0)
        else:
            views.append((log.view(), log.content()))
        assert log.used == len(log.content()) <= max(retain, max((len(x) for x in log.lines), default=0))
    views.append((log.view(), log.content()))
    for view, expected in views:
        assert view.size == len(expected)
        for offset, count in reads:
            assert view.read(offset, count) == expected[offset:offset + count]


def test_log_retention_still_drops_whole_lines_across_generations():
    log = fresh_log(100)
    for i in range(500):
        log.append_server_line(f"line {i:04}", i)
    text = log.content().decode()
    assert text.startswith("line ") and text.endswith("line 0499\n")
    assert len(text) <= 100 and len(log._lines) - log._first == len(text.splitlines())
    assert len(log._lines) * 10 <= 150 + 10     # the current generation holds ≤ 1.5 × retain of lines
