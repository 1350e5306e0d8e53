"""Boot-to-ready benchmark (issue 2): median of N real QEMU boots, and the payload size.

"Ready" is wall-clock time from starting QEMU to the serial line ``Cohesix console ready`` (what a user
waits for). Each boot also records when the root task's banner appeared, which splits the time into
kernel + unpack + interpreter start (before the banner) and our own start-up (after it).
Results go to stdout and, with ``--report``, into docs/benchmarks.md between its bench:boot markers.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from qemu.harness import READY, QemuGuest  # noqa: E402
from qemu.launch import DEFAULT_INITRD, DEFAULT_KERNEL  # noqa: E402

START, END = "<!-- bench:boot:start -->", "<!-- bench:boot:end -->"
TARGET_READY_S, TARGET_PAYLOAD_MIB = 2.5, 3.0


def one_boot() -> tuple[float, float]:
    guest = QemuGuest(kernel=DEFAULT_KERNEL, initrd=DEFAULT_INITRD)
    started = time.monotonic()
    guest.start(wait_ready=False)
    try:
        guest.expect_exact("Cohesix boot: root-task online", timeout=90)
        banner = time.monotonic() - started
        guest.expect_exact(READY, timeout=90)
        return banner, time.monotonic() - started
    finally:
        guest.stop()


def render(banners: list[float], readies: list[float], payload: int) -> str:
    mib = payload / 1048576
    ready = statistics.median(readies)
    return "\n".join([
        START,
        f"Boot-to-ready, {len(readies)} boots (`doit bench_boot`, {os.cpu_count()} cores, TCG, "
        "`-cpu cortex-a57 -smp 1 -m 256`):",
        "",
        "| measure | median | min | max | target |",
        "|---|---|---|---|---|",
        f"| QEMU start → root-task banner | {statistics.median(banners):.2f} s | {min(banners):.2f} s | "
        f"{max(banners):.2f} s | — |",
        f"| QEMU start → `Cohesix console ready` | {ready:.2f} s | {min(readies):.2f} s | {max(readies):.2f} s "
        f"| ≤ {TARGET_READY_S} s ({'met' if ready <= TARGET_READY_S else 'not met'}) |",
        f"| payload `out/rootfs.cpio` (zstd) | {payload} bytes = {mib:.2f} MiB | | | ≤ {TARGET_PAYLOAD_MIB} MiB "
        f"({'met' if mib <= TARGET_PAYLOAD_MIB else 'not met'}); red line < 4 MiB |",
        END,
    ])


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
    parser.add_argument("--report", type=Path, default=None)
    args = parser.parse_args(argv)
    banners, readies = [], []
    for n in range(1, args.boots + 1):
        banner, ready = one_boot()
        banners.append(banner)
        readies.append(ready)
        print(f"boot {n}/{args.boots}: banner {banner:.2f} s, ready {ready:.2f} s", flush=True)
    block = render(banners, readies, Path(DEFAULT_INITRD).stat().st_size)
    print(block)
    if args.report:
        write_report(REPO / args.report if not args.report.is_absolute() else args.report, block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
