"""Host-side build of the Cohesix boot payload.

Pipeline (see docs/build.md): ``stage`` assembles the guest file tree from the fetched Debian pieces and
our guest packages, ``elf_audit`` proves every ELF in it can load, ``cpio`` writes a deterministic
``newc`` archive, and ``image`` compresses it to ``out/rootfs.cpio`` and runs the size guard.
"""
