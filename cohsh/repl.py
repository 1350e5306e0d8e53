"""The interactive shell (SPEC §11.3): welcome line, ``coh> `` prompt, history, keepalive.

Why the input function is a parameter: tests drive the REPL with a list of lines (including the
reconnect-mid-``tail`` case) without a terminal; the real CLI passes ``input`` backed by readline.
"""
from __future__ import annotations

import os
import threading
from typing import Callable

from cohsh.shell import Shell

WELCOME = "Welcome to Cohesix. Type 'help' for commands."
DETACHED = "detached shell: run 'attach <role>' to connect"
PROMPT = "coh> "
HISTORY_FILE = os.path.join(os.path.expanduser("~"), ".cohsh_history")


def setup_history(path: str = HISTORY_FILE) -> Callable[[], None]:
    """Load readline history if readline is available; return a function that saves it."""
    try:
        import readline
    except ImportError:  # pragma: no cover - platform without readline
        return lambda: None
    try:
        readline.read_history_file(path)
    except OSError:
        pass
    readline.set_history_length(1000)

    def save() -> None:
        try:
            readline.write_history_file(path)
        except OSError:
            pass

    return save


class Keepalive:
    """Background thread that lets the client ping after idle periods (SPEC §11.6)."""

    def __init__(self, shell: Shell, period_s: float = 1.0) -> None:
        self._shell = shell
        self._period = period_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="cohsh-keepalive", daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self._period):
            self._shell.client.keepalive()

    def __enter__(self) -> "Keepalive":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def run_repl(
    shell: Shell,
    *,
    attached: bool,
    read_line: Callable[[str], str] = input,
    keepalive_period_s: float = 1.0,
) -> None:
    """Read-eval-print until ``quit`` or end of input.

    ``TransportLost`` (reconnects exhausted) propagates to the caller, which exits 3.
    """
    shell.say(WELCOME)
    if not attached:
        shell.say(DETACHED)
    with Keepalive(shell, keepalive_period_s):
        while True:
            try:
                line = read_line(PROMPT)
            except EOFError:
                shell.out.write("\n")
                shell.execute("quit")
                return
            except KeyboardInterrupt:
                shell.out.write("\n")
                continue
            text = line.strip()
            if not text:
                continue
            outcome = shell.execute(text)
            if outcome.ends:
                return
