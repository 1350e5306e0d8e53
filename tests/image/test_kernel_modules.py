"""Kernel modules for the image: found as .ko or .ko.xz, ordered after their dependencies."""
from __future__ import annotations

import lzma

import pytest

from image import stage


def test_module_names_and_bytes_from_compressed_and_plain_files(tmp_path):
    elf = b"\x7fELF" + bytes(60)
    (tmp_path / "net_failover.ko.xz").write_bytes(lzma.compress(elf, check=lzma.CHECK_CRC32))
    (tmp_path / "virtio-mmio.ko").write_bytes(elf)
    assert stage.module_name(tmp_path / "net_failover.ko.xz") == "net_failover"
    assert stage.module_name(tmp_path / "virtio-mmio.ko") == "virtio_mmio"
    assert stage.module_bytes(tmp_path / "net_failover.ko.xz") == elf
    assert stage.module_bytes(tmp_path / "virtio-mmio.ko") == elf


def test_an_appended_module_signature_is_stripped_and_an_unsigned_module_kept():
    elf = b"\x7fELF" + bytes(60)
    blob = b"\x30\x82" + bytes(98)                       # stands in for the PKCS#7 message
    info = bytes([0, 0, 2, 0, 0, 0, 0, 0]) + len(blob).to_bytes(4, "big")   # struct module_signature
    signed = elf + blob + info + stage.MODULE_SIG_MARKER
    assert stage.strip_module_signature(signed) == elf
    assert stage.strip_module_signature(elf) == elf
    with pytest.raises(ValueError):
        stage.strip_module_signature(elf + (10**6).to_bytes(12, "big") + stage.MODULE_SIG_MARKER)


def test_the_fetched_kernels_net_and_9p_modules_load_in_dependency_order(guest_root):
    (modules_dir,) = (guest_root / "lib/modules").iterdir()
    order = stage.kernel_module_order(modules_dir, stage.KERNEL_MODULE_ROOTS)
    names = [name for _, name, _ in order]
    assert len(names) == len(set(names))
    for _, name, path in order:
        assert stage.module_bytes(path)[:4] == b"\x7fELF"
        stripped = stage.strip_module_signature(stage.module_bytes(path))   # what the image ships
        assert stripped[:4] == b"\x7fELF" and not stripped.endswith(stage.MODULE_SIG_MARKER)
        for dep in filter(None, stage._modinfo(path).get("depends", "").split(",")):
            assert names.index(dep.replace("-", "_")) < names.index(name)
    assert {"virtio_mmio", "virtio_net", "failover", "net_failover", "9pnet", "9pnet_fd", "9p"} <= set(names)
