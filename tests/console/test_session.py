"""Console session verbs and state machine against the fake NineDoor (SPEC §10.1, §10.5–§10.7)."""
from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from root_task.console.session import (ConsoleSession, State, cat_summary, content_lines,
                                      is_text, split_utf8)

from .fakes import FakeDoor, ManualClock, make_ctx


def serial(door=None, clock=None, **cfg):
    door = door or FakeDoor()
    audits: list[str] = []
    ctx = make_ctx(door, clock, **cfg)
    s = ConsoleSession(ctx, transport="serial", origin_key="serial", origin_label="serial",
                       conn_id="serial", audit=audits.append)
    return s, door, audits


def lines(s, line):
    return list(s.handle_line(line).lines)


def test_serial_starts_authenticated_and_help():
    s, _, _ = serial()
    assert s.state is State.AUTHENTICATED
    assert lines(s, "help") == [
        "OK HELP", "Cohesix console verbs:", "help | bi | caps | mem | ping | test | netstats | quit",
        "log | tail <path> | cat <path> | ls <path> | echo <path> <payload>",
        "attach <role> [ticket] | spawn <json> | kill <worker-id>", "END"]


def test_ping_pong_precedes_ack_and_test_is_host_only():
    s, _, _ = serial()
    assert lines(s, "PING") == ["PONG", "OK PING reply=pong"]
    assert lines(s, "test") == ["ERR TEST reason=policy detail=host-only"]


def test_parse_errors():
    s, _, _ = serial()
    assert lines(s, "bogus") == ["ERR PARSE reason=policy detail=unknown-verb"]
    assert lines(s, "") == ["ERR PARSE reason=policy detail=empty-line"]
    assert s.handle_too_long().lines == ("ERR PARSE reason=policy detail=line-too-long",)


def test_verbs_need_attach():
    s, _, _ = serial()
    for verb in ("log", "cat /proc/boot", "tail /x", "ls /", "echo /x y"):
        out = lines(s, verb)
        assert out == [f"ERR {verb.split()[0].upper()} reason=policy detail=unauthenticated"]
    assert lines(s, 'spawn {"a":1}') == ["ERR SPAWN reason=policy detail=unauthenticated"]


def test_attach_queen_without_ticket_and_audit():
    s, door, audits = serial()
    assert lines(s, "attach QUEEN") == ["OK ATTACH role=queen"]
    assert s.state is State.ATTACHED and s.role == "queen"
    assert audits == ["audit console.attach conn_id=serial role=queen"]
    assert lines(s, "attach queen") == ["ERR ATTACH reason=busy detail=already-attached"]


def test_caps_before_and_after_attach():
    s, _, _ = serial()
    out = lines(s, "caps")
    assert out[0] == "OK CAPS" and out[1] == "role=none" and out[2] == "session=none"
    assert out[3] == "verbs=help bi caps mem ping test netstats quit attach" and out[-1] == "END"
    lines(s, "attach queen")
    out = lines(s, "caps")
    assert out[1] == "role=queen" and out[2].startswith("session=") and out[2] != "session=none"
    assert "spawn kill" in out[3] and "attach" not in out[3]


def test_bi_reads_proc_boot_through_ninedoor_even_unattached():
    s, door, _ = serial()
    out = lines(s, "bi")
    assert out == ["OK BOOTINFO", "Cohesix boot: root-task online", "spawned user-component endpoint 1",
                   "tick 1", "END"]
    assert door.sessions_opened == door.sessions_closed == 1  # transient bridge released


def test_mem_lines():
    s, _, _ = serial()
    out = lines(s, "mem")
    assert out[0] == "OK MEM" and out[-1] == "END"
    assert [l.split("=")[0] for l in out[1:-1]] == [
        "workers", "sessions", "telemetry_bytes", "telemetry_capacity", "cas_bytes", "dropped_input_bytes"]


def test_cat_stream_and_summary():
    s, _, _ = serial()
    lines(s, "attach queen")
    out = lines(s, "cat /proc/boot")
    assert out[0] == "OK CAT path=/proc/boot data=Cohesix boot: root-task online|spawned user-component endpoint 1|tick 1"
    assert out[1:] == ["Cohesix boot: root-task online", "spawned user-component endpoint 1", "tick 1", "END"]
    assert lines(s, "cat /empty") == ["OK CAT path=/empty data=", "END"]


def test_cat_binary_is_base64():
    s, door, _ = serial()
    lines(s, "attach queen")
    out = lines(s, "cat /bin.dat")
    data = door.files["/bin.dat"]
    assert out[0].startswith("OK CAT path=/bin.dat data=b64:AAECAwQF")
    assert len(out[0]) - len("OK CAT ") <= 128
    body = out[1:-1]
    assert all(l.startswith("b64:") for l in body)
    assert b"".join(base64.b64decode(l[4:]) for l in body) == data
    assert all(len(base64.b64decode(l[4:])) <= 48 for l in body)


