"""cohsh ``workers`` (live workers grouped by shard) and ``spawn … count=<n>`` (issue 15)."""
from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

from cohsh.commands import Command, LocalError, translate
from cohsh.script import Outcome
from cohsh.transport_tcp import Reply
from cohsh.workers_view import run_workers
from coh_rtc.testing import write_ir

REPO = Path(__file__).resolve().parents[2]


def test_spawn_count_translation():
    cmd = translate("spawn heartbeat ticks=5 count=40")
    assert isinstance(cmd, Command) and cmd.repeat == 40
    assert cmd.wire == 'ECHO /queen/ctl {"spawn":"heartbeat","ticks":5}'
    assert translate("spawn heartbeat ticks=5").repeat == 1
    for bad in ("count=0", "count=4097", "count=x"):
        refusal = translate(f"spawn heartbeat ticks=5 {bad}")
        assert isinstance(refusal, LocalError), bad
    assert isinstance(translate("spawn gpu gpu_id=GPU-0 mem_mb=1 streams=1 ttl_s=1 count=2"), LocalError)
    assert translate("workers") == Command("workers", "LS /", read_only=True)
    assert isinstance(translate("workers now"), LocalError)


def fake(files: dict[str, tuple[str, ...]]):
    asked: list[str] = []

    def step(wire: str):
        asked.append(wire)
        return Reply((), "OK", files[wire])
    return step, asked


def test_workers_groups_the_alias_listing_by_the_label_rule():
    step, asked = fake({"LS /": ("log", "proc", "queen", "shard", "worker"),
                        "LS /worker": ("worker-2", "worker-1", "worker-10", "worker-123"),
                        "LS /shard": tuple(f"{i:02x}" for i in range(256))})
    said: list[str] = []
    outcome = run_workers(step, said.append)
    assert said == ["shard 13: worker-1", "shard 18: worker-123", "shard 1c: worker-2", "shard bf: worker-10",
                    "[console] OK WORKERS workers=4 shards=4"]
    assert outcome.response == "OK WORKERS workers=4 shards=4"
    assert asked == ["LS /", "LS /worker", "LS /shard"]           # three reads, whatever the count


def test_workers_without_the_alias_lists_each_shard_and_without_sharding_one_group():
    files = {"LS /": ("shard",), "LS /shard": tuple("0123456789abcdef")}
    files.update({f"LS /shard/{c}/worker": () for c in "0123456789abcdef"})
    files["LS /shard/1/worker"] = ("worker-3", "worker-1")
    step, asked = fake(files)
    said: list[str] = []
    assert run_workers(step, said.append).response == "OK WORKERS workers=2 shards=1"
    assert said[0] == "shard 1: worker-1 worker-3" and len(asked) == 18
    step, _ = fake({"LS /": ("worker",), "LS /worker": ("worker-1",)})
    said = []
    run_workers(step, said.append)
    assert said == ["all: worker-1", "[console] OK WORKERS workers=1 shards=1"]


def test_workers_stops_at_a_refused_read():
    refusal = Outcome("ERR LS reason=policy error=EACCES")
    assert run_workers(lambda wire: refusal, lambda line: None) is refusal


def test_spawn_count_and_workers_against_the_host_mode(tmp_path):
    ir = write_ir(tmp_path, {"sharding.enable": True, "sharding.scheme.width": 1, "system.max_workers": 5},
                  schema="1.2")
    script = tmp_path / "workers.coh"
    script.write_text("attach queen\nspawn heartbeat ticks=3 count=4\nworkers\nspawn heartbeat ticks=3 count=3\n")
    out = subprocess.run([sys.executable, "-m", "cohsh", "--transport", "mock", "--mock-ir", str(ir),
                          "--script", str(script)], cwd=REPO, capture_output=True, text=True, timeout=120)
    lines = out.stdout.splitlines()
    assert "spawned 4 of 4 workers" in lines
    assert "shard 1: worker-1 worker-2 worker-3" in lines and "shard c: worker-4" in lines
    assert "[console] OK WORKERS workers=4 shards=2" in lines
    # the fifth spawn fills max_workers; the sixth is refused (EBUSY) and the count says so
    assert "spawned 1 of 3 workers" in lines
    assert any(line.startswith("[console] ERR ECHO") and "EBUSY" in line for line in lines), lines
    assert out.returncode != 0                      # a script stops at an unexpected ERR


def test_spawn_progress_line():
    from cohsh.shell import BenchProgress

    out = io.StringIO()
    now = [0.0]
    progress = BenchProgress(out, "[spawn]", "workers", clock=lambda: now[0])
    now[0] = 1.0
    progress(5, 10)
    assert "[spawn] 5/10 workers (50%" in out.getvalue()
