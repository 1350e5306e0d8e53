"""cohsh on telemetry rings: Frame v1 rendering for ``tail``/``cat`` and the ``consume`` command.

Rendering is tested as a pure function on content lines cut exactly as the console cuts them
(``root_task.console.session.content_lines``), then end to end through the in-process host system
(the console, NineDoor, the real ring and cursor file) over a socket pair and over real TCP.

Most end-to-end tests stage their rings with :meth:`System.make_ring` (a worker directory created in the
running server with the ring schema asked for, no worker process) and :meth:`System.append_frames`
(frames admitted on the server's event thread), so they control exactly which records exist and when;
everything the operator side touches (console verbs, ring reads, cursor reads and writes, TCP) is the
real path. The last test stages nothing: a ``cbor_v1`` IR and a real worker-heart.
"""
from __future__ import annotations

import base64
import io
import itertools
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from coh_rtc.testing import write_ir
from cohsh import cli, script
from cohsh.commands import HELP_LINES, Command, LocalError, translate
from cohsh.shell import Shell, b64_content, parse_cursor, render_content, ring_records, scan_frames
from cohsh.transport_tcp import ConsoleClient, TcpPolicy, tcp_connector
from nine_door import frame_v1
from nine_door.frame_v1 import Frame
from nine_door.telemetry import Record
from nine_door.tickets import mint
from root_task.console.session import MAX_STREAM_LINES, content_lines, split_lines

TOKEN = "changeme"
WORKER_SECRET = "worker"   # coh_rtc.testing.BASE_DOCUMENT's worker-heartbeat secret


def hb(seq: int, text: str | None = None, **meta: object) -> Frame:
    return Frame(seq, 1_700_000_000_000 + seq, 1, (text or f"heartbeat {seq}").encode(), meta or None)


def stream(data: bytes) -> list[str]:
    """The content lines the console sends for ``data`` (before the 256-line cut)."""
    return split_lines(content_lines(data))


def tail_of(data: bytes) -> list[str]:
    return stream(data)[-MAX_STREAM_LINES:]


def cat_of(data: bytes) -> list[str]:
    return split_lines(content_lines(data)[:MAX_STREAM_LINES])


def frame_from_json(obj: dict) -> Frame:
    payload = obj["payload"].encode() if "payload" in obj else base64.b64decode(obj["payload_b64"])
    return Frame(obj["seq"], obj["ts"], obj["kind"], payload, obj.get("meta"))


# -- pure rendering ----------------------------------------------------------------------------------

def test_tail_of_frames_prints_one_readable_line_per_frame() -> None:
    frames = [hb(1), hb(2, "ok", host="h1"), Frame(3, 5, 200, b"\x00\xff")]
    lines = stream(b"".join(frame_v1.encode(f) for f in frames))
    assert all(line.startswith("b64:") for line in lines)
    out, notes = render_content("tail", lines)
    assert out == [frame_v1.describe(f) for f in frames]
    assert out[0] == 'seq=1 ts=1700000000001 kind=heartbeat payload="heartbeat 1"'
    assert notes == []


def test_json_lines_round_trip_to_the_same_frames() -> None:
    frames = [hb(1), hb(2, "ünïcode \"quoted\"", n=3, ok=True), Frame(9, 0, 128, bytes(range(256)))]
    data = b"".join(frame_v1.encode(f) for f in frames)
    out, notes = render_content("tail", stream(data), json_mode=True)
    assert notes == []
    decoded = [json.loads(line) for line in out]
    assert decoded == [frame_v1.to_json(f) for f in frames]
    assert [frame_from_json(obj) for obj in decoded] == frames
    assert b"".join(frame_v1.encode(frame_from_json(obj)) for obj in decoded) == data


def test_tail_that_starts_mid_frame_resynchronises_and_says_how_many_bytes_it_skipped() -> None:
    frames = [hb(i, "x" * (i % 37)) for i in range(1, 800)]
    raw = [frame_v1.encode(f) for f in frames]
    data = b"".join(raw)
    lines = tail_of(data)
    assert len(stream(data)) > MAX_STREAM_LINES          # the tail really is cut
    start = 48 * (len(stream(data)) - MAX_STREAM_LINES)   # where the tail's bytes begin
    offsets = [sum(map(len, raw[:i])) for i in range(len(raw))]
    first = next(i for i, off in enumerate(offsets) if off >= start)
    out, notes = render_content("tail", lines)
    assert out == [frame_v1.describe(f) for f in frames[first:]]
    skipped = offsets[first] - start
    assert skipped > 0
    assert notes == [f"[cohsh] tail: skipped {skipped} leading bytes (the stream started inside a frame)"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sizes=st.lists(st.integers(0, 120), min_size=1, max_size=60), cut=st.integers(0, 300))
