"""Boot-to-ready benchmark (issue 2): median of N real QEMU boots per payload variant, and sizes.

"Ready" is wall-clock time from starting QEMU to the serial line ``Cohesix console ready`` (what a user
waits for). Each boot also records when the root task's banner appeared, which splits the time into
kernel + unpack + interpreter start (before the banner) and our own start-up (after it).

Three payloads of the same staged tree are measured in the same run, boots alternating so background
load hits all alike: ``out/rootfs.cpio`` as ``doit build`` makes it (zstd, plus the largest ELF files
in xz with the ARM64 BCJ filter, as many as the 3 MiB target needs), one zstd member, and one plain
xz member (``python3 -m image.build --compress zstd|xz``, built here into ``out/bench-zstd`` and
``out/bench-xz``). The kernel decodes xz several times slower than zstd under TCG, so the rows show
the size/time trade-off measured, not guessed. Results go to stdout and, with ``--report``, into
docs/benchmarks.md between its bench:boot markers.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from qemu.harness import READY, QemuGuest  # noqa: E402
from qemu.launch import DEFAULT_INITRD, DEFAULT_KERNEL, KERNEL_ARGS  # noqa: E402

START, END = "<!-- bench:boot:start -->", "<!-- bench:boot:end -->"
TARGET_READY_S, TARGET_PAYLOAD_MIB = 2.5, 3.0
BENCH_OUT = REPO / "out"


@dataclass
class Variant:
    name: str
    initrd: Path
    banners: list[float] = field(default_factory=list)
    readies: list[float] = field(default_factory=list)

    @property
    def payload(self) -> int:
        return self.initrd.stat().st_size


def one_boot(initrd: Path) -> tuple[float, float]:
    guest = QemuGuest(kernel=DEFAULT_KERNEL, initrd=initrd)
    started = time.monotonic()
    guest.start(wait_ready=False)
    try:
        guest.expect_exact("Cohesix boot: root-task online", timeout=90)
        banner = time.monotonic() - started
        guest.expect_exact(READY, timeout=90)
        return banner, time.monotonic() - started
    finally:
        guest.stop()


def build_variant(method: str) -> Path:
    """The same tree as ``out/rootfs.cpio`` compressed with ``method``, in out/bench-<method>."""
    from image import build as image

    out = BENCH_OUT / f"bench-{method}"
    image.build(out, method=method, cache=REPO / "out" / "cache")
    return out / "rootfs.cpio"


def describe_members(initrd: Path) -> str:
    """What each member of a built payload holds, from the manifest written beside it."""
    manifest = json.loads(initrd.with_name("rootfs.manifest.json").read_text())
    parts = []
    for member in manifest["payload"]["members"]:
        method = member["format"].removeprefix("newc+")
        files = member.get("files")
        held = ", ".join(f"`{Path(f).name}`" for f in files) if files else "everything else"
        parts.append(f"{held} in {method}")
    return "; ".join(parts)


def _met(ok: bool) -> str:
    return "met" if ok else "not met"


def render(variants: list[Variant]) -> str:
    boots = len(variants[0].readies)
    rows = [
        START,
        f"Boot-to-ready, {boots} boots per payload, alternating (`doit bench_boot`, {os.cpu_count()} cores, "
        "TCG, `-cpu cortex-a57 -smp 1 -m 256`, kernel command line `" + KERNEL_ARGS + "`):",
        "",
        "| payload | size | QEMU start → banner (median) | QEMU start → `Cohesix console ready` (median, min–max) "
        "| ready ≤ 2.5 s | payload ≤ 3.0 MiB |",
        "|---|---|---|---|---|---|",
    ]
    for v in variants:
        mib = v.payload / 1048576
        ready = statistics.median(v.readies)
        rows.append(
            f"| {v.name} | {v.payload} bytes = {mib:.2f} MiB | {statistics.median(v.banners):.2f} s "
            f"| {ready:.2f} s ({min(v.readies):.2f}–{max(v.readies):.2f} s) | {_met(ready <= TARGET_READY_S)} "
            f"| {_met(mib <= TARGET_PAYLOAD_MIB)} |")
    rows += ["", "Red line: payload < 4 MiB (4,194,304 bytes), enforced by `ci/size_guard.sh` on every build.",
             END]
    return "\n".join(rows)


def write_report(path: Path, block: str) -> None:
    text = path.read_text() if path.exists() else "# Benchmarks\n\n"
    if START in text and END in text:
        head, rest = text.split(START, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n## Boot\n\n" + block + "\n"
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boots", type=int, default=5)
    parser.add_argument("--only-default", action="store_true", help="measure only out/rootfs.cpio")
    parser.add_argument("--report", type=Path, default=None)
    args = parser.parse_args(argv)
    variants = [Variant(f"`out/rootfs.cpio` (default: {describe_members(Path(DEFAULT_INITRD))})",
                        Path(DEFAULT_INITRD))]
    if not args.only_default:
        for method, what in (("zstd", "one zstd -19 member"), ("xz", "one plain xz member")):
            print(f"building the {method} variant into out/bench-{method} …", flush=True)
            variants.append(Variant(f"same tree, {what} (`--compress {method}`)", build_variant(method)))
    for n in range(1, args.boots + 1):
        for v in variants:
            banner, ready = one_boot(v.initrd)
            v.banners.append(banner)
            v.readies.append(ready)
            print(f"boot {n}/{args.boots} {v.name}: banner {banner:.2f} s, ready {ready:.2f} s", flush=True)
    block = render(variants)
    print(block)
    if args.report:
        write_report(REPO / args.report if not args.report.is_absolute() else args.report, block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
