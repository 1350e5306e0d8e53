"""Bridge mode end to end in the host run mode (issue 16 acceptance 2, host half): a system with
``gpu.backend = "bridge"``, ``gpu-bridge-host --mock --connect`` as a real process over 9P TCP. GPUs
appear, C8 passes with the self-test executed by the bridge (the server has no arithmetic in bridge
mode), and killing the bridge ends the lease with ``bridge-disconnected``."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from coh_rtc.testing import TICKET_SECRETS, write_ir
from nine_door import tickets
from tests.conformance_gpu import SELFTEST_RESULT, GpuTarget, run_c8, spawned_worker, wait_for

REPO = Path(__file__).resolve().parents[2]
QUEEN = tickets.mint(TICKET_SECRETS["queen"], "queen")


def start_bridge(port: int, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "gpu_bridge.cli", "--mock", "--connect", f"127.0.0.1:{port}",
                             "--ticket", QUEEN, *extra], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    from root_task.host import start_in_process

    ir = write_ir(tmp_path_factory.mktemp("bridge"), {"gpu.backend": "bridge",
                                                       "secure9p.tcp_listener.enable": True})
    running = start_in_process(str(ir))
    yield running
    running.stop()


def test_bridge_end_to_end(system):
    target = GpuTarget("127.0.0.1", system.ninep_port, QUEEN, TICKET_SECRETS["worker-gpu"])
    q = target.queen()
    assert q.listdir("/gpu") == ["bridge"]
    bridge = start_bridge(system.ninep_port)
    try:
        wait_for(lambda: q.listdir("/gpu") == ["GPU-0", "GPU-1", "bridge"], 30, "the bridge's GPUs")
        # C8 with the bridge executing the self-test
        seen = run_c8(target, ttl_s=5)
        assert any(SELFTEST_RESULT in line for line in seen["telemetry"])
        # a new lease, its self-test done by the bridge, then the bridge is killed
        spawn = {"spawn": "gpu", "lease": {"gpu_id": "GPU-1", "mem_mb": 8192, "streams": 3, "ttl_s": 120}}
        q.append("/queen/ctl", json.dumps(spawn).encode())
        worker = spawned_worker(q, "GPU-1")
        wait_for(lambda: SELFTEST_RESULT in q.read_all("/gpu/GPU-1/status").decode(), 30, "the self-test OK")
        assert bridge.poll() is None
        bridge.send_signal(signal.SIGKILL)
        bridge.wait(10)
        wait_for(lambda: q.listdir("/gpu") == ["bridge"], 10, "the GPUs to be unregistered")
        log = q.read_all("/log/queen.log").decode().splitlines()
        assert f"gpu lease released gpu=GPU-1 worker={worker} reason=bridge-disconnected" in log
        assert log.index(f"revoked {worker}: lease released") > \
            log.index(f"gpu lease released gpu=GPU-1 worker={worker} reason=bridge-disconnected")
        assert worker not in q.listdir("/worker")
    finally:
        if bridge.poll() is None:
            bridge.kill()
            bridge.wait(10)
        q.close()


def test_once_exits_0_when_the_job_stream_is_empty_and_its_gpus_leave_with_it(system):
    q = GpuTarget("127.0.0.1", system.ninep_port, QUEEN, "").queen()
    try:
        bridge = start_bridge(system.ninep_port, "--once")
        assert bridge.wait(60) == 0, bridge.stderr.read()
        wait_for(lambda: q.listdir("/gpu") == ["bridge"], 10, "the GPUs to leave with the session")
    finally:
        q.close()


def test_a_bad_ticket_is_an_attach_failure_exit_4(system):
    out = subprocess.run([sys.executable, "-m", "gpu_bridge.cli", "--mock", "--connect",
                          f"127.0.0.1:{system.ninep_port}", "--ticket", tickets.mint("wrong", "queen")],
                         cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 4
    assert "connection failed" in out.stderr
