"""How every bench computes a ratio and its spread, and how it prints them (issue 20).

One definition for all the benches, so that "1.46× (1.11–2.01)" means the same in every table of
docs/benchmarks.md: the two compared sides are measured in slices (alternating inside one run where
both sides can live at once, so machine drift hits both), slice ``i`` of one side is divided by slice
``i`` of the other, and the ratio is the median of those per-slice ratios with their min–max over all
slices of all runs. A ratio of medians would hide how much the slices disagree; a best-of would hide it
and flatter one side.
"""
from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence

Spread = tuple[float, float, float]       # (median, min, max) of the per-slice ratios


def slice_ratio(values: Mapping[str, Sequence[float]], a: str, b: str) -> Spread | None:
    """Side ``a`` against side ``b`` from their slices (slice i against slice i): (median, min, max) of
    the per-slice ratios ``a[i] / b[i]``.

    A slice where either side is zero or not a finite number says nothing and is left out: a zero is a
    count below its resolution (CPU time in 10 ms clock ticks, no event in the slice), a NaN a mean of
    no samples. None when a side was not measured at all or no slice is left, which :func:`fmt_ratio`
    prints as "n/a"."""
    if a not in values or b not in values:
        return None
    ratios = [x / y for x, y in zip(values[a], values[b]) if _usable(x) and _usable(y)]
    return (statistics.median(ratios), min(ratios), max(ratios)) if ratios else None


def _usable(x: float) -> bool:
    """Whether one side of one slice is a measurement a ratio can be taken of."""
    return math.isfinite(x) and x > 0


def fmt_ratio(spread: Spread | None) -> str:
    """``median× (min–max)``, or "n/a" for a ratio that could not be computed."""
    if spread is None:
        return "n/a"
    median, low, high = spread
    return f"{_num(median)}× ({_num(low)}–{_num(high)})"


def _num(x: float) -> str:
    """Two decimals below 10, then three significant digits ("0.48", "14.6", "216"), so a table with
    several spreads per row stays readable."""
    if abs(x) < 10:
        return f"{x:.2f}"
    return f"{x:.1f}" if abs(x) < 100 else f"{x:.0f}"
