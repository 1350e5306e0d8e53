"""Compiling valid IRs: resolution, defaults vs legacy values, generated files, determinism."""

from __future__ import annotations

import ast
import hashlib
import json
import shutil
from pathlib import Path

import pytest

from coh_rtc import OutputOptions, compile_ir
from coh_rtc.scripts import shard_label

from rtc_helpers import REPO_IR


def test_repo_ir_resolves_to_the_documented_shape() -> None:
    compiled = compile_ir(REPO_IR)
    r = compiled.resolved
    assert compiled.schema == "1.3"
    assert r["root_task"] == {"schema": "1.3"}
    assert r["system"] == {"arch": "aarch64", "machine": "virt", "tick_ms": 5, "max_workers": 1024}
    assert r["secure9p"] == {
        "msize": 8192,
        "walk_depth": 8,
        "tags_per_session": 32,
        "batch_frames": True,
        "short_write_policy": {"enable": True, "backoff_ms": 5},
        "tcp_listener": {"enable": False, "port": 564},
    }
    assert r["console"]["tcp"] == {"enable": True, "port": 31337, "max_sessions": 4}
    assert "auth_token" not in r["console"]  # only the hash: the image carries no token text
    assert r["console"]["auth_token_sha256"] == hashlib.sha256(b"changeme").hexdigest()
    assert b"changeme" not in compiled.manifest_bytes
    assert r["gpu"] == {"backend": "mock"}  # SPEC's default: GPU-0 and GPU-1 at boot
    assert [t["role"] for t in r["tickets"]] == ["queen", "worker-gpu", "worker-heartbeat"]
    assert r["tickets"][0]["secret_sha256"] == hashlib.sha256(b"bootstrap").hexdigest()
    assert compiled.ticket_secrets == {"queen": "bootstrap", "worker-gpu": "worker-gpu", "worker-heartbeat": "worker"}
    # schema 1.3: the whole system — telemetry data plane, sharding at width 2 with the alias, CAS
    assert r["telemetry"] == {"ring_bytes_per_worker": 65536, "frame_schema": "cbor_v1", "memory_budget_bytes": 67108864}
    assert r["observability"] == {"proc_9p": ["outstanding", "sessions", "short_writes"],
                                  "proc_ingest": {"fields": ["backpressure", "dropped", "p50_ms", "p95_ms", "queued"],
                                                  "watch_interval_ms": 1000}}
    assert r["sharding"] == {"enable": True, "scheme": {"kind": "hex_prefix", "width": 2},
                             "legacy_worker_alias": True}
    assert r["cas"]["enable"] is True and r["cas"]["delta"] == {"enable": True}
    assert r["cas"]["store"] == {"root": "/updates", "chunk_bytes": 4096, "hash": "sha256"}   # unsigned
    assert b"bootstrap" not in compiled.manifest_bytes


def test_manifest_bytes_and_hash_follow_the_spec() -> None:
    compiled = compile_ir(REPO_IR)
    assert compiled.manifest_bytes == (json.dumps(compiled.resolved, indent=2, sort_keys=True) + "\n").encode()
    assert compiled.manifest_sha256 == hashlib.sha256(compiled.manifest_bytes).hexdigest()
    sha_file = compiled.outputs["out/manifests/root_task_resolved.json.sha256"]
    assert sha_file == f"{compiled.manifest_sha256}  root_task_resolved.json\n".encode()


def test_defaults_apply_when_the_schema_includes_a_feature(spec_example: Path) -> None:
    r = compile_ir(spec_example).resolved
    assert r["secure9p"]["tags_per_session"] == 32
    assert r["telemetry"]["memory_budget_bytes"] == 67108864
    assert r["observability"]["proc_9p"] == ["outstanding", "sessions", "short_writes"]
    assert r["observability"]["proc_ingest"]["watch_interval_ms"] == 1000
    assert r["client_policies"]["cohsh"]["pool"] == {"control": 2, "telemetry": 4}
    assert r["cas"]["delta"] == {"enable": True}


def _exec_module(data: bytes) -> dict:
    tree = ast.parse(data)
    imports = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert imports == [], "generated guest modules must import nothing"
    namespace: dict = {}
    exec(compile(tree, "bootstrap.py", "exec"), namespace)
    return namespace


def test_bootstrap_module_defines_the_required_names() -> None:
    compiled = compile_ir(REPO_IR)
    data = compiled.outputs["root_task/generated/bootstrap.py"]
    assert data.startswith(
        f"# GENERATED – do not edit (coh-rtc)\n# manifest sha256 {compiled.manifest_sha256}\n".encode()
    )
    ns = _exec_module(data)
    assert ns["MANIFEST_SCHEMA"] == "1.3"
    assert ns["MANIFEST_SHA256"] == compiled.manifest_sha256
    assert ns["RESOLVED"] == json.loads(compiled.manifest_bytes)
    assert ns["TICKET_SECRETS"] == compiled.ticket_secrets
    from nine_door.shards import all_labels

    assert ns["SHARD_LABELS"] == tuple(all_labels(2))     # the compiler's labels are the server's
    assert ns["PROC_NODES"] == ("/proc/9p/outstanding", "/proc/9p/sessions", "/proc/9p/short_writes", "/proc/boot",
                                "/proc/ingest/backpressure", "/proc/ingest/dropped", "/proc/ingest/p50_ms",
                                "/proc/ingest/p95_ms", "/proc/ingest/queued", "/proc/ingest/watch")
    assert ns["CAS_PUBKEY_HEX"] is None


