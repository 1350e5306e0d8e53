"""``cas-tool`` without a server (SPEC §13.5): pack, verify (incl. a tampered chunk), keygen, dump, the
published vector, and the exit codes, through the real command line in a subprocess."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from nine_door.cas import ed25519

REPO = Path(__file__).resolve().parents[2]
VECTOR_PAYLOAD = bytes(range(0x64))


def cas_tool(*args: str, check: int | None = 0) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "cas_tool", *map(str, args)], cwd=REPO, capture_output=True,
                            text=True, timeout=60)
    if check is not None:
        assert result.returncode == check, (result.returncode, result.stdout, result.stderr)
    return result


def test_pack_writes_the_spec_vector_and_verifies(tmp_path):
    payload = tmp_path / "payload"
    payload.write_bytes(VECTOR_PAYLOAD)
    out = cas_tool("pack", "--epoch", 1, "--chunk-bytes", 64, "--out", tmp_path / "p", payload)
    assert out.stdout.strip() == ("packed epoch=1 chunks=2 new_chunks=2 payload_sha256="
                                  "bce0aff19cf5aa6a7469a30d61d04e4376e4bbf6381052ee9e7f33925c954d52")
    raw = (tmp_path / "p" / "manifest.cbor").read_bytes()
    assert hashlib.sha256(raw).hexdigest() == "2a1321408a968214973607d96005901baa7d0662fde1e4032eb450cfb831cfa1"
    assert sorted(p.name for p in (tmp_path / "p" / "chunks").iterdir()) == [
        "25e23b37dfb23fb4d3b0ec008d66d08770f08ef3e7b79e498ab89a2885795db4",
        "fdeab9acf3710362bd2658cdc9a29e8f9c757fcf9811603a8c447cd1d9151108"]
    assert cas_tool("verify", tmp_path / "p").stdout == "verify ok epoch=1\n"
    dumped = json.loads(cas_tool("dump", tmp_path / "p" / "manifest.cbor").stdout)
    assert dumped["payload_sha256"] == "bce0aff19cf5aa6a7469a30d61d04e4376e4bbf6381052ee9e7f33925c954d52"
    assert list(dumped) == sorted(dumped)


def test_signed_vector_with_seed_11(tmp_path):
    (tmp_path / "k.key").write_text("11" * 32 + "\n")
    (tmp_path / "k.pub").write_text(ed25519.public_key(b"\x11" * 32).hex() + "\n")
    (tmp_path / "payload").write_bytes(VECTOR_PAYLOAD)
    cas_tool("pack", "--epoch", 1, "--chunk-bytes", 64, "--sign-key", tmp_path / "k.key", "--out", tmp_path / "p",
             tmp_path / "payload")
    raw = (tmp_path / "p" / "manifest.cbor").read_bytes()
    assert len(raw) == 282
    assert hashlib.sha256(raw).hexdigest() == "9ba90f16c259b3feb50e0989f519ca45d6e67e0fdd9b7d7e432e885e0750975f"
    assert cas_tool("verify", tmp_path / "p", "--pubkey", tmp_path / "k.pub").stdout == "verify ok epoch=1\n"


def test_keygen_signs_and_a_wrong_key_fails(tmp_path):
    cas_tool("keygen", "--out", tmp_path / "a")
    cas_tool("keygen", "--out", tmp_path / "b")
    key = (tmp_path / "a.key").read_text()
    assert len(key) == 65 and key.endswith("\n") and (tmp_path / "a.key").stat().st_mode & 0o077 == 0
    pub = bytes.fromhex((tmp_path / "a.pub").read_text())
    assert ed25519.public_key(bytes.fromhex(key)) == pub
    (tmp_path / "payload").write_bytes(b"x" * 1000)
    cas_tool("pack", "--epoch", 3, "--chunk-bytes", 256, "--sign-key", tmp_path / "a.key", "--out", tmp_path / "p",
             tmp_path / "payload")
    cas_tool("verify", tmp_path / "p", "--pubkey", tmp_path / "a.pub")
    bad = cas_tool("verify", tmp_path / "p", "--pubkey", tmp_path / "b.pub", check=1)
    assert "signature does not verify" in bad.stderr


def test_tampered_chunk_fails_verify_with_exit_1(tmp_path):
    (tmp_path / "payload").write_bytes(bytes(range(256)) * 10)
    cas_tool("pack", "--epoch", 1, "--chunk-bytes", 512, "--out", tmp_path / "p", tmp_path / "payload")
    victim = sorted((tmp_path / "p" / "chunks").iterdir())[0]
    data = bytearray(victim.read_bytes())
    data[7] ^= 0x01
    victim.write_bytes(bytes(data))
    result = cas_tool("verify", tmp_path / "p", check=1)
    assert "does not match its name" in result.stderr and result.stdout == ""
    victim.unlink()
    assert "missing" in cas_tool("verify", tmp_path / "p", check=1).stderr


def test_delta_pack_holds_only_new_chunks_and_verifies_with_its_base(tmp_path):
    base_payload = b"".join(bytes([i]) * 256 for i in range(8))
    new_payload = base_payload[:1024] + b"\xee" * 300
    (tmp_path / "v1").write_bytes(base_payload)
    (tmp_path / "v2").write_bytes(new_payload)
    cas_tool("pack", "--epoch", 1, "--chunk-bytes", 256, "--out", tmp_path / "base", tmp_path / "v1")
    out = cas_tool("pack", "--epoch", 2, "--chunk-bytes", 256, "--base", tmp_path / "base", "--out", tmp_path / "d",
                   tmp_path / "v2")
    assert out.stdout.startswith("packed epoch=2 chunks=6 new_chunks=2 ")
    assert len(list((tmp_path / "d" / "chunks").iterdir())) == 2
    cas_tool("verify", tmp_path / "d", "--base", tmp_path / "base")
    assert "needs --base" in cas_tool("verify", tmp_path / "d", check=1).stderr


@pytest.mark.parametrize("args", [(), ("pack",), ("pack", "--epoch", "x", "--chunk-bytes", "64", "--out", "o", "p"),
                                  ("fetch", "--epoch", "1"), ("frobnicate",)])
def test_usage_errors_exit_2(args):
    cas_tool(*args, check=2)


def test_io_errors_exit_3(tmp_path):
    cas_tool("verify", tmp_path / "absent", check=3)
    cas_tool("pack", "--epoch", 1, "--chunk-bytes", 64, "--out", tmp_path / "o", tmp_path / "absent", check=3)
    port = _free_port()
    cas_tool("fetch", "--epoch", 1, "--host", "127.0.0.1", "--port", port, "--ticket", "x", "--out",
             tmp_path / "f", check=3)


def test_dump_of_non_cbor_exits_1(tmp_path):
    (tmp_path / "m").write_bytes(b"\xff\xff")
    cas_tool("dump", tmp_path / "m", check=1)


def _free_port() -> int:
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_progress_bar_only_on_a_terminal():
    import io

    from cas_tool.progress import Progress

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty, pipe = Tty(), io.StringIO()
    for stream in (tty, pipe):
        bar = Progress("push epoch 1", 4096, stream=stream, min_interval_s=0)
        bar.advance(2048)
        bar.advance(2048)
        bar.close()
    assert pipe.getvalue() == ""
    assert "\rpush epoch 1 [" in tty.getvalue() and "100.0% 4/4 KiB" in tty.getvalue()
    assert tty.getvalue().endswith("\n")
