"""Diagnostics of the IR compiler (SPEC §14.3).

Every problem found in an IR is one :class:`Diagnostic`; the compiler collects all of them before
deciding anything, so a user fixes a file in one round trip instead of one error at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

FILE_LEVEL = "-"


@dataclass(frozen=True, order=True)
class Diagnostic:
    """One `<file>:<line>: <field>: <problem>` line.

    Field order makes the dataclass sort by (line, field), which is the order SPEC §14.3 prints in.
    """

    line: int
    field: str
    problem: str
    file: str = ""

    def render(self) -> str:
        return f"{self.file}:{self.line}: {self.field}: {self.problem}"


class IRError(Exception):
    """Raised by :func:`coh_rtc.compile_ir` when the IR is invalid.

    ``lines`` holds the rendered diagnostics, already sorted; ``diagnostics`` the structured form.
    """

    def __init__(self, diagnostics: Iterable[Diagnostic]):
        self.diagnostics: tuple[Diagnostic, ...] = tuple(sorted(diagnostics))
        self.lines: list[str] = [d.render() for d in self.diagnostics]
        super().__init__("\n".join(self.lines + [summary_line(len(self.lines))]))


def summary_line(count: int) -> str:
    """The trailer printed after the diagnostics (`coh-rtc: <n> error(s)`)."""
    return f"coh-rtc: {count} error(s)"