def test_schema_1_3_outputs(spec_example: Path) -> None:
    compiled = compile_ir(spec_example)
    outs = compiled.outputs
    assert set(outs) == {
        "root_task/generated/__init__.py",
        "root_task/generated/bootstrap.py",
        "root_task/generated/schema.py",
        "out/manifests/root_task_resolved.json",
        "out/manifests/root_task_resolved.json.sha256",
        "out/cohsh_policy.toml",
        "tests/cli/boot_v0.coh",
        "tests/cli/9p_batch.coh",
        "tests/cli/telemetry_ring.coh",
        "tests/cli/shard_paths.coh",
        "tests/cli/observe_watch.coh",
        "tests/cli/session_pool.coh",
        "tests/cli/cas_roundtrip.coh",
        "docs/snippets/root_task_manifest.md",
        "docs/snippets/secure9p_limits.md",
        "docs/snippets/telemetry_cbor_schema.md",
        "docs/snippets/proc_tree.md",
        "docs/snippets/sharding.md",
        "docs/snippets/cas_layout.md",
    }
    ns = _exec_module(outs["root_task/generated/bootstrap.py"])
    assert len(ns["SHARD_LABELS"]) == 256 and ns["SHARD_LABELS"][:2] == ("00", "01")
    assert "/proc/ingest/watch" in ns["PROC_NODES"] and list(ns["PROC_NODES"]) == sorted(ns["PROC_NODES"])
    schema_ns = _exec_module(outs["root_task/generated/schema.py"])
    assert schema_ns["FRAME_SCHEMA"] == "cbor_v1"
    assert schema_ns["FRAME_KEY_ORDER"] == ("ts", "seq", "kind", "meta", "payload")
    assert outs["out/cohsh_policy.toml"].decode() == (
        "# GENERATED – do not edit (coh-rtc)\n[meta]\n"
        f'manifest_sha256 = "{compiled.manifest_sha256}"\nschema = "1.3"\n\n'
        "[pool]\ncontrol = 2\ntelemetry = 4\n\n"
        "[retry.short_write]\nbackoff_ms = 5\nmax_retries = 3\n\n"
        "[secure9p]\nbatch_frames = true\nmsize = 8192\ntags_per_session = 32\n"
    )


def test_generated_scripts(spec_example: Path) -> None:
    compiled = compile_ir(spec_example)
    banner = f"# GENERATED – do not edit (coh-rtc)\n# manifest sha256 {compiled.manifest_sha256}\n"
    ring = compiled.outputs["tests/cli/telemetry_ring.coh"].decode()
    assert ring.startswith(banner)
    assert "cat /shard/13/worker/worker-1/cursor\nEXPECT OK\nEXPECT SUBSTR cursor=0\n" in ring
    shard = compiled.outputs["tests/cli/shard_paths.coh"].decode()
    assert "ls /shard/13/worker\nEXPECT OK\nEXPECT SUBSTR entries=1\nls /worker\nEXPECT OK\nquit\n" in shard
    batch = compiled.outputs["tests/cli/9p_batch.coh"].decode()
    assert "echo {{msize_overflow}} > /log/queen.log\nEXPECT ERR\nquit\n" in batch
    cas = compiled.outputs["tests/cli/cas_roundtrip.coh"].decode()
    assert cas.endswith("ls /updates\nEXPECT OK\ncat /updates/0/manifest.cbor\nEXPECT ERR\nquit\n")


def test_boot_script_restates_the_heartbeat_ttl(tmp_path: Path) -> None:
    ir = tmp_path / "root_task.toml"
    ir.write_text(REPO_IR.read_text().replace("ttl_s = 300", "ttl_s = 42"))
    compiled = compile_ir(ir)
    assert compiled.outputs["tests/cli/boot_v0.coh"].decode() == (
        "# GENERATED – do not edit (coh-rtc)\n"
        f"# manifest sha256 {compiled.manifest_sha256}\n"
        "attach queen\nEXPECT OK\ncat /proc/boot\nEXPECT OK\nEXPECT SUBSTR path=/proc/boot\n"
        'echo {"budget":{"ttl_s":42}} > /queen/ctl\nEXPECT OK\nlog\nEXPECT OK\nWAIT 250\nquit\n'
    )


def test_shard_labels_match_the_spec_vectors() -> None:
    vectors = {"worker-1": "13", "worker-2": "1c", "worker-3": "1a", "worker-4": "c2", "worker-10": "bf", "worker-123": "18"}
    for worker, label in vectors.items():
        assert shard_label(worker, 2) == label
        assert shard_label(worker, 1) == label[0]


