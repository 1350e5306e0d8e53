"""Terminal mode for the serial console: the console edits and echoes lines itself (SPEC §10.2–§10.3).

cbreak without echo: the kernel's line editing (ICANON) and echo are switched off so the console's own
line discipline applies, byte by byte, in both run modes. ICRNL stays on (a terminal's Enter sends
``\\r``, which becomes the ``\\n`` that ends a line) and so does output post-processing (``\\n`` is shown
as CR LF on a terminal; the console itself never writes ``\\r``).
"""
from __future__ import annotations

import os
import termios
import tty


def enter_console_mode(fd: int | None, keep_signals: bool = False):
    """Switch ``fd`` to console mode if it is a terminal; returns what :func:`restore` needs.

    By default every control byte reaches the console, which drops it (SPEC §10.2): ISIG is cleared, so
    Ctrl-C, Ctrl-\\ and Ctrl-Z are not turned into signals that flush unread input (the guest lost "ab"
    of ``ab^Ccd``), and IXON, so Ctrl-S/Ctrl-Q do not stop output. ``keep_signals`` keeps both: the host
    run mode runs in the user's terminal, where Ctrl-C must still stop ``cohesix-host``.
    """
    if fd is None or not os.isatty(fd):
        return None
    saved = termios.tcgetattr(fd)
    tty.setcbreak(fd)
    attrs = termios.tcgetattr(fd)
    attrs[3] &= ~(termios.ECHO | termios.ECHONL)
    if not keep_signals:
        attrs[3] &= ~termios.ISIG
        attrs[0] &= ~(termios.IXON | termios.IXOFF)
    termios.tcsetattr(fd, termios.TCSADRAIN, attrs)
    return saved


def restore(fd: int | None, saved) -> None:
    if saved is not None and fd is not None:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
