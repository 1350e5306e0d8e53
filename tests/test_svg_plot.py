"""bench/svg_plot.py: the charts the benches write beside docs/benchmarks.md (issue 20's plots)."""
from __future__ import annotations

import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from svg_plot import TOP, line_chart  # noqa: E402


def test_one_polyline_per_series_scaled_into_the_plot_and_deterministic():
    svg = line_chart("t", "x", "y", [16, 256, 1024], {"a": [10, 20, 40], "b": [5, 5, 5]})
    assert svg == line_chart("t", "x", "y", [16, 256, 1024], {"a": [10, 20, 40], "b": [5, 5, 5]})
    root = ET.fromstring(svg)                                  # well-formed XML
    polylines = [el for el in root.iter() if el.tag.endswith("polyline")]
    assert len(polylines) == 2
    a = [tuple(map(float, p.split(","))) for p in polylines[0].get("points").split()]
    b = [tuple(map(float, p.split(","))) for p in polylines[1].get("points").split()]
    assert a[0][0] < a[1][0] < a[2][0]                         # x grows with the worker count
    assert a[2][0] - a[1][0] < a[1][0] - a[0][0]               # log scale: 256→1024 is shorter than 16→256
    assert a[0][1] > a[1][1] > a[2][1] >= TOP                  # larger values are higher, inside the plot
    assert len({y for _, y in b}) == 1                         # a flat series is a flat line
    assert re.search(r">a<", svg) and re.search(r">b<", svg)   # the legend names both
