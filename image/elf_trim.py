"""Blank the unwind tables of the guest's ELF files (about 250 KB of the compressed payload).

``.eh_frame`` and ``.eh_frame_hdr`` are read by exactly one thing: the DWARF unwinder in
``libgcc_s.so.1``, which glibc loads with ``dlopen`` for ``pthread_cancel``/``pthread_exit``/
``backtrace`` and which C++ exceptions use. The image ships no ``libgcc_s`` (nothing links it; the DT_NEEDED
closure never pulls it in), so in this image the tables cannot be read by anyone: they are dead
bytes that still cost ~8 % of the payload after compression.

The bytes are overwritten with zeros in place — section headers, program headers, sizes and every
address stay as they were — so the loader, the ELF audit and any tool see the same layout and the
zeros cost almost nothing compressed. ``stage.py`` only calls this when ``libgcc_s.so.1`` is not in
the image, and records the trimmed files in the build manifest.
"""
from __future__ import annotations

from pathlib import Path

from elftools.elf.elffile import ELFFile

UNWIND_SECTIONS = (".eh_frame", ".eh_frame_hdr")
UNWINDER_LIBRARY = "libgcc_s.so.1"


def unwind_ranges(path: Path) -> list[tuple[int, int]]:
    """(file offset, size) of the unwind sections that occupy bytes in ``path``."""
    with open(path, "rb") as f:
        elf = ELFFile(f)
        return [(s["sh_offset"], s["sh_size"]) for s in elf.iter_sections()
                if s.name in UNWIND_SECTIONS and s["sh_type"] != "SHT_NOBITS" and s["sh_size"]]


def blank_unwind_tables(path: Path) -> int:
    """Zero the unwind sections of ``path`` in place; return how many bytes were blanked."""
    ranges = unwind_ranges(path)
    if not ranges:
        return 0
    data = bytearray(path.read_bytes())
    for offset, size in ranges:
        data[offset:offset + size] = bytes(size)
    path.write_bytes(bytes(data))
    return sum(size for _, size in ranges)