def test_cat_first_256_tail_last_256():
    s, door, _ = serial()
    door.files["/log/queen.log"] = "".join(f"line {i}\n" for i in range(1, 301)).encode()
    lines(s, "attach queen")
    cat = lines(s, "cat /log/queen.log")
    assert cat[1] == "line 1" and cat[-2] == "line 256" and len(cat) == 258
    assert cat[0].endswith("line 300") and len(cat[0]) - 7 <= 128
    tail = lines(s, "tail /log/queen.log")
    assert tail[0] == "OK TAIL path=/log/queen.log"
    assert tail[1] == "line 45" and tail[-2] == "line 300" and len(tail) == 258
    log = lines(s, "log")
    assert log[0] == "OK LOG" and len(log) == 302


def test_path_errors():
    s, _, _ = serial()
    lines(s, "attach queen")
    assert lines(s, "ls /nope") == [
        "ERR LS reason=policy detail=invalid-path path=/nope error=ENOENT msg=invalid path"]
    assert lines(s, "cat proc") == [
        "ERR CAT reason=policy detail=invalid-path path=proc error=EINVAL msg=invalid path"]
    assert lines(s, "cat /proc/../x") == [
        "ERR CAT reason=policy detail=invalid-path path=/proc/../x error=EINVAL msg=invalid path"]
    assert lines(s, "cat /a/b/c/d/e/f/g/h/i")[0].startswith("ERR CAT reason=policy detail=invalid-path")
    assert lines(s, "cat /proc/boot/x") == [
        "ERR CAT reason=policy detail=invalid-path path=/proc/boot/x error=ENOTDIR msg=not a directory"]


def test_ls_lists_entries_without_dot():
    s, _, _ = serial()
    lines(s, "attach queen")
    assert lines(s, "ls /proc") == ["OK LS path=/proc entries=1", "boot", "END"]


def test_echo_appends_payload_plus_newline():
    s, door, _ = serial()
    lines(s, "attach queen")
    assert lines(s, "echo /log/queen.log hello world") == ["OK ECHO path=/log/queen.log bytes=11"]
    assert door.files["/log/queen.log"].endswith(b"hello world\n")
    assert lines(s, "echo /log/queen.log") == ["OK ECHO path=/log/queen.log bytes=0"]
    assert lines(s, "echo /log/queen.log é") == ["OK ECHO path=/log/queen.log bytes=2"]


def test_echo_permission_and_short_write():
    s, door, _ = serial()
    lines(s, "attach queen")
    assert lines(s, "echo /proc/boot x") == [
        "ERR ECHO reason=policy detail=denied path=/proc/boot error=EACCES msg=permission denied"]
    door.short_next_write = True
    assert lines(s, "echo /log/queen.log x") == ["ERR ECHO reason=quota detail=buffer-full path=/log/queen.log"]


def test_spawn_and_kill_queen_only_and_errors():
    s, door, _ = serial()
    lines(s, "attach queen")
    assert lines(s, 'spawn {"spawn":"heartbeat","ticks":5}') == [
        'OK SPAWN payload={"spawn":"heartbeat","ticks":5}']
    assert door.workers == {"worker-1"}
    assert lines(s, "kill worker-1") == ["OK KILL id=worker-1"]
    assert lines(s, "kill worker-9") == [
        "ERR KILL reason=policy detail=invalid-path error=ENOENT msg=no such file or directory"]
    assert lines(s, "spawn nope") == [
        "ERR SPAWN reason=policy detail=invalid-payload error=EINVAL msg=invalid argument"]


def test_worker_attach_and_non_queen_verbs_denied():
    door = FakeDoor(workers={"worker-1"})
    s, _, audits = serial(door)
    assert lines(s, "attach worker ok:worker-1") == ["OK ATTACH role=worker-heartbeat"]
    assert audits[-1] == "audit console.attach conn_id=serial role=worker-heartbeat"
    assert lines(s, "kill worker-1") == ["ERR KILL reason=policy detail=denied"]
    assert lines(s, 'spawn {"x":1}') == ["ERR SPAWN reason=policy detail=denied"]
    assert lines(s, "cat /proc/boot")[0].startswith("OK CAT")


def test_quit_detaches_serial_without_close():
    s, door, _ = serial()
    lines(s, "attach queen")
    reply = s.handle_line("quit")
    assert reply.lines == ("OK QUIT",) and not reply.close
    assert s.state is State.AUTHENTICATED and door.sessions_closed == 1


def test_revoked_returns_to_authenticated():
    s, door, _ = serial()
    lines(s, "attach queen")
    door.stale = True
    assert lines(s, "cat /proc/boot") == [
        "ERR CAT reason=cut detail=revoked path=/proc/boot error=ESTALE msg=stale file handle"]
    assert s.state is State.AUTHENTICATED
    door.stale = False
    assert lines(s, "attach queen") == ["OK ATTACH role=queen"]


