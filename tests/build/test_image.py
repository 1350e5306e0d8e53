"""The whole pipeline on the fetched guest pieces: reproducible bytes, expected layout, size guard."""
from __future__ import annotations

import json
import zipfile

import zstandard

from build import image
from build.cpio import read_newc


def _build(tmp_path, guest_root, name):
    out = tmp_path / name
    out.mkdir()
    (out / "cache").symlink_to(guest_root.parent)
    manifest = image.build(out)
    return out, manifest


def test_two_builds_are_byte_identical_and_complete(tmp_path, guest_root):
    out1, manifest = _build(tmp_path, guest_root, "a")
    out2, _ = _build(tmp_path, guest_root, "b")
    payload = (out1 / "rootfs.cpio").read_bytes()
    assert payload == (out2 / "rootfs.cpio").read_bytes()
    assert (out1 / "rootfs.manifest.json").read_bytes() == (out2 / "rootfs.manifest.json").read_bytes()
    assert len(payload) < 4194304 and manifest["payload"]["size"] == len(payload)
    assert payload[:4] == b"\x28\xb5\x2f\xfd"  # zstd frame magic: the kernel picks the decompressor by it

    members = {m.name: m for m in read_newc(zstandard.ZstdDecompressor().decompress(payload))}
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
    order = members["etc/cohesix/modules.order"].data.decode().split()
    paths = [p for p in order if p.startswith("/lib/")]
    assert paths.index("/lib/cohesix/modules/failover.ko") < paths.index("/lib/cohesix/modules/virtio_net.ko")
    assert paths.index("/lib/cohesix/modules/9pnet.ko") < paths.index("/lib/cohesix/modules/9p.ko")
    for p in paths:
        assert p.lstrip("/") in members
    entry_paths = [e["path"] for e in manifest["entries"]]
    assert entry_paths == sorted(entry_paths, key=str.encode)
    assert json.loads((out1 / "rootfs.manifest.json").read_text())["kernel"]["cmdline"] == image.kernel_cmdline()
    assert (out1 / "Image").read_bytes()[0x38:0x3C] == b"ARM\x64"
