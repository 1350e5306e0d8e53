"""Fault injection against the booted guest (issue 19 acceptance 1), the bounded form CI runs.

One guest (a test IR with the 9P listener on, booted with the NIC tap) takes three faults while a
session pool appends numbered records over 9P and cohsh's reconnecting console client sends commands:
a link reset (QMP ``set_link``), an RX flood through the tap's injector, and corrupted / truncated /
duplicated / reordered copies of the live frames. Every run must keep the serial console answering and
the pump ticking, serve TCP console and 9P again within seconds, lose or double no acknowledged write,
and let cohsh's reconnect complete. ``doit faults`` runs the long form (qemu/faults/runs.py FULL).
"""
from __future__ import annotations

import re

import pytest

from qemu.faults.runs import QUICK, FaultRig, RunResult, build_image

from .conftest import LOG_DIR


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    image = build_image(tmp_path_factory.mktemp("faults"))
    rig = FaultRig(image, QUICK, log_path=LOG_DIR / "test_faults.log", say=print)
    rig.start()
    yield rig
    rig.stop()


def assert_run_survived(result: RunResult, rig: FaultRig) -> None:
    assert result.lost == 0 and result.doubled == 0, result.line()
    assert result.acked > 0 and result.stored >= result.acked, result.line()
    assert result.recovery_s is not None and result.recovery_s < QUICK.recovery_limit_s, result.line()
    assert result.reconnect_completed and result.console_reconnects >= 1, result.line()
    assert result.serial_answers >= 3 and result.tick_lines >= 10, result.line()
    assert 0 < result.max_tick_gap_ms <= QUICK.max_tick_gap_ms, result.line()
    assert result.ok, result.line()
    serial = rig.guest.serial_text
    assert "callback failed" not in serial and "Traceback" not in serial, serial[-3000:]


def test_link_reset_while_traffic_flows(rig):
    result = rig.link_reset()
    assert_run_survived(result, rig)
    assert result.details["link_flaps"] == QUICK.link_flaps
    # the outage outlasts the client's 1.5 s ack timeout: cohsh lost its connection during the fault and
    # its own reconnect (new connection, AUTH, re-ATTACH, command re-issued) completed afterwards
    assert result.details["console_losses_in_fault"] >= 1, result.line()
    assert result.details["console_reconnects_in_fault"] >= 1, result.line()
    assert result.console_reconnects >= 2, result.line()
    # and the writer's pool lost its 9P session (1.5 s reply timeout), rebuilt it and resent what was not
    # acknowledged with the same seqs: the audit above found each acknowledged record exactly once
    assert result.pool_recoveries >= 1 and result.details["pool_resent"] > 0, result.line()
    assert rig.probe_net()["link_up"] is True


def test_rx_flood_fills_the_ring_and_the_guest_survives(rig):
    result = rig.rx_flood()
    assert_run_survived(result, rig)
    assert result.frames_injected > 10_000
    # more frames were offered than the guest took: its RX ring was full and QEMU dropped the excess
    assert result.details["not_delivered"] > 0, result.line()


def test_corrupt_duplicate_and_reordered_frames_during_live_tcp(rig):
    result = rig.corrupt_frames()
    assert_run_survived(result, rig)
    assert result.details["acked_in_fault"] > 0, result.line()     # the corruption met live 9P traffic
    for kind in ("bad_tcp_csum", "bad_ip_csum", "truncated", "duplicate", "reordered", "garbage", "bad_syn"):
        assert result.details[kind] > 0, (kind, result.line())
    assert re.search(r" PASS$", result.line())
