"""Compile Python sources to sourceless, unchecked-hash, optimize=2 .pyc bytes in a clean subprocess.

Why a subprocess: ``marshal`` decides whether to emit a back-reference for an object from its
reference count, and interned strings are shared with every module loaded in the process. Compiling
inside a long-lived build process (doit, pytest) would make the bytes depend on what else happened to
be imported. A fresh ``python -I -S -B`` that loads nothing but this module, compiling the jobs in
sorted order, gives the same bytes for the same inputs.

Why unchecked hash: the image carries no sources, so there is nothing to check against, and a
timestamp pyc would embed host mtimes. ``optimize=2`` strips docstrings and asserts (smaller, and
the guest code must not depend on either).

Protocol: stdin is a JSON list of ``[source_path, code_filename]``; stdout is a concatenation of
``len(8 hex) + pyc bytes`` records in the same order.
"""
from __future__ import annotations

import json
import subprocess
import sys


def _compile_one(source_path: str, code_filename: str) -> bytes:
    import importlib._bootstrap_external as bext
    import importlib.util

    with open(source_path, "rb") as f:
        source = f.read()
    code = compile(source, code_filename, "exec", optimize=2, dont_inherit=True)
    return bytes(bext._code_to_hash_pyc(code, importlib.util.source_hash(source), checked=False))


def compile_many(jobs: list[tuple[str, str]], python: str | None = None) -> list[bytes]:
    """Compile ``jobs`` (source path, filename recorded in the code object) with ``python``."""
    if not jobs:
        return []
    proc = subprocess.run(
        [python or sys.executable, "-I", "-S", "-B", "-X", "no_debug_ranges", __file__],
        input=json.dumps(jobs).encode(), capture_output=True, check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"pyc compilation failed:\n{proc.stderr.decode(errors='replace')}")
    out, pos = [], 0
    blob = proc.stdout
    while pos < len(blob):
        n = int(blob[pos:pos + 8], 16)
        out.append(blob[pos + 8:pos + 8 + n])
        pos += 8 + n
    if len(out) != len(jobs):
        raise RuntimeError(f"pyc compilation returned {len(out)} results for {len(jobs)} jobs")
    return out


def _serve() -> None:
    jobs = json.loads(sys.stdin.buffer.read())
    w = sys.stdout.buffer
    for source_path, code_filename in jobs:
        data = _compile_one(source_path, code_filename)
        w.write(b"%08x" % len(data))
        w.write(data)
    w.flush()


if __name__ == "__main__":
    _serve()
