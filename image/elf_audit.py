"""Prove, before packing, that every ELF in the staging tree can be loaded in the guest.

Why: the guest has no package manager and no shell, so a missing ``libffi.so.8`` or an x86-64 file
picked up by mistake only shows as PID 1 dying at boot with an unhelpful errno. Checking on the host
turns that into a build error that names the file and the missing piece:

- every ELF is AArch64 (``EM_AARCH64``);
- every ``PT_INTERP`` names a loader present in the tree;
- every ``DT_NEEDED`` library is present in one of the guest's library directories (symlinks are
  followed inside the staging root, never on the host).
"""
from __future__ import annotations

import posixpath
from dataclasses import dataclass
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile

#: Where the guest's dynamic loader looks without an ld.so.cache (Debian's multiarch default dirs).
LIBRARY_DIRS = ("/lib/aarch64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/lib", "/usr/lib")


class ElfAuditError(Exception):
    """Raised with one line per problem found."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("ELF audit failed:\n" + "\n".join(f"  {p}" for p in problems))


@dataclass(frozen=True)
class ElfInfo:
    path: str  # guest path, e.g. /usr/bin/python3.11
    machine: str
    interp: str | None
    needed: tuple[str, ...]


def resolve_in_root(root: Path, guest_path: str, max_hops: int = 40) -> Path | None:
    """Resolve ``guest_path`` inside ``root`` following symlinks as the guest would; None if absent."""
    parts = [p for p in guest_path.split("/") if p]
    current = "/"
    hops = 0
    while parts:
        part = parts.pop(0)
        candidate = posixpath.join(current, part)
        host = root / candidate.lstrip("/")
        if host.is_symlink():
            hops += 1
            if hops > max_hops:
                return None
            target = str(host.readlink())
            parts = [p for p in target.split("/") if p] + parts
            if target.startswith("/"):
                current = "/"
            continue
        if part == "..":
            current = posixpath.dirname(current) or "/"
            continue
        if not host.exists():
            return None
        current = candidate
    return root / current.lstrip("/")


def read_elf(path: Path, guest_path: str) -> ElfInfo | None:
    """Return ELF facts for ``path``, or None when it is not an ELF file."""
    with open(path, "rb") as f:
        if f.read(4) != b"\x7fELF":
            return None
        f.seek(0)
        try:
            elf = ELFFile(f)
        except ELFError as exc:
            raise ElfAuditError([f"{guest_path}: unreadable ELF ({exc})"]) from exc
        interp = None
        needed: list[str] = []
        for seg in elf.iter_segments():
            if seg.header.p_type == "PT_INTERP":
                interp = seg.get_interp_name()
        for sec in elf.iter_sections():
            if isinstance(sec, DynamicSection):
                needed.extend(t.needed for t in sec.iter_tags() if t.entry.d_tag == "DT_NEEDED")
        return ElfInfo(guest_path, elf["e_machine"], interp, tuple(needed))


def find_library(root: Path, name: str) -> str | None:
    for d in LIBRARY_DIRS:
        guest = f"{d}/{name}"
        host = resolve_in_root(root, guest)
        if host is not None and host.is_file():
            return guest
    return None


def audit(root: Path) -> list[ElfInfo]:
    """Check every ELF under ``root``; return what was found or raise ElfAuditError naming each fault."""
    root = Path(root)
    problems: list[str] = []
    infos: list[ElfInfo] = []
    for host in sorted(root.rglob("*")):
        if host.is_symlink() or not host.is_file():
            continue
        guest = "/" + host.relative_to(root).as_posix()
        try:
            info = read_elf(host, guest)
        except ElfAuditError as exc:
            problems.extend(exc.problems)
            continue
        if info is None:
            continue
        infos.append(info)
        if info.machine != "EM_AARCH64":
            problems.append(f"{guest}: wrong machine {info.machine}, expected EM_AARCH64")
            continue
        if info.interp is not None:
            target = resolve_in_root(root, info.interp)
            if target is None or not target.is_file():
                problems.append(f"{guest}: program interpreter {info.interp} is missing from the image")
        for lib in info.needed:
            if find_library(root, lib) is None:
                problems.append(f"{guest}: needed library {lib} is missing from the image "
                                f"(searched {', '.join(LIBRARY_DIRS)})")
    if problems:
        raise ElfAuditError(problems)
    return infos


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys

    ap = argparse.ArgumentParser(description="Audit the ELF files of a staging tree")
    ap.add_argument("root")
    args = ap.parse_args(argv)
    try:
        infos = audit(Path(args.root))
    except ElfAuditError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"ELF audit OK: {len(infos)} ELF files")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
