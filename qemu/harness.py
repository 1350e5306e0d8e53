"""Boot the guest under pexpect and talk to its serial console (labgrid's QEMU driver, in small).

Boot with a timeout, wait for explicit markers, capture the whole serial log to a file, and always
shut down: a clean power-off if the guest was asked for one, else QMP ``quit``, else the monitor's
Ctrl-A x, else kill. Host ports are bound by QEMU itself (port 0) and read back over QMP, so two
guests, or a guest and any other program, never race for a port (qemu/qmp.py says why).
"""
from __future__ import annotations

import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pexpect

from qemu.launch import DEFAULT_INITRD, DEFAULT_KERNEL, GuestPorts, NicTap, qemu_command
from qemu.qmp import Qmp, QmpError

READY = "Cohesix console ready"
PROMPT = "cohesix> "


@dataclass
class QemuGuest:
    """One QEMU run. ``console_port``/``ninep_port``: host ports, ``None`` or 0 for any free one (the
    bound ports are set on the object once :meth:`start` returns). ``pcap``: capture the guest NIC."""

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
    pcap: Path | str | None = None         # guest NIC capture (QEMU filter-dump), guest-side ports
    nic_tap: bool = False                  # mirror/inject sockets on the guest NIC's RX path (.tap)
    child: pexpect.spawn | None = field(default=None, init=False)
    boot_seconds: float | None = field(default=None, init=False)
    qmp: Qmp | None = field(default=None, init=False)
    _rundir: str | None = field(default=None, init=False, repr=False)

    @property
    def qmp_socket(self) -> Path | None:
        return Path(self._rundir) / "qmp.sock" if self._rundir else None

    @property
    def tap(self) -> NicTap | None:
        """The NIC tap's socket paths (qemu/faults connects to them), when ``nic_tap`` is set."""
        if not self.nic_tap or not self._rundir:
            return None
        return NicTap(mirror=Path(self._rundir) / "tap-mirror.sock", inject=Path(self._rundir) / "tap-inject.sock")

    def command(self) -> list[str]:
        return qemu_command(self.kernel, self.initrd, self.console_port or 0, self.ninep_port or 0, self.net,
                            self.exit_after, self.qemu_bin, self.guest_ports,
                            extra_append=self.extra_append, qmp_socket=self.qmp_socket,
                            pcap=self.pcap, nic_tap=self.tap) + list(self.extra_args)

    def start(self, wait_ready: bool = True) -> "QemuGuest":
        for label, path in (("kernel", self.kernel), ("initrd", self.initrd)):
            if not Path(path).is_file():
                raise FileNotFoundError(f"{label} not found: {path} (run `doit build`)")
        self.guest_ports = self.guest_ports or GuestPorts.from_manifest()
        self._rundir = tempfile.mkdtemp(prefix="cohesix-qemu-")  # short: unix socket paths ≤ 107 bytes
        if self.pcap is not None:
            Path(self.pcap).parent.mkdir(parents=True, exist_ok=True)
        cmd = self.command()
        started = time.monotonic()
        self.child = pexpect.spawn(cmd[0], cmd[1:], encoding="utf-8", codec_errors="replace",
                                   timeout=self.boot_timeout, echo=False)
        self.child.delaybeforesend = None  # 4–6 ms round trips instead of 50 ms (DESIGN §3)
        if self.net == "user":
            self._read_ports()
        if self.log_path is not None:
            Path(self.log_path).parent.mkdir(parents=True, exist_ok=True)
            self._log = open(self.log_path, "w", encoding="utf-8")
            self.child.logfile_read = self._log
        if wait_ready:
            self.expect_exact(READY, timeout=self.boot_timeout)
            self.boot_seconds = time.monotonic() - started
            self.expect_exact(PROMPT, timeout=10)
        return self

    def _read_ports(self) -> None:
        """Connect QMP and learn which host ports QEMU bound for the guest's console and 9P ports."""
        assert self.child is not None and self.guest_ports is not None
        try:
            self.qmp = Qmp.connect(self.qmp_socket, timeout=10, alive=self.child.isalive)
            forwards = self.qmp.host_forwards()
        except QmpError as exc:
            raise RuntimeError(f"QEMU did not start ({exc}); serial so far: {self._early_output()!r}") from None
        self.console_port = forwards[self.guest_ports.console]
        if self.guest_ports.ninep_enabled:
            self.ninep_port = forwards[self.guest_ports.ninep]

    def _early_output(self) -> str:
        try:
            return self.child.read_nonblocking(4096, timeout=0.5)
        except (pexpect.TIMEOUT, pexpect.EOF, OSError):
            return ""

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
        if getattr(self, "_log", None) is not None:
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
            self._cleanup()
            return None
        try:
            if self.child.isalive() and self.qmp is not None:
                self.qmp.quit()
                self._wait_eof(5)
            if self.child.isalive():
                self.child.send("\x01x")  # mon:stdio: Ctrl-A x terminates QEMU
                self._wait_eof(5)
            if self.child.isalive():
                self.child.terminate(force=True)
            self.child.close()
            return self.child.exitstatus
        finally:
            self._cleanup()

    def _wait_eof(self, timeout: float) -> None:
        try:
            self.child.expect(pexpect.EOF, timeout=timeout)
        except (pexpect.TIMEOUT, pexpect.EOF, OSError):
            pass

    def _cleanup(self) -> None:
        if self.qmp is not None:
            self.qmp.close()
            self.qmp = None
        if self._rundir is not None:
            shutil.rmtree(self._rundir, ignore_errors=True)
            self._rundir = None
        if getattr(self, "_log", None) is not None:
            self._log.close()
            self._log = None

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
