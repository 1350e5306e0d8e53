"""Build a boot image for another IR file: what the QEMU tests and ``doit faults`` boot beside the
repository's own image (``doit build``).

One function for all of them, so every such image is made the same way: the guest pieces from the
shared cache (no second fetch), a single zstd member (quicker to build than the default two-member
payload; the QEMU tests then boot both forms), and a failed build reported with the end of its output.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from qemu.launch import REPO_ROOT

DEFAULT_CACHE = REPO_ROOT / "out" / "cache"


def build_for_ir(ir: Path, out: Path, cache: Path = DEFAULT_CACHE, compress: str = "zstd") -> Path:
    """``python -m image.build --out OUT --ir IR --cache CACHE --compress …``; returns ``out`` (which then
    holds ``Image`` and ``rootfs.cpio``). Raises RuntimeError with the build's output when it fails."""
    proc = subprocess.run([sys.executable, "-m", "image.build", "--out", str(out), "--ir", str(ir),
                           "--cache", str(cache), "--compress", compress],
                          cwd=REPO_ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"image build for {ir} failed (exit {proc.returncode}):\n"
                           f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return out