def test_resync_finds_the_first_whole_frame_at_any_cut(sizes: list[int], cut: int) -> None:
    frames = [Frame(i + 1, i, 0, b"p" * n) for i, n in enumerate(sizes)]
    raw = [frame_v1.encode(f) for f in frames]
    data = b"".join(raw)
    cut = cut % len(data)
    offsets = [sum(map(len, raw[:i])) for i in range(len(raw))]
    first = next((i for i, off in enumerate(offsets) if off >= cut), len(raw))
    scan = scan_frames(data[cut:], resync=True)
    if first == len(raw):
        assert scan is None
    else:
        assert scan is not None
        assert list(scan.frames) == frames[first:]
        assert scan.skipped == offsets[first] - cut


def test_cat_cut_inside_a_frame_shows_whole_frames_and_notes_the_rest() -> None:
    frames = [hb(i, "y" * 50) for i in range(1, 400)]
    data = b"".join(frame_v1.encode(f) for f in frames)
    lines = cat_of(data)
    shown = b64_content(lines)
    assert shown is not None and len(shown) == 48 * MAX_STREAM_LINES
    out, notes = render_content("cat", lines)
    ends = list(itertools.accumulate(len(frame_v1.encode(f)) for f in frames))
    whole = sum(1 for end in ends if end <= len(shown))
    assert out == [frame_v1.describe(f) for f in frames[:whole]]
    trailing = len(shown) - ends[whole - 1]
    assert trailing > 0
    assert notes == [f"[cohsh] cat: {trailing} trailing bytes of an incomplete frame not shown "
                     f"(the console sends the first 256 lines)"]


def test_non_frame_binary_and_text_keep_their_lines() -> None:
    binary = stream(bytes(range(256)) * 3)
    assert render_content("tail", binary) == (binary, [])
    assert render_content("cat", binary) == (binary, [])
    truncated = stream(frame_v1.encode(hb(1))[:-3])   # not even one whole frame
    assert render_content("tail", truncated) == (truncated, [])
    text = ["heartbeat 1", "b64 is not a prefix here", ""]
    assert render_content("tail", text) == (text, [])
    out, _ = render_content("tail", text, json_mode=True)
    assert [json.loads(line) for line in out] == [{"line": t} for t in text]
    out, _ = render_content("cat", binary[:1], json_mode=True)
    assert json.loads(out[0]) == {"b64": binary[0][4:]}


def test_ring_records_counts_whole_records_only() -> None:
    frames = [hb(i, "z" * 40) for i in range(1, 400)]
    data = b"".join(frame_v1.encode(f) for f in frames)
    records = ring_records(cat_of(data))
    ends = itertools.accumulate(len(frame_v1.encode(f)) for f in frames)
    assert len(records) == sum(1 for end in ends if end <= 48 * MAX_STREAM_LINES)
    assert records[0] == [frame_v1.describe(frames[0])]
    # text: one record per line; a line the console split into 4096-byte pieces is one record
    long = "é" * 3000   # 6000 bytes: two pieces
    lines = stream(f"a\n{long}\nb\n\n".encode())
    assert len(lines) == 5
    assert [("".join(r)) for r in ring_records(lines)] == ["a", long, "b", ""]
    # text with control bytes arrives as b64: split at \n, a final fragment is not a record
    raw = b"one\x01\ntwo\x02\nthr"
    recs = ring_records(stream(raw))
    assert [b64_content([r[0]]) for r in recs] == [b"one\x01", b"two\x02"]
    assert ring_records([]) == []
    assert ring_records(stream(frame_v1.encode(hb(1, "w" * 100))[:-5])) == []   # no whole frame yet


def test_parse_cursor() -> None:
    assert parse_cursor(["cursor=0 oldest=1 next=7"]) == (0, 1, 7)
    assert parse_cursor(["cursor=0 oldest=1"]) is None
    assert parse_cursor([]) is None


# -- command translation -----------------------------------------------------------------------------