# -- attach refusals and throttling ------------------------------------------------------------
@pytest.mark.parametrize("line,detail,reason", [
    ("attach worker bad", "denied", "policy"),
    ("attach worker claims", "invalid-claims", "policy"),
    ("attach worker expired", "expired", "quota"),
    ("attach wizard", "invalid-role", "policy"),
    ("attach worker", "invalid-claims", "policy"),
    ("attach worker ok:worker-7", "unknown-worker", "policy"),
])
def test_attach_refusal_details_logged(line, detail, reason):
    s, door, _ = serial()
    assert lines(s, line) == [f"ERR ATTACH reason={reason} detail={detail}"]
    assert door.log[-1].startswith("console attach denied origin=serial role=")
    assert door.log[-1].endswith(f"detail={detail}")


def test_bad_ticket_then_retry_throttled_then_backoff_expires():
    clock = ManualClock()
    s, door, _ = serial(clock=clock)
    assert lines(s, "attach worker bad") == ["ERR ATTACH reason=policy detail=denied"]
    assert lines(s, "attach worker bad") == ["ERR ATTACH reason=quota detail=throttled delay_ms=250"]
    assert door.log[-1] == "console throttled origin=serial detail=throttled delay_ms=250"
    clock.ms += 250
    assert lines(s, "attach worker bad") == ["ERR ATTACH reason=policy detail=denied"]
    clock.ms += 500
    assert lines(s, "attach worker bad") == ["ERR ATTACH reason=policy detail=denied"]
    # third failure within 60 s → lockout for 90 s
    assert lines(s, "attach queen") == ["ERR ATTACH reason=quota detail=rate-limited delay_ms=90000"]
    clock.ms += 90_000
    assert lines(s, "attach queen") == ["OK ATTACH role=queen"]


def test_success_resets_failures():
    clock = ManualClock()
    s, _, _ = serial(clock=clock)
    lines(s, "attach worker bad")
    clock.ms += 1000
    lines(s, "attach queen")
    assert s.ctx.throttle.failures("serial") == 0


def test_tcp_quit_closes():
    ctx = make_ctx()
    s = ConsoleSession(ctx, transport="tcp", origin_key="127.0.0.1", origin_label="tcp:127.0.0.1",
                       conn_id="3")
    assert s.state is State.CONNECTED
    with pytest.raises(RuntimeError):
        s.handle_line("ping")
    s.authenticate()
    assert s.handle_line("quit").close


# -- pure helpers ------------------------------------------------------------------------------
def test_summary_rules():
    assert cat_summary(b"", 50) == ""
    assert cat_summary(b"a\n\nb\n\n", 50) == "a|b"
    assert cat_summary(b"one\ntwo\nthree\n", 9) == "two|three"
    assert cat_summary(b"x" * 100, 10) == "x" * 10
    assert cat_summary(b"\x00\x01", 12) == "b64:AAE="


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400), st.integers(1, 128))
def test_property_summary_fits(data, budget):
    assert len(cat_summary(data, budget)) <= budget


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=3000), st.integers(4, 64))
def test_property_split_utf8(text, limit):
    parts = split_utf8(text, limit)
    assert "".join(parts) == text
    assert all(len(p.encode()) <= limit for p in parts)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=500))
def test_property_content_lines_lossless(data):
    out = content_lines(data)
    if is_text(data):
        assert "\n".join(out) == data.decode().replace("\r", "").removesuffix("\n")
    else:
        assert b"".join(base64.b64decode(l[4:]) for l in out) == data
    assert all("\n" not in l and "\r" not in l for l in out)


def test_long_line_split_at_4096():
    s, door, _ = serial()
    door.files["/log/queen.log"] = ("é" * 5000 + "\n").encode()
    lines(s, "attach queen")
    out = lines(s, "cat /log/queen.log")
    body = out[1:-1]
    assert len(body) == 3 and "".join(body) == "é" * 5000
    assert all(len(b.encode()) <= 4096 for b in body)


def test_echo_cas_b64_written_raw_at_u64_max():
    door = FakeDoor()
    door.dirs["/"].append("updates")
    door.dirs["/updates"] = ["1"]
    door.dirs["/updates/1"] = ["manifest.cbor"]
    s, _, _ = serial(door, cas_root="/updates")
    lines(s, "attach queen")
    assert lines(s, "echo /updates/1/manifest.cbor b64:AAEC") == ["OK ECHO path=/updates/1/manifest.cbor bytes=3"]
    assert door.writes[-1] == ("/updates/1/manifest.cbor", 0xFFFFFFFFFFFFFFFF, b"\x00\x01\x02")
    assert lines(s, "echo /updates/1/manifest.cbor b64:!!") == [
        "ERR ECHO reason=policy detail=invalid-payload path=/updates/1/manifest.cbor error=EINVAL "
        "msg=invalid argument"]
    # outside the CAS root a b64: payload is plain text
    assert lines(s, "echo /log/queen.log b64:AAEC") == ["OK ECHO path=/log/queen.log bytes=8"]
    assert door.writes[-1] == ("/log/queen.log", 0, b"b64:AAEC\n")
