"""The console client (SPEC §10.4, §11.6) against a fake console server using the real framing."""
from __future__ import annotations

import io
import socket
import time

import pytest

from cohsh import cli
from cohsh.commands import translate
from cohsh.transport_tcp import (
    AuthRejected,
    CommandInterrupted,
    ConsoleClient,
    Reply,
    TcpPolicy,
    TransportLost,
    tcp_connector,
)
from cohsh_fake_console import FakeConsole

FAST = TcpPolicy(ack_timeout_s=0.5, stream_timeout_s=0.5, reconnect_delays_ms=(1, 1, 1))


def client_for(console: FakeConsole, **kw) -> ConsoleClient:
    return ConsoleClient(tcp_connector("127.0.0.1", console.port), "changeme", **kw)


def run_cli(argv: list[str], env: dict[str, str] | None = None, lines: list[str] | None = None):
    out, err = io.StringIO(), io.StringIO()
    feed = iter(lines or [])

    def read_line(prompt: str) -> str:
        out.write(prompt)
        try:
            return next(feed)
        except StopIteration:
            raise EOFError from None

    code = cli.main(argv, env=env or {}, out=out, err=err, read_line=read_line)
    return code, out.getvalue(), err.getvalue()


def tcp_args(console: FakeConsole) -> list[str]:
    return ["--tcp-port", str(console.port)]


# -- AUTH ---------------------------------------------------------------------------------------

def test_auth_is_sent_first_and_ok_auth_accepted(console: FakeConsole) -> None:
    client = client_for(console)
    client.connect()
    assert client.request("PING") == Reply(("PONG",), "OK PING reply=pong")
    assert console.connections[0].lines == ["AUTH changeme", "PING"]


def test_wrong_token_is_rejected(console: FakeConsole) -> None:
    client = ConsoleClient(tcp_connector("127.0.0.1", console.port), "wrong")
    with pytest.raises(AuthRejected) as info:
        client.connect()
    assert info.value.reply == "ERR AUTH reason=invalid-token"


@pytest.mark.parametrize("reply", ["OK AUTH extra", "ok auth", "OK  AUTH", "OK"])
def test_only_exact_ok_auth_is_accepted(reply: str) -> None:
    server = FakeConsole(auth_reply=reply)
    try:
        with pytest.raises(AuthRejected):
            client_for(server).connect()
    finally:
        server.close()


def test_cli_auth_rejected_exits_3(console: FakeConsole) -> None:
    code, out, err = run_cli(tcp_args(console) + ["--auth-token", "nope", "ping"])
    assert code == 3
    assert err == "Error: AUTH rejected: ERR AUTH reason=invalid-token\n"


def test_cannot_connect_exits_3() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code, _, err = run_cli(["--tcp-port", str(port), "ping"])
    assert code == 3 and err.startswith("Error: cannot connect")


# -- acks and streams ---------------------------------------------------------------------------

def test_stream_reply_collects_content_until_end(console: FakeConsole) -> None:
    client = client_for(console)
    client.connect()
    client.request("ATTACH queen")
    reply = client.request("CAT /proc/boot")
    assert reply.ack == "OK CAT path=/proc/boot data=tick 1"
    assert reply.content == ("Cohesix boot: root-task online", "tick 1")
    err = client.request("LS /nope")
    assert err.ack.startswith("ERR LS reason=policy detail=invalid-path") and err.content == ()


def test_missing_ack_times_out_as_transport_loss(console: FakeConsole) -> None:
    console.silent.add("PING")
    client = client_for(console, policy=FAST)
    client.connect()
    with pytest.raises(TransportLost, match="timed out waiting for an acknowledgement"):
        client.request("PING")


def test_oversize_frame_gets_err_frame_and_session_survives(console: FakeConsole) -> None:
    client = client_for(console)
    client.connect()
    client.request("ATTACH queen")
    wire = translate("echo {{msize_overflow}} > /log/queen.log").wire  # type: ignore[union-attr]
    assert client.request(wire).ack == "ERR FRAME reason=invalid-length"
    assert client.request("PING").ack == "OK PING reply=pong"


# -- one-shot and script output -----------------------------------------------------------------

def test_one_shot_auto_attaches_as_queen(console: FakeConsole) -> None:
    code, out, err = run_cli(tcp_args(console) + ["cat", "/proc/boot"])
    assert code == 0, err
    assert out.splitlines() == [
        "[console] OK ATTACH role=queen",
        "attached session 1 as queen",
        "[console] OK CAT path=/proc/boot data=tick 1",
        "Cohesix boot: root-task online",
        "tick 1",
    ]
    assert console.connections[0].lines == ["AUTH changeme", "ATTACH queen", "CAT /proc/boot", "quit"]


