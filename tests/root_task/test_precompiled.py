"""root_task.precompiled + image.dataclass_cache: recorded dataclass methods replace compile-at-import.

Each case runs in a fresh ``python -I -S`` so the patched ``dataclasses`` never leaks into pytest.
"""
from __future__ import annotations

import json
import marshal
import py_compile
import subprocess
import sys
import textwrap
from pathlib import Path

from image import dataclass_cache
from root_task import precompiled

REPO = Path(__file__).resolve().parents[2]

SAMPLE = textwrap.dedent('''
    from dataclasses import dataclass, field

    @dataclass(frozen=True)
    class Point:
        x: int
        y: int = 0

    @dataclass
    class Bag:
        items: list = field(default_factory=list)
''')

PROBE = textwrap.dedent('''
    import json, sys
    sys.path[:0] = [{repo!r}, {lib!r}]
    from root_task import precompiled
    table = precompiled.install({table!r})
    import sample
    p = sample.Point(1)
    report = {{
        "installed": table is not None,
        "hits": table.hits if table else None,
        "misses": table.misses if table else None,
        "repr": repr(p), "eq": p == sample.Point(1, 0), "hash": hash(p) == hash((1, 0)),
        "bag": sample.Bag().items,
        "doc": sample.Point.__doc__,
        "annotations": str(sample.Point.__init__.__annotations__),
        "inspect_loaded": "inspect" in sys.modules,
        "copy_loaded": "copy" in sys.modules,
    }}
    import dataclasses
    report["signature"] = str(dataclasses.inspect.signature(sample.Point))  # the stand-in loads inspect
    report["inspect_loaded_after"] = "inspect" in sys.modules
    report["asdict"] = dataclasses.asdict(sample.Bag([[1]]))  # deepcopy: the stand-in loads copy
    report["copy_loaded_after"] = "copy" in sys.modules
    print(json.dumps(report))
''')


def _lib(tmp_path: Path) -> Path:
    """A sourceless module, like the image's guest code."""
    lib = tmp_path / "lib"
    lib.mkdir(exist_ok=True)
    source = tmp_path / "sample.py"
    source.write_text(SAMPLE)
    py_compile.compile(str(source), cfile=str(lib / "sample.pyc"), doraise=True)
    return lib


def _probe(lib: Path, table: Path) -> dict:
    code = PROBE.format(repo=str(REPO), lib=str(lib), table=str(table))
    proc = subprocess.run([sys.executable, "-I", "-S", "-B", "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_recorded_table_serves_every_generated_method(tmp_path):
    lib = _lib(tmp_path)
    data, count = dataclass_cache.record(lib, tmp_path / "no-such.zip")
    assert count >= 5  # Point: __init__ __repr__ __eq__ __hash__ __setattr__/__delattr__; Bag: ...
    table = tmp_path / "table.bin"
    table.write_bytes(data)
    report = _probe(lib, table)
    assert report["installed"] and report["misses"] == 0 and report["hits"] == count
    assert report["repr"] == "Point(x=1, y=0)" and report["eq"] and report["hash"] and report["bag"] == []
    assert report["annotations"] == "{'x': <class 'int'>, 'y': <class 'int'>, 'return': None}"
    assert report["doc"] == "Point"  # no docstring: the name, not an inspect.signature() text
    assert not report["inspect_loaded"] and not report["copy_loaded"]
    assert report["signature"] == "(x: int, y: int = 0) -> None" and report["inspect_loaded_after"]
    assert report["asdict"] == {"items": [[1]]} and report["copy_loaded_after"]


def test_recording_is_deterministic_across_processes_and_hash_seeds(tmp_path):
    """Two interpreters with PYTHONHASHSEED 1 and 2 (tests/hashseed.py) record the same table bytes."""
    from tests.hashseed import run_seeded_pair

    lib = _lib(tmp_path)
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from pathlib import Path; "
            "from image import dataclass_cache; "
            "data, count = dataclass_cache.record(Path(sys.argv[2]), Path(sys.argv[3])); "
            "Path(sys.argv[4]).write_bytes(data)")
    run_seeded_pair([["-c", code, str(REPO), str(lib), str(tmp_path / "x.zip"), str(tmp_path / f"{side}.bin")]
                     for side in ("a", "b")])
    first = (tmp_path / "a.bin").read_bytes()
    assert first == (tmp_path / "b.bin").read_bytes()
    assert precompiled.load(first) is not None


def test_a_miss_compiles_exactly_like_dataclasses_would(tmp_path):
    """Unknown sources compile without this module's ``from __future__ import annotations``."""
    table = tmp_path / "empty.bin"
    table.write_bytes(precompiled.magic() + marshal.dumps({}))
    report = _probe(_lib(tmp_path), table)
    assert report["installed"] and report["hits"] == 0 and report["misses"] >= 5
    assert report["annotations"] == "{'x': <class 'int'>, 'y': <class 'int'>, 'return': None}"
    assert report["repr"] == "Point(x=1, y=0)"


def test_foreign_or_missing_table_changes_nothing(tmp_path):
    table = tmp_path / "old.bin"
    table.write_bytes(b"\x00\x00\r\n" + marshal.dumps({}))
    assert precompiled.load(table.read_bytes()) is None
    report = _probe(_lib(tmp_path), table)
    assert not report["installed"] and report["repr"] == "Point(x=1, y=0)"
    assert report["doc"] == "Point(x: int, y: int = 0)"  # dataclasses' own behaviour
    assert not _probe(_lib(tmp_path), tmp_path / "absent.bin")["installed"]


def test_guest_modules_lists_packages_and_modules(tmp_path):
    lib = tmp_path / "lib"
    for rel in ("a/__init__.pyc", "a/b.pyc", "a/__main__.pyc", "a/sub/__init__.pyc", "a/sub/c.pyc", "top.pyc"):
        (lib / rel).parent.mkdir(parents=True, exist_ok=True)
        (lib / rel).write_bytes(b"")
    assert dataclass_cache.guest_modules(lib) == ["a", "a.b", "a.sub", "a.sub.c", "top"]