def test_translation_of_json_and_consume() -> None:
    tail = translate("tail --json /worker/w/telemetry")
    assert isinstance(tail, Command)
    assert (tail.wire, tail.json, tail.read_only) == ("TAIL /worker/w/telemetry", True, True)
    cat = translate("cat /worker/w/telemetry --json")
    assert isinstance(cat, Command) and cat.json and cat.wire == "CAT /worker/w/telemetry"
    plain = translate("tail /log/queen.log")
    assert isinstance(plain, Command) and not plain.json
    consume = translate("consume --json worker-3 max=5")
    assert isinstance(consume, Command)
    assert (consume.name, consume.worker, consume.limit, consume.json, consume.wire) == (
        "consume", "worker-3", 5, True, "CAT /worker/worker-3/cursor")
    assert not consume.read_only   # it commits a cursor
    for line, detail in [("consume", "missing-argument"), ("consume a b", "missing-argument"),
                         ("consume w max=x", "invalid-payload"), ("consume w max=-1", "invalid-payload"),
                         ("consume w min=1", "invalid-payload"), ("consume a/b", "invalid-path"),
                         ("consume --raw w", "missing-argument"), ("tail --jsn /x", "missing-argument"),
                         ("tail --json", "missing-argument"), ("cat --json x", "invalid-path")]:
        refused = translate(line)
        assert isinstance(refused, LocalError), line
        assert f"detail={detail}" in refused.line, (line, refused.line)


def test_help_lists_the_new_commands() -> None:
    assert "tail [--json] <path>" in " ".join(HELP_LINES)
    assert any(line.startswith("consume [--json] <worker-id> [max=<k>]") for line in HELP_LINES)


# -- end to end: the in-process host system ----------------------------------------------------------

class System:
    """A host-mode system with a schema 1.2 IR (cursor files), plus helpers that act on its server."""

    def __init__(self, directory) -> None:
        from root_task.host import start_in_process

        ir = write_ir(directory, {"telemetry.frame_schema": "text"}, schema="1.2")
        self.host = start_in_process(str(ir))
        self.door = self.host.task.door

    def on_pump(self, fn: Callable[[], object]) -> object:
        box: list[object] = []
        errors: list[BaseException] = []
        done = threading.Event()

        def run() -> None:
            try:
                box.append(fn())
            except BaseException as exc:  # re-raised on the test thread
                errors.append(exc)
            finally:
                done.set()

        self.host.task.pump.call_soon_threadsafe(run)
        assert done.wait(5.0)
        if errors:
            raise errors[0]
        return box[0]

    def make_ring(self, worker_id: str, schema: str):
        """``/worker/<id>/{telemetry,cursor}`` with a ring of ``schema`` (no worker process)."""
        def create():
            ns = self.door.ns
            saved, ns.ring_schema = ns.ring_schema, schema
            try:
                return ns.create_worker(worker_id)[1]
            finally:
                ns.ring_schema = saved
        return self.on_pump(create)

    def append_frames(self, ring, frames: list[Frame]) -> None:
        def admit():
            records = [Record(frame_v1.encode(f), len(frame_v1.encode(f)), f.seq) for f in frames]
            result = ring.admit(records, ring.owner, self.door._now_ns())
            assert result.stored == len(frames)
        self.on_pump(admit)

    def stop(self) -> None:
        self.host.stop()


@pytest.fixture(scope="module")
def system(tmp_path_factory) -> Iterator[System]:
    sys_ = System(tmp_path_factory.mktemp("ir"))
    yield sys_
    sys_.stop()


_ids = iter(range(100, 10_000))


def fresh_id() -> str:
    return f"ring-{next(_ids)}"


@contextmanager
def shell(system: System, *, role: str = "queen", ticket: str | None = None,
          connector=None, reconnect: bool = False) -> Iterator[tuple[Shell, io.StringIO]]:
    out = io.StringIO()
    client = ConsoleClient(connector or system.host.connect_console, TOKEN, reconnect=reconnect,
                           policy=TcpPolicy(reconnect_delays_ms=(0, 0, 0)), sleep=lambda s: None,
                           notify=lambda line: out.write(line + "\n"))
    client.connect()
    sh = Shell(client, out)
    try:
        outcome = sh.execute(f"attach {role}" + (f" {ticket}" if ticket else ""))
        assert outcome.response is not None and outcome.response.startswith("OK ATTACH"), out.getvalue()
        yield sh, out
    finally:
        client.close()


def run(sh: Shell, out: io.StringIO, line: str) -> tuple[str | None, list[str]]:
    """Execute one shell line; return its response line and the lines it printed."""
    start = len(out.getvalue())
    outcome = sh.execute(line)
    return outcome.response, out.getvalue()[start:].splitlines()


