"""The command line both fuzzers share (``python -m nine_door.fuzz`` and ``python -m nine_door.frame_fuzz``).

Host-only (never shipped, like the fuzzers): ``--iterations`` (default from the fuzzer's environment
variable, else its default), ``--seed``; prints the fuzzer's one summary line and exits 1 on a failure.
"""
from __future__ import annotations

import sys
from collections.abc import Callable


def main(prog: str, description: str, name: str, run_fuzz: Callable, default_seed: int,
         iterations_help: str, argv: list[str] | None = None) -> int:
    import argparse   # lazily: keeps argparse/gettext out of any import closure that reaches a fuzzer

    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--iterations", type=int, default=None, help=iterations_help)
    parser.add_argument("--seed", type=lambda s: int(s, 0), default=default_seed)
    args = parser.parse_args(argv)
    report = run_fuzz(args.iterations, args.seed, keep_going=True)
    print(report.line())
    if report.failures:
        print(f"{name}: FAILURE {report.first_failure}", file=sys.stderr)
        return 1
    return 0
