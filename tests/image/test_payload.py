"""The two-member payload (image.build.make_payload / unpack_payload) without the fetched guest pieces."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from image import build as image
from image.cpio import Entry, read_newc

ELF = image.ELF_MAGIC + b"\x02\x01\x01" + bytes(57)


def _names(payload: bytes) -> list[list[str]]:
    return [[m.name for m in read_newc(archive)] for archive in image.unpack_payload(payload)]


TREE = [Entry("usr", "dir", 0o755), Entry("usr/bin", "dir", 0o755),
        Entry("usr/bin/python3.11", "file", 0o755, ELF + bytes(range(256)) * 8),
        Entry("usr/bin/python3", "symlink", 0o777, b"python3.11"),
        Entry("init", "file", 0o755, b"#!/usr/bin/python3 -SB\n"),
        Entry("usr/lib.so", "file", 0o644, ELF)]


@pytest.mark.parametrize("bcj,xz_method", [(True, "xz-arm64"), (False, "xz")])
def test_out_of_budget_every_elf_file_goes_to_xz_and_directories_stay_in_the_first(bcj, xz_method):
    payload, members = image.make_payload(TREE, "zstd+xz", target=0, arm64_bcj=bcj)
    assert [(m.method, m.entries) for m in members] == [("zstd", 4), (xz_method, 2)]
    assert members[1].files == ("/usr/bin/python3.11", "/usr/lib.so") and members[0].files == ()
    assert sum(m.size for m in members) <= len(payload) <= sum(m.size for m in members) + 3
    assert _names(payload) == [["init", "usr", "usr/bin", "usr/bin/python3"],
                               ["usr/bin/python3.11", "usr/lib.so"]]
    inodes = [m.ino for archive in image.unpack_payload(payload) for m in read_newc(archive)]
    assert inodes == list(range(1, 7))


def test_within_budget_only_the_largest_elf_file_is_decoded_by_xz():
    payload, members = image.make_payload(TREE, "zstd+xz")
    assert len(payload) <= image.PAYLOAD_TARGET
    assert [(m.method, m.files) for m in members] == [("zstd", ()), ("xz-arm64", ("/usr/bin/python3.11",))]
    assert _names(payload)[1] == ["usr/bin/python3.11"]


def test_the_budget_adds_elf_files_largest_first_until_the_payload_fits():
    big = [Entry(f"lib{i}.so", "file", 0o644, ELF + bytes([i]) * 1000 + bytes(range(256)) * (i + 1))
           for i in range(4)]
    by_size = ["/lib3.so", "/lib2.so", "/lib1.so", "/lib0.so"]
    sizes = {}
    for count in range(1, 5):
        # the smallest payload with exactly `count` files in xz is this one:
        sizes[count] = len(image._assemble([("zstd", big[:4 - count]), ("xz-arm64", big[4 - count:])], 19)[0])
    for count, size in sizes.items():
        payload, members = image.make_payload(big, "zstd+xz", target=size)
        chosen = set(members[1].files)
        assert len(payload) <= size
        fewest = min(c for c in sizes if sizes[c] <= size)
        assert chosen == set(by_size[:fewest])  # largest first, and no more files than the target needs


def test_the_arm64_bcj_member_is_smaller_on_aarch64_code_and_decodes_to_the_same_bytes():
    # 4 KiB of AArch64 "bl" instructions to one absolute target: relative offsets all differ,
    # absolute ones (what BCJ stores) are all the same.
    code = b"".join((0x94000000 | ((0x10000 - i) & 0x3FFFFFF)).to_bytes(4, "little") for i in range(1024))
    raw = ELF + bytes(4) + code * 4
    plain, bcj = image.compress(raw, method="xz"), image.compress(raw, method="xz-arm64")
    assert len(bcj) < len(plain)
    assert image.unpack_payload(bcj) == [raw]


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
    payload, _ = image.make_payload(entries, "zstd+xz", target=0)
    back = {m.name: m.data for archive in image.unpack_payload(payload) for m in read_newc(archive)}
    assert back == {e.path: e.data for e in entries}
