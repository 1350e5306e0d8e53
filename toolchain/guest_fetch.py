#!/usr/bin/env python3
"""Fetch the arm64 guest pieces (kernel + Python runtime) as Debian packages, without installing them.

Why Debian packages: seL4 and a cross toolchain are not reachable from the package registries these
machines can use, but Debian's arm64 archive is, and it carries a kernel with virtio-mmio/virtio-net/9p
modules and a CPython 3.11 whose bytecode matches the host's. We only *download* (`apt-get download`)
and *unpack* (`dpkg-deb -x`) them; nothing is installed into the host system.

Reproducibility: the first run resolves each package to a concrete version and records it (with the
.deb's sha256) in ``out/cache/guest-lock.json``. Later runs download exactly those versions, and a run
that finds every pinned .deb present and the unpacked tree matching the lock does nothing at all (no
network, no apt), so a second run is fast and offline-safe. ``--update`` re-resolves to the current
archive versions.

Usage: ``python3 toolchain/guest_fetch.py [--out out] [--update]``
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ARCH = "arm64"
#: Debian 12 carries two kernels: 6.1 (``linux-image-arm64``) and 6.12 (``linux-image-6.12-arm64``,
#: in bookworm-security). We boot 6.12 because its initramfs xz decoder has the ARM64 BCJ filter
#: (``CONFIG_XZ_DEC_ARM64``), which 6.1 lacks: with it the interpreter binary compresses 8 % smaller
#: than plain xz, which is what lets one payload meet both the size and the boot-time target
#: (docs/build.md, "Payload compression"). The generic flavour is required: the cloud-arm64 kernel has
#: no 9P client (CONFIG_NET_9P unset), which the in-guest ``mount -t 9p`` interop test needs.
KERNEL_META = "linux-image-6.12-arm64"
#: The Python runtime and the shared libraries its binary and the lib-dynload modules we ship need.
RUNTIME_PACKAGES = (
    "python3.11-minimal",
    "libpython3.11-minimal",
    "libpython3.11-stdlib",
    "libc6",
    "zlib1g",
    "libexpat1",
    "libffi8",
)
LOCK_NAME = "guest-lock.json"
LOCK_FORMAT = 1


def log(msg: str) -> None:
    """Progress goes to stderr so callers can keep stdout clean."""
    print(f"[guest-fetch] {msg}", file=sys.stderr, flush=True)


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, text=True, **kw)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def ensure_arch() -> None:
    """Add arm64 as a foreign architecture and refresh the lists, only when not done already."""
    foreign = run(["dpkg", "--print-foreign-architectures"], capture_output=True).stdout.split()
    if ARCH not in foreign:
        log(f"dpkg --add-architecture {ARCH}")
        run(["dpkg", "--add-architecture", ARCH])
    probe = subprocess.run(["apt-cache", "show", f"{KERNEL_META}:{ARCH}"], capture_output=True, text=True)
    if probe.returncode != 0 or not probe.stdout.strip():
        log("apt-get update (arm64 package lists missing)")
        run(["apt-get", "update"])


def candidate_version(pkg: str) -> str:
    """The version apt would pick now (``Candidate:`` of ``apt-cache policy``)."""
    out = run(["apt-cache", "policy", f"{pkg}:{ARCH}"], capture_output=True).stdout
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("Candidate:"):
            version = line.split(":", 1)[1].strip()
            if version and version != "(none)":
                return version
    raise SystemExit(f"guest-fetch: no {ARCH} candidate for {pkg}; is the arm64 archive configured?")


def resolve_kernel_package() -> str:
    """``KERNEL_META`` is a meta package; its first Depends is the current ABI package."""
    out = run(["apt-cache", "depends", f"{KERNEL_META}:{ARCH}"], capture_output=True).stdout
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("Depends:") and "linux-image-" in line:
            return line.split(":", 1)[1].strip().split(":")[0]
    raise SystemExit(f"guest-fetch: cannot resolve {KERNEL_META} to a kernel ABI package")


def resolve(lock_path: Path) -> dict:
    """Pick package names and versions now and return a fresh lock document (without hashes)."""
    kernel = resolve_kernel_package()
    names = (kernel,) + RUNTIME_PACKAGES
    packages = {}
    for name in names:
        packages[name] = {"version": candidate_version(name), "arch": ARCH}
        log(f"resolved {name}={packages[name]['version']}")
    return {"format": LOCK_FORMAT, "kernel_meta": KERNEL_META, "kernel_package": kernel, "packages": packages}


def deb_filename(name: str, version: str) -> str:
    """apt's file name for a downloaded .deb (epochs are written as ``%3a``)."""
    return f"{name}_{version.replace(':', '%3a')}_{ARCH}.deb"


