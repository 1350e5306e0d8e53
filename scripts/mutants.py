#!/usr/bin/env python3
"""Mutation check of the test suite (issue 18 acceptance): can a plausible bug hide behind a green run?

Each mutation below is one exact snippet of the tree replaced by a plausible bug. For each, this script
copies the repository into a temporary directory, applies the mutation there (never in the checkout),
runs the tests meant to see that bug inside the copy, and reports:

- ``caught``      the tests failed (pytest exit 1);
- ``NOT CAUGHT``  the tests passed -- skips included: a skip never catches anything;
- ``TIMEOUT``     the run exceeded the mutation's time limit (counted as not caught);
- ``ERROR``       pytest could not run them (collection error, unknown test id, ...); or they failed
                  but the output lacks the mutation's ``evidence`` (a failure for another reason);
                  or with ``--baseline`` the unmutated copy already failed, so a failure proves nothing.

Exit status 0 only when every selected mutation was caught. Run by hand or by ``doit mutants``, not by
CI (a full run boots QEMU guests and builds images: tens of minutes).

Why a copy of the tree and not an edit in place: the QEMU tests rebuild ``out/`` from the tree, the
front-door tests run doit in the repository, and an interrupted run must never leave a bug behind.
The copy holds the files ``git ls-files`` lists (tracked, plus untracked ones git does not ignore);
``.venv`` is a symlink to the checkout's, ``out/Image``, ``out/rootfs.cpio`` and the manifest are copied
(so a rebuild in the copy cannot touch the checkout's image) and the fetched guest pieces in
``out/cache`` (only read) are symlinks. The venv holds this project as an editable install, which would import
the checkout's packages; ``PYTHONPATH=<copy>`` puts the copy's first, and every run checks that it did.
``CI`` and ``COHESIX_NO_SKIP`` are removed from the environment, so a skip stays a skip and cannot pass
for a catch.

A snippet must occur exactly once in its file, else the script stops before running anything and names
the mutation: the code moved, and the mutation must be updated here rather than silently test nothing.

Usage::

    python scripts/mutants.py                 # every mutation
    python scripts/mutants.py --list          # names, files, tests; whether each snippet still applies
    python scripts/mutants.py --only NAME ... # some of them (repeatable, or comma-separated)
    python scripts/mutants.py --baseline      # also run each mutation's tests unmutated first
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# The out/ files a QEMU test boots; copied, never linked (the copy may rebuild them).
IMAGE_FILES = ("Image", "rootfs.cpio", "rootfs.manifest.json")
# Packages whose import must come from the copy (checked in every copy before its tests run).
PACKAGES = ("root_task", "nine_door", "workers", "cohsh", "coh_rtc", "image", "qemu", "tests")
LOG_DIR = REPO / "out" / "mutants"


@dataclass(frozen=True)
class Mutation:
    name: str
    path: str                  # relative to the repository root
    original: str              # must occur exactly once in ``path``
    replacement: str
    tests: tuple[str, ...]     # pytest node ids or paths, relative to the repository root
    why: str                   # the bug it plants, and which test is meant to see it
    timeout_s: int = 600
    # A regular expression the failing run's output must contain for the failure to count as this
    # mutation's: a failure for some other reason (a broken fixture, a build that crashed) is ERROR.
    evidence: str | None = None


MUTATIONS: tuple[Mutation, ...] = (
    # -- the six of issue 18 ---------------------------------------------------------------------------
    Mutation(
        name="host-start-raises",
        path="root_task/host.py",
        original="    ir = Path(ir_path)\n",   # the first line of start_in_process
        replacement='    raise RuntimeError("mutant: host mode does not start")\n',
        tests=("tests/cohsh/test_cohsh_regression_pack.py",),
        why="issue 18 #1: the in-process system cannot start; the mock pack must fail, not skip",
        timeout_s=300,
        evidence=r"not start",
    ),
    Mutation(
        name="stage-set-order",
        path="image/stage.py",
        original="    report.builtin_modules = sorted(set(report.builtin_modules))\n",
        replacement="    report.builtin_modules = list(set(report.builtin_modules))\n",
        tests=("tests/image/test_image.py::test_two_builds_are_byte_identical_and_complete",),
        why="issue 18 #2: image manifest order from a set (hash seed); two builds with PYTHONHASHSEED 1/2 differ",
        timeout_s=900,
        evidence=r"tests/image/test_image\.py:\d+: AssertionError",
    ),
    Mutation(
        name="qemu-transport-wrong-port",
        path="cohsh/transport_qemu.py",
        original='        self._tcp = tcp_connector("127.0.0.1", int(guest.console_port))\n',
        replacement='        self._tcp = tcp_connector("127.0.0.1", int(guest.console_port) + 1)\n',
        tests=("tests/frontdoor/test_doit_tasks.py::test_doit_demo_boots_attaches_and_runs_the_demo_script",),
        why="issue 18 #3: cohsh --transport qemu connects to the wrong port; `doit demo` on a real guest must fail",
        timeout_s=900,
        evidence=r"Connection refused",
    ),
    Mutation(
        name="guest-reply-without-rebuild",
        path="root_task/console/session.py",
        original='acks.ok("PING", "reply=pong")',
        replacement='acks.ok("PING", "reply=mutant")',
        tests=("tests/qemu/test_boot.py::test_boot_transcript_ping_and_clean_poweroff",),
        why="issue 18 #4: a guest module changed after the image was built; the QEMU session must boot the "
            "new code (rebuild), so the ping transcript test fails",
        timeout_s=900,
        evidence=r"reply=mutant",
    ),
    Mutation(
        name="fuzz-never-counts-failures",
        path="nine_door/fuzz.py",
        original="            failures += 1\n",
        replacement="            failures += 0\n",
        tests=("tests/nine_door/test_codec_fuzz.py",),
        why="issue 18 #5: the fuzzer's failures= is a constant again; the fuzz test must fail",
        timeout_s=600,
        evidence=r"failures",
    ),
    Mutation(
        name="tick-ms-ignored",
        path="root_task/config.py",
        original='        return self.resolved["system"]["tick_ms"] / 1000.0\n',
        replacement="        return 5 / 1000.0\n",
        tests=("tests/root_task/test_host_mode.py::test_the_running_pump_ticks_with_the_irs_tick_ms",
               "tests/root_task/test_host_mode.py::test_host_mode_runs_with_the_values_of_its_ir"),
        why="issue 18 #6: the runtime ticks every 5 ms whatever system.tick_ms says; the host-mode IR-values "
            "tests (tick_ms 9) must observe the tick rate",
        timeout_s=300,
        evidence=r"0\.005",
    ),
    # -- issue 18 #5, the bug class the fuzz budget was sized for ----------------------------------
    Mutation(
        name="dirent-truncation-guard",
        path="nine_door/codec.py",
        original='        if off + _DIRENT_FIXED.size > len(data):\n'
                 '            raise DecodeError("truncated directory entry")\n',
        replacement="",
        tests=("tests/nine_door/test_codec_fuzz.py::test_the_per_commit_budget_finds_no_failures_with_the_spec_seed",),
        why="issue 18 #5: decode_dirents without its truncated-entry guard (struct.error escapes); the "
            "per-commit fuzz budget must find it",
        timeout_s=600,
        evidence=r"decode_dirents raised",
    ),
    # -- three of our own, in the new code of this batch -------------------------------------------------
    Mutation(
        name="features-table-ignored",
        path="nine_door/features.py",
        original="        if value not in honoured:\n",
        replacement="        if False:\n",
        tests=("tests/coh_rtc/test_rtc_runtime.py",
               "tests/root_task/test_host_mode.py::test_host_mode_refuses_an_unimplemented_feature_naming_its_line"),
        why="issue 12: an IR value this build does not implement boots and is silently ignored",
        timeout_s=300,
        evidence=r"DID NOT RAISE|not implemented by this build",
    ),
    Mutation(
        name="secret-env-unresolved",
        path="coh_rtc/secrets.py",
        original="        return SecretValue(environ[name])\n",
        replacement="        return SecretValue(value)\n",
        tests=("tests/coh_rtc/test_rtc_runtime.py",
               "tests/root_task/test_host_mode.py::test_referenced_secrets_boot_without_a_warning_and_authenticate_by_hash"),
        why="issue 12: an env:NAME secret is used as the literal text 'env:NAME' instead of the variable's value",
        timeout_s=300,
        evidence=r"env:COHESIX_TEST",
    ),
    Mutation(
        name="doit-qemu-through-shell",
        path="dodo.py",
        original='        "actions": [Interactive(qemu_run_command, shell=False)],\n',
        replacement='        "actions": [Interactive(qemu_run_command)],\n',
        tests=("tests/frontdoor/test_doit_qemu.py",),
        why="issue 18 front door: doit's Interactive runs the argument list through a shell again (only "
            "`bash` runs, nothing boots); `doit qemu` on a pty must fail to reach the console",
        timeout_s=900,
        evidence=r"Timeout exceeded",
    ),
    # -- gaps found while writing these (not caught when added; see the report to the lead) ----------
    Mutation(
        name="listener-drops-frames-before-framing-loss",
        path="nine_door/tcp_listener.py",
        original="        piece = chunk if cut == len(chunk) and inpos == 0 else bytes(chunk[:cut])\n",
        replacement="        piece = b\"\" if lost is not None else chunk if cut == len(chunk) and inpos == 0 \\\n"
                    "            else bytes(chunk[:cut])\n",
        tests=("tests/nine_door/test_server_pipeline.py", "tests/nine_door/test_interop_tcp.py"),
        why="issue 12: the 9P listener no longer answers the whole frames received before a bad size field",
        timeout_s=300,
    ),
    Mutation(
        name="jsonline-surrogate-unchecked",
        path="nine_door/jsonline.py",
        original="    if \"\\\\u\" in line:          # only an escape can produce a lone surrogate from valid UTF-8\n"
                 "        _check_encodable(value)\n",
        replacement="",
        tests=("tests/nine_door/test_session_limits.py", "tests/nine_door/test_queen_ctl.py"),
        why="issue 12: a \\ud800 escape in a /queen/ctl line is no longer EINVAL at the JSON boundary",
        timeout_s=300,
    ),
)


class MutationError(Exception):
    """A mutation no longer applies (its snippet moved or changed): update MUTATIONS."""


# -- applying a mutation ------------------------------------------------------------------------------
def mutated_text(text: str, mutation: Mutation) -> str:
    """``text`` with the mutation's snippet replaced; the snippet must occur exactly once."""
    if mutation.original == mutation.replacement:
        raise MutationError(f"{mutation.name}: replacement equals the original snippet")
    count = text.count(mutation.original)
    if count != 1:
        raise MutationError(f"{mutation.name}: the snippet occurs {count} times in {mutation.path} "
                            f"(expected exactly once): the code moved, update scripts/mutants.py\n"
                            f"snippet: {mutation.original!r}")
    return text.replace(mutation.original, mutation.replacement, 1)


