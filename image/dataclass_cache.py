"""Record the guest's dataclass-generated methods as code objects (see ``root_task/precompiled.py``).

How: a fresh ``python -I -S -B -X no_debug_ranges`` (the same flags as the .pyc compiler, see
``image/pycompile.py``) puts the *staged* guest code and the *staged* stdlib zip first on
``sys.path`` — so the guest's own ``dataclasses`` generates the text — replaces ``exec`` inside
``dataclasses`` with a recorder, imports every shipped guest module and writes
``MAGIC + marshal({source: code})`` sorted by source. Same inputs, same bytes.

The build interpreter and the guest's are both CPython 3.11 (stage.py already relies on that for the
.pyc); the magic prefix makes the guest ignore a table from any other bytecode version.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from root_task import precompiled

CACHE_PATH = precompiled.CACHE_PATH   # where /init's install() reads the table
# (module, function) called after the imports: code that makes dataclasses lazily, at first use, makes
# them all here so their methods are recorded too (the codec's decoded-message constructors).
WARM_HOOKS = [("nine_door.codec", "warm_decoders")]

_RECORD_SCRIPT = r"""
import importlib, json, marshal, sys
from importlib._bootstrap_external import MAGIC_NUMBER
lib, stdlib_zip, modules, WARM_HOOKS = json.loads(sys.argv[1])
sys.path[:0] = [lib, stdlib_zip]
import dataclasses
codes = {}
def recording_exec(source, globals=None, locals=None):
    code = codes.get(source)
    if code is None:
        code = codes[source] = compile(source, "<string>", "exec", dont_inherit=True)
    exec(code, globals, locals)
dataclasses.exec = recording_exec
failed = {}
for name in modules:
    try:
        importlib.import_module(name)
    except BaseException as exc:
        failed[name] = f"{type(exc).__name__}: {exc}"
if failed:
    sys.stderr.write(json.dumps(failed))
    sys.exit(3)
for name, hook in WARM_HOOKS:
    if name in sys.modules:
        getattr(sys.modules[name], hook)()
sys.stdout.buffer.write(MAGIC_NUMBER + marshal.dumps(dict(sorted(codes.items()))))
"""


def guest_modules(lib: Path) -> list[str]:
    """Every module under the staged guest library dir (``pkg/mod.pyc`` → ``pkg.mod``), sorted."""
    names = []
    for pyc in sorted(lib.rglob("*.pyc")):
        parts = list(pyc.relative_to(lib).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        if parts and parts[-1] != "__main__":
            names.append(".".join(parts))
    return names


def record(lib: Path, stdlib_zip: Path, python: str | None = None) -> tuple[bytes, int]:
    """Return (table bytes, number of recorded sources) for the guest code staged under ``lib``."""
    arg = json.dumps([str(lib), str(stdlib_zip), guest_modules(lib), WARM_HOOKS])
    proc = subprocess.run([python or sys.executable, "-I", "-S", "-B", "-X", "no_debug_ranges",
                           "-c", _RECORD_SCRIPT, arg], capture_output=True, cwd="/")
    if proc.returncode != 0:
        raise RuntimeError(f"recording dataclass methods failed: {proc.stderr.decode(errors='replace')}")
    table = precompiled.load(proc.stdout)   # the guest's own reader checks what we wrote
    if table is None:
        raise RuntimeError("recorded dataclass table does not load with this interpreter's magic")
    return proc.stdout, len(table.codes)
