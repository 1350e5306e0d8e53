"""Build the boot payload: stage → ELF audit → newc cpio members → zstd/xz → ``out/rootfs.cpio`` (+ kernel).

Outputs (all under ``--out``, default ``out/``):

- ``rootfs.cpio``: the compressed payload given to QEMU as ``-initrd``; the kernel detects each
  member's compression by its magic bytes, so the name keeps the SPEC's ``.cpio``;
- ``Image``: the arm64 kernel decompressed from Debian's gzip'd ``vmlinuz`` (QEMU's ``-kernel`` boots a
  raw Image on every version; gzip support depends on the QEMU build);
- ``rootfs.manifest.json``: every entry (path, mode, size, sha256) plus the payload's size/sha256, the
  pinned Debian packages and what the staging step chose, so a size regression can be explained;
- then ``ci/size_guard.sh`` runs on the payload (SPEC §2.1, red line R7) and its verdict is the build's.

Compression (``--compress``, measured in docs/benchmarks.md; details in docs/build.md):

- ``zstd+xz`` (the default): the payload that meets both targets of issue 2 (≤ 3.0 MiB, ready
  ≤ 2.5 s). The kernel unpacks an initramfs that is a sequence of newc archives, each compressed on
  its own (Documentation/driver-api/early-userspace/buffer-format.rst), and the two compressors
  trade differently: zstd -19 decodes ~5x faster under TCG, xz is ~20 % smaller on machine code once
  its ARM64 BCJ filter (which the 6.12 kernel's decoder has) turns relative branch targets into
  absolute ones. So member 2 holds the largest ELF files in xz -- as few as it takes to bring the
  payload within :data:`PAYLOAD_TARGET` (today: only the interpreter binary) -- and member 1 holds
  everything else in zstd -19 (directories included, so they exist before member 2's files).
- ``zstd``: one newc archive, zstd -19: the quickest boot, a payload of ~3.3 MiB (under the 4 MiB
  red line, over the 3.0 MiB target).
- ``xz``: one archive, plain xz; kept for comparison (slowest boot).

xz members use CRC32, the only check the kernel's decoder takes. Python's ``lzma`` cannot encode the
ARM64 BCJ filter (it accepts only the filter IDs it knew in 3.11), so xz members are made by the
``xz`` command (xz-utils ≥ 5.4), which the setup installs; ``lzma`` decodes them fine.

Every compressor runs single-threaded with fixed parameters, so the payload is byte-for-byte
deterministic.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import lzma
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import zstandard

from . import cpio, elf_audit, stage

REPO = Path(__file__).resolve().parent.parent
ZSTD_LEVEL = 19
PAYLOAD_METHODS = ("zstd+xz", "zstd", "xz")
DEFAULT_METHOD = "zstd+xz"
#: Issue 2's payload target (the red line, 4 MiB, is enforced separately by ci/size_guard.sh).
PAYLOAD_TARGET = 3 * 1024 * 1024
#: xz options for every xz member: preset 9e, a dictionary larger than any member, and lc=0/lp=2/pb=2,
#: which model literals by 4-byte position as AArch64 instructions are laid out (-0.6 %).
XZ_LZMA2 = "preset=9e,dict=16MiB,lc=0,lp=2,pb=2"
ELF_MAGIC = b"\x7fELF"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
XZ_MAGIC = b"\xfd7zXZ\x00"
KERNEL_CMDLINE_FILE = Path(__file__).resolve().parent / "kernel_cmdline.txt"


def kernel_cmdline() -> str:
    """The one kernel command line shared by scripts/qemu-run.sh, the harness and the docs."""
    return KERNEL_CMDLINE_FILE.read_text().strip()


def log(msg: str) -> None:
    print(f"[image] {msg}", file=sys.stderr, flush=True)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write_if_changed(path: Path, data: bytes) -> None:
    """Atomic replace, skipped when identical (keeps mtimes stable for tools that look at them)."""
    if path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
        return
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def compress(raw: bytes, level: int = ZSTD_LEVEL, method: str = "zstd") -> bytes:
    """Compress one member: ``zstd``, ``xz`` or ``xz-arm64`` (xz with the ARM64 BCJ filter).

    Every method runs single-threaded with fixed parameters, so the output is deterministic.
    """
    if method == "zstd":
        cctx = zstandard.ZstdCompressor(level=level, threads=0, write_checksum=True, write_content_size=True)
        return cctx.compress(raw)
    if method in ("xz", "xz-arm64"):
        bcj = ["--arm64"] if method == "xz-arm64" else []
        cmd = ["xz", "--format=xz", "--check=crc32", "--threads=1", *bcj, f"--lzma2={XZ_LZMA2}", "--stdout"]
        try:
            return subprocess.run(cmd, input=raw, capture_output=True, check=True).stdout
        except FileNotFoundError:
            raise RuntimeError("the xz command (xz-utils >= 5.4) is needed for xz members; "
                               "run toolchain/setup.sh") from None
        except subprocess.CalledProcessError as exc:
            raise RuntimeError(f"xz failed: {exc.stderr.decode(errors='replace').strip()}") from None
    raise ValueError(f"unknown compression {method!r}")


@dataclass(frozen=True)
class PayloadMember:
    """One compressed newc archive of the payload, as the manifest reports it."""

    method: str
    entries: int
    raw_size: int
    size: int
    #: The files in this member, when the member was chosen file by file (the xz member).
    files: tuple[str, ...] = ()


def is_elf(entry: cpio.Entry) -> bool:
    return entry.kind == "file" and entry.data[:4] == ELF_MAGIC


def make_payload(entries: list[cpio.Entry], method: str = DEFAULT_METHOD, level: int = ZSTD_LEVEL,
                 target: int = PAYLOAD_TARGET, arm64_bcj: bool = True) -> tuple[bytes, list[PayloadMember]]:
    """The ``-initrd`` bytes for ``entries`` and what each member holds (see the module docstring).

    ``zstd+xz`` moves ELF files into the xz member largest first and stops as soon as the payload
    is within ``target``: every byte xz decodes costs boot time, so it decodes no more than the
    target needs. If even every ELF file in xz is over ``target``, that smallest form is returned
    (the size guard still holds the 4 MiB red line). ``arm64_bcj``: whether the kernel's xz decoder
    has the ARM64 BCJ filter (``CONFIG_XZ_DEC_ARM64``).
    """
    if method not in PAYLOAD_METHODS:
        raise ValueError(f"unknown payload method {method!r}")
    if method != "zstd+xz":
        return _assemble([(method, list(entries))], level)
    xz_method = "xz-arm64" if arm64_bcj else "xz"
    candidates = sorted((e for e in entries if is_elf(e)), key=lambda e: (-len(e.data), e.path))
    if not candidates:
        return _assemble([("zstd", list(entries))], level)
    for count in range(1, len(candidates) + 1):
        chosen = {e.path for e in candidates[:count]}
        payload, members = _assemble([("zstd", [e for e in entries if e.path not in chosen]),
                                      (xz_method, [e for e in entries if e.path in chosen])], level)
        if len(payload) <= target:
            break
        if count < len(candidates):
            log(f"  {len(payload)} bytes > target {target} with {count} file(s) in xz; "
                f"adding /{candidates[count].path}")
    members[1] = replace(members[1], files=tuple(sorted("/" + path for path in chosen)))
    return payload, members


def _assemble(groups: list[tuple[str, list[cpio.Entry]]], level: int) -> tuple[bytes, list[PayloadMember]]:
    """Write each group as a newc archive (inode numbers unique across them), compress the members
    concurrently (each compressor is single-threaded and releases the GIL) and join them."""
    raws, next_ino = [], 1
    for _, group in groups:
        raws.append(cpio.write_newc(group, first_ino=next_ino))
        next_ino += len(group)
    methods = [method for method, _ in groups]
    with ThreadPoolExecutor(max_workers=len(groups)) as pool:
        datas = list(pool.map(compress, raws, [level] * len(groups), methods))
    payload, members = b"", []
    for (member_method, group), raw, data in zip(groups, raws, datas):
        payload += b"\0" * (-len(payload) % 4) + data  # the kernel skips zero padding between members
        members.append(PayloadMember(member_method, len(group), len(raw), len(data)))
    return payload, members


def unpack_payload(payload: bytes) -> list[bytes]:
    """The newc archives inside a payload, decompressed the way the kernel walks them (tests, tools)."""
    archives = []
    rest = payload
    while rest:
        if rest[0] == 0:
            rest = rest.lstrip(b"\0")
        elif rest.startswith(ZSTD_MAGIC):
            decoder = zstandard.ZstdDecompressor().decompressobj()
            archives.append(decoder.decompress(rest))
            rest = decoder.unused_data
        elif rest.startswith(XZ_MAGIC):
            decoder = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
            archives.append(decoder.decompress(rest))
            rest = decoder.unused_data
        else:
            raise ValueError(f"payload member starts with {rest[:6]!r}: neither zstd, xz nor padding")
    return archives


def extract_kernel(guest_root: Path) -> tuple[str, bytes]:
    images = sorted((guest_root / "boot").glob("vmlinuz-*"))
    if len(images) != 1:
        raise RuntimeError(f"expected one vmlinuz under {guest_root / 'boot'}, found {images}")
    data = images[0].read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    if data[0x38:0x3C] != b"ARM\x64":
        raise RuntimeError(f"{images[0].name} is not an arm64 Image (no ARM\\x64 magic at 0x38)")
    return images[0].name, data


def kernel_has_xz_arm64(guest_root: Path) -> bool:
    """Whether the fetched kernel's xz decoder has the ARM64 BCJ filter (its /boot/config says so)."""
    configs = sorted((guest_root / "boot").glob("config-*"))
    return any("CONFIG_XZ_DEC_ARM64=y" in c.read_text().splitlines() for c in configs)


