"""tests/conftest.py's skip policy, run on a scratch suite in a child pytest (docs/testing.md)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent

SKIPPING = '''
import pytest

def test_skips():
    pytest.skip("frobnicator not installed")

@pytest.mark.xfail(reason="known", strict=True)
def test_expected_failure():
    assert False
'''


@pytest.fixture
def scratch_suite(tmp_path: Path) -> Path:
    suite = tmp_path / "tests"
    for sub in ("qemu", "nine_door", "other"):
        (suite / sub).mkdir(parents=True)
    shutil.copy(HERE / "conftest.py", suite / "conftest.py")
    (suite / "qemu" / "test_boot_like.py").write_text(SKIPPING)
    (suite / "nine_door" / "test_interop_tcp.py").write_text(SKIPPING)
    (suite / "other" / "test_plain.py").write_text(SKIPPING)
    (suite / "other" / "test_marked.py").write_text(SKIPPING.replace("def test_skips", "@pytest.mark.promised\ndef test_skips"))
    return suite


def run(suite: Path, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("CI", "COHESIX_NO_SKIP")}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider",
                           "--rootdir", str(suite.parent), str(suite)],
                          capture_output=True, text=True, env={**clean, **env}, cwd=suite.parent)


def test_without_ci_a_skip_is_a_skip(scratch_suite: Path) -> None:
    proc = run(scratch_suite)
    assert proc.returncode == 0, proc.stdout
    assert "4 skipped, 4 xfailed" in proc.stdout


@pytest.mark.parametrize("env", [{"CI": "true"}, {"COHESIX_NO_SKIP": "1"}])
def test_under_ci_a_skipped_promised_test_fails_with_its_reason(scratch_suite: Path, env) -> None:
    proc = run(scratch_suite, **env)
    assert proc.returncode == 1, proc.stdout
    assert "3 failed, 1 skipped, 4 xfailed" in proc.stdout
    assert proc.stdout.count("promised test skipped under CI=true / COHESIX_NO_SKIP=1") >= 3
    assert "frobnicator not installed" in proc.stdout
    for path in ("qemu/test_boot_like.py", "nine_door/test_interop_tcp.py", "other/test_marked.py"):
        assert f"FAILED tests/{path}::test_skips" in proc.stdout
    assert "SKIPPED [1] tests/other/test_plain.py" in proc.stdout
