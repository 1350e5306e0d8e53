"""``gpu-bridge-host`` as a command (SPEC §9.5): ``--list``, usage errors (2), NVML unavailable (3),
connection and attach failures (4)."""
from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conformance_gpu import MOCK_INFO_LINES

REPO = Path(__file__).resolve().parents[2]


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gpu_bridge.cli", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=60, env=env)


def test_mock_list_prints_the_two_mock_info_lines():
    out = run("--mock", "--list")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == MOCK_INFO_LINES


def test_nvml_without_nvidia_hardware_exits_3():
    """This machine (and CI) has the binding (test extra) but no NVIDIA driver: NVML cannot load."""
    out = run("--nvml", "--list")
    assert out.returncode == 3, (out.stdout, out.stderr)
    assert out.stdout == ""
    assert out.stderr.startswith("nvml unavailable: ") and len(out.stderr.strip()) > len("nvml unavailable:")


def test_nvml_without_the_binding_exits_3_naming_it(tmp_path):
    """The binding is imported only for --nvml: a pynvml that cannot import is a reason, not a crash."""
    (tmp_path / "pynvml.py").write_text("raise ImportError('no NVML binding here')\n")
    import os

    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO}"}
    out = run("--nvml", "--list", env=env)
    assert out.returncode == 3
    assert out.stderr.startswith("nvml unavailable: pynvml is not installed (no NVML binding here)")
    assert run("--mock", "--list", env=env).returncode == 0           # --mock never imports it


@pytest.mark.parametrize("args", [
    [], ["--list"], ["--mock", "--nvml", "--list"], ["--mock"], ["--mock", "--connect", "127.0.0.1:564"],
    ["--mock", "--connect", "nohost", "--ticket", "t"], ["--mock", "--connect", "h:0", "--ticket", "t"],
    ["--mock", "--connect", "h:x", "--ticket", "t"], ["--mock", "--list", "--once"], ["--mock", "--bogus"],
])
def test_usage_errors_exit_2(args):
    out = run(*args)
    assert out.returncode == 2, (args, out.stderr)
    assert "usage:" in out.stderr


def test_connection_refused_exits_4():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]            # bound, not listening: the connect is refused
        out = run("--mock", "--connect", f"127.0.0.1:{port}", "--ticket", "cohesix-ticket-00.00")
    assert out.returncode == 4
    assert "connection failed" in out.stderr


def test_the_bridge_skips_malformed_stream_lines_and_runs_jobs():
    """Unit: Bridge.handle_line on lines the server would never send, then a real job entry."""
    from gpu_bridge.bridge import Bridge, execute_job
    from nine_door.gpu import arith

    class FakeClient:
        def __init__(self):
            self.writes = []

        def open(self, path, flags=0):
            return 1

        def write(self, fid, offset, data):
            self.writes.append(data)
            return len(data)

    client = FakeClient()
    bridge = Bridge(client)
    for raw in (b"{", b"[]", b'{"gpu":1,"job":{"job":"a"}}', b'{"gpu":"G"}', b'{"gpu":"G","job":[]}'):
        bridge.handle_line(raw)
    assert client.writes == []
    import base64
    import hashlib
    import json

    payload = arith.matmul_payload(2, 2, 2, [1, 2, 3, 4], [5, 6, 7, 8])
    job = {"job": "m", "kernel": "matmul", "payload_b64": base64.b64encode(payload).decode()}
    bridge.handle_line(json.dumps({"gpu": "G", "worker": "worker-1", "job": job}).encode())
    assert [json.loads(w)["job_status"]["state"] for w in client.writes] == ["RUNNING", "OK"]
    assert json.loads(client.writes[1])["job_status"]["result_sha256"] == \
        "52b8d99475b6e4e8072ba9d54090a02f7ffb4f46b7d29a383883a087414e9fa4"
    assert execute_job({"job": "x", "kernel": "vadd", "payload_b64": "AAAA"}).detail == "invalid-payload"
    assert execute_job({"job": "y", "kernel": "vadd"}).result_sha256 is None
    assert hashlib.sha256(payload).hexdigest().startswith("b212db3d")