def size_guard(payload: Path) -> int:
    proc = subprocess.run(["sh", str(REPO / "ci/size_guard.sh"), str(payload)], text=True, capture_output=True)
    sys.stderr.write(proc.stdout + proc.stderr)
    return proc.returncode


def build(out: Path, init_source: str | None = None, level: int = ZSTD_LEVEL, method: str = DEFAULT_METHOD,
          ir: Path | None = None, cache: Path | None = None) -> dict:
    """Run the whole pipeline; return the manifest. Raises on any failed step.

    ``ir``: build for another IR file (tests): its generated bootstrap replaces the repo's in the
    image, so the guest runs with exactly that configuration. ``cache``: where the fetched guest
    pieces live (default ``<out>/cache``), so test images share one download.
    """
    out = Path(out)
    cache = Path(cache) if cache is not None else out / "cache"
    guest_root = cache / "guest-root"
    lock_path = cache / "guest-lock.json"
    if not (guest_root / ".cohesix-lock-sha256").is_file():
        raise SystemExit(f"{guest_root} is missing: run toolchain/setup.sh (or toolchain/guest_fetch.py) first")
    t0 = time.monotonic()

    log("staging the guest tree")
    groups = kernel_module_groups(ir or REPO / "configs" / "root_task.toml")
    extra, report = stage.stage(REPO, guest_root, out / "stage", init_source=init_source, kernel_groups=groups)
    if ir is not None:
        _overlay_bootstrap(Path(ir), out / "stage")
    t1 = time.monotonic()

    log("auditing ELF files")
    infos = elf_audit.audit(out / "stage")
    log(f"ELF audit OK: {len(infos)} ELF files, all EM_AARCH64, all DT_NEEDED present")

    entries = cpio.entries_from_tree(out / "stage") + extra
    t2 = time.monotonic()
    log(f"cpio: {len(entries)} entries; compressing ({method})")

    payload, members = make_payload(entries, method, level, arm64_bcj=kernel_has_xz_arm64(guest_root))
    t3 = time.monotonic()
    for m in members:
        log(f"  member newc+{m.method}: {m.entries} entries, {m.raw_size} -> {m.size} bytes "
            f"({m.size / m.raw_size:.1%})")
    log(f"payload: {len(payload)} bytes ({len(payload) / 1048576:.2f} MiB)")
    _write_if_changed(out / "rootfs.cpio", payload)

    kname, kernel = extract_kernel(guest_root)
    _write_if_changed(out / "Image", kernel)
    log(f"kernel: {kname} -> Image ({len(kernel)} bytes)")

    manifest = {
        "payload": {"path": "rootfs.cpio", "format": " + ".join(f"newc+{m.method}" for m in members),
                    "zstd_level": level, "xz_lzma2": XZ_LZMA2, "size": len(payload), "sha256": _sha256(payload),
                    "limit": 4194304, "target": PAYLOAD_TARGET,
                    "members": [{"format": f"newc+{m.method}", "entries": m.entries, "raw_size": m.raw_size,
                                 "size": m.size} | ({"files": list(m.files)} if m.files else {})
                                for m in members]},
        "kernel": {"path": "Image", "source": kname, "size": len(kernel), "sha256": _sha256(kernel),
                   "cmdline": kernel_cmdline()},
        "guest_lock": json.loads(lock_path.read_text()) if lock_path.is_file() else None,
        "staged": {
            "stdlib_zip_modules": report.stdlib_modules,
            "lib_dynload": report.dynload_modules,
            "builtin_modules_used": report.builtin_modules,
            "libraries": report.libraries,
            "kernel_modules": report.kernel_modules,
            "unwind_tables_blanked": report.unwind_tables_blanked,
            "third_party": report.third_party,
            "warnings": report.warnings,
        },
        "entries": [
            {"path": "/" + e.path, "mode": oct(e.mode)[2:].rjust(6, "0"), "size": len(e.data),
             "sha256": _sha256(e.data)} | ({"rdev": list(e.rdev)} if e.kind in ("chr", "blk") else {})
            | ({"target": e.data.decode()} if e.kind == "symlink" else {})
            for e in sorted(entries, key=lambda e: e.path.encode())
        ],
    }
    _write_if_changed(out / "rootfs.manifest.json", (json.dumps(manifest, indent=1) + "\n").encode())
    log(f"timings: stage {t1 - t0:.1f}s, audit+cpio {t2 - t1:.1f}s, compress {t3 - t2:.1f}s, "
        f"total {time.monotonic() - t0:.1f}s")

    rc = size_guard(out / "rootfs.cpio")
    if rc != 0:
        raise SystemExit(f"size guard failed (exit {rc})")
    return manifest


