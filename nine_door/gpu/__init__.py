"""The ``/gpu`` tree: GPU workers' leases and jobs, the mock backend and the bridge protocol (SPEC §9).

Why a package: the tree has its own node kinds (``nodes``), JSON values (``lines``), reference arithmetic
(``arith``, shared with ``gpu-bridge-host``) and the service that ties leases to workers (``service``).
The server only calls :func:`install` at start and four hooks of :class:`~nine_door.gpu.service.GpuService`.
Nothing here is imported when ``gpu.backend = "none"``.
"""
from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing at boot (docs/build.md)
if TYPE_CHECKING:  # pragma: no cover
    from ..server import NineDoor
    from .service import GpuService

BACKENDS = ("none", "mock", "bridge")


def install(door: "NineDoor") -> "GpuService | None":
    """Create ``/gpu`` for the configured backend; ``none`` creates nothing (SPEC §9.4)."""
    backend = door.config.gpu_backend
    if backend == "none":
        return None
    if backend not in BACKENDS:
        raise ValueError(f"unknown gpu.backend {backend!r}")
    from .service import GpuService

    return GpuService(door, backend)
