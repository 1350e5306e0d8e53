"""Host run mode (SPEC §1.2): the same transcript and console as the VM, from `cohesix-host`."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pexpect

from qemu.launch import free_port
from tests.transcript import assert_transcript

REPO = Path(__file__).resolve().parents[2]


def spawn_host(tmp_path: Path, *extra: str) -> tuple[pexpect.spawn, int, int]:
    console, ninep = free_port(), free_port()
    child = pexpect.spawn(sys.executable, ["-m", "root_task.host", "--console-port", str(console),
                                           "--9p-port", str(ninep), *extra],
                          cwd=str(REPO), encoding="utf-8", timeout=30, echo=False)
    child.delaybeforesend = None
    child.logfile_read = open(tmp_path / "serial.log", "w")
    return child, console, ninep


def test_host_mode_transcript_console_and_clean_shutdown(tmp_path):
    child, console, ninep = spawn_host(tmp_path, "--exit-after", "60")
    try:
        child.expect_exact("Cohesix console ready")
        child.expect_exact("cohesix> ")
        child.send("ping\n")
        child.expect_exact("PONG")
        child.expect_exact("OK PING reply=pong")
        child.send("bi\n")
        child.expect_exact("OK BOOTINFO")
        child.expect_exact("END")
        child.send("quit\n")
        child.expect_exact("OK QUIT")
        child.kill(15)  # SIGTERM: clean shutdown (SPEC §2.5)
        child.expect_exact("root-task shutdown")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0
    serial = (tmp_path / "serial.log").read_text()
    assert_transcript(serial, "127.0.0.1", console, ninep)
    # /proc/boot (through `bi`) starts with the recorded transcript lines.
    assert "OK BOOTINFO\nCohesix boot: root-task online\nspawned user-component endpoint 1" in serial.replace("\r", "")


def test_host_mode_exit_after_shuts_down_with_status_zero(tmp_path):
    child, _, _ = spawn_host(tmp_path, "--exit-after", "1", "--no-serial")
    child.expect_exact("root-task shutdown", timeout=30)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_host_mode_runs_with_the_values_of_its_ir(tmp_path):
    """`cohesix-host --ir` compiles that IR exactly as coh-rtc would and runs with its values (issue 3)."""
    from coh_rtc import compile_ir

    text = (REPO / "configs" / "root_task.toml").read_text().replace("tick_ms = 5", "tick_ms = 9")
    ir = tmp_path / "root_task.toml"
    ir.write_text(text)
    compiled = compile_ir(ir)
    assert compiled.resolved["system"]["tick_ms"] == 9
    child, console, ninep = spawn_host(tmp_path, "--ir", str(ir), "--exit-after", "1", "--no-serial")
    child.expect(pexpect.EOF, timeout=30)
    child.close()
    serial = (tmp_path / "serial.log").read_text()
    assert f"manifest schema={compiled.schema} sha256={compiled.manifest_sha256}" in serial
    assert compiled.manifest_sha256 != compile_ir(REPO / "configs" / "root_task.toml").manifest_sha256
    assert_transcript(serial, "127.0.0.1", console, ninep)


def test_host_mode_refuses_an_invalid_ir_with_the_compiler_diagnostic(tmp_path):
    ir = tmp_path / "root_task.toml"
    ir.write_text((REPO / "configs" / "root_task.toml").read_text().replace("msize = 8192", "msize = 9000"))
    child, _, _ = spawn_host(tmp_path, "--ir", str(ir), "--no-serial")
    child.expect(pexpect.EOF, timeout=30)
    child.close()
    assert child.exitstatus == 1
    assert "secure9p.msize: 9000 exceeds maximum 8192" in (tmp_path / "serial.log").read_text()


def test_host_mode_refuses_an_unimplemented_feature_naming_its_line(tmp_path, monkeypatch, capsys):
    """Issue 12: an IR value this build does not honour is refused, not booted and ignored. Every value
    is honoured today, so the refusal path runs in-process with a row put back in NOT_IMPLEMENTED."""
    from nine_door import features
    from root_task.host import main

    monkeypatch.setitem(features.NOT_IMPLEMENTED, "gpu.backend", ("none",))
    ir = tmp_path / "root_task.toml"
    text = (REPO / "configs" / "root_task.toml").read_text()
    ir.write_text(re.sub(r'^backend = "\w+"', 'backend = "mock"', text, flags=re.M))
    line = next(i for i, t in enumerate(ir.read_text().splitlines(), 1) if t.startswith('backend = "mock"'))
    assert main(["--ir", str(ir), "--no-serial"]) == 1
    assert f"{ir}:{line}: gpu.backend: not implemented by this build" in capsys.readouterr().err


def test_placeholder_secrets_print_one_warning_line_on_serial_and_in_queen_log(tmp_path):
    from root_task.host import start_in_process

    log = tmp_path / "serial.log"
    system = start_in_process(str(REPO / "configs" / "root_task.toml"), serial_log=str(log))
    try:
        queen_log = system.task.door.log_lines()
    finally:
        system.stop()
    serial = log.read_text().splitlines()
    warnings = [line for line in serial if line.startswith("warning: placeholder secrets")]
    assert warnings == ["warning: placeholder secrets in use (console.auth_token, tickets[queen].secret, "
                        "tickets[worker-gpu].secret, tickets[worker-heartbeat].secret): set them as "
                        "env:NAME or file:PATH references in the IR"]
    assert sum(warnings[0] in line for line in queen_log) == 1


def test_referenced_secrets_boot_without_a_warning_and_authenticate_by_hash(tmp_path, monkeypatch):
    from coh_rtc.testing import write_ir
    from root_task.host import start_in_process

    monkeypatch.setenv("COHESIX_TEST_TOKEN", "s3cr3t-console-token")
    (tmp_path / "queen.key").write_text("queen-mac-key\n")
    ir = write_ir(tmp_path, {"console.auth_token": "env:COHESIX_TEST_TOKEN",
                             "tickets": [{"role": "queen", "secret": "file:queen.key"},
                                         {"role": "worker-heartbeat", "secret": "hb-mac-key"},
                                         {"role": "worker-gpu", "secret": "gpu-mac-key"}]})
    log = tmp_path / "serial.log"
    system = start_in_process(str(ir), serial_log=str(log))
    try:
        assert system.task.config.ticket_secrets["queen"] == "queen-mac-key"
        assert "s3cr3t-console-token" not in repr(system.task.config.resolved)
        sock = system.connect_console()
        from root_task.console.framing import FrameDecoder, encode_frame

        def reply(text: str) -> str:
            sock.sendall(encode_frame(text))
            decoder = FrameDecoder()
            while True:
                events = decoder.feed(sock.recv(4096))
                if events:
                    return events[0].payload.decode()

        assert reply("AUTH s3cr3t-console-token").startswith("OK AUTH")
        sock.close()
        bad = system.connect_console()
        bad.sendall(encode_frame("AUTH changeme"))
        decoder = FrameDecoder()
        events = []
        while not events:
            events = decoder.feed(bad.recv(4096))
        assert "invalid-token" in events[0].payload.decode()
        bad.close()
    finally:
        system.stop()
    assert not any(line.startswith("warning:") for line in log.read_text().splitlines())


def test_the_running_pump_ticks_with_the_irs_tick_ms(tmp_path):
    """Issue 18: observe ``system.tick_ms`` in the running system, not only in the manifest hash: the
    pump's periodic timer that drives ``RootTask._on_tick`` has the IR's period, and the tick count
    advances no faster than that period allows (deadlines advance by whole periods, root_task/pump.py)."""
    import time

    from coh_rtc.testing import write_ir
    from root_task.host import start_in_process

    ir = write_ir(tmp_path, {"system.tick_ms": 9})
    system = start_in_process(str(ir))
    try:
        task = system.task
        periods = [t.period for t in list(task.pump._timers)
                   if t.period is not None and not t.cancelled and t.callback == task._on_tick]
        assert periods == [0.009]
        first, started = task.ticks, time.monotonic()
        time.sleep(0.3)
        ticks, elapsed = task.ticks - first, time.monotonic() - started
    finally:
        system.stop()
    assert 0 < ticks <= elapsed / 0.009 + 2, (ticks, elapsed)


def test_ctrl_c_stops_host_mode_on_a_terminal_and_is_a_dropped_byte_with_no_signals(tmp_path):
    """Host mode keeps the terminal's signals by default (Ctrl-C stops cohesix-host cleanly); with
    --no-signals the console gets 0x03 as a byte and drops it (SPEC §10.2), as the guest's does."""
    host, _, _ = spawn_host(tmp_path)
    host.expect_exact("cohesix> ", timeout=60)
    host.send("pi\x03")
    host.expect_exact("root-task shutdown", timeout=20)
    host.expect(pexpect.EOF, timeout=20)
    host.close()
    assert host.exitstatus == 0
    quiet, _, _ = spawn_host(tmp_path, "--no-signals")
    try:
        quiet.expect_exact("cohesix> ", timeout=60)
        quiet.send("pi\x03ng\n")
        quiet.expect_exact("OK PING reply=pong", timeout=20)
    finally:
        quiet.terminate(force=True)
        quiet.close()
