"""Dataclass methods compiled at build time, so the guest does not compile them at boot.

Why this exists: ``@dataclass`` writes ``__init__``, ``__repr__``, ``__eq__``… as source text and
compiles each with ``exec()`` when the class is created. The guest declares ~80 dataclasses (~400
generated functions) on its boot path, and under TCG emulation compiling them was the largest single
cost of the root task's start-up. The image builder (``image/dataclass_cache.py``) imports the staged
guest code once on the host, records every generated source with its code object (same CPython 3.11
bytecode as the guest) and stores the table in :data:`CACHE_PATH`. :func:`install` makes the
``dataclasses`` module look a source up there before compiling it.

A source that is not in the table is compiled as before, so a stale or missing cache costs time,
never behaviour; the table is keyed by the full source text, so a hit is exactly the code the guest
would have compiled. The table starts with the interpreter's bytecode magic and is ignored if that
differs.

Second saving: the image's ``.pyc`` carry no docstrings (optimize=2), and for a class without one
``dataclasses`` builds a ``__doc__`` from ``inspect.signature(cls)``, which is slow. Such classes get
their name as ``__doc__`` first — the same text minus the signature. That was ``dataclasses``' only
use of ``inspect`` on our path, and ``inspect`` drags in ``ast``, ``dis`` and ``tokenize``. Likewise
``dataclasses`` uses ``copy`` only in ``asdict``/``astuple`` (``deepcopy``), and ``copy`` imports
``weakref`` (~20 ms at boot under TCG). So while ``dataclasses`` is imported, ``inspect`` and
``copy`` are stand-in modules that import the real one the first time an attribute of it is used
(``importlib.util.LazyLoader`` cannot do this in 3.11: the ``import`` statement itself touches
``__spec__`` and triggers the load).

The guest's ``/init`` and every spawned worker (``root_task.worker_launch``) call :func:`install`; on
the host the file does not exist and nothing changes.

This module does not import the ``importlib`` package: its ``__init__`` imports ``warnings``, and
nothing else on the boot path needs either (~10 ms under TCG). The bytecode magic comes from the
frozen ``_frozen_importlib_external`` (always loaded: it is the import system), and a stand-in loads
its module with ``__import__``.
"""
from __future__ import annotations

import sys
import types

CACHE_PATH = "/usr/lib/cohesix/dataclass_methods.bin"


class PrecompiledMethods:
    """The installed table and how often it was used (hits/misses are checked by the image tests)."""

    def __init__(self, codes: dict) -> None:
        self.codes = codes
        self.hits = 0
        self.misses = 0

    def exec(self, source, globals=None, locals=None) -> None:  # noqa: A002 - exec()'s own signature
        code = self.codes.get(source)
        if code is None:
            self.misses += 1
            # dont_inherit: a plain exec(source) here would inherit this module's __future__ flags.
            code = compile(source, "<string>", "exec", dont_inherit=True)
        else:
            self.hits += 1
        exec(code, globals, locals)


installed: PrecompiledMethods | None = None


def magic() -> bytes:
    """The running interpreter's bytecode magic (what ``importlib.util.MAGIC_NUMBER`` is, read from the
    frozen import system, which is always loaded, without importing the ``importlib`` package)."""
    import _frozen_importlib_external

    return _frozen_importlib_external.MAGIC_NUMBER


def load(data: bytes) -> PrecompiledMethods | None:
    """Parse a table written by the image builder; None if it was made for another interpreter."""
    import marshal

    head = magic()
    if not data.startswith(head):
        return None
    codes = marshal.loads(data[len(head):])
    return PrecompiledMethods(codes) if isinstance(codes, dict) else None


def install(path: str = CACHE_PATH) -> PrecompiledMethods | None:
    """Route ``dataclasses``' code generation through the table at ``path``; None if unusable."""
    global installed
    try:
        with open(path, "rb") as f:
            table = load(f.read())
    except OSError:
        return None
    if table is None:
        return None
    dataclasses = _import_with_stand_ins()

    original = getattr(dataclasses, "_process_class", None)
    if original is None or not hasattr(dataclasses, "_create_fn"):
        return None  # another dataclasses implementation: keep its normal path

    def process_class(cls, *args):
        if cls.__doc__ is None:
            cls.__doc__ = cls.__name__
        return original(cls, *args)

    # _create_fn calls the name ``exec`` from its module globals, which a module attribute shadows.
    dataclasses.exec = table.exec
    dataclasses._process_class = process_class
    installed = table
    return table


class _ImportOnUse(types.ModuleType):
    """Stands in for a module until one of its attributes is used, then mirrors the real module."""

    def __getattr__(self, attr: str):  # only called for attributes the stand-in does not have
        __import__(self.__name__)  # a top-level module: what importlib.import_module would do
        real = sys.modules[self.__name__]
        self.__dict__.update(real.__dict__)
        return getattr(real, attr)


#: Modules ``dataclasses`` imports at the top but uses only on paths the boot does not take.
LAZY_FOR_DATACLASSES = ("inspect", "copy")


def _import_with_stand_ins():
    """Import ``dataclasses`` with :data:`LAZY_FOR_DATACLASSES` bound to stand-ins (those not loaded
    yet); later importers of those names get the real modules."""
    if "dataclasses" in sys.modules:
        import dataclasses

        return dataclasses
    stand_ins = {name: _ImportOnUse(name) for name in LAZY_FOR_DATACLASSES if name not in sys.modules}
    sys.modules.update(stand_ins)
    try:
        import dataclasses
    finally:
        for name, stand_in in stand_ins.items():
            if sys.modules.get(name) is stand_in:
                del sys.modules[name]
    return dataclasses
