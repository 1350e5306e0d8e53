"""Is ``out/Image`` + ``out/rootfs.cpio`` the image of this tree? (issue 18: never boot a stale image.)

Why compare source hashes inside the payload rather than file times: the guest code ships as
unchecked-hash ``.pyc`` files whose header carries ``importlib.util.source_hash`` of the source they
were compiled from, so the payload itself says which sources it holds. The check:

- the manifest's payload and kernel SHA-256 match the files next to it (no half-written build);
- the manifest's kernel command line is today's ``image/kernel_cmdline.txt``;
- every guest source in the tree (``root_task``, ``nine_door``, ``workers``; host-only modules aside)
  has a ``.pyc`` in the payload compiled from exactly its bytes, and the payload has no guest ``.pyc``
  whose source is gone.

What it does not see: edits to the image builder itself (``image/*.py``) that change no shipped file's
source; ``doit build``'s file dependencies cover those.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GUEST_PACKAGES = ("root_task", "nine_door", "workers")


@dataclass
class ImageCheck:
    """The verdict on one image directory; ``problems`` empty means current."""

    out: Path
    problems: list[str] = field(default_factory=list)
    modules: int = 0
    payload_sha256: str = ""
    kernel_sha256: str = ""
    note: str = ""             # e.g. why the session rebuilt it (not a problem: the check passed)

    @property
    def current(self) -> bool:
        return not self.problems

    def describe(self) -> str:
        state = "current" if self.current else "STALE: " + "; ".join(self.problems[:5])
        return (f"{self.out / 'Image'} sha256={self.kernel_sha256[:16]} + {self.out / 'rootfs.cpio'} "
                f"sha256={self.payload_sha256[:16]} ({self.modules} guest modules checked against the tree, "
                f"{state})")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree_guest_sources(repo: Path = REPO) -> dict[str, Path]:
    """``usr/lib/cohesix/<rel>.pyc`` -> source path, for the guest modules the image must ship."""
    from image.stage import HOST_ONLY_MODULES

    found: dict[str, Path] = {}
    for pkg in GUEST_PACKAGES:
        for src in sorted((repo / pkg).rglob("*.py")):
            if "__pycache__" in src.parts:
                continue
            rel = src.relative_to(repo).as_posix()
            if rel[:-3].replace("/", ".") in HOST_ONLY_MODULES:
                continue
            found[f"usr/lib/cohesix/{rel}c"] = src
    return found


def check_image(out: Path, repo: Path = REPO) -> ImageCheck:
    """Compare the built image in ``out`` with the sources in ``repo``."""
    from image import build as image
    from image.cpio import read_newc

    result = ImageCheck(out)
    kernel, payload_path, manifest_path = out / "Image", out / "rootfs.cpio", out / "rootfs.manifest.json"
    missing = [str(p) for p in (kernel, payload_path, manifest_path) if not p.is_file()]
    if missing:
        result.problems.append(f"missing {', '.join(missing)}")
        return result
    manifest = json.loads(manifest_path.read_text())
    payload = payload_path.read_bytes()
    result.payload_sha256 = hashlib.sha256(payload).hexdigest()
    result.kernel_sha256 = _sha256(kernel)
    if manifest["payload"]["sha256"] != result.payload_sha256:
        result.problems.append("rootfs.cpio differs from its manifest")
    if manifest["kernel"]["sha256"] != result.kernel_sha256:
        result.problems.append("Image differs from its manifest")
    if manifest["kernel"].get("cmdline") != image.kernel_cmdline():
        result.problems.append("kernel command line differs from image/kernel_cmdline.txt")
    shipped = {}
    for archive in image.unpack_payload(payload):
        for member in read_newc(archive):
            if member.name.startswith("usr/lib/cohesix/") and member.name.endswith(".pyc") \
                    and member.name.split("/")[3] in GUEST_PACKAGES:
                shipped[member.name] = member.data
    expected = tree_guest_sources(repo)
    for name, src in expected.items():
        data = shipped.get(name)
        if data is None:
            result.problems.append(f"{src.relative_to(repo)} is not in the image")
        elif data[8:16] != importlib.util.source_hash(src.read_bytes()):
            result.problems.append(f"{src.relative_to(repo)} changed since the image was built")
    for name in sorted(set(shipped) - set(expected)):
        result.problems.append(f"image ships {name} whose source is gone")
    result.modules = len(expected)
    return result
