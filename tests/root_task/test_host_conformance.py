"""SPEC §16 C12 and C15 over real TCP against the host run mode (issue 13 acceptance 1).

The whole system runs in this process (``root_task.host.start_in_process``: the real event pump, the
real 9P TCP listener, real worker processes) from the shipped IR; the script in
tests/conformance_telemetry.py drives it through its 9P port as any client would.
"""
from __future__ import annotations

from pathlib import Path

from coh_rtc import compile_ir
from nine_door import tickets
from tests.conformance_telemetry import Target, run_c12_c15

REPO = Path(__file__).resolve().parents[2]


def test_c12_and_c15_against_the_host_run_mode():
    from root_task.host import start_in_process

    ir = REPO / "configs" / "root_task.toml"
    secret = compile_ir(ir).ticket_secrets["queen"]
    system = start_in_process(str(ir))
    try:
        result = run_c12_c15(Target("127.0.0.1", system.ninep_port, tickets.mint(secret, "queen")))
    finally:
        system.stop()
    assert result["capacity"] == 65536 and result["peak"] == 3
