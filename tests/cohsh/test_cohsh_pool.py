"""Session pools (SPEC §11.7, C14; issue 14) against the host run mode over real TCP.

Each test boots its own host-mode system in-process (``root_task.host.start_in_process``: the 9P TCP
listener on an ephemeral 127.0.0.1 port, real worker processes) — about 0.3 s — so throttling state,
worker ids and log contents never leak between tests. Server-side kills go through the listener's own
connection table: the test wraps the pool connection's ``Session.feed`` so that, after a given number of
Twrites were *executed*, the listener closes the connection before their replies are sent (the frames
are stored, the client never hears about them — the case the ``cbor_v1`` resend rule exists for).
"""
from __future__ import annotations

import io
import re
import socket
import struct
import threading
import time
from pathlib import Path

import pytest

from cohsh import cli
from cohsh.commands import Command, LocalError, PoolBench, translate
from cohsh.pool import (LEASE_TIMEOUT_S, Pool, PoolError, PoolOptions, PoolPolicy, classify,
                        resolve_ticket)
from cohsh.shell import BenchProgress, Shell
from cohsh.transport_tcp import ConsoleClient
from nine_door import tickets
from nine_door.client import Client, SocketStreamTransport
from nine_door.errors import EACCES, EAGAIN, EBUSY, FramingLost, NineError
from nine_door.frame_v1 import Frame

REPO = Path(__file__).resolve().parents[2]
IR = REPO / "configs" / "root_task.toml"
QUEEN_SECRET = "bootstrap"            # configs/root_task.toml
TWRITE = 118                          # SPEC §3.2
OK_LINE = re.compile(r"OK POOL BENCH ops=(\d+) short_writes=(\d+) retries=(\d+) elapsed_ms=(\d+)")


# -- helpers -----------------------------------------------------------------------------------------
def start_host(tmp_path: Path | None = None, **replace: str):
    """A host-mode system from the shipped IR, with textual replacements (``old=new``) applied."""
    from root_task.host import start_in_process

    ir = IR
    if replace:
        text = IR.read_text()
        for old, new in replace.items():
            assert old in text, old
            text = text.replace(old, new)
        ir = tmp_path / "root_task.toml"
        ir.write_text(text)
    return start_in_process(str(ir))


@pytest.fixture
def host():
    system = start_host()
    yield system
    system.stop()


def queen_client(system) -> Client:
    """A plain 9P client as queen; retried while the origin is in its attach back-off (SPEC §10.7: a
    test that provoked one denial must wait 250 ms before 127.0.0.1 may attach again)."""
    deadline = time.monotonic() + 3
    while True:
        sock = socket.create_connection(("127.0.0.1", system.ninep_port), timeout=10)
        client = Client(SocketStreamTransport(sock))
        client.version(8192)
        try:
            client.attach("queen", tickets.mint(QUEEN_SECRET, "queen"))
            return client
        except NineError as exc:
            client.close()
            if exc.errno != EAGAIN or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def log_lines(system, prefix: str) -> list[str]:
    client = queen_client(system)
    try:
        text = client.read_all("/log/queen.log").decode()
    finally:
        client.close()
    return [line for line in text.splitlines() if line.startswith(prefix)]


def pool_for(system, **kw) -> Pool:
    kw.setdefault("secret", QUEEN_SECRET)
    return Pool("127.0.0.1", system.ninep_port, env={}, **kw)


