"""The ``coh-rtc`` command line (SPEC §15.1).

    coh-rtc <root_task.toml> --out <DIR> [--manifest PATH] [--cli-script PATH]
            [--cohsh-policy PATH] [--doc-dir DIR] [--check]

Exit codes: 0 success, 1 IR invalid, 2 usage error, 3 an output could not be written, 4 ``--check``
found drift. Everything is compiled and rendered in memory before the first byte is written, so an
invalid IR changes nothing on disk.

Marked documentation regions (``<!-- coh-rtc:<name>:start -->`` … ``:end -->``) are searched in every
``*.md`` file under the parent of ``--doc-dir`` (``docs/`` by default): a normal run refreshes them, and
``--check`` reports any that differ from the snippet.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Sequence

from .compiler import Compiled, OutputOptions, compile_ir
from .diagnostics import IRError, summary_line
from .snippets import find_regions, replace_regions

EXIT_OK, EXIT_INVALID, EXIT_USAGE, EXIT_WRITE, EXIT_DRIFT = 0, 1, 2, 3, 4


def build_parser() -> argparse.ArgumentParser:
    defaults = OutputOptions()
    parser = argparse.ArgumentParser(
        prog="coh-rtc",
        description="Compile root_task.toml (the Cohesix IR) into generated code, manifest, scripts and doc snippets.",
    )
    parser.add_argument("ir", help="path to root_task.toml")
    parser.add_argument("--out", required=True, help="directory for the generated root-task package")
    parser.add_argument("--manifest", default=defaults.manifest, help="resolved manifest JSON (+ PATH.sha256)")
    parser.add_argument("--cli-script", default=defaults.cli_script, help="boot script; other scripts go beside it")
    parser.add_argument("--cohsh-policy", default=defaults.cohsh_policy, help="cohsh client policy (schema >= 1.2)")
    parser.add_argument("--doc-dir", default=defaults.doc_dir, help="documentation snippets directory")
    parser.add_argument("--check", action="store_true", help="write nothing; report drift and exit 4")
    return parser


def doc_updates(compiled: Compiled) -> tuple[dict[str, bytes], list[str], list[str]]:
    """Marked-region refreshes: (path → new bytes for changed files, drifted paths, warnings)."""
    snippets = {name: data.decode("utf-8") for name, data in compiled.snippets.items()}
    docs_root = Path(compiled.options.doc_dir).parent
    changed: dict[str, bytes] = {}
    drifted: list[str] = []
    warnings: list[str] = []
    if not docs_root.is_dir():
        return changed, drifted, warnings
    for md in sorted(docs_root.rglob("*.md")):
        try:
            text = md.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if not find_regions(text):
            continue
        new_text, unknown = replace_regions(text, snippets)
        for name in unknown:
            warnings.append(f"coh-rtc: warning: {md}: no snippet {name!r} for this IR")
        if new_text != text or unknown:
            drifted.append(str(md))
        if new_text != text:
            changed[str(md)] = new_text.encode("utf-8")
    return changed, drifted, warnings


def check(compiled: Compiled) -> int:
    drift: list[str] = []
    for path, data in compiled.outputs.items():
        try:
            on_disk = Path(path).read_bytes()
        except OSError:
            on_disk = None
        if on_disk != data:
            drift.append(path)
    _, drifted_docs, warnings = doc_updates(compiled)
    for line in warnings:
        print(line, file=sys.stderr)
    drift += [p for p in drifted_docs if p not in compiled.outputs]
    for path in drift:
        print(f"drift: {path}", file=sys.stderr)
    if drift:
        return EXIT_DRIFT
    print("coh-rtc: check ok")
    return EXIT_OK


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write(compiled: Compiled) -> int:
    files = dict(compiled.outputs)
    changed_docs, _, warnings = doc_updates(compiled)
    for line in warnings:
        print(line, file=sys.stderr)
    files.update({p: d for p, d in changed_docs.items() if p not in files})
    try:  # create every directory first, so a blocked path fails before any file changes
        for parent in sorted({Path(p).parent for p in files}):
            parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"coh-rtc: cannot write {exc.filename}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_WRITE
    for path, data in files.items():
        try:
            _write_atomic(Path(path), data)
        except OSError as exc:
            print(f"coh-rtc: cannot write {path}: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_WRITE
    print(f"coh-rtc: wrote {len(files)} files (manifest sha256 {compiled.manifest_sha256})")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse reports usage errors with status 2
        return int(exc.code or 0)
    options = OutputOptions(
        out_dir=args.out,
        manifest=args.manifest,
        cli_script=args.cli_script,
        cohsh_policy=args.cohsh_policy,
        doc_dir=args.doc_dir,
    )
    try:
        compiled = compile_ir(args.ir, options)
    except IRError as err:
        for line in err.lines:
            print(line, file=sys.stderr)
        print(summary_line(len(err.lines)), file=sys.stderr)
        return EXIT_INVALID
    return check(compiled) if args.check else write(compiled)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
