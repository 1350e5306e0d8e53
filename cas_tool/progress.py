"""A one-line progress bar for push and fetch, drawn on stderr only when stderr is a terminal.

Why so small: scripts and tests read cas-tool's stdout (one summary line) and its exit code; the bar
is for a person watching a slow link, so it never appears in a pipe or a log file.
"""
from __future__ import annotations

import sys
import time

WIDTH = 30


class Progress:
    def __init__(self, label: str, total: int, stream=None, min_interval_s: float = 0.1) -> None:
        self.label = label
        self.total = max(total, 1)
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.done = 0
        self.min_interval_s = min_interval_s
        self._last = 0.0

    def advance(self, count: int) -> None:
        self.done += count
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last >= self.min_interval_s or self.done >= self.total:
            self._last = now
            self._draw()

    def _draw(self) -> None:
        fraction = min(self.done / self.total, 1.0)
        filled = int(WIDTH * fraction)
        self.stream.write(f"\r{self.label} [{'#' * filled}{'.' * (WIDTH - filled)}] {fraction * 100:5.1f}% "
                          f"{self.done // 1024}/{self.total // 1024} KiB")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self._draw()
            self.stream.write("\n")
            self.stream.flush()
