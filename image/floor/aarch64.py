"""Encoders for the few A64 instructions the floor's /init needs (Arm ARM, "A64 base instructions").

Each returns the 32-bit instruction word; operands out of range raise, so a wrong program cannot be
encoded silently. Registers are numbered 0-30 (x0-x30).
"""
from __future__ import annotations

import struct


def _reg(rd: int) -> int:
    if not 0 <= rd <= 30:
        raise ValueError(f"x{rd}: general registers are x0-x30")
    return rd


def movz(rd: int, imm16: int, shift: int = 0) -> int:
    """``movz xd, #imm16, lsl #shift``: xd = imm16 << shift, other bits zero."""
    return _wide(0xD2800000, rd, imm16, shift)


def movk(rd: int, imm16: int, shift: int = 0) -> int:
    """``movk xd, #imm16, lsl #shift``: replace one 16-bit field of xd, keep the rest."""
    return _wide(0xF2800000, rd, imm16, shift)


def _wide(opcode: int, rd: int, imm16: int, shift: int) -> int:
    if not 0 <= imm16 <= 0xFFFF:
        raise ValueError(f"immediate {imm16:#x} does not fit 16 bits")
    if shift not in (0, 16, 32, 48):
        raise ValueError(f"shift {shift}: must be 0, 16, 32 or 48")
    return opcode | (shift // 16) << 21 | imm16 << 5 | _reg(rd)


def mov_imm(rd: int, value: int) -> list[int]:
    """``mov xd, #value`` for a 32-bit unsigned value: one movz, plus a movk if the top half is set."""
    if not 0 <= value <= 0xFFFFFFFF:
        raise ValueError(f"value {value:#x} is not a 32-bit unsigned immediate")
    words = [movz(rd, value & 0xFFFF)]
    if value >> 16:
        words.append(movk(rd, value >> 16, 16))
    return words


def adr(rd: int, offset: int) -> int:
    """``adr xd, .+offset``: xd = address of this instruction + offset (within ±1 MiB)."""
    if not -(1 << 20) <= offset < (1 << 20):
        raise ValueError(f"adr offset {offset} is outside ±1 MiB")
    imm = offset & 0x1FFFFF
    return 0x10000000 | (imm & 0x3) << 29 | (imm >> 2) << 5 | _reg(rd)


def svc(imm16: int = 0) -> int:
    """``svc #imm16``: the system call (Linux reads the number from x8, arguments from x0-x5)."""
    if not 0 <= imm16 <= 0xFFFF:
        raise ValueError(f"immediate {imm16:#x} does not fit 16 bits")
    return 0xD4000001 | imm16 << 5


def b(offset: int) -> int:
    """``b .+offset``: a branch relative to this instruction (word-aligned, within ±128 MiB)."""
    if offset % 4 or not -(1 << 27) <= offset < (1 << 27):
        raise ValueError(f"branch offset {offset} is not word-aligned within ±128 MiB")
    return 0x14000000 | (offset >> 2) & 0x3FFFFFF


def assemble(words: list[int]) -> bytes:
    """Little-endian instruction words, as an AArch64 Linux process runs them."""
    return struct.pack(f"<{len(words)}I", *words)
