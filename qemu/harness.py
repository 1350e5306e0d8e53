"""Boot the guest under pexpect and talk to its serial console (labgrid's QEMU driver, in small).

Boot with a timeout, wait for explicit markers, capture the whole serial log to a file, and always
shut down: a clean power-off if the guest was asked for one, else the monitor's quit, else kill.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import pexpect

from qemu.launch import DEFAULT_INITRD, DEFAULT_KERNEL, GuestPorts, free_port, qemu_command

READY = "Cohesix console ready"
PROMPT = "cohesix> "


@dataclass
class QemuGuest:
    kernel: Path | str = DEFAULT_KERNEL
    initrd: Path | str = DEFAULT_INITRD
    console_port: int | None = None
    ninep_port: int | None = None
    net: str = "user"
    exit_after: float | None = None
    qemu_bin: str | None = None
    log_path: Path | str | None = None
    boot_timeout: float = 90.0
    extra_append: str = ""
    guest_ports: GuestPorts | None = None
    extra_args: tuple[str, ...] = ()       # appended verbatim to the QEMU command line
    child: pexpect.spawn | None = field(default=None, init=False)
    boot_seconds: float | None = field(default=None, init=False)

    def command(self) -> list[str]:
        return qemu_command(self.kernel, self.initrd, self.console_port, self.ninep_port, self.net,
                            self.exit_after, self.qemu_bin, self.guest_ports,
                            extra_append=self.extra_append) + list(self.extra_args)

    def start(self, wait_ready: bool = True) -> "QemuGuest":
        for label, path in (("kernel", self.kernel), ("initrd", self.initrd)):
            if not Path(path).is_file():
                raise FileNotFoundError(f"{label} not found: {path} (run `doit build`)")
        self.console_port = self.console_port or free_port()
        self.ninep_port = self.ninep_port or free_port()
        cmd = self.command()
        started = time.monotonic()
        self.child = pexpect.spawn(cmd[0], cmd[1:], encoding="utf-8", codec_errors="replace",
                                   timeout=self.boot_timeout, echo=False)
        self.child.delaybeforesend = None  # 4–6 ms round trips instead of 50 ms (DESIGN §3)
        if self.log_path is not None:
            Path(self.log_path).parent.mkdir(parents=True, exist_ok=True)
            self._log = open(self.log_path, "w", encoding="utf-8")
            self.child.logfile_read = self._log
        if wait_ready:
            self.expect_exact(READY, timeout=self.boot_timeout)
            self.boot_seconds = time.monotonic() - started
            self.expect_exact(PROMPT, timeout=10)
        return self

    # -- serial I/O -----------------------------------------------------------------------------
    def sendline(self, line: str) -> None:
        assert self.child is not None
        self.child.send(line + "\n")

    def expect_exact(self, text, timeout: float = 10.0) -> int:
        assert self.child is not None
        return self.child.expect_exact(text, timeout=timeout)

    def expect(self, pattern, timeout: float = 10.0) -> int:
        assert self.child is not None
        return self.child.expect(pattern, timeout=timeout)

    def command_lines(self, line: str, until: str = PROMPT, timeout: float = 10.0) -> list[str]:
        """Send a console line and return the output lines up to the next prompt."""
        self.sendline(line)
        self.expect_exact(until, timeout=timeout)
        text = self.child.before.replace("\r", "")
        lines = [ln for ln in text.split("\n") if ln.strip()]
        if lines and lines[0].strip() == line.strip():
            lines = lines[1:]  # the console's echo of our input
        return lines

    @property
    def serial_text(self) -> str:
        if self.log_path is None:
            return ""
        self._log.flush()
        return Path(self.log_path).read_text(encoding="utf-8", errors="replace")

    # -- shutdown ---------------------------------------------------------------------------------
    def wait_exit(self, timeout: float = 30.0) -> int | None:
        """Wait for QEMU to exit on its own (e.g. after cohesix_exit_after); returns its status."""
        assert self.child is not None
        self.child.expect(pexpect.EOF, timeout=timeout)
        self.child.close()
        return self.child.exitstatus

    def stop(self) -> int | None:
        if self.child is None:
            return None
        try:
            if self.child.isalive():
                self.child.send("\x01x")  # mon:stdio: Ctrl-A x terminates QEMU
                try:
                    self.child.expect(pexpect.EOF, timeout=5)
                except (pexpect.TIMEOUT, pexpect.EOF):
                    pass
            if self.child.isalive():
                self.child.terminate(force=True)
            self.child.close()
            return self.child.exitstatus
        finally:
            if getattr(self, "_log", None) is not None:
                self._log.close()

    def __enter__(self) -> "QemuGuest":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def transcript_markers(serial: str) -> list[str]:
    """The SPEC §2.3 marker lines of the boot transcript, in order, up to the console-ready line.

    Scanning stops there: console output after the prompt (e.g. ``bi``) legitimately repeats lines.
    """
    wanted = re.compile(r"^(Cohesix boot: root-task online|manifest schema=\S+ sha256=[0-9a-f]{64}|"
                        r"event-pump: init \w+|spawned user-component endpoint 1|tick \d+|PING 1|PONG 1|"
                        r"\[net-console\] .*|\[ninedoor\] .*|Cohesix console ready)$")
    lines = serial.replace("\r", "").split("\n")
    markers = []
    for line in lines:
        if wanted.match(line):
            markers.append(line)
            if line == READY:
                break
    return markers