def apply_mutation(root: Path, mutation: Mutation) -> None:
    path = root / mutation.path
    if not path.is_file():
        raise MutationError(f"{mutation.name}: {mutation.path} does not exist: update scripts/mutants.py")
    path.write_text(mutated_text(path.read_text(encoding="utf-8"), mutation), encoding="utf-8")


def check_applies(root: Path, mutations: tuple[Mutation, ...] | list[Mutation]) -> list[str]:
    """Every reason a mutation would not apply to ``root`` (empty: all apply)."""
    problems = []
    for mutation in mutations:
        path = root / mutation.path
        try:
            if not path.is_file():
                raise MutationError(f"{mutation.name}: {mutation.path} does not exist")
            mutated_text(path.read_text(encoding="utf-8"), mutation)
        except MutationError as exc:
            problems.append(str(exc))
    return problems


def select(names: list[str], mutations: tuple[Mutation, ...] = MUTATIONS) -> list[Mutation]:
    wanted = [n for item in names for n in item.split(",") if n]
    if not wanted:
        return list(mutations)
    known = {m.name: m for m in mutations}
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise MutationError(f"unknown mutation(s): {', '.join(unknown)} (see --list)")
    return [known[n] for n in dict.fromkeys(wanted)]


# -- the scratch copy -------------------------------------------------------------------------------
def listed_files(repo: Path) -> list[str]:
    """Tracked files plus untracked files git does not ignore (the working tree, as the tests see it)."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         cwd=repo, check=True, capture_output=True).stdout
    return sorted({p for p in out.decode().split("\0") if p})


def make_copy(repo: Path, dest: Path) -> None:
    for rel in listed_files(repo):
        src = repo / rel
        if not (src.is_file() or src.is_symlink()):
            continue                             # tracked but deleted in the working tree
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target, follow_symlinks=False)
    venv = repo / ".venv"
    if venv.exists():
        (dest / ".venv").symlink_to(venv.resolve())
    out = dest / "out"
    out.mkdir(exist_ok=True)
    for name in IMAGE_FILES:
        if (repo / "out" / name).is_file():
            shutil.copy2(repo / "out" / name, out / name)
    cache = repo / "out" / "cache"
    if cache.is_dir():
        # A real directory: what doit's guest task writes (the lock) stays in the copy; the fetched
        # pieces are links (only read; guest_fetch refuses to rmtree a link).
        (out / "cache").mkdir(exist_ok=True)
        for entry in sorted(cache.iterdir()):
            if entry.is_dir():
                (out / "cache" / entry.name).symlink_to(entry.resolve())
            else:
                shutil.copy2(entry, out / "cache" / entry.name)


def copy_env(copy: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "COHESIX_NO_SKIP", "PYTHONHASHSEED")}
    env["PYTHONPATH"] = os.pathsep.join([str(copy), *filter(None, [os.environ.get("PYTHONPATH")])])
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def python_in(copy: Path) -> str:
    venv_python = copy / ".venv" / "bin" / "python"
    return str(venv_python) if venv_python.exists() else sys.executable


def check_imports_from_copy(copy: Path) -> None:
    """Fail when any project package would be imported from somewhere else than the copy."""
    names = tuple(name for name in PACKAGES if (copy / name).is_dir())
    code = ("import importlib, sys\n"
            f"for name in {names!r}:\n"
            "    mod = importlib.import_module(name)\n"
            "    print(name, (getattr(mod, '__file__', None) or list(mod.__path__)[0]))\n")
    proc = subprocess.run([python_in(copy), "-c", code], cwd=copy, env=copy_env(copy),
                          capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise MutationError(f"importing the project in the copy failed:\n{proc.stdout}{proc.stderr}")
    root = copy.resolve()
    wrong = [line for line in proc.stdout.splitlines()
             if not Path(line.split(" ", 1)[1]).resolve().is_relative_to(root)]
    if wrong:
        raise MutationError("the copy imports packages from outside itself (editable install won?): "
                            + "; ".join(wrong))


# -- running the tests --------------------------------------------------------------------------------
@dataclass
class Outcome:
    verdict: str          # caught | NOT CAUGHT | TIMEOUT | ERROR
    summary: str
    seconds: float
    output: str = ""


SUMMARY = re.compile(r"\b\d+ (passed|failed|skipped|errors?|deselected|xfailed|xpassed|warnings?)\b.* in [\d.]+s")


def pytest_summary(output: str) -> str:
    for line in reversed(output.splitlines()):
        text = line.strip().strip("=").strip()
        if SUMMARY.search(text) or text.startswith("no tests ran"):
            return text
    tail = [line.strip() for line in output.splitlines() if line.strip()]
    return tail[-1] if tail else "(no output)"


def verdict_for(returncode: int | None) -> str:
    if returncode is None:
        return "TIMEOUT"
    return {0: "NOT CAUGHT", 1: "caught"}.get(returncode, "ERROR")


def run_tests(copy: Path, tests: tuple[str, ...], timeout_s: float, fail_fast: bool) -> Outcome:
    argv = [python_in(copy), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfEs",
            *(["-x"] if fail_fast else []), *tests]
    start = time.monotonic()
    proc = subprocess.Popen(argv, cwd=copy, env=copy_env(copy), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=timeout_s)
        returncode: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        output = _stop(proc)
        returncode = None
    seconds = time.monotonic() - start
    summary = pytest_summary(output)
    if returncode is None:
        summary = f"no result within {timeout_s:.0f} s; last: {summary}"
    elif returncode not in (0, 1):
        summary = f"pytest exit {returncode}: {summary}"
    return Outcome(verdict_for(returncode), summary, seconds, output)


def _stop(proc: subprocess.Popen) -> str:
    """SIGINT first (pytest tears its fixtures down: QEMU guests are stopped), then SIGKILL."""
    for sig, grace in ((signal.SIGINT, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            output, _ = proc.communicate(timeout=grace)
            return output or ""
        except subprocess.TimeoutExpired:
            continue
    return ""


def run_mutation(mutation: Mutation, timeout_s: float | None, baseline: bool, keep: bool,
                 log_dir: Path | None) -> Outcome:
    work = Path(tempfile.mkdtemp(prefix=f"cohesix-mutant-{mutation.name}-"))
    copy = work / "repo"
    limit = timeout_s or mutation.timeout_s
    try:
        make_copy(REPO, copy)
        check_imports_from_copy(copy)
        base = None
        if baseline:
            base = run_tests(copy, mutation.tests, limit, fail_fast=False)
            _log(log_dir, f"{mutation.name}.baseline", base.output)
            if base.verdict != "NOT CAUGHT":
                return Outcome("ERROR", f"baseline (unmutated) {base.verdict}: {base.summary}", base.seconds,
                               base.output)
        apply_mutation(copy, mutation)
        outcome = run_tests(copy, mutation.tests, limit, fail_fast=True)
        _log(log_dir, mutation.name, outcome.output)
        if outcome.verdict == "caught" and mutation.evidence and not re.search(mutation.evidence, outcome.output):
            outcome.verdict = "ERROR"
            outcome.summary = (f"failed, but not visibly because of the mutation (no {mutation.evidence!r} "
                               f"in the output): {outcome.summary}")
        if base is not None:
            outcome.summary += f" (baseline: {base.summary})"
            outcome.seconds += base.seconds
        return outcome
    except MutationError as exc:
        return Outcome("ERROR", str(exc).splitlines()[0], 0.0, str(exc))
    finally:
        if keep:
            print(f"  kept the copy: {copy}", flush=True)
        else:
            shutil.rmtree(work, ignore_errors=True)


def _log(log_dir: Path | None, name: str, text: str) -> None:
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        (log_dir / f"{name}.log").write_text(text)


# -- command line -------------------------------------------------------------------------------------
def list_mutations(mutations: list[Mutation]) -> int:
    problems = {p.split(":", 1)[0]: p for p in check_applies(REPO, mutations)}
    for m in mutations:
        state = "applies" if m.name not in problems else "DOES NOT APPLY"
        print(f"{m.name}  [{state}]  {m.path}  (timeout {m.timeout_s} s)\n    {m.why}")
        for test in m.tests:
            print(f"    test: {test}")
    for problem in problems.values():
        print(f"error: {problem}", file=sys.stderr)
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python scripts/mutants.py", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--list", action="store_true", help="list the mutations and whether each applies")
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        help="run only this mutation (repeatable, or NAME,NAME)")
    parser.add_argument("--timeout", type=float, default=None, metavar="S",
                        help="time limit per mutation's test run (default: each mutation's own)")
    parser.add_argument("--baseline", action="store_true",
                        help="run each mutation's tests unmutated first; a failing baseline is an ERROR")
    parser.add_argument("--keep", action="store_true", help="keep the temporary copies (their path is printed)")
    parser.add_argument("--log-dir", type=Path, default=LOG_DIR,
                        help="where each run's pytest output goes (default out/mutants/)")
    parser.add_argument("--show-output", action="store_true",
                        help="print the pytest output of every mutation not caught")
    args = parser.parse_args(argv)
    try:
        chosen = select(args.only)
    except MutationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.list:
        return list_mutations(chosen)
    problems = check_applies(REPO, chosen)
    if problems:
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2
    width = max(len(m.name) for m in chosen)
    start = time.monotonic()
    results = []
    for mutation in chosen:
        print(f"... {mutation.name}: {', '.join(mutation.tests)}", flush=True)
        outcome = run_mutation(mutation, args.timeout, args.baseline, args.keep, args.log_dir)
        results.append((mutation, outcome))
        print(f"{outcome.verdict:<10}  {mutation.name:<{width}}  {outcome.seconds:6.0f} s  {outcome.summary}",
              flush=True)
        if outcome.verdict != "caught" and args.show_output:
            print(outcome.output[-6000:], flush=True)
    total = time.monotonic() - start
    caught = sum(o.verdict == "caught" for _, o in results)
    print(f"\n{caught}/{len(results)} mutations caught in {total:.0f} s (logs: {args.log_dir})")
    for mutation, outcome in results:
        print(f"{outcome.verdict:<10}  {mutation.name:<{width}}  {outcome.summary}")
    return 0 if caught == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