def run_cli(argv: list[str], env: dict | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    return cli.main(argv, env=env or {}, out=out, err=err), out.getvalue(), err.getvalue()


def tcp_args(system) -> list[str]:
    return ["--transport", "tcp", "--tcp-port", str(system.console_port), "--9p-port", str(system.ninep_port)]


def spawn_worker(pool: Pool) -> str:
    """Spawn worker-1 (schema ≥ 1.2: a ring and a cursor file) and return its ring path."""
    pool.write("/queen/ctl", '{"spawn":"heartbeat","ticks":100000}')
    return "/worker/worker-1/telemetry"


def kill_after_twrites(system, ports: set[int], n: int) -> dict:
    """Close (server side) the first of these connections to have executed ``n`` Twrites, before the
    replies to its last slice are sent. Both of the session's stream entry points are wrapped: the
    listener hands whole frames at a boundary to ``feed_frames`` and everything else to ``feed``."""
    listener = system.task.ninep_listener
    state = {"seen": 0, "killed": 0}

    def executed(data: bytes, start: int, end: int) -> None:
        pos = start
        while pos + 5 <= end:
            size = struct.unpack_from("<I", data, pos)[0]
            state["seen"] += data[pos + 4] == TWRITE
            pos += max(size, 7)
        if not state["killed"] and state["seen"] >= n:
            state["killed"] += 1
            raise FramingLost("test: connection killed server-side")

    for conn in list(listener.conns.values()):
        if int(conn.peer.rsplit(":", 1)[1]) not in ports:
            continue
        session = conn.session

        def feed(data: bytes, original=session.feed) -> list[bytes]:
            replies = original(data)
            executed(data, 0, len(data))
            return replies

        def feed_frames(data: bytes, start: int, max_frames: int, original=session.feed_frames):
            replies, stop = original(data, start, max_frames)
            executed(data, start, stop)
            return replies, stop

        session.feed = feed
        session.feed_frames = feed_frames
    return state


def telemetry_ports(pool: Pool) -> set[int]:
    return {port for kind, _, port in pool.sessions() if kind == "telemetry" and port}


def pool_payloads(records: list, prefix: bytes) -> list[bytes]:
    return [r.payload for r in records if isinstance(r, Frame) and r.payload.startswith(prefix)]


def offline_shell(options: PoolOptions, out: io.StringIO | None = None) -> Shell:
    """A shell whose console is never used (``pool bench`` talks 9P only)."""
    def no_console() -> socket.socket:
        raise OSError("no console in this test")

    return Shell(ConsoleClient(no_console, ""), out or io.StringIO(), pool_options=options)


# -- policy, parsing, tickets (no system) ------------------------------------------------------------
def test_policy_defaults_bounds_and_generated_file(tmp_path: Path) -> None:
    assert (PoolPolicy().control, PoolPolicy().telemetry) == (2, 4)
    assert LEASE_TIMEOUT_S == 1.0
    for kw, text in (({"control": 0}, "pool.control = 0 is outside 1..16"),
                     ({"telemetry": 17}, "pool.telemetry = 17 is outside 1..16"),
                     ({"max_retries": 17}, "retry.short_write.max_retries = 17 is outside 0..16")):
        with pytest.raises(PoolError) as exc:
            PoolPolicy(**kw)
        assert exc.value.reason == "policy" and text in exc.value.message
    with pytest.raises(PoolError):
        Pool(control=0)
    policy = tmp_path / "cohsh_policy.toml"
    policy.write_text("# GENERATED – do not edit (coh-rtc)\n[meta]\nmanifest_sha256 = \"ab\"\nschema = \"1.2\"\n\n"
                      "[pool]\ncontrol = 3\ntelemetry = 5\n\n[retry.short_write]\nbackoff_ms = 7\nmax_retries = 2\n\n"
                      "[secure9p]\nbatch_frames = true\nmsize = 4096\ntags_per_session = 16\n")
    loaded = PoolPolicy.from_file(policy)
    assert (loaded.control, loaded.telemetry, loaded.backoff_ms, loaded.max_retries, loaded.msize) == (3, 5, 7, 2, 4096)


def test_bad_policy_is_a_usage_error_before_anything_connects(tmp_path: Path) -> None:
    policy = tmp_path / "cohsh_policy.toml"
    policy.write_text("[pool]\ncontrol = 2\ntelemetry = 17\n")
    code, out, err = run_cli(["--policy", str(policy), "--transport", "tcp", "--tcp-port", "1",
                              "pool bench path=/log/queen.log ops=1"])
    assert (code, out) == (2, "")
    assert err == f"Error: {policy}: pool.telemetry = 17 is outside 1..16\n"


def test_pool_bench_arguments_are_checked_locally() -> None:
    assert translate("pool bench path=/log/queen.log ops=64 batch=4 payload=pool") == Command(
        "pool", None, pool=PoolBench("/log/queen.log", 64, 4, "pool"))
    assert translate("pool bench path=/log/queen.log ops=3").pool == PoolBench("/log/queen.log", 3, 4, "bench")
    for line, reason in (("pool", "policy"), ("pool bench ops=1", "policy"),
                         ("pool bench path=/log/queen.log ops=abc", "policy"),
                         ("pool bench path=/log/queen.log ops=0", "policy"),
                         ("pool bench path=/log/queen.log ops=1 batch=0", "policy"),
                         ("pool bench path=/log/queen.log ops=1 colour=red", "policy"),
                         ("pool bench path=log ops=1", "invalid-path")):
        result = translate(line)
        assert isinstance(result, LocalError) and result.print_line, line
        assert result.line.startswith(f"ERR POOL BENCH reason={reason} msg="), (line, result.line)


def test_ticket_resolution_and_ticket_required(tmp_path: Path) -> None:
    assert resolve_ticket("queen", None, "given") == "given"
    minted = resolve_ticket("queen", None, None, env={"COHSH_TICKET_SECRET": QUEEN_SECRET}, now_ms=lambda: 0)
    assert minted == tickets.mint(QUEEN_SECRET, "queen")
    assert resolve_ticket("queen", None, None, ticket_config=str(IR), env={}).startswith("cohesix-ticket-")
    with pytest.raises(PoolError) as exc:
        resolve_ticket("queen", None, None, ticket_config=str(tmp_path / "none.toml"), env={})
    assert exc.value.reason == "ticket-required" and exc.value.message.startswith("ticket required")
    assert classify("/worker/worker-1/telemetry") == "ring"
    assert classify("/shard/ab/worker/worker-1/telemetry") == "ring"
    assert classify("/log/queen.log") == "log" and classify("/queen/ctl") == "other"


def test_progress_display_only_on_a_terminal() -> None:
    now = [0.0]
    out = io.StringIO()
    progress = BenchProgress(out, clock=lambda: now[0])
    progress(10, 100)                   # before 0.3 s: nothing
    assert out.getvalue() == ""
    now[0] = 0.5
    progress(50, 100)
    now[0] = 0.55
    progress(60, 100)                   # within 0.1 s of the last update: skipped
    now[0] = 0.7
    progress(100, 100)
    progress.clear()
    text = out.getvalue()
    assert text.count("\r[pool] bench") == 2 and "50/100 appends (50%" in text and "100/100" in text
    assert text.endswith("\r")


# -- against the host run mode -----------------------------------------------------------------------
def test_acceptance_2_pool_bench_2000_lands_once_each_in_order(host) -> None:
    code, out, err = run_cli(tcp_args(host) + ["pool bench path=/log/queen.log ops=2000 batch=4 payload=pool"])
    assert (code, err) == (0, ""), out
    lines = out.splitlines()
    assert "attached session 1 as queen" in lines
    match = OK_LINE.fullmatch(lines[-2] if lines[-1].startswith("[console] OK QUIT") else lines[-1])
    assert match and match.group(1) == "2000", out
    assert log_lines(host, "pool-") == [f"pool-{i}" for i in range(1, 2001)]


def test_session_pool_script_runs_over_tcp_against_host_mode(host) -> None:
    code, out, err = run_cli(tcp_args(host) + ["--script", str(REPO / "tests" / "cli" / "session_pool.coh")])
    assert code == 0, f"{out}\n{err}"
    assert OK_LINE.search(out)
    assert log_lines(host, "pool-") == [f"pool-{i}" for i in range(1, 65)]


def test_appends_are_pipelined_and_packed_by_the_batched_twrite_builder(host) -> None:
    with pool_for(host) as pool:
        assert pool.window == 32 and pool.info.batch_frames and pool.info.frame_schema == "cbor_v1"
        session = pool._sessions["telemetry"][0]
        sends: list[bytes] = []
        real = session.sock

        class Recorder:
            def __getattr__(self, name):
                return getattr(real, name)

            def sendall(self, data):
                sends.append(bytes(data))
                return real.sendall(data)

        session.sock = Recorder()
        result = pool.append_many("/log/queen.log", [f"pipe-{i}" for i in range(1, 101)], batch=4)
    assert result.records == 100 and result.twrites == 100 and result.short_writes == 0
    frames_per_send = []
    for data in sends:
        pos = count = 0
        while pos < len(data):
            size, kind = struct.unpack_from("<IB", data, pos)
            assert kind == 118
            count += 1
            pos += size
        frames_per_send.append(count)
        assert len(data) <= pool.msize
    assert frames_per_send == [4] * 25
    assert log_lines(host, "pipe-") == [f"pipe-{i}" for i in range(1, 101)]


def test_window_follows_the_server(tmp_path: Path) -> None:
    system = start_host(tmp_path, **{"tags_per_session = 32": "tags_per_session = 2"})
    try:
        with pool_for(system) as pool:
            assert pool.window == 2
            result = pool.append_many("/log/queen.log", [f"w-{i}" for i in range(1, 301)], batch=8)
        assert result.records == 300
        assert log_lines(system, "w-") == [f"w-{i}" for i in range(1, 301)]
    finally:
        system.stop()


def test_library_api_append_read_tail_with_cursor(host) -> None:
    with pool_for(host) as pool:
        pool.append("/log/queen.log", "lib-one")
        pool.append_many("/log/queen.log", ["lib-two\n", b"lib-three"])
        assert b"lib-one\nlib-two\nlib-three\n" in pool.read("/log/queen.log")
        ring = spawn_worker(pool)
        cursor_path = "/worker/worker-1/cursor"
        pool.append_many(ring, [f"ring-{i}" for i in range(1, 11)], batch=3)
        first = pool.tail(ring)
        assert pool_payloads(first.records, b"ring-") == [f"ring-{i}".encode() for i in range(1, 11)]
        consumed = pool.tail(ring, cursor=0, commit=True)       # arm and consume everything read
        assert pool.read(cursor_path).startswith(f"cursor={consumed.cursor} ".encode())
        pool.append(ring, Frame(seq=pool.next_seq(), ts=1, kind=128, payload=b"\x00app"))
        pool.append(ring, "ring-11")
        later = pool.tail(ring, cursor=consumed.cursor)
        assert later.start == consumed.cursor and later.missed == 0
        assert [r.payload for r in later.records if r.kind != 1] == [b"\x00app", b"ring-11"]
        text = pool.tail("/log/queen.log")
        again = pool.tail("/log/queen.log", cursor=text.cursor)
        assert text.records and again.records == []


def test_pool_exhausted_after_the_lease_timeout(host) -> None:
    with pool_for(host, telemetry=1, lease_timeout_s=0.2) as pool:
        errors: list[PoolError] = []
        with pool.lease("telemetry"):
            worker = threading.Thread(target=lambda: _capture(errors, pool.append, "/log/queen.log", "x"))
            started = time.monotonic()
            worker.start()
            worker.join(5)
            waited = time.monotonic() - started
        assert len(errors) == 1 and errors[0].reason == "exhausted" and errors[0].errno == EBUSY
        assert "pool exhausted" in errors[0].message and 0.15 <= waited < 2
        pool.append("/log/queen.log", "after-release")          # the session came back


def _capture(errors: list, fn, *args) -> None:
    try:
        fn(*args)
    except PoolError as exc:
        errors.append(exc)


def test_c14_short_writes_on_an_armed_ring_are_retried_in_order(tmp_path: Path) -> None:
    """A small armed ring (8 KiB) and a consumer committing the cursor as records arrive: the bench
    meets short writes (count 0 and partial), retries per §3.13, and every record lands once, in order."""
    system = start_host(tmp_path, **{"ring_bytes_per_worker = 65536": "ring_bytes_per_worker = 8192"})
    try:
        with pool_for(system) as admin, pool_for(system, control=1, telemetry=1) as consumer:
            ring = spawn_worker(admin)
            admin.write("/worker/worker-1/cursor", "1")          # armed: nothing unconsumed is evicted
            seen: list = []
            stop = threading.Event()

            def consume() -> None:
                cursor = 1
                while not stop.is_set():
                    tail = consumer.tail(ring, cursor=cursor, commit=True)
                    seen.extend(tail.records)
                    cursor = tail.cursor
                    time.sleep(0.003)
                seen.extend(consumer.tail(ring, cursor=cursor, commit=True).records)

            thread = threading.Thread(target=consume)
            thread.start()
            out = io.StringIO()
            options = PoolOptions(port=system.ninep_port, secret=QUEEN_SECRET, env={},
                                  policy=PoolPolicy(max_retries=10))
            shell = offline_shell(options, out)
            try:
                outcome = shell.execute("pool bench path=/worker/worker-1/telemetry ops=800 batch=8 payload=c14")
            finally:
                stop.set()
                thread.join(20)
                shell.close()
        match = OK_LINE.fullmatch(outcome.response or "")
        assert match, out.getvalue()
        assert int(match.group(2)) > 0 and int(match.group(3)) > 0     # short writes, retries
        assert pool_payloads(seen, b"c14-") == [f"c14-{i}".encode() for i in range(1, 801)]
    finally:
        system.stop()


def test_c14_killed_telemetry_session_is_rebuilt_and_resends_by_seq(host) -> None:
    """cbor_v1 ring: the telemetry connection is closed by the server after it executed 150 Twrites,
    before their replies went out; the pool rebuilds the session, resends every frame above the last
    acknowledged seq, and the duplicate rule keeps each record stored exactly once, in order."""
    with pool_for(host) as pool:
        ring = spawn_worker(pool)
        state = kill_after_twrites(host, telemetry_ports(pool), 150)
        result = pool.append_many(ring, [f"kill-{i}" for i in range(1, 601)], batch=2)
        assert state["killed"] == 1
        assert result.recoveries == 1 and result.resent >= 2 and result.retries >= 1
        records = pool.tail(ring).records
    assert pool_payloads(records, b"kill-") == [f"kill-{i}".encode() for i in range(1, 601)]


def test_c14_kill_mid_bench_through_the_shell(host) -> None:
    """The same through ``pool bench``: the OK line reports the retries."""
    options = PoolOptions(port=host.ninep_port, secret=QUEEN_SECRET, env={})
    with pool_for(host) as admin:
        ring = spawn_worker(admin)
        shell = offline_shell(options)
        pool = shell._pool_for_identity()
        pool.open()
        kill_after_twrites(host, telemetry_ports(pool), 40)
        outcome = shell.execute(f"pool bench path={ring} ops=300 batch=4 payload=sh")
        shell.close()
        match = OK_LINE.fullmatch(outcome.response or "")
        assert match and int(match.group(3)) > 0, outcome.response
        assert pool_payloads(admin.tail(ring).records, b"sh-") == [f"sh-{i}".encode() for i in range(1, 301)]


def test_text_target_is_never_silently_resent_after_a_kill(host) -> None:
    with pool_for(host) as pool:
        kill_after_twrites(host, telemetry_ports(pool), 100)
        with pytest.raises(PoolError) as exc:
            pool.append_many("/log/queen.log", [f"txt-{i}" for i in range(1, 1001)], batch=4)
        error = exc.value
        assert error.reason == "cut" and "not resent" in error.message and error.transport   # one-shot: exit 3
        acknowledged = error.acknowledged
        stored = log_lines(host, "txt-")
        assert stored == [f"txt-{i}" for i in range(1, len(stored) + 1)]    # a prefix, once each
        assert acknowledged <= len(stored) < 1000
        pool.append("/log/queen.log", "txt-after")              # the pool rebuilt the session
    assert log_lines(host, "txt-after") == ["txt-after"]


def test_session_closed_while_idle_is_rebuilt_before_use(host) -> None:
    with pool_for(host, telemetry=1) as pool:
        pool.append("/log/queen.log", "idle-1")
        port = next(iter(telemetry_ports(pool)))
        listener = host.task.ninep_listener
        conn = next(c for c in list(listener.conns.values()) if c.peer.endswith(f":{port}"))
        conn.sock.shutdown(socket.SHUT_RDWR)                     # the server side goes away
        deadline = time.monotonic() + 5
        while conn.conn_id in listener.conns and time.monotonic() < deadline:
            time.sleep(0.01)
        pool.append("/log/queen.log", "idle-2")
    assert log_lines(host, "idle-") == ["idle-1", "idle-2"]


# -- acceptance 3: bad input, one clear line, SPEC exit codes -----------------------------------------
def _one_line_failure(code: int, out: str, err: str, expected_code: int, reason: str) -> str:
    assert code == expected_code, (out, err)
    results = [line for line in out.splitlines() if "POOL BENCH" in line]
    assert len(results) == 1 and results[0].startswith(f"ERR POOL BENCH reason={reason} msg="), out
    assert err.count("\n") == 1 and err.startswith("Error: "), err
    return results[0]


def test_unreachable_9p_port_exits_3(host) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    code, out, err = run_cli(["--transport", "tcp", "--tcp-port", str(host.console_port), "--9p-port",
                              str(closed), "pool bench path=/log/queen.log ops=5"])
    line = _one_line_failure(code, out, err, 3, "unavailable")
    assert f"cannot reach 9P at 127.0.0.1:{closed}" in line


def test_wrong_ticket_is_refused_once_and_nothing_is_written(host) -> None:
    code, out, err = run_cli(tcp_args(host) + ["pool bench path=/log/queen.log ops=5 payload=wrong"],
                             env={"COHSH_TICKET_SECRET": "not-the-secret"})
    line = _one_line_failure(code, out, err, 1, "denied")
    assert "permission denied (EACCES)" in line
    client = queen_client(host)
    log = client.read_all("/log/queen.log").decode()
    client.close()
    assert "wrong-" not in log
    assert log.count("9p attach denied") == 1                    # one attach tried, not one per session


def test_path_the_role_may_not_write(host) -> None:
    code, out, err = run_cli(tcp_args(host) + ["pool bench path=/proc/boot ops=5"])
    line = _one_line_failure(code, out, err, 1, "denied")
    assert "cannot append to /proc/boot: permission denied (EACCES)" in line
    with pool_for(host) as queen:
        ring = spawn_worker(queen)
    worker_ticket = tickets.mint("worker", "worker-heartbeat", subject="worker-1")
    with Pool("127.0.0.1", host.ninep_port, role="worker-heartbeat", subject="worker-1",
              ticket=worker_ticket, env={}) as worker:
        with pytest.raises(PoolError) as exc:
            worker.append("/log/queen.log", "from-worker")      # workers may read the log, not write it
        assert exc.value.reason == "denied" and exc.value.errno == EACCES
        worker.append(ring, "own telemetry")                     # its own ring: allowed


def test_no_ticket_secret_means_ticket_required(host, tmp_path: Path) -> None:
    code, out, err = run_cli(tcp_args(host) + ["--ticket-config", str(tmp_path / "missing.toml"),
                                               "pool bench path=/log/queen.log ops=1"])
    line = _one_line_failure(code, out, err, 1, "ticket-required")
    assert "ticket required" in line


def test_mock_transport_one_shot_uses_the_in_process_listener() -> None:
    code, out, err = run_cli(["--transport", "mock", "pool bench path=/log/queen.log ops=50 payload=mock"])
    assert (code, err) == (0, "") and OK_LINE.search(out), out


def test_full_armed_ring_without_consumer_fails_with_eagain_and_reports_what_is_stored(tmp_path: Path) -> None:
    """§3.13 rule 5: after max_retries resends without progress the append fails (EAGAIN); the error
    says how many records are stored, and a later append succeeds once the consumer commits."""
    system = start_host(tmp_path, **{"ring_bytes_per_worker = 65536": "ring_bytes_per_worker = 8192"})
    try:
        sleeps: list[float] = []
        with pool_for(system) as admin, pool_for(system, policy=PoolPolicy(max_retries=2, backoff_ms=1),
                                                  sleep=sleeps.append) as pool:
            ring = spawn_worker(admin)
            admin.write("/worker/worker-1/cursor", "1")
            with pytest.raises(PoolError) as exc:
                pool.append_many(ring, [f"full-{i}" for i in range(1, 401)], batch=5)
            error = exc.value
            assert (error.reason, error.errno) == ("buffer-full", EAGAIN)
            assert sleeps == [0.001, 0.002]                       # backoff_ms × 2^k, then give up
            stored = pool_payloads(admin.tail(ring).records, b"full-")
            assert stored == [f"full-{i}".encode() for i in range(1, len(stored) + 1)]
            assert error.acknowledged <= len(stored) < 400
            with pytest.raises(PoolError) as single:
                pool.append(ring, "one-more")                    # the single-record path: same rules
            assert single.value.reason == "buffer-full"
            admin.tail(ring, cursor=0, commit=True)               # consume everything: room again
            pool.append(ring, "one-more")
            assert pool_payloads(admin.tail(ring).records, b"one-more") == [b"one-more"]
    finally:
        system.stop()


def test_revoked_session_is_rebuilt_and_a_gone_identity_is_reported(host) -> None:
    """ESTALE (the worker was killed, §4.6) discards the session; the rebuild's attach fails because the
    worker no longer exists, and that is the one error reported."""
    with pool_for(host) as queen:
        ring = spawn_worker(queen)
        worker_ticket = tickets.mint("worker", "worker-heartbeat", subject="worker-1")
        with Pool("127.0.0.1", host.ninep_port, role="worker-heartbeat", subject="worker-1",
                  ticket=worker_ticket, env={}, control=1, telemetry=1) as worker:
            worker.append(ring, "before-kill")
            queen.write("/queen/ctl", '{"kill":"worker-1"}')
            with pytest.raises(PoolError) as exc:
                worker.append(ring, "after-kill")
            assert exc.value.reason == "denied" and "attach as worker-heartbeat refused" in exc.value.message


def test_the_documented_library_example_runs(host, capsys) -> None:
    """docs/cohsh.md "Session pools": the example, pointed at this host (and the default policy)."""
    doc = (REPO / "docs" / "cohsh.md").read_text()
    section = doc.split("## Session pools", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    code = code.replace('PoolPolicy.from_file("out/cohsh_policy.toml")', "PoolPolicy()")
    code = code.replace('Pool("127.0.0.1", 5640,', f'Pool("127.0.0.1", {host.ninep_port},')
    assert str(host.ninep_port) in code
    exec(compile(code, "docs/cohsh.md", "exec"), {})
    printed = capsys.readouterr().out
    assert printed.startswith("1000 0 0\n") and "Cohesix boot: root-task online" in printed
    assert b"calibrated" in printed.encode() and b"ready" in printed.encode()


def test_records_the_server_would_refuse_part_way_are_refused_before_sending(host) -> None:
    with pool_for(host) as pool:
        with pytest.raises(PoolError) as exc:
            pool.append_many("/log/queen.log", [b"early-1\n", b"\xff\xfe bad\n", b"early-3\n"])
        assert exc.value.reason == "invalid-payload" and "record 2 is not UTF-8" in exc.value.message
        with pytest.raises(PoolError) as exc:
            pool.append_many("/log/queen.log", ["early-4", "x" * 9000])
        assert exc.value.reason == "too-big" and exc.value.acknowledged == 0
    assert log_lines(host, "early-") == []
