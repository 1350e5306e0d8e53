"""bench/bench_spread.py: the one definition of a bench ratio and its spread (issue 20). Every table in
docs/benchmarks.md prints ratios through it, so what "median× (min–max)" means is pinned here."""
from __future__ import annotations

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from bench_spread import fmt_ratio, slice_ratio  # noqa: E402


def test_ratio_is_the_median_of_per_slice_ratios_with_their_min_and_max():
    # slice i against slice i: 2/1, 9/3, 8/2 → 2, 3, 4 (a ratio of medians would give 8/2 = 4)
    spread = slice_ratio({"a": [2.0, 9.0, 8.0], "b": [1.0, 3.0, 2.0]}, "a", "b")
    assert spread == (3.0, 2.0, 4.0)
    assert fmt_ratio(spread) == "3.00× (2.00–4.00)"


def test_an_even_number_of_slices_takes_the_mean_of_the_middle_two():
    assert slice_ratio({"a": [1.0, 2.0, 3.0, 4.0], "b": [1.0, 1.0, 1.0, 1.0]}, "a", "b") == (2.5, 1.0, 4.0)


def test_a_slice_with_a_zero_or_non_finite_side_is_left_out():
    values = {"a": [5.0, 6.0, math.nan, 8.0, 0.0], "b": [0.0, 2.0, 2.0, math.inf, 4.0]}
    assert slice_ratio(values, "a", "b") == (3.0, 3.0, 3.0)


def test_a_missing_side_or_no_usable_slice_gives_none_printed_as_n_a():
    assert slice_ratio({"a": [1.0]}, "a", "b") is None
    assert slice_ratio({"a": [1.0, 2.0], "b": [0.0, 0.0]}, "a", "b") is None
    assert slice_ratio({"a": [], "b": []}, "a", "b") is None
    assert fmt_ratio(None) == "n/a"


def test_large_ratios_print_three_significant_digits():
    assert fmt_ratio((14.63, 9.87, 215.4)) == "14.6× (9.87–215)"
    assert fmt_ratio((0.484, 0.456, 0.5)) == "0.48× (0.46–0.50)"


def test_bench_ninep_still_exports_the_helpers_other_code_imports_from_it():
    import bench_ninep

    assert bench_ninep.slice_ratio is slice_ratio and bench_ninep.fmt_ratio is fmt_ratio
