"""The two-member payload (build.image.make_payload / unpack_payload) without the fetched guest pieces."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from build import image
from build.cpio import Entry, read_newc

ELF = image.ELF_MAGIC + b"\x02\x01\x01" + bytes(57)


def _names(payload: bytes) -> list[list[str]]:
    return [[m.name for m in read_newc(archive)] for archive in image.unpack_payload(payload)]


def test_elf_files_go_to_the_xz_member_and_directories_stay_in_the_first():
    entries = [Entry("usr", "dir", 0o755), Entry("usr/bin", "dir", 0o755),
               Entry("usr/bin/python3.11", "file", 0o755, ELF + b"code"),
               Entry("usr/bin/python3", "symlink", 0o777, b"python3.11"),
               Entry("init", "file", 0o755, b"#!/usr/bin/python3 -SB\n"),
               Entry("usr/lib.so", "file", 0o644, ELF)]
    payload, members = image.make_payload(entries, "zstd+xz")
    assert [(m.method, m.entries) for m in members] == [("zstd", 4), ("xz", 2)]
    assert sum(m.size for m in members) <= len(payload) <= sum(m.size for m in members) + 3
    assert _names(payload) == [["init", "usr", "usr/bin", "usr/bin/python3"],
                               ["usr/bin/python3.11", "usr/lib.so"]]
    inodes = [m.ino for archive in image.unpack_payload(payload) for m in read_newc(archive)]
    assert inodes == list(range(1, 7))


@pytest.mark.parametrize("method,magic", [("zstd", image.ZSTD_MAGIC), ("xz", image.XZ_MAGIC)])
def test_single_compressor_payloads_have_one_member(method, magic):
    entries = [Entry("a", "file", 0o644, ELF), Entry("b", "file", 0o644, b"text")]
    payload, members = image.make_payload(entries, method)
    assert payload.startswith(magic) and len(members) == 1
    assert _names(payload) == [["a", "b"]]


def test_unknown_method_and_foreign_bytes_are_refused():
    with pytest.raises(ValueError, match="unknown payload method"):
        image.make_payload([], "gzip")
    payload, _ = image.make_payload([Entry("a", "file", 0o644, b"x")], "zstd")
    with pytest.raises(ValueError, match="neither zstd, xz nor padding"):
        image.unpack_payload(payload + b"\0\0070701")


names = st.text(alphabet="abcdefgh", min_size=1, max_size=6)


@settings(max_examples=15, deadline=None)
@given(st.dictionaries(names, st.tuples(st.booleans(), st.binary(max_size=64)), max_size=8))
def test_every_entry_comes_back_once_from_whichever_member(files):
    entries = [Entry(name, "file", 0o644, (ELF if elf else b"") + data) for name, (elf, data) in files.items()]
    payload, _ = image.make_payload(entries, "zstd+xz")
    back = {m.name: m.data for archive in image.unpack_payload(payload) for m in read_newc(archive)}
    assert back == {e.path: e.data for e in entries}
