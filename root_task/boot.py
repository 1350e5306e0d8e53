"""The root task: boot transcript, event pump wiring and shutdown (SPEC §2.3–§2.5).

The same class runs as PID 1 in the VM and as ``cohesix-host`` on the host; only the ``Platform``
differs (see ``root_task.host`` and ``root_task.__main__``), so the two run modes cannot drift.
"""
from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from nine_door.clock import SystemClock
from root_task.config import RuntimeConfig
from root_task.pump import EventPump

BANNER = "Cohesix boot: root-task online"
READY = "Cohesix console ready"
PROMPT = "cohesix> "
SHUTDOWN = "root-task shutdown"


@dataclass
class Platform:
    """What differs between the VM and the host run mode."""

    bind_addr: str                      # "0.0.0.0" in the VM, "127.0.0.1" in host mode
    console_port: int
    ninep_port: int
    ninep_always: bool                  # host mode always offers the 9P listener (SPEC §1.2)
    serial_in: int | None               # fd; None = no serial console (--no-serial)
    serial_out: int
    python: str = sys.executable
    pythonpath: str = ""
    isolate_workers: bool = False
    fork_server: bool = True             # workers forked by root_task/fork_server.py (else one interpreter each)
    net_info: Callable[[], dict] | None = None   # link/counter snapshot for /proc/boot's net line
    power_off: Callable[[], None] = lambda: None
    v9fs_selftest: bool = False          # boot parameter cohesix_v9fs_selftest=1 (interop test only)
    memstat_s: float = 0.0               # boot parameter cohesix_memstat=<s>: memstat lines (memstat.py)


