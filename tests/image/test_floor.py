"""The floor image (image/floor/): a static AArch64 /init that prints one line and powers off.

Static checks read the ELF back with pyelftools and follow the program's own adr/mov operands to the
message, so a wrong encoding or layout fails here before any boot; the qemu test boots it once.
"""
from __future__ import annotations

import io
import shutil
import struct

import pytest
from elftools.elf.elffile import ELFFile
from hypothesis import given
from hypothesis import strategies as st

from image.cpio import read_newc
from image.floor import FLOOR_LINE
from image.floor import aarch64 as a64
from image.floor.build import build_floor, floor_payload
from image.floor.init_elf import BASE, floor_init
from qemu.launch import DEFAULT_KERNEL

# Reference words from the Arm ARM encodings, cross-checked with `llvm-mc --disassemble -triple=aarch64`.
KNOWN = [
    (a64.svc(), 0xD4000001),                    # svc #0
    (a64.movz(8, 64), 0xD2800808),              # mov x8, #64
    (a64.movz(0, 0xDEAD), 0xD29BD5A0),          # mov x0, #0xdead
    (a64.movk(0, 0xFEE1, 16), 0xF2BFDC20),      # movk x0, #0xfee1, lsl #16
    (a64.adr(1, 72), 0x10000241),               # adr x1, #72
    (a64.adr(0, -4), 0x10FFFFE0),               # adr x0, #-4
    (a64.b(0), 0x14000000),                     # b .
    (a64.b(-8), 0x17FFFFFE),                    # b .-8
]


@pytest.mark.parametrize("word,expected", KNOWN)
def test_instruction_encodings(word, expected):
    assert word == expected, f"{word:#010x} != {expected:#010x}"


@pytest.mark.parametrize("call", [lambda: a64.movz(0, 0x10000), lambda: a64.movk(0, 1, 8),
                                  lambda: a64.movz(31, 1), lambda: a64.adr(0, 1 << 20),
                                  lambda: a64.b(2), lambda: a64.mov_imm(0, 1 << 32)])
def test_encoders_refuse_operands_out_of_range(call):
    with pytest.raises(ValueError):
        call()


def _adr_offset(word: int) -> int:
    """The signed byte offset an adr word encodes (immhi:immlo, 21 bits)."""
    imm = ((word >> 5) & 0x7FFFF) << 2 | (word >> 29) & 3
    return imm - (1 << 21) if imm & (1 << 20) else imm


@given(st.integers(0, 30), st.integers(-(1 << 20), (1 << 20) - 1))
def test_adr_round_trips_every_offset(rd, offset):
    word = a64.adr(rd, offset)
    assert word & 0x9F000000 == 0x10000000 and word & 0x1F == rd
    assert _adr_offset(word) == offset


@given(st.integers(0, 30), st.integers(0, 0xFFFFFFFF))
def test_mov_imm_sets_exactly_the_value(rd, value):
    """Interpret the movz/movk words: the register must end up holding ``value``."""
    reg = None
    for word in a64.mov_imm(rd, value):
        assert word & 0x1F == rd
        shift, imm = 16 * ((word >> 21) & 3), (word >> 5) & 0xFFFF
        if word & 0xFF800000 == 0xD2800000:
            reg = imm << shift
        else:
            assert word & 0xFF800000 == 0xF2800000 and reg is not None
            reg = reg & ~(0xFFFF << shift) | imm << shift
    assert reg == value


def _words(data: bytes, offset: int, count: int) -> list[int]:
    return list(struct.unpack_from(f"<{count}I", data, offset))


def test_floor_init_is_a_static_aarch64_executable():
    data = floor_init()
    assert len(data) < 256
    elf = ELFFile(io.BytesIO(data))
    assert (elf.elfclass, elf.little_endian) == (64, True)
    assert elf["e_machine"] == "EM_AARCH64" and elf["e_type"] == "ET_EXEC"
    segments = list(elf.iter_segments())
    assert [s["p_type"] for s in segments] == ["PT_LOAD"]  # no PT_INTERP, no PT_DYNAMIC: static
    load = segments[0]
    assert (load["p_offset"], load["p_vaddr"], load["p_filesz"]) == (0, BASE, len(data))
    assert load["p_flags"] == 5  # R+X
    assert load["p_vaddr"] % load["p_align"] == load["p_offset"] % load["p_align"]
    assert BASE < elf["e_entry"] < BASE + len(data) and elf["e_entry"] % 4 == 0


def test_floor_init_writes_its_line_to_stdout_then_powers_off():
    """Decode the first instructions: adr x1 must point at FLOOR_LINE, x2 its length, x0 fd 1."""
    data = floor_init()
    entry = ELFFile(io.BytesIO(data))["e_entry"] - BASE
    adr_word, mov_x0, mov_x2, mov_x8, svc = _words(data, entry, 5)
    assert adr_word & 0x9F00001F == 0x10000001  # adr x1
    imm = _adr_offset(adr_word)
    message = FLOOR_LINE.encode() + b"\n"
    assert data[entry + imm:entry + imm + len(message)] == message
    assert (mov_x0, mov_x2, mov_x8, svc) == (a64.movz(0, 1), a64.movz(2, len(message)),
                                              a64.movz(8, 64), a64.svc())
    code = _words(data, entry, imm // 4)
    reboot = [*a64.mov_imm(0, 0xFEE1DEAD), *a64.mov_imm(1, 0x28121969), *a64.mov_imm(2, 0x4321FEDC),
              a64.movz(3, 0), *a64.mov_imm(8, 142), a64.svc()]
    assert code[5:5 + len(reboot)] == reboot


def test_floor_payload_is_deterministic_and_complete(tmp_path):
    first, second = build_floor(tmp_path / "a"), build_floor(tmp_path / "b")
    assert first.read_bytes() == second.read_bytes() == floor_payload()
    members = {m.name: m for m in read_newc(first.read_bytes())}
    assert sorted(members) == ["dev", "dev/console", "init"]
    assert members["dev/console"].rdev == (5, 1) and members["init"].mode == 0o100755
    assert members["init"].data == floor_init()


@pytest.mark.qemu
@pytest.mark.skipif(not DEFAULT_KERNEL.is_file() or shutil.which("qemu-system-aarch64") is None,
                    reason="needs out/Image (`doit build`) and qemu-system-aarch64")
def test_floor_boots_prints_its_line_and_qemu_exits_0(tmp_path):
    from qemu.harness import QemuGuest

    log = tmp_path / "serial.log"
    guest = QemuGuest(kernel=DEFAULT_KERNEL, initrd=build_floor(tmp_path), log_path=log)
    try:
        guest.start(wait_ready=False)
        guest.expect_exact(FLOOR_LINE, timeout=60)
        assert guest.wait_exit(timeout=30) == 0
    finally:
        guest.stop()
    assert FLOOR_LINE in log.read_text()
