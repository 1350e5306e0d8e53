"""NVML faked at the binding boundary (the real ``pynvml`` module, its functions replaced): SPEC §9.5's
field rules for ``--nvml``."""
from __future__ import annotations

from types import SimpleNamespace

import pynvml
import pytest

from gpu_bridge import cli, devices

GIB = 1024 ** 3


@pytest.fixture
def fake_nvml(monkeypatch):
    devices_table = [
        {"name": b"NVIDIA H100 80GB HBM3", "total": 85_520_809_984, "sms": 132},
        {"name": "NVIDIA A2", "total": 16 * GIB - 1, "sms": None},          # attributes unsupported
    ]
    calls = []

    def attributes(handle):
        sms = devices_table[handle]["sms"]
        if sms is None:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return SimpleNamespace(multiprocessorCount=sms)

    fakes = {
        "nvmlInit": lambda: calls.append("init"),
        "nvmlShutdown": lambda: calls.append("shutdown"),
        "nvmlSystemGetDriverVersion": lambda: "550.54.15",
        "nvmlSystemGetCudaDriverVersion": lambda: 12040,
        "nvmlDeviceGetCount": lambda: len(devices_table),
        "nvmlDeviceGetHandleByIndex": lambda index: index,
        "nvmlDeviceGetName": lambda handle: devices_table[handle]["name"],
        "nvmlDeviceGetMemoryInfo": lambda handle: SimpleNamespace(total=devices_table[handle]["total"]),
        "nvmlDeviceGetAttributes": attributes,
    }
    for name, fn in fakes.items():
        monkeypatch.setattr(pynvml, name, fn)
    return calls


def test_field_rules(fake_nvml):
    gpus = devices.nvml_gpus()
    assert [g.line() for g in gpus] == [
        '{"id":"GPU-0","name":"NVIDIA H100 80GB HBM3","memory_mb":81559,"sm_count":132,'
        '"driver_version":"550.54.15","runtime_version":"12.4"}',
        '{"id":"GPU-1","name":"NVIDIA A2","memory_mb":16383,"sm_count":0,'
        '"driver_version":"550.54.15","runtime_version":"12.4"}',
    ]
    assert fake_nvml == ["init", "shutdown"]


def test_cli_list_with_fake_nvml(fake_nvml, capsys):
    assert cli.main(["--nvml", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0].startswith('{"id":"GPU-0","name":"NVIDIA H100 80GB HBM3"')


@pytest.mark.parametrize("version,text", [(12040, "12.4"), (11080, "11.8"), (12000, "12.0"), (10010, "10.1")])
def test_cuda_version_text(version, text):
    assert devices.cuda_version_text(version) == text


def test_init_failure_and_no_devices_are_unavailable(monkeypatch, capsys):
    def fail():
        raise pynvml.NVMLError(pynvml.NVML_ERROR_DRIVER_NOT_LOADED)
    monkeypatch.setattr(pynvml, "nvmlInit", fail)
    assert cli.main(["--nvml", "--list"]) == 3
    assert capsys.readouterr().err.startswith("nvml unavailable: Driver Not Loaded")
    monkeypatch.setattr(pynvml, "nvmlInit", lambda: None)
    monkeypatch.setattr(pynvml, "nvmlShutdown", lambda: None)
    monkeypatch.setattr(pynvml, "nvmlSystemGetDriverVersion", lambda: "1")
    monkeypatch.setattr(pynvml, "nvmlSystemGetCudaDriverVersion", lambda: 12000)
    monkeypatch.setattr(pynvml, "nvmlDeviceGetCount", lambda: 0)
    with pytest.raises(devices.NvmlUnavailable, match="no GPU"):
        devices.nvml_gpus()
