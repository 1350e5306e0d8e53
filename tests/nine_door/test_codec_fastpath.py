"""The codec's fast paths (issue 20) build exactly what the slow, obvious code builds.

``codec._decoded(cls)`` makes decoded messages without the frozen dataclass ``__init__`` (a mutable
twin whose ``__post_init__`` switches the instance's class); ``codec._NEW`` makes each on first use.
These tests pin that the result is an ordinary instance of the message class in every observable
way, that the helper refuses a class whose ``__init__`` would do more than store fields, that the
encoders fail as before, and that it all works the same in the guest's set-up
(``root_task.precompiled`` installed, code imported from ``.pyc`` only).
"""
from __future__ import annotations

import copy
import dataclasses
import json
import pickle
import py_compile
import subprocess
import sys
from pathlib import Path

import pytest
import struct
from hypothesis import given, settings
from hypothesis import strategies as st

from nine_door import codec
from nine_door import messages as m

REPO = Path(__file__).resolve().parents[2]

QID = m.Qid(m.QTDIR, 7, 1 << 40)
# One value per message class the decoder builds, with distinct field values.
SAMPLES = [
    QID,
    m.DirEntry(QID, 9, m.DT_DIR, "d"),
    m.Unsupported(m.TLCREATE, 3),
    m.Tversion(1, 8192, "9P2000.L"),
    m.Tauth(2, 5, "u", "a", 6),
    m.Tattach(3, 0, m.NOFID, "queen", "", m.NOFID),
    m.Twalk(4, 0, 1, ("proc", "boot")),
    m.Tlopen(5, 1, m.O_RDONLY),
    m.Tread(6, 1, 2, 3),
    m.Twrite(7, 1, 2, b"xy"),
    m.Tclunk(8, 1),
    m.Tgetattr(9, 1, m.GETATTR_BASIC),
    m.Treaddir(10, 1, 0, 4096),
    m.Tstatfs(11, 1),
    m.Tflush(12, 3),
    m.Rversion(13, 8192, "9P2000.L"),
    m.Rattach(14, QID),
    m.Rwalk(15, (QID, QID)),
    m.Rlopen(16, QID, 8168),
    m.Rread(17, b"data"),
    m.Rwrite(18, 4),
    m.Rclunk(19),
    m.Rgetattr(20, m.GETATTR_BASIC, QID, *range(1, 19)),
    m.Rreaddir(21, b""),
    m.Rstatfs(22, *range(1, 10)),
    m.Rflush(23),
    m.Rlerror(24, 13),
]


