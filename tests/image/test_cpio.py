"""The newc writer: GNU cpio and bsdtar must list what we wrote, and the bytes must be reproducible."""
from __future__ import annotations

import shutil
import subprocess

import pytest

from image.cpio import Entry, entries_from_tree, read_newc, write_newc

ENTRIES = [
    Entry("usr/bin/tool", "file", 0o755, b"#!/bin/sh\necho hi\n"),
    Entry("usr", "dir", 0o755),
    Entry("usr/bin", "dir", 0o755),
    Entry("etc", "dir", 0o755),
    Entry("etc/odd-size.txt", "file", 0o644, b"abcde"),
    Entry("etc/empty", "file", 0o600, b""),
    Entry("usr/bin/python3", "symlink", 0o777, b"python3.11"),
    Entry("dev", "dir", 0o755),
    Entry("dev/console", "chr", 0o600, rdev=(5, 1)),
    Entry("dev/null", "chr", 0o666, rdev=(1, 3)),
]


def test_sorted_bytewise_and_fixed_metadata():
    members = list(read_newc(write_newc(ENTRIES)))
    names = [m.name for m in members]
    assert names == sorted(names, key=lambda n: n.encode())
    assert names[0] == "dev" and names.index("usr") < names.index("usr/bin") < names.index("usr/bin/tool")
    assert [m.ino for m in members] == list(range(1, len(members) + 1))
    for m in members:
        assert (m.uid, m.gid, m.mtime) == (0, 0, 0)
        assert m.nlink == (2 if m.mode & 0o170000 == 0o040000 else 1)
    by_name = {m.name: m for m in members}
    assert by_name["dev/console"].rdev == (5, 1) and by_name["dev/console"].mode == 0o020600
    assert by_name["usr/bin/python3"].data == b"python3.11"
    assert by_name["etc/odd-size.txt"].data == b"abcde"


def test_deterministic_regardless_of_input_order():
    assert write_newc(ENTRIES) == write_newc(list(reversed(ENTRIES)))


def test_members_are_4_byte_aligned_and_trailer_present():
    blob = write_newc(ENTRIES)
    assert len(blob) % 4 == 0
    assert b"TRAILER!!!\0" in blob[-128:]


@pytest.mark.parametrize("bad", ["/abs", "a//b", "a/../b", "trailing/", "./x", ""])
def test_rejects_bad_paths(bad):
    with pytest.raises(ValueError):
        Entry(bad, "file", 0o644)


def test_rejects_duplicates():
    with pytest.raises(ValueError, match="duplicate"):
        write_newc([Entry("a", "file", 0o644), Entry("a", "file", 0o644)])


@pytest.mark.skipif(shutil.which("cpio") is None, reason="GNU cpio not installed")
def test_gnu_cpio_lists_names_modes_sizes(tmp_path):
    archive = tmp_path / "a.cpio"
    archive.write_bytes(write_newc(ENTRIES))
    names = subprocess.run(["cpio", "-it", "--quiet"], stdin=open(archive, "rb"), capture_output=True,
                           text=True, check=True).stdout.split()
    assert names == sorted((e.path for e in ENTRIES), key=str.encode)
    verbose = subprocess.run(["cpio", "-itv", "--quiet"], stdin=open(archive, "rb"), capture_output=True,
                             text=True, check=True).stdout.splitlines()
    lines = {line.split()[-1] if "->" not in line else line.split()[-3]: line for line in verbose}
    assert lines["usr/bin/tool"].startswith("-rwxr-xr-x")
    assert lines["etc/empty"].startswith("-rw-------")
    assert lines["dev/console"].startswith("crw-------")
    assert "5,       1" in lines["dev/console"] or "5, 1" in " ".join(lines["dev/console"].split())
    assert lines["usr/bin/python3"].startswith("lrwxrwxrwx")
    assert " 5 " in lines["etc/odd-size.txt"]


@pytest.mark.skipif(shutil.which("bsdtar") is None, reason="bsdtar not installed")
def test_bsdtar_lists_and_extracts(tmp_path):
    archive = tmp_path / "a.cpio"
    archive.write_bytes(write_newc(ENTRIES))
    listing = subprocess.run(["bsdtar", "-tvf", str(archive)], capture_output=True, text=True, check=True).stdout
    rows = {line.split()[-1] if "->" not in line else line.split()[-3]: line.split() for line in listing.splitlines()}
    assert set(rows) == {e.path for e in ENTRIES}
    assert rows["dev/null"][0] == "crw-rw-rw-" and rows["dev/null"][4] == "1,3"
    assert rows["usr/bin/tool"][0] == "-rwxr-xr-x" and rows["usr/bin/tool"][4] == "18"
    out = tmp_path / "x"
    out.mkdir()
    subprocess.run(["bsdtar", "-xf", str(archive), "-C", str(out), "--exclude", "dev/*"], check=True)
    assert (out / "usr/bin/tool").read_bytes() == b"#!/bin/sh\necho hi\n"
    assert (out / "usr/bin/python3").is_symlink()


def test_entries_from_tree_normalises_permissions(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d/x").write_bytes(b"1")
    (tmp_path / "d/x").chmod(0o700)
    (tmp_path / "d/y").write_bytes(b"2")
    (tmp_path / "d/y").chmod(0o600)
    (tmp_path / "l").symlink_to("d/x")
    entries = {e.path: e for e in entries_from_tree(tmp_path)}
    assert entries["d/x"].perm == 0o755 and entries["d/y"].perm == 0o644
    assert entries["d"].kind == "dir" and entries["l"].data == b"d/x"
