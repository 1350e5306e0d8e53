"""A deterministic writer (and a small reader) for the ``newc`` cpio format the Linux initramfs unpacks.

Why hand-written: GNU cpio and bsdtar copy host metadata (mtime, uid, inode, device numbers) and
order entries by how they are given; making them reproducible needs a pile of flags and a fake-root
for device nodes. No maintained PyPI package writes ``newc`` with normalised metadata either
(``libarchive-c`` would bind the C library and still need an entry-by-entry normalisation). The format
is 110 bytes of ASCII hex per entry, so a 100-line writer whose every field is fixed by this module is
simpler to trust: entries are sorted bytewise by path, mtime/uid/gid/dev are 0, inodes are numbered in
output order from 1, regular files and symlinks have nlink 1 (the kernel's unpacker treats nlink >= 2
on a regular file as a hard-link candidate), directories have nlink 2, and device nodes carry only
their rdev major/minor. The same entries therefore always give the same bytes.
"""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

MAGIC = b"070701"
TRAILER = "TRAILER!!!"
HEADER_LEN = 110

KINDS = {
    "file": stat.S_IFREG,
    "dir": stat.S_IFDIR,
    "symlink": stat.S_IFLNK,
    "chr": stat.S_IFCHR,
    "blk": stat.S_IFBLK,
}


@dataclass(frozen=True)
class Entry:
    """One archive member. ``path`` is relative, '/'-separated, without a leading slash."""

    path: str
    kind: str  # one of KINDS
    perm: int  # permission bits only, e.g. 0o755
    data: bytes = b""  # file content, or the target for a symlink
    rdev: tuple[int, int] = (0, 0)  # (major, minor) for chr/blk

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"{self.path}: unknown entry kind {self.kind!r}")
        if not self.path or self.path.startswith("/") or self.path.endswith("/"):
            raise ValueError(f"bad archive path {self.path!r}: must be relative, no trailing slash")
        if any(part in ("", ".", "..") for part in self.path.split("/")):
            raise ValueError(f"bad archive path {self.path!r}: empty, '.' or '..' component")
        if self.perm & ~0o7777:
            raise ValueError(f"{self.path}: perm {oct(self.perm)} has file-type bits")
        if self.kind in ("dir", "chr", "blk") and self.data:
            raise ValueError(f"{self.path}: a {self.kind} entry carries no data")

    @property
    def mode(self) -> int:
        return KINDS[self.kind] | self.perm


def _pad4(n: int) -> bytes:
    return b"\0" * (-n % 4)


def _header(ino: int, mode: int, nlink: int, size: int, rdev: tuple[int, int], namesize: int) -> bytes:
    fields = (ino, mode, 0, 0, nlink, 0, size, 0, 0, rdev[0], rdev[1], namesize, 0)
    return MAGIC + b"".join(b"%08x" % f for f in fields)


def _member(ino: int, mode: int, nlink: int, name: str, data: bytes, rdev=(0, 0)) -> bytes:
    bname = name.encode("utf-8") + b"\0"
    head = _header(ino, mode, nlink, len(data), rdev, len(bname)) + bname
    return head + _pad4(len(head)) + data + _pad4(len(data))


def write_newc(entries: Iterable[Entry], first_ino: int = 1) -> bytes:
    """Return the archive bytes for ``entries`` (sorted here; duplicate paths are an error).

    ``first_ino``: inode number of the first entry, so archives meant to be concatenated into one
    initramfs (image/build.py) can keep inode numbers unique across all of them.
    """
    ordered = sorted(entries, key=lambda e: e.path.encode("utf-8"))
    out = []
    seen: set[str] = set()
    for ino, entry in enumerate(ordered, start=first_ino):
        if entry.path in seen:
            raise ValueError(f"duplicate archive path {entry.path!r}")
        seen.add(entry.path)
        nlink = 2 if entry.kind == "dir" else 1
        out.append(_member(ino, entry.mode, nlink, entry.path, entry.data, entry.rdev))
    out.append(_member(0, 0, 1, TRAILER, b""))
    return b"".join(out)


def entries_from_tree(root: Path) -> list[Entry]:
    """Read a staging directory into entries, normalising host metadata away.

    Permissions are reduced to 0o755/0o644 by the owner's execute bit (so the host's umask cannot leak
    into the archive); symlinks keep their target text verbatim.
    """
    root = Path(root)
    entries = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            full = Path(dirpath) / name
            rel = full.relative_to(root).as_posix()
            st = full.lstat()
            if stat.S_ISLNK(st.st_mode):
                entries.append(Entry(rel, "symlink", 0o777, os.readlink(full).encode("utf-8")))
            elif stat.S_ISDIR(st.st_mode):
                entries.append(Entry(rel, "dir", 0o755))
            elif stat.S_ISREG(st.st_mode):
                perm = 0o755 if st.st_mode & stat.S_IXUSR else 0o644
                entries.append(Entry(rel, "file", perm, full.read_bytes()))
            else:
                raise ValueError(f"{full}: unsupported file type in staging tree (use explicit device entries)")
    return entries


@dataclass(frozen=True)
class Member:
    """A parsed archive member (for tests and the manifest)."""

    ino: int
    mode: int
    uid: int
    gid: int
    nlink: int
    mtime: int
    rdev: tuple[int, int]
    name: str
    data: bytes


def read_newc(blob: bytes) -> Iterator[Member]:
    """Parse ``newc`` bytes up to the trailer; raises ValueError on a malformed archive."""
    pos = 0
    while True:
        head = blob[pos:pos + HEADER_LEN]
        if len(head) < HEADER_LEN or head[:6] != MAGIC:
            raise ValueError(f"bad newc header at offset {pos}")
        f = [int(head[6 + 8 * i:14 + 8 * i], 16) for i in range(13)]
        namesize, size = f[11], f[6]
        name_end = pos + HEADER_LEN + namesize
        name = blob[pos + HEADER_LEN:name_end - 1].decode("utf-8")
        data_start = name_end + (-(HEADER_LEN + namesize) % 4)
        data = blob[data_start:data_start + size]
        pos = data_start + size + (-size % 4)
        if name == TRAILER:
            return
        yield Member(f[0], f[1], f[2], f[3], f[4], f[5], (f[9], f[10]), name, data)
