"""Constants shared by the coh_rtc tests (a plain module: the test folder is not a package)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
REPO_IR = REPO / "configs" / "root_task.toml"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
# The repository's own coh-rtc invocation (dodo.py's regen task), relative to REPO.
CANONICAL_ARGS = [
    "configs/root_task.toml",
    "--out",
    "root_task/generated",
    "--manifest",
    "out/manifests/root_task_resolved.json",
    "--cli-script",
    "tests/cli/boot_v0.coh",
]

# The SPEC §14.2 example IR (schema 1.3), verbatim.
SPEC_EXAMPLE = '''root_task.schema = "1.3"
system.arch = "aarch64"
secure9p.msize = 8192
secure9p.walk_depth = 8
secure9p.tags_per_session = 32
secure9p.batch_frames = true
secure9p.short_write_policy = { enable = true, backoff_ms = 5 }
secure9p.tcp_listener = { enable = true, port = 564 }
console.tcp = { enable = true, port = 31337 }
telemetry = { ring_bytes_per_worker = 65536, frame_schema = "cbor_v1" }
sharding = { enable = true, scheme = { kind = "hex_prefix", width = 2 }, legacy_worker_alias = true }
cas = { enable = true, store = { root = "/updates", chunk_bytes = 4096, hash = "sha256" }, delta = { enable = true } }
tickets = [
  { role = "queen", secret = "bootstrap" },
  { role = "worker-heartbeat", secret = "worker" },
  { role = "worker-gpu", secret = "worker-gpu" },
]
'''
