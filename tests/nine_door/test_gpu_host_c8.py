"""SPEC §16 C8 in the host run mode (issue 16 acceptance 1): the real root task, 9P TCP listener and
worker-gpu process, driven over TCP by tests/conformance_gpu.py (the same check the guest tests run).
Twice: the legacy layout (schema 1.0: text rings under /worker), and schema 1.2 with cbor_v1 rings under
/shard without the legacy alias (the ready line is a kind-0 frame, status lines kind-2 server frames)."""
from __future__ import annotations

import pytest

from coh_rtc.testing import TICKET_SECRETS, write_ir
from nine_door import tickets
from tests.conformance_gpu import GpuTarget, run_c8

LAYOUTS = {
    "legacy-text": ({"gpu.backend": "mock"}, None, "gpu-worker ready gpu=GPU-0"),
    "sharded-cbor": ({"gpu.backend": "mock", "telemetry.frame_schema": "cbor_v1", "sharding.enable": True,
                      "sharding.legacy_worker_alias": False}, "1.2", "kind=0 gpu-worker ready gpu=GPU-0"),
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_c8_against_the_host_run_mode_with_the_mock_backend(tmp_path, layout):
    from root_task.host import start_in_process

    overrides, schema, ready = LAYOUTS[layout]
    system = start_in_process(str(write_ir(tmp_path, overrides, schema=schema)))
    try:
        target = GpuTarget("127.0.0.1", system.ninep_port, tickets.mint(TICKET_SECRETS["queen"], "queen"),
                           TICKET_SECRETS["worker-gpu"])
        seen = run_c8(target, ttl_s=4)
    finally:
        system.stop()
    assert seen["worker"] == "worker-1"
    assert seen["telemetry"][0] == ready
