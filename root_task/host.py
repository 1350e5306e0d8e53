"""Host run mode: ``cohesix-host`` and the in-process system behind ``cohsh --transport mock``.

The same root task, NineDoor and worker code as in the VM (SPEC §1.2): the serial console is this
process's stdin/stdout, the TCP console listens on 127.0.0.1, the 9P listener is always offered on
127.0.0.1, and workers are real child processes.
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from nine_door.vocabulary import CONSOLE_TCP_PORT, HOST_NINEP_PORT
from root_task.boot import Platform, RootTask
from root_task.config import RuntimeConfig
from root_task.tty import enter_console_mode, restore

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_IR = "configs/root_task.toml"


def runtime_config_from_ir(path: str) -> RuntimeConfig:
    """Compile an IR file exactly as coh-rtc would (SPEC §1.2), refusing features this build does not
    implement and resolving secret references; raises ``coh_rtc.IRError`` (``.lines``).

    Host-only: it imports the compiler, which the guest never carries (docs/internals.md)."""
    from coh_rtc import compile_runtime_ir

    compiled = compile_runtime_ir(path)
    return RuntimeConfig(
        resolved=compiled.resolved,
        schema=compiled.schema,
        manifest_sha256=compiled.manifest_sha256,
        ticket_secrets=dict(compiled.ticket_secrets),
        placeholder_secrets=compiled.placeholder_secrets,
    )


def _host_platform(console_port: int, ninep_port: int, serial_in: int | None, serial_out: int,
                   fork_server: bool = True, memstat_s: float = 0.0) -> Platform:
    return Platform(bind_addr="127.0.0.1", console_port=console_port, ninep_port=ninep_port,
                    ninep_always=True, serial_in=serial_in, serial_out=serial_out,
                    python=sys.executable, pythonpath=str(REPO_ROOT), fork_server=fork_server,
                    memstat_s=memstat_s)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="cohesix-host", description="Run Cohesix on the host (no QEMU).")
    parser.add_argument("--ir", default=DEFAULT_IR, help="IR file (default: %(default)s)")
    parser.add_argument("--console-port", type=int, default=CONSOLE_TCP_PORT)
    parser.add_argument("--9p-port", dest="ninep_port", type=int, default=HOST_NINEP_PORT)
    parser.add_argument("--no-serial", action="store_true", help="do not serve a console on stdin/stdout")
    parser.add_argument("--no-signals", action="store_true",
                        help="pass Ctrl-C, Ctrl-\\, Ctrl-Z and Ctrl-S/Q to the console as bytes, which it "
                             "drops (SPEC §10.2), as the guest does; Ctrl-C then no longer stops cohesix-host")
    parser.add_argument("--exit-after", type=float, default=None, metavar="S",
                        help="shut down cleanly after S seconds")
    parser.add_argument("--no-fork-server", action="store_true",
                        help="start each worker as a fresh interpreter instead of forking it from the fork "
                             "server (slower, more memory; the spawn benchmark's baseline, docs/workers.md)")
    parser.add_argument("--memstat", type=float, default=0.0, metavar="S",
                        help="print a memstat line (worker memory, docs/workers.md) every S seconds")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ir = Path(args.ir)
    if not ir.is_absolute() and not ir.exists() and (REPO_ROOT / ir).exists():
        ir = REPO_ROOT / ir
    from coh_rtc import IRError

    try:
        config = runtime_config_from_ir(str(ir))
    except IRError as exc:  # the compiler's diagnostics are the message; exit 1 as coh-rtc (SPEC §15.1)
        for line in exc.lines:
            print(line, file=sys.stderr)
        return 1
    serial_in = None if args.no_serial else sys.stdin.fileno()
    platform = _host_platform(args.console_port, args.ninep_port, serial_in, sys.stdout.fileno(),
                              fork_server=not args.no_fork_server, memstat_s=args.memstat)
    task = RootTask(config, platform, exit_after_s=args.exit_after)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: task.pump.call_soon_threadsafe(task.shutdown))
    saved = enter_console_mode(serial_in, keep_signals=not args.no_signals)   # default: Ctrl-C stops it
    try:
        return task.run()
    finally:
        restore(serial_in, saved)


@dataclass
class HostSystem:
    """A whole Cohesix system running on a background thread of this process."""

    task: RootTask
    thread: threading.Thread
    serial_sink: int

    @property
    def console_port(self) -> int:
        return self.task.tcp_console.port if self.task.tcp_console else 0

    @property
    def ninep_port(self) -> int:
        return self.task.ninep_listener.port if self.task.ninep_listener else 0

    def connect_console(self) -> socket.socket:
        """A socket speaking the TCP console protocol (AUTH first), backed by a socketpair."""
        ours, theirs = socket.socketpair()
        done = threading.Event()

        def adopt() -> None:
            self.task.tcp_console.adopt(theirs, ("127.0.0.1", 0))
            done.set()

        self.task.pump.call_soon_threadsafe(adopt)
        if not done.wait(5.0):
            raise RuntimeError("host system did not accept the console connection")
        return ours

    def stop(self) -> None:
        self.task.pump.call_soon_threadsafe(self.task.shutdown)
        self.thread.join(10.0)
        os.close(self.serial_sink)


def start_in_process(ir_path: str = DEFAULT_IR, serial_log: str | None = None) -> HostSystem:
    """Boot a host-mode system on a thread (ephemeral ports, no serial console) and wait until ready."""
    ir = Path(ir_path)
    if not ir.exists() and (REPO_ROOT / ir).exists():
        ir = REPO_ROOT / ir
    config = runtime_config_from_ir(str(ir))
    sink = os.open(serial_log or os.devnull, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    task = RootTask(config, _host_platform(0, 0, None, sink))
    ready = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        try:
            task.boot()
        except BaseException as exc:  # surfaced to the caller below
            failure.append(exc)
            ready.set()
            return
        ready.set()
        task.pump.run()

    thread = threading.Thread(target=run, name="cohesix-host", daemon=True)
    thread.start()
    ready.wait(60.0)
    if failure:
        raise failure[0]
    return HostSystem(task, thread, sink)


if __name__ == "__main__":
    sys.exit(main())
