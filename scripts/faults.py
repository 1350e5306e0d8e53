"""`doit faults`: boot the guest and run the link-reset, RX-flood and corrupt-frame fault runs.

Builds a test image (9P listener on, qemu/faults/runs.py ``fault_ir_text``) into a temporary directory
with the shared fetch cache, boots it with the NIC tap, prints one summary line per run and exits 1 if
any run failed. ``--quick`` runs the bounded form CI runs (tests/qemu/test_faults.py).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from qemu.faults.runs import FULL, QUICK, FaultRig, build_image  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="faults", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the bounded CI form")
    parser.add_argument("--only", choices=("link-reset", "rx-flood", "corrupt-frames"), action="append",
                        help="run only these (repeatable)")
    parser.add_argument("--log", default=str(REPO / "out" / "test-logs" / "faults.log"),
                        help="serial log of the booted guest")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    with tempfile.TemporaryDirectory(prefix="cohesix-faults-") as work:
        print("faults: building the test image (9P listener on) ...", flush=True)
        image = build_image(Path(work))
        with FaultRig(image, plan, log_path=Path(args.log), say=lambda line: print(line, flush=True)) as rig:
            print(f"faults: guest up in {rig.guest.boot_seconds:.1f} s; serial log {args.log}", flush=True)
            runs = {"link-reset": rig.link_reset, "rx-flood": rig.rx_flood, "corrupt-frames": rig.corrupt_frames}
            results = [runs[name]() for name in (args.only or list(runs))]
    failed = [r.name for r in results if not r.ok]
    print(f"faults: {len(results) - len(failed)}/{len(results)} runs passed" + (f"; failed: {', '.join(failed)}"
                                                                             if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