def test_one_shot_err_exits_1(console: FakeConsole) -> None:
    code, out, err = run_cli(tcp_args(console) + ["ls", "/nope"])
    assert code == 1
    assert "[console] ERR LS reason=policy detail=invalid-path" in out
    assert err.startswith("Error: command failed: ERR LS")
    code, out, err = run_cli(tcp_args(console) + ["ls", "/a/../b"])
    assert code == 1 and err.startswith("Error: invalid path /a/../b")


def test_one_shot_ping_and_help(console: FakeConsole) -> None:
    code, out, _ = run_cli(tcp_args(console) + ["ping"])
    assert code == 0 and "ping: pong\n[console] OK PING reply=pong\n" in out
    code, out, _ = run_cli(["--tcp-port", "1", "help"])  # local: no connection needed
    assert code == 0 and out.startswith("Cohesix command surface:\n")


def test_script_run_against_server(console: FakeConsole, tmp_path) -> None:
    path = tmp_path / "s.coh"
    path.write_text(
        "attach queen\nEXPECT OK\nEXPECT SUBSTR role=queen\n"
        "ls /nope   # deferred error\nEXPECT ERR\nEXPECT SUBSTR ENOENT\n"
        "cat /a/../b\nEXPECT ERR\nEXPECT SUBSTR detail=invalid-path\n"
        "echo hello > /log/queen.log\nEXPECT SUBSTR bytes=5\n"
        "detach\nEXPECT OK\nattach queen\nEXPECT OK\nping\nEXPECT SUBSTR pong\nquit\nbogus never runs\n"
    )
    code, out, err = run_cli(tcp_args(console) + ["--script", str(path)])
    assert (code, err) == (0, "")
    assert "attached session 1 as queen" in out and "attached session 2 as queen" in out
    assert "OK DETACH" in out and out.endswith("closing session\n")
    assert len(console.connections) == 2  # detach closed the first connection; attach opened another
    assert console.connections[1].lines[0] == "AUTH changeme"
    assert console.files["/log/queen.log"][-1] == "hello"


def test_script_failure_report_and_exit_1(console: FakeConsole, tmp_path) -> None:
    path = tmp_path / "s.coh"
    path.write_text("attach queen\nls /nope\nping\n")
    code, out, err = run_cli(tcp_args(console) + ["--script", str(path)])
    assert code == 1
    assert err == (
        "Error: script failure at line 2: ls /nope\n"
        "reason: command failed: invalid path\n"
        "last response: ERR LS reason=policy detail=invalid-path path=/nope error=ENOENT msg=invalid path\n"
    )


def test_script_with_role_attaches_first(console: FakeConsole, tmp_path) -> None:
    path = tmp_path / "s.coh"
    path.write_text("cat /proc/boot\nEXPECT OK\n")
    code, _, err = run_cli(tcp_args(console) + ["--role", "queen", "--script", str(path)])
    assert (code, err) == (0, "")
    code, _, err = run_cli(tcp_args(console) + ["--role", "worker", "--script", str(path)])
    assert code == 1 and "attach worker failed" in err


def test_script_connection_loss_exits_3_without_reconnect(console: FakeConsole, tmp_path) -> None:
    console.drops["TAIL"] = 1
    path = tmp_path / "s.coh"
    path.write_text("attach queen\ntail /log/queen.log\nEXPECT OK\n")
    code, out, err = run_cli(tcp_args(console) + ["--script", str(path)])
    assert code == 3
    assert err.startswith("Error: script failure at line 2: tail /log/queen.log\n"
                          "reason: command failed: connection lost: connection closed by peer\n")
    assert len(console.connections) == 1 and "[cohsh][tcp]" not in out


def test_syntax_error_reported_before_connecting(tmp_path) -> None:
    path = tmp_path / "s.coh"
    path.write_text("EXPECT OK\n")
    code, _, err = run_cli(["--tcp-port", "1", "--script", str(path)])
    assert code == 1 and "EXPECT requires a prior command response" in err


# -- interactive: reconnect, keepalive ----------------------------------------------------------

