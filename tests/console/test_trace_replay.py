"""Captured serial traces replay identically in the host run mode (issue 19, acceptance 2; SPEC §10.2–§10.5).

The traces in tests/traces/ were captured from a booted guest by scripts/capture_traces.py (its
docstring: the session protocol and the normalisation). Here every trace's input is replayed, in
order, into ONE `python -m root_task.host` serial console (stdin/stdout under pexpect, as
tests/root_task/test_host_mode.py does) and the output must equal the guest's after
``capture_traces.normalise`` -- no QEMU needed. tests/qemu/test_trace_replay.py replays the same
traces into a fresh guest boot.
"""
from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _load_capture_module():
    spec = importlib.util.spec_from_file_location("capture_traces", REPO / "scripts" / "capture_traces.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("capture_traces", module)
    spec.loader.exec_module(module)
    return module


ct = _load_capture_module()
TRACES = ct.load_traces()
NAMES = [t["name"] for t in TRACES]


def check_trace(trace: dict, observed: str, where: str) -> None:
    """The replay equals the capture (normalised), and the output holds what SPEC requires."""
    expected = ct.normalise(trace["output"])
    got = ct.normalise(observed)
    assert got == expected, (f"{trace['file']}: {where} output differs from the captured guest output\n"
                             f"expected: {expected!r}\nobserved: {got!r}")
    for needle in trace["spec_expect"]:
        assert needle in got, f"{trace['file']}: SPEC requires {needle!r} in the output; {where} printed {got!r}"


def test_trace_set_is_complete_and_regenerated_from_the_script():
    """≥ 12 traces; the stored inputs are exactly the script's (traces are made by a command, not by hand)."""
    assert len(TRACES) >= 12
    assert len(set(NAMES)) == len(NAMES)
    defined = [(t.name, [c.hex() for c in t.chunks]) for t in ct.TRACES]
    stored = [(t["name"], [c.hex() for c in t["chunks"]]) for t in TRACES]
    assert stored == defined, "tests/traces/ is stale: run scripts/capture_traces.py"
    for trace in TRACES:
        data = b"".join(trace["chunks"])
        assert data.endswith(b"\n"), trace["file"]
        assert not set(data) & set(ct.FORBIDDEN), trace["file"]
        assert trace["output"].strip(), trace["file"]
        assert not trace["output"].startswith("<"), f"{trace['file']}: the capture itself failed"
    covered = b"".join(b"".join(t["chunks"]) for t in TRACES)
    for byte in (b"\x7f", b"\x08", b"\x15", b"\x03", b"\t", b"\r"):
        assert byte in covered, byte
    assert any(len(c) > 256 for t in TRACES for c in t["chunks"])            # over-long line
    assert any(c[-1:] >= b"\xc0" for t in TRACES for c in t["chunks"])      # UTF-8 lead byte ends a write


def test_normalisation_touches_only_its_two_rules():
    assert ct.normalise("a\r\r\nb\r\n\rc\b \b") == "a\r\nb\r\n\rc\b \b"
    assert ct.normalise("OK LOG\r\nnet link_up=true\r\nEND\r\n") == "OK LOG\r\nEND\r\n"
    line = "net link_up=false rx_frames=0 tx_frames=0 tx_drops=0\r\n"
    assert ct.normalise(line) == line


@pytest.fixture(scope="module")
def host_replay():
    started = time.monotonic()
    child = ct.spawn_host()
    try:
        results = ct.play_all(child, TRACES)
    finally:
        child.terminate(force=True)
        child.close()
    return results, time.monotonic() - started


@pytest.mark.parametrize("name", NAMES)
def test_trace_replays_identically_in_host_mode(host_replay, name, request):
    if name in ct.KNOWN_DEVIATIONS:
        request.applymarker(pytest.mark.xfail(strict=True, reason=ct.KNOWN_DEVIATIONS[name]))
    results, _ = host_replay
    trace = next(t for t in TRACES if t["name"] == name)
    check_trace(trace, results[name], "host run mode")
