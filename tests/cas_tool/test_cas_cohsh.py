"""``cohsh updates`` (issue 17): the committed epochs and their manifests, read through the console.

The upload itself goes through the console too: ``echo b64:<…> > <cas path>`` writes decoded bytes at
offset u64::MAX (SPEC §10.5), so a manifest longer than one echo is sent in pieces (positioned append)."""
from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
from pathlib import Path

from coh_rtc.testing import write_ir
from cohsh.cas_view import manifest_lines, run_updates
from cohsh.script import Outcome
from cohsh.transport_tcp import Reply
from nine_door.cas import manifest as mf

REPO = Path(__file__).resolve().parents[2]
PAYLOAD = bytes(range(100))


def b64_lines(raw: bytes) -> tuple[str, ...]:
    return tuple("b64:" + base64.b64encode(raw[i:i + 48]).decode() for i in range(0, len(raw), 48))


def test_manifest_lines_show_the_dump_view():
    manifest, _ = mf.build(1, 64, PAYLOAD)
    lines = manifest_lines("1", b64_lines(mf.encode(manifest)))
    assert lines[0] == ("epoch 1 kind=base chunks=2 payload_bytes=100 payload_sha256="
                        + hashlib.sha256(PAYLOAD).hexdigest())
    assert json.loads("\n".join(lines[1:]))["chunks"][0] == hashlib.sha256(PAYLOAD[:64]).hexdigest()
    assert manifest_lines("2", ("b64:////",))[0] == "epoch 2 manifest unreadable"


def test_run_updates_stops_at_a_refused_read():
    refusal = Outcome("ERR LS reason=policy error=ENOENT")
    assert run_updates("/updates", lambda wire: refusal, lambda line: None) is refusal
    said: list[str] = []
    assert run_updates("/updates", lambda wire: Reply((), "OK", ()), said.append).response == "OK UPDATES epochs=0"
    assert said == ["no committed epochs"]


def test_upload_by_echo_and_updates_view_against_the_host_mode(tmp_path):
    ir = write_ir(tmp_path, {"cas.enable": True, "cas.store.chunk_bytes": 64}, schema="1.3")
    manifest, pieces = mf.build(1, 64, PAYLOAD)
    raw = mf.encode(manifest)
    lines = ["attach queen"]
    for piece in pieces:
        lines.append(f"echo b64:{base64.b64encode(piece).decode()} > /updates/1/chunks/{hashlib.sha256(piece).hexdigest()}")
    for start in range(0, len(raw), 90):
        lines.append(f"echo b64:{base64.b64encode(raw[start:start + 90]).decode()} > /updates/1/manifest.cbor")
    lines += ["updates", "EXPECT SUBSTR OK UPDATES epochs=1", "mem"]
    script = tmp_path / "cas.coh"
    script.write_text("\n".join(lines) + "\n")
    out = subprocess.run([sys.executable, "-m", "cohsh", "--transport", "mock", "--mock-ir", str(ir),
                          "--script", str(script)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    text = out.stdout.splitlines()
    assert f"epoch 1 kind=base chunks=2 payload_bytes=100 payload_sha256={hashlib.sha256(PAYLOAD).hexdigest()}" in text
    assert any(line.strip() == '"epoch": 1,' for line in text)
    assert "cas_bytes=100" in " ".join(text)