def test_tail_and_cat_of_a_cbor_ring_through_the_console(system: System) -> None:
    wid = fresh_id()
    ring = system.make_ring(wid, "cbor_v1")
    frames = [hb(i) for i in range(1, 6)]
    system.append_frames(ring, frames)
    path = f"/worker/{wid}/telemetry"
    with shell(system) as (sh, out):
        response, printed = run(sh, out, f"tail {path}")
        assert response == f"OK TAIL path={path}"            # the ack, untouched by rendering
        assert printed == [f"[console] OK TAIL path={path}"] + [frame_v1.describe(f) for f in frames]
        response, printed = run(sh, out, f"tail --json {path}")
        assert response == f"OK TAIL path={path}"
        assert [frame_from_json(json.loads(line)) for line in printed[1:]] == frames
        response, printed = run(sh, out, f"cat --json {path}")
        assert response.startswith(f"OK CAT path={path} data=b64:")
        assert [json.loads(line) for line in printed[1:]] == [frame_v1.to_json(f) for f in frames]


def test_script_expect_still_tests_the_ack(system: System) -> None:
    wid = fresh_id()
    system.append_frames(system.make_ring(wid, "cbor_v1"), [hb(1)])
    source = (f"tail --json /worker/{wid}/telemetry\nEXPECT OK\nEXPECT SUBSTR OK TAIL path=\n"
              f"EXPECT NOT seq=\ncat /worker/{wid}/telemetry\nEXPECT SUBSTR data=b64:\n"
              f"consume {wid}\nEXPECT OK\nEXPECT SUBSTR records=1 cursor=2\n"
              f"consume nobody-{wid}\nEXPECT ERR\nEXPECT SUBSTR error=ENOENT\n")
    with shell(system) as (sh, out):
        assert script.run(source, sh) is None, out.getvalue()


def _consume_pass(system: System, wid: str, extra: str = "", **kw) -> tuple[str | None, list[str]]:
    """One ``consume`` on a fresh connection (each pass reconnects: AUTH, ATTACH, then consume)."""
    with shell(system, **kw) as (sh, out):
        return run(sh, out, f"consume {wid}{extra}")


@pytest.mark.parametrize("schema", ["cbor_v1", "text"])
def test_consume_twice_across_reconnects_prints_each_record_once(system: System, schema: str) -> None:
    wid = fresh_id()
    ring = system.make_ring(wid, schema)

    def append(seqs: range) -> list[str]:
        if schema == "cbor_v1":
            frames = [hb(i) for i in seqs]
            system.append_frames(ring, frames)
            return [frame_v1.describe(f) for f in frames]
        texts = [f"record {i}" for i in seqs]
        with shell(system) as (sh, out):          # the console's own append path
            for text in texts:
                assert run(sh, out, f"echo {text} > /worker/{wid}/telemetry")[0].startswith("OK ECHO")
        return texts

    expected = append(range(1, 4))
    response, printed = _consume_pass(system, wid)
    assert response == f"OK CONSUME worker={wid} records=3 cursor=4"
    assert printed == expected + ["consumed 3 records, cursor=4"]
    expected2 = append(range(4, 9))
    response, printed = _consume_pass(system, wid, " max=2")
    assert printed == expected2[:2] + ["consumed 2 records, cursor=6"]
    response, printed = _consume_pass(system, wid)
    assert printed == expected2[2:] + ["consumed 3 records, cursor=9"]
    response, printed = _consume_pass(system, wid)
    assert (response, printed) == (f"OK CONSUME worker={wid} records=0 cursor=9",
                                   ["consumed 0 records, cursor=9"])
    assert ring.cursor == 9 and ring.next_rseq == 9


def test_consume_arms_an_unarmed_ring_at_oldest_and_max_limits(system: System) -> None:
    wid = fresh_id()
    ring = system.make_ring(wid, "cbor_v1")
    frames = [hb(i) for i in range(1, 11)]
    system.append_frames(ring, frames)
    assert ring.cursor == 0
    with shell(system) as (sh, out):
        response, printed = run(sh, out, f"consume {wid} max=0")
        assert printed == ["consumed 0 records, cursor=1"] and ring.cursor == 1   # armed, nothing read
        response, printed = run(sh, out, f"consume --json {wid} max=4")
        assert [json.loads(line) for line in printed[:-1]] == [frame_v1.to_json(f) for f in frames[:4]]
        assert printed[-1] == "consumed 4 records, cursor=5"
        response, printed = run(sh, out, f"cat /worker/{wid}/cursor")
        assert printed[1:] == ["cursor=5 oldest=1 next=11"]


