"""doit tasks for Cohesix (``doit list``). Setup of a fresh machine is ``toolchain/setup.sh``, not a task.

- ``guest``: fetch the pinned arm64 Debian pieces into ``out/cache`` (no network when already cached);
- ``build``: stage → ELF audit → cpio → zstd → ``out/rootfs.cpio`` + ``out/Image`` + manifest, then the
  size guard; up to date when no guest source, config, generated file or build script changed;
- ``size_guard``: SPEC §2.1 check of ``out/rootfs.cpio`` on its own.

Quick variants (``--quick``) of ``fuzz``, ``bench`` and ``bench_boot`` run the same code with small
counts (the front-door tests in tests/frontdoor run every README task through doit that way); a quick
bench never writes ``docs/benchmarks.md`` (``--report PATH`` says where, default out/quick-benchmarks.md).

Two ``doit build`` runs from the same inputs give a byte-identical ``out/rootfs.cpio``.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from doit.action import CmdAction
from doit.tools import Interactive


ROOT = Path(__file__).resolve().parent
OUT = ROOT / "out"
GUEST_PACKAGES = ("root_task", "nine_door", "workers")

DOIT_CONFIG = {"default_tasks": ["build"], "verbosity": 2}


def _files(*patterns: str) -> list[str]:
    found: set[Path] = set()
    for pattern in patterns:
        found.update(p for p in ROOT.glob(pattern) if p.is_file() and "__pycache__" not in p.parts)
    return sorted(str(p) for p in found)


def task_guest():
    """Fetch the arm64 kernel and Python runtime (pinned in out/cache/guest-lock.json)."""
    stamp = OUT / "cache/guest-root/.cohesix-lock-sha256"
    return {
        "actions": [[sys.executable, str(ROOT / "toolchain/guest_fetch.py"), "--out", str(OUT)]],
        "file_dep": [str(ROOT / "toolchain/guest_fetch.py")],
        "targets": [str(OUT / "cache/guest-lock.json"), str(stamp)],
        "uptodate": [lambda: stamp.is_file()],
        "clean": [],  # the cache is expensive to refill; remove out/cache by hand if needed
        "verbosity": 2,
    }


def task_build():
    """Build out/rootfs.cpio (zstd newc), out/Image and out/rootfs.manifest.json; runs the size guard."""
    deps = _files(*(f"{p}/**/*" for p in GUEST_PACKAGES), "configs/root_task.toml", "image/**/*.py",
                  "image/kernel_cmdline.txt", "ci/size_guard.sh")
    deps.append(str(OUT / "cache/guest-lock.json"))
    return {
        "actions": [[sys.executable, "-m", "image.build", "--out", str(OUT)]],
        "task_dep": ["guest"],
        "file_dep": deps,
        "targets": [str(OUT / "rootfs.cpio"), str(OUT / "Image"), str(OUT / "rootfs.manifest.json")],
        "clean": True,
        "verbosity": 2,
    }


def task_size_guard():
    """Check out/rootfs.cpio against the 4 MiB red line (SPEC §2.1, R7)."""
    return {
        "actions": [["sh", str(ROOT / "ci/size_guard.sh"), str(OUT / "rootfs.cpio")]],
        "file_dep": [str(OUT / "rootfs.cpio")],
        "uptodate": [False],
        "verbosity": 2,
    }


# -- IR, tests, fuzzing, benchmarks, interactive boot ------------------------------------------------
IR = "configs/root_task.toml"
RTC_ARGS = [IR, "--out", "root_task/generated", "--manifest", "out/manifests/root_task_resolved.json",
            "--cli-script", "tests/cli/boot_v0.coh"]


def task_regen():
    """Run coh-rtc on the repo IR: generated bootstrap, manifest, scripts and doc snippets."""
    return {
        "actions": [[sys.executable, "-m", "coh_rtc", *RTC_ARGS]],
        "file_dep": [str(ROOT / IR), *_files("coh_rtc/**/*.py", "coh_rtc/templates/*.j2")],
        "targets": [str(ROOT / "root_task/generated/bootstrap.py"), str(OUT / "manifests/root_task_resolved.json")],
        "verbosity": 2,
    }


def task_check_generated():
    """As-built guard: fail (naming the file) if a generated file or doc snippet differs from the IR."""
    return {
        "actions": [[sys.executable, "-m", "coh_rtc", *RTC_ARGS, "--check"]],
        "uptodate": [False],
        "verbosity": 2,
    }


QUICK = {"name": "quick", "long": "quick", "type": bool, "default": False,
         "help": "small counts, same code path (what tests/frontdoor runs); benches write no docs/"}
REPORT = {"name": "report", "long": "report", "type": str, "default": "",
          "help": "benchmark report file (default docs/benchmarks.md; with --quick out/quick-benchmarks.md)"}
QUICK_FUZZ_ITERS = "2000"


def _report_path(quick: bool, report: str) -> str:
    """Where a bench writes: never docs/ for a quick run unless asked for by name."""
    if report:
        return str(Path(report).resolve())
    return str(OUT / "quick-benchmarks.md") if quick else str(ROOT / "docs/benchmarks.md")


def bench_action(script: str, full_args: tuple[str, ...] = (), quick_args: tuple[str, ...] = ()) -> CmdAction:
    """A benchmark command honouring the task's ``--quick`` and ``--report`` (add further benches with it)."""
    def command(quick: bool, report: str) -> list[str]:
        return [sys.executable, str(ROOT / script), *(quick_args if quick else full_args),
                "--report", _report_path(quick, report)]

    return CmdAction(command, shell=False)


