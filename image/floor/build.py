"""Build the floor image's initramfs: ``<out>/rootfs.cpio`` (default ``out/floor/``).

The payload is one *uncompressed* newc archive of three entries -- ``/dev``, ``/dev/console`` (the
kernel opens it as PID 1's stdin/stdout/stderr) and ``/init`` -- about 0.6 KB, so there is nothing to
decompress and the floor measures the kernel and QEMU, not a decoder. The kernel is the product's
``out/Image``, booted with the same command line by the same launcher, so only the initramfs differs.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..cpio import Entry, write_newc
from .init_elf import floor_init

REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO / "out" / "floor"


def floor_entries() -> list[Entry]:
    """The floor's archive entries; ``/dev/console`` matches the product image's node (c 5 1)."""
    return [Entry("dev", "dir", 0o755), Entry("dev/console", "chr", 0o600, rdev=(5, 1)),
            Entry("init", "file", 0o755, floor_init())]


def floor_payload() -> bytes:
    """The ``-initrd`` bytes of the floor image (the same bytes on every call)."""
    return write_newc(floor_entries())


def build_floor(out: Path = DEFAULT_OUT) -> Path:
    """Write ``<out>/rootfs.cpio`` (only when its bytes change) and return its path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "rootfs.cpio"
    data = floor_payload()
    if not (path.is_file() and path.read_bytes() == data):
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m image.floor.build", description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    path = build_floor(args.out)
    print(f"[floor] {path} ({path.stat().st_size} bytes)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
