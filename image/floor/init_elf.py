"""The floor's /init: a static AArch64 ELF executable with three system calls and no libc.

Program (x8 = syscall number, x0.. = arguments; numbers from the kernel's generic unistd.h)::

    write(1, FLOOR_LINE "\\n", len)                    # fd 1 is /dev/console, opened by the kernel
    reboot(MAGIC1, MAGIC2, LINUX_REBOOT_CMD_POWER_OFF)  # PSCI SYSTEM_OFF: QEMU exits with status 0
    exit(1)                                             # only if reboot failed: PID 1 exits, the
    b .                                                 # kernel panics, panic=-1 ends QEMU anyway

File layout: the 64-byte ELF header, one PT_LOAD program header (56 bytes) mapping the whole file
read+execute at :data:`BASE`, the code, then the message. No sections, no PT_INTERP, no
PT_DYNAMIC: the kernel maps it and jumps to ``e_entry``; nothing else reads it. Every byte is a
function of the message, so the build is reproducible by construction.
"""
from __future__ import annotations

import struct

from . import FLOOR_LINE
from .aarch64 import adr, assemble, b, mov_imm, movz, svc

BASE = 0x400000
#: Segment alignment: a multiple of every arm64 page size (4, 16, 64 KiB), so any kernel maps it.
ALIGN = 0x10000
EHDR_SIZE, PHDR_SIZE = 64, 56
EM_AARCH64, ET_EXEC, PT_LOAD = 183, 2, 1
PF_X, PF_R = 1, 4
SYS_WRITE, SYS_EXIT, SYS_REBOOT = 64, 93, 142
LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2 = 0xFEE1DEAD, 0x28121969
LINUX_REBOOT_CMD_POWER_OFF = 0x4321FEDC


def program(message: bytes) -> bytes:
    """The code followed by ``message``; position-independent (the message is found with adr)."""

    def code(msg_offset: int) -> list[int]:
        words = [adr(1, msg_offset)]  # x1 = &message (adr is the first word: offset from it)
        words += [movz(0, 1), *mov_imm(2, len(message)), *mov_imm(8, SYS_WRITE), svc()]
        words += [*mov_imm(0, LINUX_REBOOT_MAGIC1), *mov_imm(1, LINUX_REBOOT_MAGIC2),
                  *mov_imm(2, LINUX_REBOOT_CMD_POWER_OFF), movz(3, 0), *mov_imm(8, SYS_REBOOT), svc()]
        words += [movz(0, 1), *mov_imm(8, SYS_EXIT), svc(), b(0)]
        return words

    size = 4 * len(code(0))  # the code's length does not depend on the offset
    return assemble(code(size)) + message


def elf_header(entry: int, phnum: int) -> bytes:
    """ELF64 little-endian header of a static executable with ``phnum`` program headers, no sections."""
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)  # ELFCLASS64, ELFDATA2LSB, EV_CURRENT, SYSV ABI
    return ident + struct.pack("<HHIQQQIHHHHHH", ET_EXEC, EM_AARCH64, 1, entry, EHDR_SIZE, 0, 0,
                               EHDR_SIZE, PHDR_SIZE, phnum, 64, 0, 0)


def load_segment(size: int) -> bytes:
    """One PT_LOAD, R+X, mapping file bytes [0, size) at BASE."""
    return struct.pack("<IIQQQQQQ", PT_LOAD, PF_R | PF_X, 0, BASE, BASE, size, size, ALIGN)


def floor_init(line: str = FLOOR_LINE) -> bytes:
    """The complete /init executable that prints ``line`` and powers off."""
    body = program(line.encode() + b"\n")
    size = EHDR_SIZE + PHDR_SIZE + len(body)
    return elf_header(BASE + EHDR_SIZE + PHDR_SIZE, 1) + load_segment(size) + body
