"""Boot-to-ready benchmark (issues 2, 12): median of N real QEMU boots per payload, as seconds and as a
ratio to a floor image booted in the same run, and sizes.

"Ready" is wall-clock time from starting QEMU to the serial line ``Cohesix console ready`` (what a user
waits for). Each boot also records when the root task's banner appeared, which splits the time into
kernel + unpack + interpreter start (before the banner) and our own start-up (after it).

The floor (image/floor/): the same kernel, command line and QEMU machine, with an initramfs whose
static ``/init`` only prints one line and powers off. Its "ready" is QEMU start → that line, timed by
the same code (:func:`one_boot`). Absolute times differ ~30 % between machines of the same kind
(issue 12), so each payload's ready is also reported ÷ floor. Floor and payload boots alternate
(F P1 F P2 F P3 F P1 …): each payload boot's ratio is its ready ÷ the mean of the floor boots just
before and after it, and the table shows the median of those ratios, so a change of machine load
during the run moves both sides of each ratio alike.

Three payloads of the same staged tree are measured: ``out/rootfs.cpio`` as ``doit build`` makes it
(zstd, plus the largest ELF files in xz with the ARM64 BCJ filter, as many as the 3 MiB target needs),
one zstd member, and one plain xz member (``python3 -m image.build --compress zstd|xz``, built here
into ``out/bench-zstd`` and ``out/bench-xz``). The kernel decodes xz several times slower than zstd
under TCG, so the rows show the size/time trade-off measured, not guessed. Results go to stdout and,
with ``--report``, into docs/benchmarks.md between its bench:boot markers.
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

from image.floor import FLOOR_LINE  # noqa: E402
from image.floor.build import build_floor  # noqa: E402
from qemu.harness import READY, QemuGuest  # noqa: E402
from qemu.launch import DEFAULT_INITRD, DEFAULT_KERNEL, KERNEL_ARGS  # noqa: E402

START, END = "<!-- bench:boot:start -->", "<!-- bench:boot:end -->"
TARGET_READY_S, TARGET_PAYLOAD_MIB = 2.5, 3.0
BENCH_OUT = REPO / "out"
BANNER = "Cohesix boot: root-task online"
BOOT_TIMEOUT_S = 90


@dataclass
class Variant:
    """One payload under test and its measurements, one entry per boot."""

    name: str
    initrd: Path
    marker: str = READY
    banner_marker: str | None = BANNER
    banners: list[float] = field(default_factory=list)
    readies: list[float] = field(default_factory=list)
    #: ready ÷ the mean of the floor boots just before and after it
    ratios: list[float] = field(default_factory=list)

    @property
    def payload(self) -> int:
        return self.initrd.stat().st_size


def one_boot(initrd: Path, marker: str = READY, banner: str | None = BANNER) -> tuple[float | None, float]:
    """Boot ``initrd`` once; seconds from QEMU start to ``banner`` (if given) and to ``marker``."""
    guest = QemuGuest(kernel=DEFAULT_KERNEL, initrd=initrd)
    started = time.monotonic()
    guest.start(wait_ready=False)
    try:
        banner_s = None
        if banner is not None:
            guest.expect_exact(banner, timeout=BOOT_TIMEOUT_S)
            banner_s = time.monotonic() - started
        guest.expect_exact(marker, timeout=BOOT_TIMEOUT_S)
        return banner_s, time.monotonic() - started
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


def run_rounds(floor: Variant, variants: list[Variant], boots: int) -> None:
    """``boots`` rounds of every payload once, with a floor boot before the first and after each
    payload boot (F P1 F P2 F … across rounds), so each payload boot is bracketed by two floor boots.

    A payload boot's ratio is its ready ÷ the mean of the two floor boots around it: a change of
    machine load during the run then moves both sides of the ratio alike.
    """
    def floor_boot() -> float:
        _, ready = one_boot(floor.initrd, floor.marker, floor.banner_marker)
        floor.readies.append(ready)
        return ready

    before = floor_boot()
    for n in range(1, boots + 1):
        for v in variants:
            banner, ready = one_boot(v.initrd, v.marker, v.banner_marker)
            after = floor_boot()
            ratio = ready / ((before + after) / 2)
            v.banners.append(banner)
            v.readies.append(ready)
            v.ratios.append(ratio)
            print(f"boot {n}/{boots} {v.name}: banner {banner:.2f} s, ready {ready:.2f} s, "
                  f"{ratio:.2f}× floor (floor {before:.2f} s before, {after:.2f} s after)", flush=True)
            before = after


def _met(ok: bool) -> str:
    return "met" if ok else "not met"


def render(floor: Variant, variants: list[Variant]) -> str:
    boots = len(floor.readies)
    floor_ready = statistics.median(floor.readies)
    rows = [
        START,
        f"Boot-to-ready, {boots} boot{'s' if boots != 1 else ''} per payload, alternating with floor boots "
        f"({len(floor.readies)} in all; `doit bench_boot`, "
        f"{os.cpu_count()} cores, TCG, `-cpu cortex-a57 -smp 1 -m 256`, kernel command line `{KERNEL_ARGS}`). "
        "Floor: the same kernel, command line and machine with a static `/init` that prints "
        f"`{FLOOR_LINE}` and powers off (image/floor/); ready ÷ floor is the median over a payload's boots "
        "of its ready ÷ the mean of the floor boots just before and after it:",
        "",
        "| payload | size | QEMU start → banner (median) | QEMU start → `Cohesix console ready` (median, min–max) "
        "| ready ÷ floor (median, min–max) | ready ≤ 2.5 s | payload ≤ 3.0 MiB |",
        "|---|---|---|---|---|---|---|",
        f"| floor (`out/floor/rootfs.cpio`) | {floor.payload} bytes | – | {floor_ready:.2f} s "
        f"({min(floor.readies):.2f}–{max(floor.readies):.2f} s) to its line | 1.00× | – | – |",
    ]
    for v in variants:
        mib = v.payload / 1048576
        ready = statistics.median(v.readies)
        rows.append(
            f"| {v.name} | {v.payload} bytes = {mib:.2f} MiB | {statistics.median(v.banners):.2f} s "
            f"| {ready:.2f} s ({min(v.readies):.2f}–{max(v.readies):.2f} s) | {statistics.median(v.ratios):.2f}× "
            f"({min(v.ratios):.2f}–{max(v.ratios):.2f}) "
            f"| {_met(ready <= TARGET_READY_S)} | {_met(mib <= TARGET_PAYLOAD_MIB)} |")
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
    parser.add_argument("--boots", type=int, default=5,
                        help="boots per payload (a floor boot before the first and after each)")
    parser.add_argument("--only-default", action="store_true", help="measure only out/rootfs.cpio (and the floor)")
    parser.add_argument("--report", type=Path, default=None)
    args = parser.parse_args(argv)
    floor = Variant("floor", build_floor(), marker=FLOOR_LINE, banner_marker=None)
    variants = [Variant(f"`out/rootfs.cpio` (default: {describe_members(Path(DEFAULT_INITRD))})",
                        Path(DEFAULT_INITRD))]
    if not args.only_default:
        for method, what in (("zstd", "one zstd -19 member"), ("xz", "one plain xz member")):
            print(f"building the {method} variant into out/bench-{method} …", flush=True)
            variants.append(Variant(f"same tree, {what} (`--compress {method}`)", build_variant(method)))
    run_rounds(floor, variants, args.boots)
    block = render(floor, variants)
    print(block)
    if args.report:
        write_report(REPO / args.report if not args.report.is_absolute() else args.report, block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
