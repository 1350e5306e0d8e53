"""doit tasks for Cohesix (``doit list``). Setup of a fresh machine is ``toolchain/setup.sh``, not a task.

- ``guest``: fetch the pinned arm64 Debian pieces into ``out/cache`` (no network when already cached);
- ``build``: stage → ELF audit → cpio → zstd → ``out/rootfs.cpio`` + ``out/Image`` + manifest, then the
  size guard; up to date when no guest source, config, generated file or build script changed;
- ``size_guard``: SPEC §2.1 check of ``out/rootfs.cpio`` on its own.

Two ``doit build`` runs from the same inputs give a byte-identical ``out/rootfs.cpio``.
"""
from __future__ import annotations

import sys
from pathlib import Path


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


def task_fuzz():
    """Fuzz the 9P decoder (SECURE9P_FUZZ_ITERS, default 100000) and the console parsers."""
    import os

    iters = os.environ.get("SECURE9P_FUZZ_ITERS", "100000")
    return {
        "actions": [
            [sys.executable, "-m", "nine_door.fuzz", "--iterations", iters],
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/console",
                       "-k", "fuzz or property or hypothesis"],
        ],
        "uptodate": [False],
        "verbosity": 2,
    }


def task_test():
    """The whole suite: as-built guard, boot image, unit/property/fuzz, host mode, real QEMU boots."""
    return {
        "actions": [[sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"]],
        "task_dep": ["check_generated", "build", "fuzz"],
        "uptodate": [False],
        "verbosity": 2,
    }


def task_qemu():
    """Boot the image interactively: serial console on this terminal (Ctrl-A x quits)."""
    from doit.tools import Interactive

    return {
        "actions": [Interactive(["bash", str(ROOT / "scripts/qemu-run.sh"), "--kernel", str(OUT / "Image"),
                                 "--initrd", str(OUT / "rootfs.cpio")])],
        "task_dep": ["build"],
        "uptodate": [False],
        "verbosity": 2,
    }


def task_demo():
    """Build, boot under QEMU and attach as the queen with cohsh (runs tests/cli/demo.coh over TCP)."""
    return {
        "actions": [[sys.executable, "-m", "cohsh", "--transport", "qemu", "--qemu-kernel",
                     str(OUT / "Image"), "--qemu-initrd", str(OUT / "rootfs.cpio"),
                     "--script", "tests/cli/demo.coh"]],
        "task_dep": ["build"],
        "uptodate": [False],
        "verbosity": 2,
    }


def task_bench_boot():
    """Boot-to-ready median of 5 boots and payload size (the image and its zstd-/xz-only variants) → docs/benchmarks.md."""
    return {
        "actions": [[sys.executable, "bench/bench_boot.py", "--boots", "5",
                               "--report", "docs/benchmarks.md"]],
        "task_dep": ["build"],
        "uptodate": [False],
        "verbosity": 2,
    }


def task_bench():
    """NineDoor vs diod (same client, same run) and codec µs/message → docs/benchmarks.md."""
    return {
        "actions": [[sys.executable, "bench/bench_ninep.py", "--report", "docs/benchmarks.md"]],
        "uptodate": [False],
        "verbosity": 2,
    }
