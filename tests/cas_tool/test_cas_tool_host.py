"""SPEC §16 C16 against the host run mode over real TCP, with the real ``cas-tool`` in a subprocess:
pack/push/fetch round trip; an interrupted push resumes at the reported sizes (fewer bytes the second
time); a wrong chunk name → EINVAL; an unsigned manifest when signing is configured → EACCES; a delta
pack uploads only the new chunks and verifies. Plus: a non-queen push is refused (exit 1), committed
chunks are skipped, a fetch resumes by offset."""
from __future__ import annotations

import hashlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from coh_rtc.testing import TICKET_SECRETS, write_ir
from nine_door import errors as E
from nine_door import messages as m
from nine_door import tickets
from nine_door.cas import ed25519
from nine_door.client import Client, NineError, SocketStreamTransport

REPO = Path(__file__).resolve().parents[2]
QUEEN = tickets.mint(TICKET_SECRETS["queen"], "queen")
CHUNK = 4096


def cas_tool(*args, check: int | None = 0) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "cas_tool", *map(str, args)], cwd=REPO, capture_output=True,
                            text=True, timeout=120)
    if check is not None:
        assert result.returncode == check, (result.returncode, result.stdout, result.stderr)
    return result


def summary(line: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in line.split()[1:])


def start(tmp_path: Path, **extra):
    from root_task.host import start_in_process

    overrides = {"cas.enable": True, "cas.delta.enable": True, "cas.store.chunk_bytes": CHUNK, **extra}
    return start_in_process(str(write_ir(tmp_path, overrides, schema="1.3")))


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    host = start(tmp_path_factory.mktemp("cas-host"))
    yield host
    host.stop()


def remote(system, *args, ticket: str = QUEEN, check: int | None = 0):
    return cas_tool(*args, "--host", "127.0.0.1", "--port", system.ninep_port, "--ticket", ticket, check=check)


