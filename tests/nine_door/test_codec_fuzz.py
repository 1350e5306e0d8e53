"""SPEC §16 C5: the decoder fuzzer, run with SECURE9P_FUZZ_ITERS iterations (default 512)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from nine_door import codec, fuzz
from nine_door.messages import Rclunk


def test_fuzzer_finds_no_failures_with_the_spec_seed():
    report = fuzz.run_fuzz()      # iterations from SECURE9P_FUZZ_ITERS, seed 0xC0DEC0DE
    expected = int(os.environ.get("SECURE9P_FUZZ_ITERS", "512"))
    assert report.iterations == expected
    assert report.seed == 0xC0DEC0DE
    # Two decoders per iteration: each outcome is counted exactly once.
    assert report.accepted + report.rejected + report.unsupported == 2 * expected
    # The mutations must actually exercise both sides of every decision.
    assert report.rejected > 0 and report.accepted > 0 and report.unsupported > 0


def test_fuzzer_is_deterministic_for_a_seed():
    assert fuzz.run_fuzz(200, seed=7) == fuzz.run_fuzz(200, seed=7)
    assert fuzz.run_fuzz(200, seed=7) != fuzz.run_fuzz(200, seed=8)


def test_fuzzer_reports_a_decoder_that_raises_something_else(monkeypatch):
    real = codec.decode

    def broken(frame):
        if len(frame) > 40:
            raise IndexError("read past the frame")
        return real(frame)

    monkeypatch.setattr(codec, "decode", broken)
    with pytest.raises(fuzz.FuzzFailure, match="IndexError"):
        fuzz.run_fuzz(200)


def test_fuzzer_reports_a_non_canonical_accept(monkeypatch):
    # A decoder that "accepts" frames by ignoring their content must be caught: re-encoding
    # what it returned does not reproduce the input bytes.
    monkeypatch.setattr(codec, "decode_reply", lambda frame: Rclunk(0))
    with pytest.raises(fuzz.FuzzFailure, match="non-canonical"):
        fuzz.run_fuzz(50)


def test_command_line_prints_a_summary():
    proc = subprocess.run([sys.executable, "-m", "nine_door.fuzz", "--iterations", "300"],
                          capture_output=True, text=True, check=True,
                          cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert proc.stdout.startswith("secure9p-fuzz: iterations=300 seed=0xc0dec0de ")
    assert proc.stdout.rstrip().endswith("failures=0")


def test_one_hundred_thousand_iterations():
    # C5 at scale; about 3 s on the fast path.
    report = fuzz.run_fuzz(100_000)
    assert report.iterations == 100_000
