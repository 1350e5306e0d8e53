"""ci/size_guard.sh exactly per SPEC §2.1: messages, streams and exit codes at the 4 MiB boundary."""
from __future__ import annotations

import subprocess
from pathlib import Path

GUARD = Path(__file__).resolve().parents[2] / "ci/size_guard.sh"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", str(GUARD), *args], capture_output=True, text=True)


def sized(tmp_path: Path, n: int) -> Path:
    p = tmp_path / f"a{n}.cpio"
    with open(p, "wb") as f:
        f.truncate(n)
    return p


def test_just_under_limit_ok(tmp_path):
    r = run(str(sized(tmp_path, 4194303)))
    assert (r.returncode, r.stdout, r.stderr) == (0, "Archive size OK: 4194303 bytes\n", "")


def test_at_limit_rejected(tmp_path):
    r = run(str(sized(tmp_path, 4194304)))
    assert (r.returncode, r.stdout, r.stderr) == (2, "", "Archive exceeds 4 MiB: 4194304 bytes\n")


def test_missing_file(tmp_path):
    missing = tmp_path / "nope.cpio"
    r = run(str(missing))
    assert (r.returncode, r.stdout, r.stderr) == (1, "", f"Rootfs archive not found: {missing}\n")


def test_directory_is_not_an_archive(tmp_path):
    r = run(str(tmp_path))
    assert r.returncode == 1 and r.stderr == f"Rootfs archive not found: {tmp_path}\n"


def test_no_args_usage():
    r = run()
    assert (r.returncode, r.stdout, r.stderr) == (1, "", "usage: size_guard.sh <archive>\n")