def kernel_module_groups(ir: Path) -> tuple[str, ...]:
    """Kernel module groups the IR needs: always the NIC; the v9fs client only with the 9P listener.

    The in-guest v9fs client (9p, 9pnet, netfs, fscache: ~650 KB of modules) can only mount NineDoor
    through the TCP listener, so an image whose IR keeps the listener off does not carry it.
    """
    from coh_rtc import compile_runtime_ir  # refuses features this build does not implement

    listener = compile_runtime_ir(ir).resolved["secure9p"]["tcp_listener"]
    return ("net", "9p") if listener["enable"] else ("net",)


def _overlay_bootstrap(ir: Path, stage_dir: Path) -> None:
    """Compile ``ir`` with coh-rtc and put its bootstrap module into the staged guest code."""
    import tempfile

    from coh_rtc import compile_runtime_ir

    from image import pycompile

    source = compile_runtime_ir(ir).outputs["root_task/generated/bootstrap.py"]
    target = stage_dir / "usr/lib/cohesix/root_task/generated/bootstrap.pyc"
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "bootstrap.py"
        src.write_bytes(source)
        (pyc,) = pycompile.compile_many([(str(src), "/usr/lib/cohesix/root_task/generated/bootstrap.py")])
    target.write_bytes(pyc)
    log(f"bootstrap compiled from {ir.name} (test IR)")