def task_fuzz():
    """Fuzz the 9P decoder (SECURE9P_FUZZ_ITERS, default 100000), the CBOR Frame v1 decoder
    (FRAME_V1_FUZZ_ITERS, default 100000), the console parsers and the CAS manifest decoder."""
    def decoder(quick: bool) -> list[str]:
        iters = os.environ.get("SECURE9P_FUZZ_ITERS") or (QUICK_FUZZ_ITERS if quick else "100000")
        return [sys.executable, "-m", "nine_door.fuzz", "--iterations", iters]

    def frame_decoder(quick: bool) -> list[str]:
        iters = os.environ.get("FRAME_V1_FUZZ_ITERS") or (QUICK_FUZZ_ITERS if quick else "100000")
        return [sys.executable, "-m", "nine_door.frame_fuzz", "--iterations", iters]

    return {
        "actions": [
            CmdAction(decoder, shell=False),
            CmdAction(frame_decoder, shell=False),
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/console",
                       "-k", "fuzz or property or hypothesis"],
            # the CAS manifest decoder (nine_door/cas/manifest.py): random and mutated manifests
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/nine_door/test_cas_manifest.py",
             "-k", "random or mutated or corpus"],
        ],
        "params": [QUICK],
        "uptodate": [False],
        "verbosity": 2,
    }