@dataclass
class RootTask:
    config: RuntimeConfig
    platform: Platform
    exit_after_s: float | None = None
    clock: SystemClock = field(default_factory=SystemClock)

    def __post_init__(self) -> None:
        self.pump = EventPump()
        self.boot_lines: list[str] = []
        self.ticks = 0
        self._link_up: bool | None = None        # last link state seen by _watch_link
        self._pending_ticks: list[int] = []
        self._pong_seen = False
        self._boot_done = False
        self._shutting_down = False
        self.door = None
        self.workers = None
        self._component_pid: int | None = None
        self.serial_console = None
        self.tcp_console = None
        self.ninep_listener = None
        self.exit_status = 0

    # -- serial output ---------------------------------------------------------------------------
    def emit(self, line: str, record: bool = False) -> None:
        """Print one transcript line on the serial console (and keep it for /proc/boot if asked)."""
        if record:
            self.boot_lines.append(line)
        _write_all(self.platform.serial_out, (line + "\n").encode())

    def audit(self, line: str) -> None:
        """Audit lines go to the serial console only (SPEC §10.8)."""
        if self.serial_console is not None:
            self.serial_console.print_unsolicited(line)
        else:
            self.emit(line)

    # -- boot --------------------------------------------------------------------------------------
    def boot(self) -> None:
        """Run the M1 transcript, then bring up NineDoor, consoles and listeners."""
        self.emit(BANNER, record=True)
        self.emit(f"manifest schema={self.config.schema} sha256={self.config.manifest_sha256}")
        self.emit("event-pump: init timer")
        self.pump.call_every(self.config.tick_s, self._on_tick)
        self.emit("event-pump: init ipc")
        self._start_user_component()
        self.emit("spawned user-component endpoint 1", record=True)
        deadline = time.monotonic() + 30.0
        while not self._boot_done:
            if time.monotonic() > deadline:
                raise RuntimeError("M1 boot exchange did not complete (no PONG within 30 s)")
            self.pump.run_once(max_wait=0.5)
        self._start_services()

    def _start_user_component(self) -> None:
        from workers.user_component import run_forked

        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pid = os.fork()
        if pid == 0:  # child
            ours.close()
            run_forked(theirs)
        theirs.close()
        self._component_pid = pid
        self._component = ours
        ours.setblocking(False)
        self.pump.add_reader(ours, self._on_component, source="ipc")

    def _on_tick(self) -> None:
        self.ticks += 1
        if not self._boot_done:
            if self.ticks == 1:
                self.emit("tick 1", record=True)
                self.emit("PING 1", record=True)
                self._component.send(b"PING 1")
            elif self.ticks <= 3:
                # Printed in order after PONG 1 (SPEC §2.3 fixes tick 1, PING, PONG, tick 2, tick 3).
                self._pending_ticks.append(self.ticks)
                self._flush_boot_ticks()
            return
        if self.door is not None:
            self.door.on_tick()
        if self.ticks % 20 == 0:
            self._watch_link()
            if self.workers is not None:
                self.workers.reap()
                self._reap_component()
                _reap_orphans()

    def _watch_link(self) -> None:
        """Log each change of the NIC's link state (``net link_up=<bool>``, docs/spec-decisions.md), seen
        at most 20 ticks late; /proc/boot's ``net`` line reads it live whenever it is opened."""
        probe = self.platform.net_info
        if probe is None or self.door is None or not self.door.config.any_tcp_listener:
            return
        try:
            up = bool(probe().get("link_up", False))
        except Exception:  # noqa: BLE001 - a failing probe must not stop the tick
            return
        if self._link_up is not None and up != self._link_up:
            self.door.log_append(f"net link_up={'true' if up else 'false'}")
        self._link_up = up

    def _reap_component(self) -> None:
        """Collect the M1 component once it has exited (it does when its channel closes)."""
        if self._component_pid is None:
            return
        try:
            pid, _ = os.waitpid(self._component_pid, os.WNOHANG)
        except ChildProcessError:  # already collected (PID 1 reaps orphans too)
            pid = self._component_pid
        if pid:
            self._component_pid = None

    def _on_component(self) -> None:
        try:
            message = self._component.recv(256)
        except BlockingIOError:
            return
        if message == b"PONG 1" and not self._pong_seen:
            self._pong_seen = True
            self.emit("PONG 1", record=True)
            self._flush_boot_ticks()
        elif not message:
            self.pump.remove_reader(self._component)

    def _flush_boot_ticks(self) -> None:
        if not self._pong_seen:
            return
        while self._pending_ticks:
            self.emit(f"tick {self._pending_ticks.pop(0)}", record=True)
        if self.ticks >= 3 and len(self.boot_lines) >= 7:
            self._boot_done = True
            # The exchange happens once per boot: close the channel, the component exits.
            self.pump.remove_reader(self._component)
            self._component.close()

    def _start_services(self) -> None:
        from nine_door.config import NineDoorConfig
        from nine_door.server import NineDoor
        from root_task.console.throttle import AttachThrottle
        from root_task.spawner import WorkerProcesses, worker_settings

        self.emit("event-pump: init ninedoor")
        self.throttle = AttachThrottle()
        door_config = NineDoorConfig.from_resolved(
            self.config.resolved, self.config.ticket_secrets, self.config.manifest_sha256)
        self.workers = WorkerProcesses(
            self.pump, self._open_worker_session, python=self.platform.python,
            pythonpath=self.platform.pythonpath, isolate=self.platform.isolate_workers,
            use_fork_server=self.platform.fork_server and WorkerProcesses.use_fork_server,
            settings=worker_settings(self.config.resolved))
        self.door = NineDoor(door_config, list(self.boot_lines), self.workers, self.clock,
                             throttle=self.throttle, net_info=self.platform.net_info)
        warning = self.config.placeholder_warning
        if warning is not None:  # one line, on the serial console and in /log/queen.log (SPEC §14.2)
            self.emit(warning)
            self.door.log_append(warning)
        self.emit("event-pump: init serial")
        self._start_consoles()
        if self.exit_after_s is not None:
            self.pump.call_later(self.exit_after_s, self.shutdown)
        if self.platform.memstat_s > 0:
            self.pump.call_every(self.platform.memstat_s, self._memstat)
        self.emit(READY)
        if self.platform.v9fs_selftest and self.ninep_listener is not None:
            self._start_v9fs_selftest()
        if self.serial_console is not None:
            self.serial_console.start()
        else:
            _write_all(self.platform.serial_out, PROMPT.encode())

    def _start_consoles(self) -> None:
        from root_task.console.context import ConsoleContext
        from root_task.console.serial import SerialConsole
        from root_task.console.tcp import TcpConsoleServer

        self.console_ctx = ConsoleContext.for_root_task(self)
        if self.platform.serial_in is not None and self.config.console["serial"]:
            self.serial_console = SerialConsole(self.pump, self.console_ctx, self.platform.serial_in,
                                                self.platform.serial_out)
        ninep = self.config.ninep_tcp_enabled or self.platform.ninep_always
        if self.config.console_tcp_enabled or ninep:
            self.emit("event-pump: init net")
        if self.config.console_tcp_enabled:
            self.tcp_console = TcpConsoleServer(self.pump, self.console_ctx, self.platform.bind_addr,
                                                self.platform.console_port, self.audit)
            self.tcp_console.start()
            self.emit(f"[net-console] TCP console listening on {self.platform.bind_addr}:{self.tcp_console.port}")
        if ninep:
            from nine_door.tcp_listener import NinePListener

            self.ninep_listener = NinePListener(self.pump, self.door, self.platform.bind_addr,
                                                self.platform.ninep_port, self.audit)
            self.ninep_listener.start()
            self.emit(f"[ninedoor] 9P listening on {self.platform.bind_addr}:{self.ninep_listener.port}")

    def _start_v9fs_selftest(self) -> None:
        from nine_door.tickets import mint
        from root_task import v9fs_selftest

        ticket = mint(self.config.ticket_secrets["queen"], "queen")
        # Run after the prompt, from the loop, so the listener is already being served.
        self.pump.call_later(0.1, lambda: v9fs_selftest.start(self.ninep_listener.port, ticket))

    def _memstat(self) -> None:
        from root_task import memstat

        self.audit(memstat.line(list(self.workers.pids().values()), self.workers.fork_server_pid))

    def _open_worker_session(self, role: str, worker_id: str):
        from nine_door.server import ChannelBinding

        return self.door.open_session(ChannelBinding(kind="channel", origin="channel", role=role,
                                                     worker_id=worker_id))

    # -- run / shutdown ------------------------------------------------------------------------------
    def run(self) -> int:
        self.boot()
        self.pump.run()
        return self.exit_status

    def shutdown(self) -> None:
        """Close every session, stop workers, print the shutdown marker, power off (SPEC §2.5)."""
        if self._shutting_down:
            return
        self._shutting_down = True
        if self.tcp_console is not None:
            self.tcp_console.close_all(reason="shutdown")
        if self.ninep_listener is not None:
            self.ninep_listener.close_all(reason="shutdown")
        if self.workers is not None:
            self.workers.stop_all()
        if self.serial_console is not None:
            self.serial_console.stop()
        _write_all(self.platform.serial_out, f"\n{SHUTDOWN}\n".encode())
        self.pump.stop()
        self.platform.power_off()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            import select

            select.select([], [fd], [], 1.0)
            continue
        view = view[n:]


def _reap_orphans() -> None:
    """As PID 1 we inherit orphans; collect them so they do not linger as zombies."""
    if os.getpid() != 1:
        return
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
