"""How every bench writes its own region of a markdown report (``docs/benchmarks.md`` by default).

A region is the text between a bench's ``<!-- bench:NAME:start -->`` and ``<!-- bench:NAME:end -->``
markers (both included in ``region``), so several benches share one report without touching each
other's text. One implementation for all of them (bench_boot keeps its own: it also adds a heading).
"""
from __future__ import annotations

from pathlib import Path


def write_region(path: Path, start: str, end: str, region: str) -> None:
    """Replace the text from ``start`` to ``end`` (markers included) with ``region``; append it (after a
    blank line) if the markers are missing; create the file if missing."""
    text = path.read_text() if path.exists() else ""
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + region + rest.split(end, 1)[1]
    else:
        text = (text.rstrip() + "\n\n" if text.strip() else "") + region + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def report_region(report: Path | None, start: str, end: str, region: str) -> None:
    """``--report PATH`` of a bench: write the region there (a relative path is taken from the working
    directory) and say so; nothing when no report was asked for."""
    if report is None:
        return
    write_region(report if report.is_absolute() else Path.cwd() / report, start, end, region)
    print(f"report region written to {report}", flush=True)
