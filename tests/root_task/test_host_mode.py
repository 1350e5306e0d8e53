"""Host run mode (SPEC §1.2): the same transcript and console as the VM, from `cohesix-host`."""
from __future__ import annotations

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
    assert f"manifest schema=1.0 sha256={compiled.manifest_sha256}" in serial
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
