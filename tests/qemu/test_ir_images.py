"""Guests built from a test copy of the IR (issue 3 acceptance 4, issue 4 acceptance 2).

One test image enables the 9P TCP listener and moves the console port and tick period. The booted
guest must show values that come from that IR (its manifest hash and console port in the transcript),
and the Linux kernel's own 9P client inside the guest must mount NineDoor and work (v9fs self-test).
The test image is built as a single zstd member (``--compress zstd``), while the default image is the
two-member zstd + xz-with-ARM64-BCJ payload, so between them the QEMU tests boot both forms.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from coh_rtc import compile_ir
from qemu.ir_image import build_for_ir
from qemu.launch import GuestPorts
from tests.transcript import assert_transcript

REPO = Path(__file__).resolve().parents[2]
TEST_CONSOLE_PORT = 31400


def make_test_ir(dest: Path) -> Path:
    text = (REPO / "configs" / "root_task.toml").read_text()
    text = re.sub(r"(\[secure9p\.tcp_listener\][^\[]*?)enable = false", r"\1enable = true", text, flags=re.S)
    text = re.sub(r"^port = 31337$", f"port = {TEST_CONSOLE_PORT}", text, flags=re.M)
    text = re.sub(r"^tick_ms = \d+", "tick_ms = 7", text, flags=re.M)
    ir = dest / "root_task.toml"
    ir.write_text(text)
    return ir


@pytest.fixture(scope="module")
def test_image(tmp_path_factory):
    work = tmp_path_factory.mktemp("ir-image")
    ir = make_test_ir(work)
    compiled = compile_ir(ir)
    assert compiled.resolved["secure9p"]["tcp_listener"]["enable"] is True
    assert compiled.resolved["system"]["tick_ms"] == 7
    assert compiled.resolved["console"]["tcp"]["port"] == TEST_CONSOLE_PORT
    build_for_ir(ir, work / "out")
    manifest = json.loads((work / "out" / "rootfs.manifest.json").read_text())
    assert [m["format"] for m in manifest["payload"]["members"]] == ["newc+zstd"]
    return work / "out", compiled


def boot(guest_factory, image_dir: Path, **kwargs):
    ports = GuestPorts(console=TEST_CONSOLE_PORT, ninep=564, ninep_enabled=True)
    return guest_factory(kernel=image_dir / "Image", initrd=image_dir / "rootfs.cpio", guest_ports=ports,
                         **kwargs).start()


def test_guest_runs_with_the_values_of_its_ir(guest_factory, test_image):
    image_dir, compiled = test_image
    guest = boot(guest_factory, image_dir)
    serial = guest.serial_text
    assert f"manifest schema={compiled.schema} sha256={compiled.manifest_sha256}" in serial
    assert_transcript(serial, "0.0.0.0", TEST_CONSOLE_PORT, 564)
    lines = guest.command_lines("bi")
    assert f"manifest.sha256={compiled.manifest_sha256}" in lines


def test_linux_v9fs_mounts_ninedoor_inside_the_guest(guest_factory, test_image):
    image_dir, _ = test_image
    guest = boot(guest_factory, image_dir, extra_append="cohesix_v9fs_selftest=1")
    assert guest.command_lines("attach queen")[0] == "OK ATTACH role=queen"
    deadline = time.monotonic() + 60
    log: list[str] = []
    while time.monotonic() < deadline:
        log = guest.command_lines("log")
        if "v9fs done" in log:
            break
        time.sleep(1)
    assert "v9fs done" in log, f"self-test did not finish; log:\n{log}\nserial:\n{guest.serial_text}"
    assert "v9fs ls / entries=gpu,log,proc,queen,shard,updates,worker" in log
    # the shipped IR shards at width 2: depth-5 canonical path, and the legacy alias to the same node
    assert "v9fs shard path=/shard/13/worker/worker-1/telemetry alias_same=true" in log
    assert "v9fs cat /proc/boot first=Cohesix boot: root-task online" in log
    assert "v9fs append /queen/ctl bytes=32" in log
    assert "v9fs write /proc/boot errno=13" in log  # EACCES (SPEC §3.5)
    assert any(line.startswith("spawned worker-1 ticks=3 ") for line in log)
    # the worker's cbor_v1 ring and its cursor, through the kernel's 9P client (issue 13)
    assert any(re.fullmatch(r'v9fs telemetry frames=[1-3] first=seq=1 ts=\d+ kind=heartbeat payload="heartbeat 1"',
                            line) for line in log), log
    assert any(re.fullmatch(r"v9fs cursor before cursor=0 oldest=1 next=[2-4]", line) for line in log), log
    assert any(re.fullmatch(r"v9fs cursor after cursor=2 oldest=1 next=[2-4]", line) for line in log), log


def test_c12_and_c15_over_the_forwarded_9p_port(guest_factory, test_image):
    """Issue 13 acceptance 1: rings (C12) and observability counters (C15) against the booted guest,
    through its 9P listener as forwarded by QEMU (tests/conformance_telemetry.py)."""
    from nine_door import tickets
    from tests.conformance_telemetry import Target, run_c12_c15

    image_dir, compiled = test_image
    guest = boot(guest_factory, image_dir)
    ticket = tickets.mint(compiled.ticket_secrets["queen"], "queen")
    result = run_c12_c15(Target("127.0.0.1", guest.ninep_port, ticket), settle_s=30.0)
    assert result["capacity"] == compiled.resolved["telemetry"]["ring_bytes_per_worker"]


def test_session_pool_script_over_the_forwarded_9p_port(guest_factory, test_image):
    """Issue 14: the generated session_pool.coh (a pool of 9P sessions: pool bench) against the guest."""
    from nine_door import tickets

    image_dir, compiled = test_image
    guest = boot(guest_factory, image_dir)
    result = subprocess.run(
        [sys.executable, "-m", "cohsh", "--transport", "tcp", "--tcp-port", str(guest.console_port),
         "--auth-token", "changeme", "--9p-port", str(guest.ninep_port),
         "--script", str(REPO / "tests" / "cli" / "session_pool.coh")],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    assert re.search(r"^OK POOL BENCH ops=64 short_writes=\d+ retries=\d+ elapsed_ms=\d+$", result.stdout, re.M)
    from tests.conformance_telemetry import Target

    ticket = tickets.mint(compiled.ticket_secrets["queen"], "queen")
    client = Target("127.0.0.1", guest.ninep_port, ticket).client()
    try:
        log = client.read_all("/log/queen.log").decode().splitlines()
    finally:
        client.close()
    assert [line for line in log if line.startswith("pool-")] == [f"pool-{i}" for i in range(1, 65)]


def test_c14_pool_over_the_forwarded_9p_port(guest_factory, test_image):
    """Issue 14 acceptance 1 against the guest: a pool appends 4 000 cbor_v1 records to an armed ring that
    a consumer drains (short writes, retried per §3.13), while a killer cuts every telemetry session's
    connection once; the pool rebuilds them, resends by seq, and each record is stored once, in order."""
    import socket as socketlib
    import threading

    from cohsh.pool import TELEMETRY, Pool, PoolPolicy
    from nine_door.frame_v1 import Frame

    image_dir, compiled = test_image
    guest = boot(guest_factory, image_dir)
    secret = compiled.ticket_secrets["queen"]
    total = 4000                                                # ~160 KB: more than the 64 KiB ring holds
    with Pool("127.0.0.1", guest.ninep_port, secret=secret, env={}, policy=PoolPolicy(max_retries=12)) as pool, \
            Pool("127.0.0.1", guest.ninep_port, secret=secret, env={}, control=1, telemetry=1) as consumer:
        pool.write("/queen/ctl", '{"spawn":"heartbeat","ticks":100000}')
        ring = "/worker/worker-1/telemetry"
        pool.write("/worker/worker-1/cursor", "1")            # armed: nothing unconsumed is evicted
        seen: list = []
        stop = threading.Event()

        def consume() -> None:
            cursor, deadline = 1, time.monotonic() + 60
            while (consumer.read("/proc/ingest/backpressure") == b"backpressure=0\n"
                   and time.monotonic() < deadline and not stop.is_set()):
                time.sleep(0.05)                                 # start only once the ring is full
            while not stop.is_set():
                tail = consumer.tail(ring, cursor=cursor, commit=True)
                seen.extend(tail.records)
                cursor = tail.cursor
                time.sleep(0.1)
            while True:
                tail = consumer.tail(ring, cursor=cursor, commit=True)
                if not tail.records:
                    break
                seen.extend(tail.records)
                cursor = tail.cursor

        def kill_once() -> None:                                 # cut the connections mid-append
            deadline = time.monotonic() + 60
            while len(seen) < total // 3 and time.monotonic() < deadline:
                time.sleep(0.02)
            for session in pool._sessions[TELEMETRY]:
                if session.sock is not None:
                    try:
                        session.sock.shutdown(socketlib.SHUT_RDWR)
                    except OSError:
                        pass

        threads = [threading.Thread(target=consume), threading.Thread(target=kill_once)]
        for thread in threads:
            thread.start()
        try:
            result = pool.append_many(ring, [f"c14-{i}" for i in range(1, total + 1)], batch=4)
        finally:
            stop.set()
            for thread in threads:
                thread.join(60)
    ours = [r.payload for r in seen if isinstance(r, Frame) and r.payload.startswith(b"c14-")]
    assert ours == [f"c14-{i}".encode() for i in range(1, total + 1)]
    assert result.records == total and result.recoveries >= 1
    assert result.short_writes > 0 and result.retries > 0, result


def test_c8_mock_gpus_over_the_forwarded_9p_port(guest_factory, test_image):
    """Issue 16 acceptance 1 in a booted guest: the shipped IR's mock backend (GPU-0, GPU-1), a GPU worker
    forked in the guest, its lease, the self-test job's RUNNING/OK lines with the §9.3 result hash in its
    telemetry, then lease expiry and ESTALE on the job fid (tests/conformance_gpu.py)."""
    from nine_door import tickets
    from tests.conformance_gpu import GpuTarget, run_c8

    image_dir, compiled = test_image
    assert compiled.resolved["gpu"]["backend"] == "mock"
    guest = boot(guest_factory, image_dir)
    target = GpuTarget("127.0.0.1", guest.ninep_port, tickets.mint(compiled.ticket_secrets["queen"], "queen"),
                       compiled.ticket_secrets["worker-gpu"])
    run_c8(target, ttl_s=15)
