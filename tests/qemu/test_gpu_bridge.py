"""Bridge mode in a booted guest (issue 16 acceptance 1 and 2): a guest built from a test copy of the IR
with ``gpu.backend = "bridge"`` and the 9P TCP listener, and ``gpu-bridge-host --mock --connect`` on the
host through QEMU's forward of that listener. GPUs appear, SPEC §16 C8 passes with the self-test executed
by the bridge (tests/conformance_gpu.py, the same check as the host mode), and killing the bridge ends
the lease with ``bridge-disconnected``. One boot."""
from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from qemu.ir_image import build_for_ir

from coh_rtc import compile_ir
from nine_door import tickets
from tests.conformance_gpu import SELFTEST_RESULT, GpuTarget, run_c8, spawned_worker, wait_for
from tests.qemu.test_ir_images import boot, make_test_ir

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bridge_image(tmp_path_factory):
    work = tmp_path_factory.mktemp("gpu-bridge-image")
    ir = make_test_ir(work)
    text = re.sub(r'(\[gpu\][^\[]*?)backend = "\w+"', r'\1backend = "bridge"', ir.read_text(), flags=re.S)
    ir.write_text(text)
    compiled = compile_ir(ir)
    assert compiled.resolved["gpu"]["backend"] == "bridge"
    build_for_ir(ir, work / "out")
    return work / "out", compiled


def test_gpu_bridge_against_a_booted_guest(guest_factory, bridge_image):
    image_dir, compiled = bridge_image
    guest = boot(guest_factory, image_dir)
    queen = tickets.mint(compiled.ticket_secrets["queen"], "queen")
    target = GpuTarget("127.0.0.1", guest.ninep_port, queen, compiled.ticket_secrets["worker-gpu"])
    q = target.queen()
    assert q.listdir("/gpu") == ["bridge"]
    bridge = subprocess.Popen([sys.executable, "-m", "gpu_bridge.cli", "--mock", "--connect",
                               f"127.0.0.1:{guest.ninep_port}", "--ticket", queen], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: q.listdir("/gpu") == ["GPU-0", "GPU-1", "bridge"], 60, "the bridge's GPUs", 0.5)
        seen = run_c8(target, ttl_s=25, ready_timeout_s=60)
        assert any(SELFTEST_RESULT in line for line in seen["telemetry"])
        spawn = {"spawn": "gpu", "lease": {"gpu_id": "GPU-1", "mem_mb": 8192, "streams": 1, "ttl_s": 300}}
        q.append("/queen/ctl", json.dumps(spawn).encode())
        worker = spawned_worker(q, "GPU-1")
        wait_for(lambda: SELFTEST_RESULT in q.read_all("/gpu/GPU-1/status").decode(), 60, "the self-test OK", 0.5)
        bridge.send_signal(signal.SIGKILL)
        bridge.wait(10)
        wait_for(lambda: q.listdir("/gpu") == ["bridge"], 30, "the GPUs to be unregistered", 0.5)
        log = q.read_all("/log/queen.log").decode().splitlines()
        assert f"gpu lease released gpu=GPU-1 worker={worker} reason=bridge-disconnected" in log
        assert f"revoked {worker}: lease released" in log
    finally:
        if bridge.poll() is None:
            bridge.kill()
            bridge.wait(10)
        q.close()