def test_consume_over_tcp_resumes_after_a_dropped_connection(system: System) -> None:
    """The interactive client loses its connection between two consumes; it reconnects (AUTH and
    the cached ATTACH) and the second consume continues exactly where the first committed."""
    wid = fresh_id()
    ring = system.make_ring(wid, "cbor_v1")
    system.append_frames(ring, [hb(i) for i in range(1, 4)])
    sockets = []
    base = tcp_connector("127.0.0.1", system.host.console_port)

    def connector():
        sock = base()
        sockets.append(sock)
        return sock

    with shell(system, connector=connector, reconnect=True) as (sh, out):
        _, printed = run(sh, out, f"consume {wid}")
        assert printed == [frame_v1.describe(hb(i)) for i in range(1, 4)] + ["consumed 3 records, cursor=4"]
        system.append_frames(ring, [hb(i) for i in range(4, 6)])
        sockets[-1].shutdown(socket.SHUT_RDWR)              # the connection drops
        _, printed = run(sh, out, f"consume {wid}")
        assert any(line.startswith("[cohsh][tcp] connection lost") for line in out.getvalue().splitlines())
        assert len(sockets) == 2
        assert printed[-3:] == [frame_v1.describe(hb(4)), frame_v1.describe(hb(5)),
                                "consumed 2 records, cursor=6"]


class LoseReplyAfter:
    """A console socket that delivers the request containing ``marker`` and then loses the
    connection: the server's reply is read off the wire (so the server has acted) and dropped."""

    def __init__(self, sock: socket.socket, marker: bytes) -> None:
        self._sock = sock
        self._marker = marker
        self._armed = False

    def sendall(self, data: bytes) -> None:
        self._sock.sendall(data)
        if self._marker in data:
            self._armed = True

    def recv(self, size: int) -> bytes:
        data = self._sock.recv(size)
        if self._armed and data:
            self._sock.close()
            return b""
        return data

    def __getattr__(self, name: str):
        return getattr(self._sock, name)


def test_consume_commit_whose_reply_is_lost_is_reissued_without_repeat(system: System) -> None:
    """The commit reaches the server but its ack is lost: the interactive client reconnects and
    sends the same cursor value again (a no-op, SPEC §7.4), so the next consume neither repeats
    nor skips a record."""
    wid = fresh_id()
    ring = system.make_ring(wid, "cbor_v1")
    system.append_frames(ring, [hb(i) for i in range(1, 4)])
    first = [True]

    def connector():
        sock = system.host.connect_console()
        if first[0]:
            first[0] = False
            return LoseReplyAfter(sock, f"ECHO /worker/{wid}/cursor 4".encode())
        return sock

    with shell(system, connector=connector, reconnect=True) as (sh, out):
        response, printed = run(sh, out, f"consume {wid}")
        assert response == f"OK CONSUME worker={wid} records=3 cursor=4"
        assert "[cohsh][tcp] reconnect attempt #1 (delay=0ms)" in printed
        assert printed[-1] == "consumed 3 records, cursor=4" and ring.cursor == 4
        system.append_frames(ring, [hb(4)])
        _, printed = run(sh, out, f"consume {wid}")
        assert printed == [frame_v1.describe(hb(4)), "consumed 1 records, cursor=5"]


