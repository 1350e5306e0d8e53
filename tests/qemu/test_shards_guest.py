"""Sharding inside the booted guest (issue 15 acceptance 2 and 3).

One guest, built from a test IR with sharding at width 1 (the shipped IR boots width 2 in the other
QEMU tests), the legacy alias on and the 9P listener on:

* Linux's own 9P client in the guest (v9fs self-test) walks ``/shard/1/worker/worker-1/telemetry``
  (depth 5) and reaches the same node through ``/worker/worker-1/telemetry``;
* as many heartbeat workers as the guest's 256 MiB hold are spawned from the host — spawning stops at
  the first EBUSY, which the root task answers when memory for another worker is short — all of them
  attach and write telemetry; then all are killed and nothing is left: no session (``/proc/9p/sessions``),
  no ring (``/proc/ingest/queued``, the console's ``mem``), no process (the ``memstat`` line's
  ``fork_children``, counted from the guest's ``/proc``).
"""
from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from coh_rtc import compile_ir
from nine_door import errors as E
from nine_door import frame_v1, tickets
from nine_door.client import Client, SocketStreamTransport
from nine_door.errors import NineError
from nine_door.messages import O_APPEND, O_RDONLY, O_WRONLY
from nine_door.shards import shard_label
from qemu.harness import QemuGuest
from qemu.ir_image import build_for_ir
from qemu.launch import GuestPorts

from .test_ir_images import TEST_CONSOLE_PORT, make_test_ir

REPO = Path(__file__).resolve().parents[2]
LOG_DIR = REPO / "out" / "test-logs"
SPAWN = b'{"spawn":"heartbeat","ticks":100000}\n'
TARGET = 256                    # the goal; the guest's memory decides how many really start
MIN_WORKERS = 32                # fewer than this means the per-worker cost regressed badly


def make_ir(dest: Path) -> Path:
    """The QEMU tests' IR (test_ir_images.make_test_ir: 9P listener on) at schema 1.2, sharded at width 1."""
    ir = make_test_ir(dest)
    text = re.sub(r"^schema = \"1\.\d\"", 'schema = "1.2"', ir.read_text(), count=1, flags=re.M)
    text = re.sub(r"\[sharding\][^\[]*", "[sharding]\nenable = true\nlegacy_worker_alias = true\n"
                  "scheme = { kind = \"hex_prefix\", width = 1 }\n\n", text, flags=re.S)
    text = re.sub(r"\[cas[^\n]*\][^\[]*", "", text, flags=re.S)       # schema 1.3 tables, if shipped
    ir.write_text(text)
    return ir


@pytest.fixture(scope="module")
def guest(tmp_path_factory):
    work = tmp_path_factory.mktemp("shard-image")
    ir = make_ir(work)
    compiled = compile_ir(ir)
    assert compiled.resolved["sharding"]["enable"] is True
    assert compiled.resolved["sharding"]["scheme"]["width"] == 1
    build_for_ir(ir, work / "out")
    machine = QemuGuest(kernel=work / "out" / "Image", initrd=work / "out" / "rootfs.cpio",
                        guest_ports=GuestPorts(console=TEST_CONSOLE_PORT, ninep=564, ninep_enabled=True),
                        log_path=LOG_DIR / "test_shards_guest.log",
                        extra_append="cohesix_v9fs_selftest=1 cohesix_memstat=2")
    machine.start()
    try:
        yield machine, compiled
    finally:
        machine.stop()


def client_for(guest: QemuGuest, compiled) -> Client:
    import socket

    sock = socket.create_connection(("127.0.0.1", guest.ninep_port), timeout=30)
    client = Client(SocketStreamTransport(sock))
    client.version(8192)
    client.attach("queen", tickets.mint(compiled.ticket_secrets["queen"], "queen"))
    return client


