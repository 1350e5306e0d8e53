"""Serial console adapter (SPEC §10.3, §2.3): bytes from a fd → line editor → session → bytes to a fd.

Constructor and lifecycle (used by ``root_task.boot``)::

    serial = SerialConsole(pump, ctx, in_fd, out_fd)   # ctx: ConsoleContext
    serial.start()                  # registers the reader (source "serial") and prints the prompt
    serial.print_unsolicited(line)  # audit lines (§10.8); re-prints the prompt when idle
    serial.stop()                   # unregisters; output already queued is flushed best-effort

Why the output is buffered: the serial fd may be a pipe (host mode) that can fill up; writes are
attempted immediately and, if the fd would block, the rest waits for a pump writer callback, so a
stalled reader on the other end never blocks the event loop. The buffer is bounded
(``MAX_OUTPUT_BYTES``); overflow drops the oldest pending output and counts it as deferred frames.

The serial console starts AUTHENTICATED, never closes, and ``quit`` only detaches (§10.3).
"""
from __future__ import annotations

import os

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing at boot (docs/build.md)
if TYPE_CHECKING:
    from typing import Any

from root_task.console.context import ConsoleContext
from root_task.console.line_editor import LineEditor, TooLong
from root_task.console.session import ConsoleSession

PROMPT = "cohesix> "
READ_CHUNK = 4096
MAX_OUTPUT_BYTES = 1 << 20


class SerialConsole:
    def __init__(self, pump: Any, ctx: ConsoleContext, in_fd: int, out_fd: int, *,
                 echo: bool | None = None) -> None:
        self.pump = pump
        self.ctx = ctx
        self.in_fd = in_fd
        self.out_fd = out_fd
        self.editor = LineEditor(ctx.config.limits.line, ctx.config.serial_echo if echo is None else echo)
        self.session = ConsoleSession(ctx, transport="serial", origin_key="serial", origin_label="serial",
                                      conn_id="serial", audit=self.print_unsolicited)
        self._out = bytearray()
        self._writer_registered = False
        self._busy = False                     # processing a line: unsolicited output waits
        self._deferred: list[str] = []
        self._started = False
        self._eof = False
        self._unpollable = False

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        if self._started:
            return
        self._started = True
        self._write(PROMPT.encode())
        try:
            self.pump.add_reader(self.in_fd, self._on_readable, source="serial")
        except PermissionError:
            # epoll refuses regular files and /dev/null (host mode with `< file`): they are always
            # readable, so read them from a zero-delay timer, one chunk per loop iteration, until EOF.
            self.pump.remove_reader(self.in_fd)   # drop the half-made registration
            self._unpollable = True
            self.pump.call_later(0, self._read_unpollable)

    def _read_unpollable(self) -> None:
        if not self._started or self._eof:
            return
        self._on_readable()
        if not self._eof:
            self.pump.call_later(0, self._read_unpollable)

    def stop(self) -> None:
        if self._started and not self._eof and not self._unpollable:
            self.pump.remove_reader(self.in_fd)
        self._started = False
        self.session.close()
        if self._writer_registered:
            self.pump.remove_writer(self.out_fd)
            self._writer_registered = False
        self._flush(blocking_ok=True)

    # -- unsolicited output --------------------------------------------------------------------
    def print_unsolicited(self, line: str) -> None:
        """Print an audit line; after it, the prompt (and any partial input) is shown again."""
        if self._busy:
            self._deferred.append(line)
            return
        self._write(b"\n" + line.encode() + b"\n" + PROMPT.encode() + self.editor.pending.encode())

    # -- input ---------------------------------------------------------------------------------
    def _on_readable(self) -> None:
        try:
            data = os.read(self.in_fd, READ_CHUNK)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._eof = True
            if not self._unpollable:
                self.pump.remove_reader(self.in_fd)
            return
        result = self.editor.feed(data)
        if result.echo:
            self._write(result.echo)
        for event in result.events:
            self._busy = True
            try:
                if isinstance(event, TooLong):
                    lines = self.session.handle_too_long().lines
                elif not event.text.strip(" "):
                    lines = ()                                  # §10.3: empty line → just the prompt
                else:
                    lines = self.session.handle_line(event.text).lines
            except Exception:  # noqa: BLE001 - the serial console must survive any verb failure
                self.session.detach()
                lines = ("ERR CONSOLE reason=cut detail=closed",)
            finally:
                self._busy = False
            out = "".join(line + "\n" for line in (*lines, *self._deferred)) + PROMPT
            self._deferred.clear()
            self._write(out.encode())

    # -- output --------------------------------------------------------------------------------
    def _write(self, data: bytes) -> None:
        self._out += data
        if len(self._out) > MAX_OUTPUT_BYTES:
            excess = len(self._out) - MAX_OUTPUT_BYTES
            del self._out[:excess]
            if self.pump is not None:
                self.pump.counters["tx"]["deferred_frames"] += 1
        self._flush()

    def _flush(self, blocking_ok: bool = False) -> None:
        while self._out:
            try:
                n = os.write(self.out_fd, self._out)
            except BlockingIOError:
                if blocking_ok:
                    return
                if not self._writer_registered and self.pump is not None:
                    self.pump.add_writer(self.out_fd, self._on_writable)
                    self._writer_registered = True
                return
            except OSError:
                self._out.clear()
                return
            del self._out[:n]
        if self._writer_registered:
            self.pump.remove_writer(self.out_fd)
            self._writer_registered = False

    def _on_writable(self) -> None:
        self._flush()