def test_one_shot_cli_over_tcp(system: System) -> None:
    wid = fresh_id()
    ring = system.make_ring(wid, "cbor_v1")
    system.append_frames(ring, [hb(1), hb(2)])
    port = str(system.host.console_port)

    def cohsh(*argv: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        code = cli.main(["--transport", "tcp", "--tcp-port", port, *argv], env={}, out=out, err=err)
        return code, out.getvalue(), err.getvalue()

    code, out, err = cohsh("tail", "--json", f"/worker/{wid}/telemetry")
    assert (code, err) == (0, "")
    assert [json.loads(l) for l in out.splitlines() if l.startswith("{")] == [frame_v1.to_json(hb(1)),
                                                                              frame_v1.to_json(hb(2))]
    code, out, err = cohsh("consume", wid, "max=1")
    assert (code, err) == (0, "") and out.splitlines()[-2:] == [frame_v1.describe(hb(1)),
                                                                "consumed 1 records, cursor=2"]
    code, out, err = cohsh("consume", wid)
    assert (code, err) == (0, "") and out.splitlines()[-2:] == [frame_v1.describe(hb(2)),
                                                                "consumed 1 records, cursor=3"]
    code, out, err = cohsh("consume", "no-such-worker")
    assert code == 1 and "Error: command failed: ERR CAT" in err and "error=ENOENT" in err


def test_consume_refusals(system: System) -> None:
    with shell(system) as (sh, out):
        response, printed = run(sh, out, "consume no-such-worker")
        assert response.startswith("ERR CAT ") and "path=/worker/no-such-worker/cursor" in response
        assert printed == [f"[console] {response}"]
        response, printed = run(sh, out, "consume a/b")
        assert response.startswith("ERR CONSUME reason=policy detail=invalid-path")
        # a worker session may not read (or commit) any cursor: spawn one and attach as it
        assert run(sh, out, "spawn heartbeat ticks=1000")[0].startswith("OK")
        workers = run(sh, out, "ls /worker")[1][1:]
    worker = next(w for w in workers if w.startswith("worker-"))
    ticket = mint(WORKER_SECRET, "worker-heartbeat", worker)
    before = system.on_pump(lambda: system.door.ns.lookup_global(("worker", worker, "telemetry")).cursor)
    with shell(system, role="worker-heartbeat", ticket=ticket) as (sh, out):
        response, printed = run(sh, out, f"consume {worker}")
        # SPEC §3.4: the walk fails on its last name (EACCES), which 9P reports as a partial walk;
        # the console's client turns that into ENOENT. Either way it is an ERR and nothing changed.
        assert response.startswith("ERR CAT ") and printed == [f"[console] {response}"]
        assert "error=EACCES" in response or "error=ENOENT" in response
    after = system.on_pump(lambda: system.door.ns.lookup_global(("worker", worker, "telemetry")).cursor)
    assert before == after == 0


def test_mock_transport_with_a_cbor_v1_ir_and_a_real_heartbeat_worker(tmp_path) -> None:
    """The operator path with nothing staged: ``--transport mock`` (``MockSystem``) on a schema 1.2 IR
    with ``telemetry.frame_schema = "cbor_v1"``; worker-heart writes Frame v1 heartbeats; ``tail``
    renders them, and consumes on two connections print every heartbeat exactly once, in order."""
    from cohsh.transport_mock import MockSystem

    ir = write_ir(tmp_path, {"telemetry.frame_schema": "cbor_v1"}, schema="1.2")
    mock = MockSystem(str(ir))
    out = io.StringIO()

    def session() -> tuple[ConsoleClient, Shell]:
        client = ConsoleClient(mock.connect, TOKEN)
        client.connect()
        sh = Shell(client, out)
        assert sh.execute("attach queen").response == "OK ATTACH role=queen"
        return client, sh

    def wait_for_records(sh: Shell, n: int) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            _, printed = run(sh, out, "cat /worker/worker-1/cursor")
            if int(printed[-1].rsplit("next=", 1)[1]) > n:
                return
            time.sleep(0.1)
        raise AssertionError(f"fewer than {n} heartbeats after 30 s")

    seen: list[int] = []
    try:
        client, sh = session()
        assert run(sh, out, "spawn heartbeat ticks=3")[0].startswith("OK")
        wait_for_records(sh, 1)
        response, printed = run(sh, out, "tail /worker/worker-1/telemetry")
        assert response == "OK TAIL path=/worker/worker-1/telemetry"
        assert printed[1].startswith("seq=1 ts=") and printed[1].endswith(' kind=heartbeat payload="heartbeat 1"')
        response, printed = run(sh, out, "consume worker-1 max=1")
        assert (response, printed[-1]) == ("OK CONSUME worker=worker-1 records=1 cursor=2",
                                           "consumed 1 records, cursor=2")
        seen += [int(line.split()[0][len("seq="):]) for line in printed[:-1]]
        wait_for_records(sh, 2)
        client.close()                                      # reconnect between the consumes
        client, sh = session()
        for command in ("consume worker-1", "consume --json worker-1"):
            _, printed = run(sh, out, command)
            for line in printed[:-1]:
                obj = json.loads(line) if line.startswith("{") else None
                seen.append(obj["seq"] if obj else int(line.split()[0][len("seq="):]))
            assert printed[-1].endswith(f"cursor={1 + len(seen)}")
        client.close()
    finally:
        mock.stop()
    assert seen == list(range(1, len(seen) + 1)) and len(seen) >= 2