def download(lock: dict, debs: Path) -> None:
    debs.mkdir(parents=True, exist_ok=True)
    missing = [
        (n, p["version"]) for n, p in sorted(lock["packages"].items())
        if not (debs / deb_filename(n, p["version"])).is_file()
    ]
    if not missing:
        return
    ensure_arch()
    specs = [f"{n}:{ARCH}={v}" for n, v in missing]
    log(f"apt-get download {' '.join(specs)}")
    # apt's sandbox user cannot write into root-owned dirs; downloading unsandboxed is fine for
    # `download` (it verifies signatures and hashes either way).
    run(["apt-get", "download", "-o", "APT::Sandbox::User=root", *specs], cwd=debs)


def verify_and_record(lock: dict, debs: Path) -> None:
    for name, pkg in sorted(lock["packages"].items()):
        path = debs / deb_filename(name, pkg["version"])
        digest = sha256_file(path)
        if pkg.get("sha256") and pkg["sha256"] != digest:
            raise SystemExit(f"guest-fetch: {path.name} sha256 {digest} does not match the lock {pkg['sha256']}")
        pkg["sha256"] = digest
        pkg["file"] = path.name


def lock_digest(lock: dict) -> str:
    return hashlib.sha256(json.dumps(lock, sort_keys=True).encode()).hexdigest()


def extract(lock: dict, debs: Path, root: Path) -> None:
    """Unpack every pinned .deb into one tree; a stamp records which lock it came from."""
    stamp = root / ".cohesix-lock-sha256"
    want = lock_digest(lock)
    if stamp.is_file() and stamp.read_text().strip() == want:
        return
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    for name, pkg in sorted(lock["packages"].items()):
        log(f"dpkg-deb -x {pkg['file']}")
        run(["dpkg-deb", "-x", str(debs / pkg["file"]), str(root)])
    stamp.write_text(want + "\n")


def fetch(out: Path, update: bool = False) -> Path:
    """Make ``out/cache/guest-root`` match the lock; return the lock path."""
    cache = out / "cache"
    debs = cache / "debs"
    root = cache / "guest-root"
    lock_path = cache / LOCK_NAME
    cache.mkdir(parents=True, exist_ok=True)
    lock = None
    if lock_path.is_file() and not update:
        lock = json.loads(lock_path.read_text())
        if lock.get("format") != LOCK_FORMAT or lock.get("kernel_meta") != KERNEL_META:
            lock = None  # an older lock format, or a lock for another kernel series: resolve anew
    if lock is None:
        ensure_arch()
        lock = resolve(lock_path)
    download(lock, debs)
    verify_and_record(lock, debs)
    text = json.dumps(lock, indent=2, sort_keys=True) + "\n"
    if not lock_path.is_file() or lock_path.read_text() != text:
        lock_path.write_text(text)
    extract(lock, debs, root)
    # Drop .debs no longer named by the lock so the cache does not grow with every kernel ABI bump.
    keep = {p["file"] for p in lock["packages"].values()}
    for stale in debs.glob("*.deb"):
        if stale.name not in keep:
            stale.unlink()
    log(f"guest root ready: {root} (kernel {lock['kernel_package']})")
    return lock_path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.environ.get("COHESIX_OUT", "out"), help="output dir (default: out)")
    ap.add_argument("--update", action="store_true", help="re-resolve package versions")
    args = ap.parse_args(argv)
    fetch(Path(args.out), update=args.update)
    return 0


if __name__ == "__main__":
    sys.exit(main())