def _fields(msg) -> tuple:
    return tuple(getattr(msg, f.name) for f in dataclasses.fields(msg))


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda msg: type(msg).__name__)
def test_decoded_instances_are_ordinary_frozen_instances(msg):
    cls = type(msg)
    built = codec._decoded(cls)(*_fields(msg))
    assert type(built) is cls and isinstance(built, cls)
    assert built == msg and msg == built and hash(built) == hash(msg) and repr(built) == repr(msg)
    assert _fields(built) == _fields(msg)
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(built, dataclasses.fields(cls)[0].name, 0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        delattr(built, dataclasses.fields(cls)[0].name)
    assert pickle.loads(pickle.dumps(built)) == msg and copy.copy(built) == msg
    assert dataclasses.replace(built) == msg and dataclasses.astuple(built) == dataclasses.astuple(msg)


def test_every_message_the_decoders_return_has_its_exact_class():
    for msg in SAMPLES[3:]:
        if isinstance(msg, m.Unsupported):
            continue
        frame = codec.encode(msg)
        decoded = (codec.decode_reply if type(msg).__name__[0] == "R" else codec.decode)(frame)
        assert type(decoded) is type(msg) and decoded == msg
    assert type(codec.decode(bytes.fromhex("07000000") + bytes([m.TLCREATE]) + b"\x03\x00")) is m.Unsupported


@dataclasses.dataclass(frozen=True, slots=True)
class WithPostInit:
    x: int

    def __post_init__(self):
        if self.x < 0:
            raise ValueError("negative")


@dataclasses.dataclass(frozen=True, slots=True)
class WithDefault:
    x: int = 0


@dataclasses.dataclass(frozen=True)
class WithoutSlots:
    x: int


@dataclasses.dataclass(slots=True)
class NotFrozen:
    x: int


@pytest.mark.parametrize("cls", [WithPostInit, WithDefault, WithoutSlots, NotFrozen])
def test_decoded_refuses_classes_whose_init_does_more_than_store_fields(cls):
    with pytest.raises(TypeError, match="more than field stores"):
        codec._decoded(cls)


def test_encode_reports_the_same_error_class_as_before():
    # Fixed fields are packed before strings, as before: the out-of-range msize is what is reported.
    with pytest.raises(codec.EncodeError, match="Tversion"):
        codec.encode(m.Tversion(1, 1 << 32, "\udc80"))
    with pytest.raises(UnicodeEncodeError):
        codec.encode(m.Tversion(1, 8192, "\udc80"))
    with pytest.raises(TypeError):     # never turned into bytes(5) == five NULs
        codec.encode(m.Twrite(1, 1, 0, 5))
    with pytest.raises(codec.EncodeError):
        codec.encode(m.Tclunk(1 << 16, 1))


def test_importing_the_codec_makes_no_twin():
    """The guest imports the codec on its boot path: twins are made by the first decode, not there."""
    code = "from nine_door import codec; print(len(codec._NEW))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "0"


GUEST_PROBE = r"""
import json, sys
lib, table_path = sys.argv[1:3]
sys.path[:0] = [lib]
from root_task import precompiled
table = precompiled.install(table_path)
from nine_door import codec, messages as m
qid = m.Qid(m.QTFILE, 3, 4242)
msgs = [m.Twalk(2, 0, 1, ("a", "b")), m.Rgetattr(7, 1, qid, *range(18)), m.Rwalk(2, (qid, qid))]
ok = all(type(d) is type(x) and d == x for x in msgs
         for d in [(codec.decode_reply if type(x).__name__[0] == "R" else codec.decode)(codec.encode(x))])
print(json.dumps({"installed": table is not None, "hits": table.hits, "misses": table.misses, "ok": ok,
                  "twins": len(codec._NEW),
                  "lazy_loaded": sorted(set(precompiled.LAZY_FOR_DATACLASSES) & set(sys.modules))}))
"""


@pytest.mark.parametrize("recorded", [True, False], ids=["recorded-table", "empty-table"])
def test_codec_under_precompiled_dataclass_methods(tmp_path, recorded):
    """The guest's set-up: sourceless modules, precompiled.install(), then decoding.

    The twins are made on first use (not at import, which is on the guest's boot path); the recorder
    makes them all through ``codec.warm_decoders`` (image/dataclass_cache.WARM_HOOKS), so with the
    recorded table even a twin's ``__init__`` is served from it, and nothing loads inspect/copy.
    """
    import marshal

    from image import dataclass_cache
    from root_task import precompiled

    lib = tmp_path / "lib"
    for rel in ("nine_door/__init__.py", "nine_door/errors.py", "nine_door/messages.py",
                "nine_door/framing.py", "nine_door/codec.py", "root_task/__init__.py",
                "root_task/precompiled.py"):
        (lib / rel).parent.mkdir(parents=True, exist_ok=True)
        py_compile.compile(str(REPO / rel), cfile=str(lib / rel) + "c", doraise=True)
    table = tmp_path / "table.bin"
    if recorded:
        table.write_bytes(dataclass_cache.record(lib, tmp_path / "no-such.zip")[0])
    else:
        table.write_bytes(precompiled.magic() + marshal.dumps({}))
    proc = subprocess.run([sys.executable, "-I", "-S", "-B", "-c", GUEST_PROBE, str(lib), str(table)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["installed"] and report["ok"] and report["lazy_loaded"] == []
    assert report["twins"] == 4       # Twalk, Rgetattr, Rwalk, Qid
    if recorded:
        assert report["misses"] == 0 and report["hits"] > 100
    else:
        assert report["hits"] == 0 and report["misses"] > 100


# -- the Twalk names memo -------------------------------------------------------------------------
def test_walk_names_memo_hits_give_what_decoding_gives_and_failures_are_never_stored():
    codec._WALK_NAMES.clear()
    first = codec.decode(codec.encode(m.Twalk(1, 2, 3, ("proc", "boot"))))
    again = codec.decode(codec.encode(m.Twalk(9, 7, 8, ("proc", "boot"))))     # same names, other fields
    assert (first, again) == (m.Twalk(1, 2, 3, ("proc", "boot")), m.Twalk(9, 7, 8, ("proc", "boot")))
    assert type(again) is m.Twalk and len(codec._WALK_NAMES) == 1
    bad = bytearray(codec.encode(m.Twalk(1, 2, 3, ("pr", "boot"))))
    bad[20] = 0                                                              # "p\0": a NUL in a name
    for _ in range(2):
        with pytest.raises(codec.DecodeError, match="NUL byte in Twalk wname"):
            codec.decode(bytes(bad))
    assert len(codec._WALK_NAMES) == 1


def test_walk_names_memo_is_bounded_in_entries_and_key_size():
    codec._WALK_NAMES.clear()
    for i in range(3 * codec._WALK_MEMO_ENTRIES):
        assert codec.decode(codec.encode(m.Twalk(1, 0, 1, (f"w{i}",)))).wnames == (f"w{i}",)
        assert len(codec._WALK_NAMES) <= codec._WALK_MEMO_ENTRIES
    codec._WALK_NAMES.clear()
    long_names = tuple("n" * 200 for _ in range(2))
    assert codec.decode(codec.encode(m.Twalk(1, 0, 1, long_names))).wnames == long_names
    assert not codec._WALK_NAMES


@settings(max_examples=400, deadline=None)
@given(st.integers(0, 255), st.integers(0, 0xFFFF), st.binary(max_size=40))
def test_decode_framed_is_decode_for_every_frame_framing_lets_through(mtype, tag, body):
    """``decode_framed`` skips only the header checks framing has made (bytes, size field = length):
    for any such frame it returns what ``decode`` returns, or raises the same error."""
    frame = struct.pack("<IBH", 7 + len(body), mtype, tag) + body
    for candidate in (frame, *(codec.encode(s) for s in SAMPLES if type(s).__name__[0] == "T")):
        try:
            want = codec.decode(candidate)
        except codec.DecodeError as exc:
            with pytest.raises(codec.DecodeError) as caught:
                codec.decode_framed(candidate)
            assert (str(caught.value), caught.value.tag, caught.value.errno) == (str(exc), exc.tag, exc.errno)
        else:
            assert codec.decode_framed(candidate) == want


def test_every_class_decode_returns_has_a_session_handler():
    """``Session._execute`` looks handlers up without a default: a request class without one would
    answer EIO (and log) instead of EINVAL."""
    from nine_door.session import _HANDLERS
    returned = {type(codec.decode(codec.encode(s))) for s in SAMPLES if type(s).__name__[0] == "T"}
    returned.add(type(codec.decode(struct.pack("<IBH", 7, m.TLCREATE, 1))))
    assert returned <= _HANDLERS.keys()
