"""cohsh ``spawn gpu`` (SPEC §11.4) and the ``gpu`` overview command (issue 16)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from cohsh.commands import Command, LocalError, translate
from cohsh.gpu_view import run_gpu
from cohsh.script import Outcome
from cohsh.transport_tcp import Reply
from coh_rtc.testing import write_ir

REPO = Path(__file__).resolve().parents[2]


def test_spawn_gpu_translation_keys_in_spec_order():
    cmd = translate("spawn worker-gpu gpu_id=GPU-0 mem_mb=4096 streams=2 ttl_s=120 priority=3 ops=50")
    assert isinstance(cmd, Command)
    assert cmd.wire == ('ECHO /queen/ctl {"spawn":"gpu","lease":{"gpu_id":"GPU-0","mem_mb":4096,"streams":2,'
                        '"ttl_s":120,"priority":3},"budget":{"ops":50}}')
    bad = translate("spawn gpu gpu_id=GPU-0 mem_mb=1 streams=1 ttl_s=1 ticks=3")
    assert isinstance(bad, LocalError) and bad.message == "unknown spawn options: ticks"


def test_gpu_translation():
    assert translate("gpu") == Command("gpu", "LS /gpu", read_only=True)
    assert isinstance(translate("gpu extra"), LocalError)


def test_run_gpu_summarises_each_gpu():
    files = {
        "LS /gpu": ("GPU-0", "bridge"),
        "CAT /gpu/GPU-0/info": ('{"id":"GPU-0","name":"Mock 4090","memory_mb":24576,"sm_count":144,'
                                '"driver_version":"555.0","runtime_version":"12.4"}',),
        "CAT /gpu/GPU-0/lease": ('{"schema":"gpu-lease/v1","state":"ACTIVE","gpu_id":"GPU-0","worker_id":"worker-1",'
                                 '"mem_mb":4096,"streams":2,"ttl_s":120,"priority":0}',
                                 '{"schema":"gpu-lease/v1","state":"RELEASED","gpu_id":"GPU-0","worker_id":"worker-1",'
                                 '"mem_mb":4096,"streams":2,"ttl_s":120,"priority":0,"reason":"killed-by-queen"}'),
        "CAT /gpu/GPU-0/status": ('{"job":"j","state":"QUEUED","detail":"accepted"}',
                                  '{"job":"j","state":"OK","detail":"completed","result_sha256":"ab"}'),
    }
    said: list[str] = []
    outcome = run_gpu(lambda wire: Reply((), "OK", files[wire]), said.append)
    assert outcome.response == "OK GPU gpus=1"
    assert said == ['GPU-0 "Mock 4090" memory_mb=24576 sm_count=144 driver=555.0 runtime=12.4',
                    "  lease: RELEASED worker=worker-1 mem_mb=4096 streams=2 ttl_s=120 priority=0 reason=killed-by-queen",
                    "  last job: j OK completed result_sha256=ab"]


def test_run_gpu_stops_at_a_refused_read():
    refusal = Outcome("ERR LS reason=policy error=EACCES")
    assert run_gpu(lambda wire: refusal, lambda line: None) is refusal


def test_spawn_gpu_and_gpu_against_the_host_mode(tmp_path):
    ir = write_ir(tmp_path, {"gpu.backend": "mock"})
    script = tmp_path / "gpu.coh"
    script.write_text("attach queen\nspawn gpu gpu_id=GPU-1 mem_mb=8192 streams=1 ttl_s=60\ngpu\n")
    out = subprocess.run([sys.executable, "-m", "cohsh", "--transport", "mock", "--mock-ir", str(ir),
                          "--script", str(script)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    at = lines.index('GPU-1 "Mock 4060" memory_mb=8192 sm_count=64 driver=555.0 runtime=12.4')
    assert lines[at + 1] == "  lease: ACTIVE worker=worker-1 mem_mb=8192 streams=1 ttl_s=60 priority=0"
