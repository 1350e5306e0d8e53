"""The ELF audit rejects what would fail to load in the guest, naming the file and the missing piece."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from image.elf_audit import ElfAuditError, audit, resolve_in_root


def _stage_python(guest_root: Path, dest: Path) -> Path:
    target = dest / "usr/bin/python3.11"
    target.parent.mkdir(parents=True)
    shutil.copyfile(guest_root / "usr/bin/python3.11", target)
    return target


def test_arm64_elf_without_its_libraries_is_rejected(guest_root, tmp_path):
    _stage_python(guest_root, tmp_path)
    with pytest.raises(ElfAuditError) as exc:
        audit(tmp_path)
    text = str(exc.value)
    assert "/usr/bin/python3.11: needed library libc.so.6 is missing" in text
    assert "/usr/bin/python3.11: needed library libexpat.so.1 is missing" in text
    assert "/usr/bin/python3.11: program interpreter /lib/ld-linux-aarch64.so.1 is missing" in text


def test_complete_tree_passes_and_symlinks_resolve_inside_root(guest_root, tmp_path):
    _stage_python(guest_root, tmp_path)
    libdir = tmp_path / "usr/lib/aarch64-linux-gnu"
    libdir.mkdir(parents=True)
    for lib in ("libc.so.6", "libm.so.6", "libz.so.1", "libexpat.so.1", "ld-linux-aarch64.so.1"):
        src = resolve_in_root(guest_root, f"/lib/aarch64-linux-gnu/{lib}")
        shutil.copyfile(src, libdir / lib)
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib/ld-linux-aarch64.so.1").symlink_to("/usr/lib/aarch64-linux-gnu/ld-linux-aarch64.so.1")
    infos = audit(tmp_path)
    assert {i.path for i in infos} >= {"/usr/bin/python3.11", "/usr/lib/aarch64-linux-gnu/libc.so.6"}
    # A dangling interpreter symlink is caught (the host's own /usr/lib is never consulted).
    (tmp_path / "lib/ld-linux-aarch64.so.1").unlink()
    (tmp_path / "lib/ld-linux-aarch64.so.1").symlink_to("/nowhere/ld.so")
    with pytest.raises(ElfAuditError, match="program interpreter"):
        audit(tmp_path)


def test_wrong_machine_is_rejected(tmp_path):
    host_elf = Path("/bin/true").resolve()
    (tmp_path / "bin").mkdir()
    shutil.copyfile(host_elf, tmp_path / "bin/true")
    with pytest.raises(ElfAuditError) as exc:
        audit(tmp_path)
    assert "/bin/true: wrong machine EM_X86_64, expected EM_AARCH64" in str(exc.value)


def test_non_elf_files_are_ignored(tmp_path):
    (tmp_path / "init").write_text("#!/usr/bin/python3 -SB\n")
    assert audit(tmp_path) == []