def test_snippets_carry_banner_and_footer() -> None:
    compiled = compile_ir(REPO_IR)
    for name, data in compiled.snippets.items():
        text = data.decode()
        assert text.startswith("<!-- GENERATED – do not edit (coh-rtc) -->\n")
        assert text.endswith(
            f"_Generated by coh-rtc from root_task.toml (manifest sha256 {compiled.manifest_sha256})._\n"
        ), name
    manifest = compiled.snippets["root_task_manifest"].decode()
    bullets = [line for line in manifest.splitlines() if line.startswith("- `")]
    assert "- `secure9p.msize`: `8192`" in bullets
    assert "- `tickets[0].role`: `queen`" in bullets
    assert bullets == sorted(bullets)


def test_compiling_twice_gives_identical_bytes(tmp_path: Path) -> None:
    first = compile_ir(REPO_IR)
    other_dir = tmp_path / "elsewhere" / "deeper"
    other_dir.mkdir(parents=True)
    shutil.copy(REPO_IR, other_dir / "root_task.toml")
    second = compile_ir(other_dir / "root_task.toml")
    assert dict(first.outputs) == dict(second.outputs)
    for data in first.outputs.values():
        assert str(tmp_path).encode() not in data and b"\r" not in data


@pytest.mark.parametrize("which", ["repo", "spec_example"])
def test_outputs_are_identical_across_processes_and_hash_seeds(tmp_path: Path, spec_example: Path,
                                                               which: str) -> None:
    """The CLI in two interpreters (PYTHONHASHSEED 1 and 2): no output may depend on set/dict hash order."""
    from tests.hashseed import differing, run_seeded_pair, tree_bytes

    ir = REPO_IR if which == "repo" else spec_example
    argvs = [["-m", "coh_rtc", str(ir), "--out", str(tmp_path / side / "gen"),
              "--manifest", str(tmp_path / side / "manifest.json"),
              "--cli-script", str(tmp_path / side / "cli" / "boot.coh"),
              "--cohsh-policy", str(tmp_path / side / "cohsh_policy.toml"),
              "--doc-dir", str(tmp_path / side / "docs")] for side in ("a", "b")]
    run_seeded_pair(argvs)
    first, second = tree_bytes(tmp_path / "a"), tree_bytes(tmp_path / "b")
    assert len(first) >= 6 and differing(first, second) == []


def test_signing_key_is_carried_into_manifest_and_bootstrap(spec_example: Path) -> None:
    key = "d04ab232742bb4ab3a1368bd4615e4e6d0224ab71a016baf8520a332c9778737"
    (spec_example.parent / "keys").mkdir()
    (spec_example.parent / "keys" / "cas.pub").write_text(key + "\n")
    text = spec_example.read_text().replace(
        'hash = "sha256" }', 'hash = "sha256", sign = { algo = "ed25519", pubkey_path = "keys/cas.pub" } }'
    )
    spec_example.write_text(text)
    compiled = compile_ir(spec_example)
    assert compiled.resolved["cas"]["store"]["sign"] == {"algo": "ed25519", "pubkey_path": "keys/cas.pub", "pubkey_hex": key}
    assert _exec_module(compiled.outputs["root_task/generated/bootstrap.py"])["CAS_PUBKEY_HEX"] == key


def test_output_options_are_honoured() -> None:
    opts = OutputOptions(out_dir="g", manifest="m/x.json", cli_script="s/boot.coh", cohsh_policy="p.toml", doc_dir="d")
    outs = compile_ir(REPO_IR, opts).outputs
    assert sorted(outs) == ["d/cas_layout.md", "d/proc_tree.md", "d/root_task_manifest.md", "d/secure9p_limits.md",
                            "d/sharding.md", "d/telemetry_cbor_schema.md", "g/__init__.py", "g/bootstrap.py",
                            "g/schema.py", "m/x.json", "m/x.json.sha256", "p.toml", "s/9p_batch.coh", "s/boot.coh",
                            "s/cas_roundtrip.coh", "s/observe_watch.coh", "s/session_pool.coh", "s/shard_paths.coh",
                            "s/telemetry_ring.coh"]
    assert outs["m/x.json.sha256"].endswith(b"  x.json\n")


@pytest.mark.parametrize(
    "edit, field, value",
    [
        ('secure9p.short_write_policy = { enable = true, backoff_ms = 5 }\n', "secure9p.short_write_policy.backoff_ms", 5),
        ('telemetry.ring_bytes_per_worker = 8192\n', "telemetry.ring_bytes_per_worker", 8192),
    ],
)
def test_dotted_and_inline_forms_are_equivalent(spec_example: Path, edit: str, field: str, value: int) -> None:
    text = spec_example.read_text()
    text = text.replace('secure9p.short_write_policy = { enable = true, backoff_ms = 5 }\n', "")
    text = text.replace('telemetry = { ring_bytes_per_worker = 65536, frame_schema = "cbor_v1" }\n', 'telemetry.frame_schema = "cbor_v1"\n')
    spec_example.write_text(text + edit)
    node = compile_ir(spec_example).resolved
    for part in field.split("."):
        node = node[part]
    assert node == value