def test_repl_reconnects_mid_tail_and_reissues(console: FakeConsole) -> None:
    console.files["/log/queen.log"] = ["one", "two", "three"]
    console.drops["TAIL"] = 1
    code, out, err = run_cli(tcp_args(console), lines=["attach queen", "tail /log/queen.log", "quit"])
    assert (code, err) == (0, "")
    lines = out.replace("coh> ", "").splitlines()
    assert lines == [
        "Welcome to Cohesix. Type 'help' for commands.",
        "detached shell: run 'attach <role>' to connect",
        "[console] OK ATTACH role=queen",
        "attached session 1 as queen",
        "[cohsh][tcp] connection lost: connection closed by peer",
        "[cohsh][tcp] reconnect attempt #1 (delay=200ms)",
        "[console] OK TAIL path=/log/queen.log",
        "one",
        "two",
        "three",
        "[console] OK QUIT",
        "closing session",
    ]
    first, second = console.connections
    assert first.lines == ["AUTH changeme", "ATTACH queen", "TAIL /log/queen.log"]
    assert second.lines == ["AUTH changeme", "ATTACH queen", "TAIL /log/queen.log", "quit"]


def test_repl_does_not_reissue_mutating_commands(console: FakeConsole) -> None:
    console.drops["ECHO"] = 1
    code, out, _ = run_cli(tcp_args(console) + ["--role", "queen"],
                           lines=["echo hi > /log/queen.log", "ping", "quit"])
    assert code == 0
    assert "detached shell" not in out  # the start-up attach succeeded
    assert "Error: connection lost\n" in out
    assert "ping: pong" in out
    assert all(not l.startswith("ECHO") for l in console.connections[1].lines)
    assert "hi" not in console.files["/log/queen.log"]


def test_repl_gives_up_after_three_attempts_and_exits_3(console: FakeConsole) -> None:
    console.drops["TAIL"] = 1
    real_serve = console.serve_socket

    def refuse_after_first(sock):
        if console.connections:
            sock.close()  # every reconnect dies during AUTH
        else:
            real_serve(sock)

    console.serve_socket = refuse_after_first  # type: ignore[method-assign]
    code, out, err = run_cli(tcp_args(console), lines=["attach queen", "tail /log/queen.log", "quit"])
    assert code == 3
    for n, delay in ((1, 200), (2, 400), (3, 800)):
        assert f"[cohsh][tcp] reconnect attempt #{n} (delay={delay}ms)" in out
    assert "reconnect attempt #4" not in out
    assert err.startswith("Error: connection lost")


def test_lost_connection_found_before_sending_is_restored_first(console: FakeConsole) -> None:
    notes: list[str] = []
    client = client_for(console, reconnect=True, policy=FAST, notify=notes.append)
    client.connect()
    client.request("ATTACH queen")
    client.remember_attach("ATTACH queen")
    for sock in list(console._socks):
        sock.shutdown(socket.SHUT_RDWR)
    time.sleep(0.05)
    # not read-only, but it had not been sent yet: it goes out once, on the new connection
    assert client.request("ECHO /log/queen.log x").ack.startswith("OK ECHO")
    assert notes[0].startswith("[cohsh][tcp] connection lost")
    assert console.connections[1].lines == ["AUTH changeme", "ATTACH queen", "ECHO /log/queen.log x"]


def test_keepalive_pings_only_when_idle(console: FakeConsole) -> None:
    client = client_for(console, policy=TcpPolicy(keepalive_idle_s=0.05))
    client.connect()
    time.sleep(0.1)
    client.keepalive()
    assert console.connections[0].lines == ["AUTH changeme", "PING"]
    busy = client_for(console)  # default 15 s idle threshold
    busy.connect()
    busy.keepalive()
    assert console.connections[1].lines == ["AUTH changeme"]


def test_interrupted_command_without_reconnect_raises(console: FakeConsole) -> None:
    console.drops["PING"] = 1
    client = client_for(console)
    client.connect()
    with pytest.raises(TransportLost):
        client.request("PING", read_only=True)
    console.drops["ECHO"] = 1
    rc = client_for(console, reconnect=True, policy=FAST)
    rc.connect()
    with pytest.raises(CommandInterrupted):
        rc.request("ECHO /x y")


def test_repl_keepalive_thread_pings_silently_while_waiting_for_input(console: FakeConsole) -> None:
    from cohsh.repl import run_repl
    from cohsh.shell import Shell

    out = io.StringIO()
    client = client_for(console, reconnect=True, policy=TcpPolicy(keepalive_idle_s=0.05))
    client.connect()
    shell = Shell(client, out)
    answers = iter(["quit"])

    def slow_operator(prompt: str) -> str:
        # wait (bounded) until the keepalive thread has pinged, as a human idling at the prompt would
        for _ in range(500):
            if "PING" in console.connections[0].lines:
                break
            time.sleep(0.01)
        return next(answers)

    run_repl(shell, attached=False, read_line=slow_operator, keepalive_period_s=0.02)
    assert "PING" in console.connections[0].lines
    assert "pong" not in out.getvalue().lower()