def test_v9fs_walks_the_canonical_shard_path_and_the_alias(guest):
    machine, _ = guest
    deadline = time.monotonic() + 90
    log: list[str] = []
    assert machine.command_lines("attach queen")[0] == "OK ATTACH role=queen"
    while time.monotonic() < deadline:
        log = machine.command_lines("log")
        if "v9fs done" in log:
            break
        time.sleep(1)
    assert "v9fs done" in log, f"self-test did not finish; log:\n{log}"
    assert "v9fs ls / entries=gpu,log,proc,queen,shard,worker" in log
    assert f"v9fs shard path=/shard/{shard_label('worker-1', 1)}/worker/worker-1/telemetry alias_same=true" in log
    assert any(line.startswith("v9fs telemetry frames=") for line in log), log


def test_as_many_workers_as_memory_holds_then_nothing_leaks(guest):
    machine, compiled = guest
    queen = client_for(machine, compiled)
    ctl = queen.open("/queen/ctl", O_WRONLY | O_APPEND)
    spawned, refusal = 0, None
    started = time.monotonic()
    while spawned < TARGET:
        try:
            queen.write(ctl, 0, SPAWN)
        except NineError as exc:
            refusal = exc.errno
            break
        spawned += 1
        if spawned % 16 == 0:                   # let the workers attach before the next batch
            wait_sessions(queen, spawned - 8, 120)
    print(f"guest: {spawned} workers spawned in {time.monotonic() - started:.1f} s "
          f"(stopped by {'EBUSY' if refusal == E.EBUSY else 'the target'})")
    assert refusal in (None, E.EBUSY)
    assert spawned >= MIN_WORKERS
    ours = [ln.split()[1] for ln in read_text(queen, "/log/queen.log").splitlines()
            if ln.startswith("spawned worker-") and " ticks=100000 " in ln]
    assert len(ours) == spawned
    wait_sessions(queen, spawned, 120, exact=True)     # the self-test's worker (ticks=3) has ended
    silent = []
    for worker_id in ours:                             # every one of them writes telemetry
        fid = queen.open(f"/shard/{shard_label(worker_id, 1)}/worker/{worker_id}/telemetry", O_RDONLY)
        data = read_until(queen, fid, 30)
        queen.clunk(fid)
        if not data:
            silent.append(worker_id)
        else:
            frame, _ = frame_v1.decode_one(data)
            assert frame.kind == 1
    assert not silent, f"{len(silent)} workers wrote nothing: {silent[:5]}"
    for start in range(0, len(ours), 100):          # 100 kill lines per Twrite (< msize)
        batch = b"".join(b'{"kill":"%s"}\n' % w.encode() for w in ours[start:start + 100])
        assert queen.write(ctl, 0, batch) == len(batch)
    wait_sessions(queen, 0, 60, exact=True)
    assert read_text(queen, "/proc/ingest/queued") == "queued=0\n"
    mem = machine.command_lines("mem", until="\ncas_bytes=")      # only the mem verb prints it
    assert "workers=0" in mem and "telemetry_capacity=0" in mem, mem
    # serial output is read as it is expected: wait for a memstat line that shows no worker process
    machine.expect(r"memstat [^\r\n]* workers=0 [^\r\n]*fork_children=0", timeout=30)
    peak = max((int(m.group(1)), ln) for ln in machine.serial_text.splitlines()
               if (m := re.match(r"memstat .*fork_children=(\d+)$", ln)))
    print(f"guest peak: {peak[1]}")
    queen.clunk(ctl)


def read_text(client: Client, path: str) -> str:
    return client.read_all(path).decode()


def wait_sessions(client: Client, n: int, timeout: float, exact: bool = False) -> str:
    deadline = time.monotonic() + timeout
    while True:
        first = read_text(client, "/proc/9p/sessions").splitlines()[0]
        workers = int(re.search(r" worker=(\d+) ", first).group(1))
        if workers == n or (not exact and workers >= n):
            return first
        if time.monotonic() > deadline:
            raise AssertionError(f"waiting for worker={n}: {first}")
        time.sleep(0.5)


def read_until(client: Client, fid: int, timeout: float) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        data = client.read(fid, 0, 8000)
        if data or time.monotonic() > deadline:
            return data
        time.sleep(0.5)