def main(argv: list[str] | None = None) -> int:
    from coh_rtc import IRError

    ap = argparse.ArgumentParser(prog="python3 -m image.build", description="Build out/rootfs.cpio and out/Image")
    ap.add_argument("--out", default=os.environ.get("COHESIX_OUT", str(REPO / "out")))
    ap.add_argument("--init", type=Path, help="use this file as /init instead of the root-task launcher "
                                              "(for experiments; the result is not the product image)")
    ap.add_argument("--level", type=int, default=ZSTD_LEVEL, help=f"zstd level (default {ZSTD_LEVEL})")
    ap.add_argument("--compress", choices=PAYLOAD_METHODS, default=DEFAULT_METHOD,
                    help="payload compression; zstd+xz = the largest ELF files in xz (as many as the "
                         f"{PAYLOAD_TARGET // 1048576} MiB target needs), the rest zstd (default {DEFAULT_METHOD})")
    ap.add_argument("--ir", type=Path, help="build for this IR file instead of the repo's (test images)")
    ap.add_argument("--cache", type=Path, help="fetched guest pieces (default: <out>/cache)")
    args = ap.parse_args(argv)
    try:
        build(Path(args.out), args.init.read_text() if args.init else None, args.level, args.compress,
              ir=args.ir, cache=args.cache)
    except elf_audit.ElfAuditError as exc:
        print(exc, file=sys.stderr)
        return 1
    except IRError as exc:  # located diagnostics, incl. "<key>: not implemented by this build"
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