def payload(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def queen_client(system) -> Client:
    client = Client(SocketStreamTransport(socket.create_connection(("127.0.0.1", system.ninep_port), timeout=30)))
    client.version(8192)
    client.attach("", QUEEN)
    return client


def test_c16_pack_push_fetch_round_trip_and_delta(system, tmp_path):
    data = payload(300_000, 1)
    (tmp_path / "v1").write_bytes(data)
    packed = summary(cas_tool("pack", "--epoch", 10, "--chunk-bytes", CHUNK, "--out", tmp_path / "p1",
                              tmp_path / "v1").stdout)
    pushed = summary(remote(system, "push", tmp_path / "p1").stdout)
    assert pushed == {"epoch": "10", "chunks_sent": packed["chunks"], "chunks_skipped": "0",
                      "bytes_sent": str(len(data) + (tmp_path / "p1" / "manifest.cbor").stat().st_size)}
    fetched = summary(remote(system, "fetch", "--epoch", 10, "--out", tmp_path / "back").stdout)
    assert (tmp_path / "back").read_bytes() == data and fetched["payload_sha256"] == packed["payload_sha256"]
    assert system.task.door.log_lines()[-1].startswith("cas-manifest accepted epoch=10 kind=base ")
    # pushing again sends nothing but finds the manifest committed
    again = summary(remote(system, "push", tmp_path / "p1").stdout)
    assert again["chunks_sent"] == "0" and again["bytes_sent"] == "0"
    # delta: 3 chunks changed out of 74
    new = bytearray(data)
    for index in (0, 40, 73):
        new[index * CHUNK] ^= 0xFF
    (tmp_path / "v2").write_bytes(bytes(new))
    delta = summary(cas_tool("pack", "--epoch", 11, "--chunk-bytes", CHUNK, "--base", tmp_path / "p1",
                             "--out", tmp_path / "d2", tmp_path / "v2").stdout)
    assert delta["new_chunks"] == "3"
    cas_tool("verify", tmp_path / "d2", "--base", tmp_path / "p1")
    pushed = summary(remote(system, "push", tmp_path / "d2").stdout)
    assert pushed["chunks_sent"] == "3"
    assert int(pushed["bytes_sent"]) < 4 * CHUNK + 4000
    assert system.task.door.log_lines()[-1].startswith("cas-manifest accepted epoch=11 kind=delta ")
    remote(system, "fetch", "--epoch", 11, "--out", tmp_path / "back2")
    assert (tmp_path / "back2").read_bytes() == bytes(new)


def test_c16_interrupted_push_resumes_at_the_reported_sizes(system, tmp_path):
    data = payload(1 << 20, 2)
    (tmp_path / "v").write_bytes(data)
    cas_tool("pack", "--epoch", 20, "--chunk-bytes", CHUNK, "--out", tmp_path / "p", tmp_path / "v")
    store = system.task.door.cas
    before = store.bytes_used
    proc = subprocess.Popen([sys.executable, "-m", "cas_tool", "push", str(tmp_path / "p"), "--host", "127.0.0.1",
                             "--port", str(system.ninep_port), "--ticket", QUEEN, "--limit-rate", "400000",
                             "--piece-bytes", "1000"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while store.bytes_used - before < 300_000 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    received = -1
    while received != store.bytes_used - before:      # frames already sent may still be in the socket
        received = store.bytes_used - before
        time.sleep(0.3)
    assert 0 < received < len(data), received
    partial = [c for c in store.chunks.values() if not c.committed and c.data]
    assert store.committed_manifest(20) is None
    second = summary(remote(system, "push", tmp_path / "p").stdout)
    manifest_size = (tmp_path / "p" / "manifest.cbor").stat().st_size
    assert int(second["bytes_sent"]) == len(data) - received + manifest_size      # resumed exactly
    assert int(second["chunks_skipped"]) == received // CHUNK
    assert int(second["bytes_sent"]) < len(data)
    assert len(partial) <= 1
    remote(system, "fetch", "--epoch", 20, "--out", tmp_path / "back")
    assert (tmp_path / "back").read_bytes() == data


def test_fetch_resumes_by_offset(system, tmp_path):
    data = payload(50_000, 3)
    (tmp_path / "v").write_bytes(data)
    cas_tool("pack", "--epoch", 30, "--chunk-bytes", CHUNK, "--out", tmp_path / "p", tmp_path / "v")
    remote(system, "push", tmp_path / "p")
    (tmp_path / "back.part").write_bytes(data[:10_000])          # an interrupted earlier fetch
    out = summary(remote(system, "fetch", "--epoch", 30, "--out", tmp_path / "back").stdout)
    assert out["bytes_received"] == str(len(data) - 10_000)
    assert (tmp_path / "back").read_bytes() == data and not (tmp_path / "back.part").exists()
    (tmp_path / "back.part").write_bytes(b"\x00" * 9000)          # a corrupt prefix is dropped, not trusted
    out = summary(remote(system, "fetch", "--epoch", 30, "--out", tmp_path / "back").stdout)
    assert out["bytes_received"] == str(len(data)) and (tmp_path / "back").read_bytes() == data


def test_c16_wrong_chunk_name_is_einval(system):
    client = queen_client(system)
    try:
        name = "ab" * 32
        fid = client.walk(client.root, ["updates", "40", "chunks", name])
        client.lopen(fid, m.O_WRONLY)
        with pytest.raises(NineError) as exc:
            client.write(fid, 0, b"x" * CHUNK)
        assert exc.value.errno == E.EINVAL
        assert client.getattr(fid).size == 0
    finally:
        client.close()
    assert f"cas-chunk rejected epoch=40 expected={name} " \
           f"actual={hashlib.sha256(b'x' * CHUNK).hexdigest()} bytes={CHUNK}" in system.task.door.log_lines()


def test_non_queen_push_is_refused(system, tmp_path):
    client = queen_client(system)
    try:
        client.append("/queen/ctl", b'{"spawn":"heartbeat","ticks":100}\n')   # through 9P, on the pump
    finally:
        client.close()
    door = system.task.door
    worker_id = sorted(door.workers, key=lambda w: int(w.split("-")[1]))[-1]
    record = door.workers[worker_id]
    ticket = door.mint_worker_ticket(worker_id, record.role, record.spawn_budget, record.spawn_ms)
    (tmp_path / "v").write_bytes(b"w" * 100)
    cas_tool("pack", "--epoch", 50, "--chunk-bytes", CHUNK, "--out", tmp_path / "p", tmp_path / "v")
    result = remote(system, "push", tmp_path / "p", ticket=ticket, check=1)
    assert "ENOENT" in result.stderr                 # a worker cannot even reach a pending epoch (§13.1)
    assert door.cas.committed_manifest(50) is None


def test_c16_unsigned_manifest_is_eacces_when_signing_is_configured(tmp_path):
    (tmp_path / "k.key").write_text("11" * 32 + "\n")
    (tmp_path / "k.pub").write_text(ed25519.public_key(b"\x11" * 32).hex() + "\n")
    host = start(tmp_path, **{"cas.store.sign": {"algo": "ed25519", "pubkey_path": "k.pub"}})
    try:
        (tmp_path / "v").write_bytes(payload(10_000, 4))
        cas_tool("pack", "--epoch", 1, "--chunk-bytes", CHUNK, "--out", tmp_path / "u", tmp_path / "v")
        refused = remote(host, "push", tmp_path / "u", check=1)
        assert "EACCES" in refused.stderr
        assert host.task.door.log_lines()[-1] == "cas-manifest rejected epoch=1 reason=missing-signature"
        cas_tool("pack", "--epoch", 1, "--chunk-bytes", CHUNK, "--sign-key", tmp_path / "k.key",
                 "--out", tmp_path / "s", tmp_path / "v")
        pushed = summary(remote(host, "push", tmp_path / "s").stdout)
        assert pushed["chunks_skipped"] == "3"                   # the chunks were committed the first time
        assert host.task.door.log_lines()[-1].startswith("cas-manifest accepted epoch=1 ")
    finally:
        host.stop()
