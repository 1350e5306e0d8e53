"""The floor image: the same kernel and command line as the product, and an initramfs whose ``/init``
does nothing but print :data:`FLOOR_LINE` and power off.

Why: absolute boot times differ by ~30 % between machines of the same kind (issue 12), so
``bench/bench_boot.py`` boots this floor in the same run as the real image and reports ready ÷ floor.
The floor's time is QEMU start + kernel boot + PID 1's first write -- everything the image cannot
change -- so the ratio is what our payload and our user space cost on top of it.

The ``/init`` is a ~200-byte static AArch64 ELF written by :mod:`image.floor.init_elf` (a handful of
instructions encoded in Python): no cross compiler, no libc, no new package, and the same bytes on
every build.
"""
from __future__ import annotations

#: The one line the floor's /init prints; the benchmark's "ready" marker for the floor.
FLOOR_LINE = "Cohesix floor: init reached"