def task_test():
    """The whole suite: as-built guard, boot image, unit/property/fuzz, host mode, real QEMU boots."""
    return {
        # COHESIX_NO_SKIP=1: a skipped QEMU/v9fs/p9fs/diod test fails the run (tests/conftest.py).
        "actions": [CmdAction([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
                              env={**os.environ, "COHESIX_NO_SKIP": "1"}, shell=False)],
        "task_dep": ["check_generated", "build", "fuzz"],
        "uptodate": [False],
        "verbosity": 2,
    }


def qemu_run_command(pcap: str = "", console_port: int = 31337, ninep_port: int = 5640) -> list[str]:
    """``doit qemu``'s command: scripts/qemu-run.sh on the build outputs, the options passed through.

    A list run without a shell: doit's ``Interactive`` defaults to ``shell=True``, and a list given to a
    shell runs only its first word (``bash`` with no script — a root shell prompt instead of a boot).
    """
    cmd = ["bash", str(ROOT / "scripts/qemu-run.sh"), "--kernel", str(OUT / "Image"),
           "--initrd", str(OUT / "rootfs.cpio"), "--console-port", str(console_port),
           "--9p-port", str(ninep_port)]
    if pcap:
        cmd += ["--pcap", str(Path(pcap).resolve())]
    return cmd


def task_qemu():
    """Boot the image interactively: serial console on this terminal (Ctrl-A x quits)."""
    return {
        "actions": [Interactive(qemu_run_command, shell=False)],
        "params": [{"name": "pcap", "long": "pcap", "type": str, "default": "",
                    "help": "record every frame on the guest NIC into this pcap file (QEMU filter-dump)"},
                   {"name": "console_port", "long": "console-port", "type": int, "default": 31337,
                    "help": "host port forwarded to the guest's TCP console"},
                   {"name": "ninep_port", "long": "9p-port", "type": int, "default": 5640,
                    "help": "host port forwarded to the guest's 9P listener (when the IR enables it)"}],
        "task_dep": ["build"],
        "uptodate": [False],
        "verbosity": 2,
    }


def task_demo():
    """Build, boot under QEMU and attach as the queen with cohsh (runs tests/cli/demo.coh over TCP)."""
    return {
        "actions": [[sys.executable, "-m", "cohsh", "--transport", "qemu", "--qemu-kernel",
                     str(OUT / "Image"), "--qemu-initrd", str(OUT / "rootfs.cpio"),
                     "--script", str(ROOT / "tests/cli/demo.coh")]],
        "task_dep": ["build"],
        "uptodate": [False],
        "verbosity": 2,
    }


def task_bench_boot():
    """Boot-to-ready median of 5 boots and payload size (the image and its zstd-/xz-only variants) → docs/benchmarks.md.

    ``--quick``: one boot of the default image only; ``--report PATH``: write there instead.
    """
    return {
        "actions": [bench_action("bench/bench_boot.py", full_args=("--boots", "5"),
                                 quick_args=("--boots", "1", "--only-default"))],
        "params": [QUICK, REPORT],
        "task_dep": ["build"],
        "uptodate": [False],
        "verbosity": 2,
    }


def task_mutants():
    """Apply each planted bug of scripts/mutants.py to a scratch copy and run the tests meant to catch
    it; reports caught / NOT CAUGHT (by hand, not CI: about 4 minutes). ``--only NAME[,NAME]``."""
    def command(only: str) -> list[str]:
        return [sys.executable, str(ROOT / "scripts/mutants.py"), *(["--only", only] if only else [])]

    return {
        "actions": [CmdAction(command, shell=False)],
        "params": [{"name": "only", "long": "only", "type": str, "default": "",
                    "help": "comma-separated mutation names (scripts/mutants.py --list)"}],
        "uptodate": [False],
        "verbosity": 2,
    }


def task_faults():
    """Boot a guest with the 9P listener on and run the link-reset, RX-flood and corrupt-frame fault runs
    while 9P and console traffic flow; one summary line per run (qemu/faults). ``--quick``: the bounded
    form CI runs (tests/qemu/test_faults.py)."""
    def command(quick: bool) -> list[str]:
        return [sys.executable, str(ROOT / "scripts/faults.py"), *(["--quick"] if quick else [])]

    return {
        "actions": [CmdAction(command, shell=False)],
        "params": [QUICK],
        "task_dep": ["guest"],
        "uptodate": [False],
        "verbosity": 2,
    }


def task_bench_fairness():
    """Console PING median/p95 while 0, 8 and 64 9P connections pipeline 64 KiB bursts → docs/benchmarks.md.

    ``--quick``: 1 s per load, 10 pings, loads 0 and 8; ``--report PATH``: write there instead.
    """
    return {
        "actions": [bench_action("bench/bench_fairness.py", quick_args=("--quick",))],
        "params": [QUICK, REPORT],
        "uptodate": [False],
        "verbosity": 2,
    }


def task_bench():
    """NineDoor vs diod vs a do-nothing Python 9P floor (same client, same run; sessions plot), codec
    µs/message, telemetry rings (ring vs diod appends, ingest latency under 64 workers, memory per idle
    ring), cohsh pools (vs one by one, vs p9fs), ``cohsh hive`` (update latency vs a 9P poll, CPU with
    1 024 workers), GPU jobs (mock vs bridge round trip, reference matmul vs numpy), CAS push/fetch (vs
    copying to/from diod) and 8 KiB read throughput, and costs against live workers → docs/benchmarks.md,
    with the plots in docs/plots/ (docs/performance.md explains them).

    ``--quick``: short cells, one run; ``--report PATH``: write there instead. Further benches: ``bench_action``.
    """
    return {
        "actions": [bench_action("bench/bench_ninep.py", quick_args=("--quick",)),
                    bench_action("bench/bench_telemetry.py", quick_args=("--quick",)),
                    bench_action("bench/bench_pool.py", quick_args=("--quick",)),
                    bench_action("bench/bench_hive.py", quick_args=("--quick",)),
                    bench_action("bench/bench_gpu.py", quick_args=("--quick",)),
                    bench_action("bench/bench_cas.py", quick_args=("--quick",)),
                    bench_action("bench/bench_shards.py", quick_args=("--quick",))],
        "params": [QUICK, REPORT],
        "uptodate": [False],
        "verbosity": 2,
    }
