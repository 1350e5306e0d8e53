"""The whole pipeline on the fetched guest pieces: reproducible bytes, expected layout, size guard."""
from __future__ import annotations

import json
import zipfile

from image import build as image
from image.cpio import read_newc
from tests.hashseed import differing, run_seeded_pair, tree_bytes


def _build(tmp_path, guest_root, name):
    out = tmp_path / name
    out.mkdir()
    (out / "cache").symlink_to(guest_root.parent)
    manifest = image.build(out)
    return out, manifest


def test_two_builds_are_byte_identical_and_complete(tmp_path, guest_root):
    # Two interpreters, hash seeds 1 and 2 (tests/hashseed.py): an order taken from a set or a
    # str-keyed hash shows up here; two builds in one process share a seed and could not see it.
    out1, out2 = tmp_path / "a", tmp_path / "b"
    run_seeded_pair([["-m", "image.build", "--out", str(out), "--cache", str(guest_root.parent)]
                     for out in (out1, out2)])
    manifest = json.loads((out1 / "rootfs.manifest.json").read_text())
    assert differing(tree_bytes(out1 / "stage"), tree_bytes(out2 / "stage")) == []
    payload = (out1 / "rootfs.cpio").read_bytes()
    assert payload == (out2 / "rootfs.cpio").read_bytes()
    assert (out1 / "rootfs.manifest.json").read_bytes() == (out2 / "rootfs.manifest.json").read_bytes()
    assert len(payload) < 4194304 and manifest["payload"]["size"] == len(payload)
    # The default payload: zstd, then the largest ELF files -- the interpreter binary first -- in xz
    # with the ARM64 BCJ filter (the fetched 6.12 kernel's decoder has it), as many as the 3 MiB
    # target needs (today the interpreter alone).
    assert payload.startswith(image.ZSTD_MAGIC) and len(payload) <= image.PAYLOAD_TARGET
    assert [m["format"] for m in manifest["payload"]["members"]] == ["newc+zstd", "newc+xz-arm64"]
    xz_files = manifest["payload"]["members"][1]["files"]
    assert "/usr/bin/python3.11" in xz_files
    assert image.kernel_has_xz_arm64(guest_root)
    first, second = image.unpack_payload(payload)
    second_members = list(read_newc(second))
    assert ["/" + m.name for m in second_members] == xz_files
    assert all(m.data[:4] == image.ELF_MAGIC for m in second_members)
    members = {m.name: m for m in list(read_newc(first)) + second_members}
    assert len(members) == len(manifest["entries"])
    init = members["init"]
    assert init.mode == 0o100755 and init.data.startswith(b"#!/usr/bin/python3 -SB\n")
    assert b"root_task.__main__" in init.data
    assert members["dev/console"].rdev == (5, 1) and members["dev/null"].rdev == (1, 3)
    assert members["usr/bin/python3"].data == b"python3.11"
    for d in ("proc", "sys", "dev", "tmp", "mnt", "etc"):
        assert members[d].mode == 0o040755
    assert all(m.mtime == 0 and m.uid == 0 and m.gid == 0 for m in members.values())
    # Guest code ships sourceless; the stdlib is a zip of unchecked-hash .pyc.
    assert "usr/lib/cohesix/root_task/__main__.pyc" in members
    assert not [n for n in members if n.startswith("usr/lib/cohesix/") and n.endswith(".py")]
    zpath = out1 / "stage/usr/lib/python311.zip"
    with zipfile.ZipFile(zpath) as zf:
        names = set(zf.namelist())
        assert {"encodings/__init__.pyc", "encodings/utf_8.pyc", "socket.pyc", "selectors.pyc"} <= names
        flags = int.from_bytes(zf.read("socket.pyc")[4:8], "little")
        assert flags == 0b01  # hash-based, check_source off
        assert "subprocess.pyc" in names  # imported only inside a function (spawner): found by the scan
        assert "importlib/_abc.pyc" in names  # runpy (python3 -m, the worker launch) needs it
        assert not {"os.pyc", "codecs.pyc", "importlib/_bootstrap.pyc"} & names  # frozen in the binary
    # Host-only modules and unused third-party packages stay out of the image (the Frame v1 codec is
    # hand-written, nine_door/frame_v1.py says why). cbor2's pure-Python part ships for the CAS manifest
    # decoder (nine_door/cas/manifest.py, docs/cas.md), never its C extension.
    assert not [n for n in members if n.startswith("usr/lib/cohesix/construct")]
    assert "usr/lib/cohesix/cbor2/_decoder.pyc" in members
    assert not [n for n in members if n.startswith("usr/lib/cohesix/_cbor2")]
    assert "usr/lib/cohesix/nine_door/fuzz.pyc" not in members
    assert "usr/lib/cohesix/nine_door/frame_fuzz.pyc" not in members
    assert "usr/lib/cohesix/root_task/host.pyc" not in members
    order = members["etc/cohesix/modules.order"].data.decode().split()
    paths = [p for p in order if p.startswith("/lib/")]
    assert paths.index("/lib/cohesix/modules/failover.ko") < paths.index("/lib/cohesix/modules/virtio_net.ko")
    # The repo IR keeps the 9P listener off, so the v9fs client modules are not shipped.
    assert "/lib/cohesix/modules/9p.ko" not in paths
    for p in paths:
        assert p.lstrip("/") in members
    entry_paths = [e["path"] for e in manifest["entries"]]
    assert entry_paths == sorted(entry_paths, key=str.encode)
    assert json.loads((out1 / "rootfs.manifest.json").read_text())["kernel"]["cmdline"] == image.kernel_cmdline()
    assert (out1 / "Image").read_bytes()[0x38:0x3C] == b"ARM\x64"


def test_precompiled_dataclass_methods_cover_every_guest_dataclass(tmp_path, guest_root):
    """Load the image's table on the host, import every shipped guest module: no generated source misses."""
    import subprocess
    import sys

    from image.dataclass_cache import guest_modules

    out, _ = _build(tmp_path, guest_root, "c")
    lib = out / "stage/usr/lib/cohesix"
    script = (
        "import importlib, json, sys\n"
        "lib, stdlib_zip, modules = json.loads(sys.argv[1])\n"
        "sys.path[:0] = [lib, stdlib_zip]\n"
        "from root_task import precompiled\n"
        "table = precompiled.install(lib + '/dataclass_methods.bin')\n"
        "for name in modules: importlib.import_module(name)\n"
        "print(json.dumps([table.hits, table.misses, sorted(set(precompiled.LAZY_FOR_DATACLASSES) & set(sys.modules))]))\n")
    arg = json.dumps([str(lib), str(out / "stage/usr/lib/python311.zip"), guest_modules(lib)])
    proc = subprocess.run([sys.executable, "-I", "-S", "-B", "-c", script, arg], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    hits, misses, loaded = json.loads(proc.stdout)
    assert hits > 300 and misses == 0
    assert loaded == []  # dataclasses got stand-ins; nothing on the guest path needed the real modules
