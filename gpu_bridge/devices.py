"""GPU discovery for ``gpu-bridge-host`` (SPEC §9.5): ``--mock`` and ``--nvml``.

Why NVML is imported here and only here, inside :func:`nvml_gpus`: ``--nvml`` is feature-gated — a host
without NVIDIA's binding (``nvidia-ml-py``, module ``pynvml``) or without the driver must still run
``--mock``, and the binding must not be loaded unless asked for. Every way NVML can fail (binding
missing, library missing, no driver, no device) becomes one :class:`NvmlUnavailable` whose text is
the ``<reason>`` of ``nvml unavailable: <reason>`` (exit 3).

Field rules (§9.5): ``GPU-<index>``; ``name``; ``memory_mb`` = total bytes // 1 048 576; ``sm_count``
from the device attributes' multiprocessor count, 0 when NVML cannot tell; ``driver_version`` = NVML's
driver version string; ``runtime_version`` = the CUDA driver version as ``<major>.<minor>``.
"""
from __future__ import annotations

from types import ModuleType

from nine_door.gpu.lines import MOCK_GPUS, GpuInfo

MIB = 1_048_576


class NvmlUnavailable(Exception):
    """NVML cannot enumerate GPUs here; ``str()`` is the reason printed after ``nvml unavailable:``."""


def mock_gpus() -> list[GpuInfo]:
    """Exactly the two mock GPUs of SPEC §9.1."""
    return list(MOCK_GPUS)


def _text(value: object) -> str:
    """pynvml returns ``bytes`` in old releases and ``str`` in new ones."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def cuda_version_text(version: int) -> str:
    """NVML's CUDA driver version integer (e.g. 12040) → ``12.4``."""
    return f"{version // 1000}.{(version % 1000) // 10}"


def _load_binding() -> ModuleType:
    try:
        import pynvml
    except ImportError as exc:
        raise NvmlUnavailable(f"pynvml is not installed ({exc.msg}); install the nvml extra") from None
    return pynvml


def nvml_gpus(binding: ModuleType | None = None) -> list[GpuInfo]:
    """Every NVML device as a :class:`GpuInfo`; NvmlUnavailable when there is none to list."""
    nv = binding if binding is not None else _load_binding()
    try:
        nv.nvmlInit()
    except Exception as exc:  # noqa: BLE001 - NVMLError and OSError alike mean "no NVML here"
        raise NvmlUnavailable(_reason(exc)) from None
    try:
        driver = _text(nv.nvmlSystemGetDriverVersion())
        runtime = cuda_version_text(int(nv.nvmlSystemGetCudaDriverVersion()))
        count = int(nv.nvmlDeviceGetCount())
        if count == 0:
            raise NvmlUnavailable("NVML reports no GPU")
        gpus = []
        for index in range(count):
            handle = nv.nvmlDeviceGetHandleByIndex(index)
            memory_mb = int(nv.nvmlDeviceGetMemoryInfo(handle).total) // MIB
            gpus.append(GpuInfo(f"GPU-{index}", _text(nv.nvmlDeviceGetName(handle)) or f"GPU {index}",
                                max(memory_mb, 1), _sm_count(nv, handle), driver or "unknown", runtime))
        return gpus
    except NvmlUnavailable:
        raise
    except Exception as exc:  # noqa: BLE001 - a failing query is an unusable NVML too
        raise NvmlUnavailable(_reason(exc)) from None
    finally:
        try:
            nv.nvmlShutdown()
        except Exception:  # noqa: BLE001
            pass


def _sm_count(nv: ModuleType, handle: object) -> int:
    try:
        return int(nv.nvmlDeviceGetAttributes(handle).multiprocessorCount)
    except Exception:  # noqa: BLE001 - not supported on this device or binding: 0 per SPEC §9.5
        return 0


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return text or exc.__class__.__name__
