"""guest_fetch's lock: kept while it matches, resolved anew for another kernel series or format."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "toolchain"))
import guest_fetch  # noqa: E402


@pytest.fixture
def offline(monkeypatch):
    """guest_fetch with apt and dpkg replaced: records whether it resolved versions again."""
    calls = []
    fresh = {"format": guest_fetch.LOCK_FORMAT, "kernel_meta": guest_fetch.KERNEL_META,
             "kernel_package": "linux-image-new", "packages": {}}
    monkeypatch.setattr(guest_fetch, "ensure_arch", lambda: None)
    monkeypatch.setattr(guest_fetch, "resolve", lambda path: calls.append("resolve") or dict(fresh))
    for step in ("download", "verify_and_record", "extract"):
        monkeypatch.setattr(guest_fetch, step, lambda *a: None)
    return calls


def _write_lock(out: Path, **fields) -> Path:
    lock = {"format": guest_fetch.LOCK_FORMAT, "kernel_meta": guest_fetch.KERNEL_META,
            "kernel_package": "linux-image-pinned", "packages": {}} | fields
    path = out / "cache" / guest_fetch.LOCK_NAME
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(lock, indent=2, sort_keys=True) + "\n")
    return path


def test_a_matching_lock_is_kept(tmp_path, offline):
    path = _write_lock(tmp_path)
    guest_fetch.fetch(tmp_path)
    assert offline == [] and json.loads(path.read_text())["kernel_package"] == "linux-image-pinned"


@pytest.mark.parametrize("stale", [{"kernel_meta": "linux-image-arm64"}, {"format": 0}])
def test_a_lock_for_another_kernel_series_or_format_is_resolved_again(tmp_path, offline, stale):
    path = _write_lock(tmp_path, **stale)
    guest_fetch.fetch(tmp_path)
    lock = json.loads(path.read_text())
    assert offline == ["resolve"]
    assert lock["kernel_meta"] == guest_fetch.KERNEL_META and lock["kernel_package"] == "linux-image-new"
