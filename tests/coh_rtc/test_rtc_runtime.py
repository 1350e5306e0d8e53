"""The resolved IR declared once, secrets by reference, refusal of unimplemented features (issue 12)."""
from __future__ import annotations

import dataclasses
import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from coh_rtc import IRError, compile_ir, compile_runtime_ir, fields
from coh_rtc.testing import compile_document, write_ir
from nine_door import features
from nine_door.config import NineDoorConfig

REPO = Path(__file__).resolve().parents[2]
TOKEN = "tok-5f1e9c2a-not-a-placeholder"


def _lines(excinfo) -> list[str]:
    return excinfo.value.lines


# -- unimplemented features ------------------------------------------------------------------------
def test_the_shipped_ir_asks_only_for_implemented_features():
    compiled = compile_runtime_ir(REPO / "configs/root_task.toml")
    assert features.unimplemented(compiled.resolved) == []


@pytest.fixture
def gpu_not_implemented(monkeypatch):
    """Every IR value is honoured today (NOT_IMPLEMENTED is empty); the refusal path is proved with a row
    put back for the test, as the next milestone's gate would add one."""
    monkeypatch.setitem(features.NOT_IMPLEMENTED, "gpu.backend", ("none",))


def test_nothing_is_left_unimplemented():
    assert features.NOT_IMPLEMENTED == {}


def test_an_unimplemented_value_is_refused_at_its_line(tmp_path, gpu_not_implemented):
    path = write_ir(tmp_path, {"gpu.backend": "mock"})
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if text.startswith("gpu.backend"))
    compile_ir(path)  # the compiler itself accepts every SPEC value
    with pytest.raises(IRError) as exc:
        compile_runtime_ir(path)
    assert _lines(exc) == [f"{path}:{line}: gpu.backend: not implemented by this build"]


@pytest.mark.parametrize("schema", ["1.1", "1.2", "1.3"])
def test_every_default_of_every_schema_is_implemented(tmp_path, schema):
    """Pipelining, short writes, rings with cursors and observability (issue 13) mean what they say, so an
    IR that states only its schema runs with SPEC's defaults."""
    compiled = compile_runtime_ir(write_ir(tmp_path, schema=schema))
    assert features.unimplemented(compiled.resolved) == []


@pytest.mark.parametrize("overrides", [{"sharding.enable": True}, {"sharding.scheme.width": 1, "sharding.enable": True},
                                       {"gpu.backend": "mock"},
                                       {"gpu.backend": "bridge", "secure9p.tcp_listener.enable": True},
                                       {"cas.enable": True}])
def test_every_gate_of_the_later_milestones_compiles_for_the_runtime(tmp_path, overrides):
    compiled = compile_runtime_ir(write_ir(tmp_path, overrides, schema="1.3"))
    assert features.unimplemented(compiled.resolved) == []


def test_the_guest_refuses_a_generated_config_with_unimplemented_values(monkeypatch, gpu_not_implemented):
    from root_task.config import RuntimeConfig, UnimplementedFeature
    from root_task.generated import bootstrap

    monkeypatch.setitem(bootstrap.RESOLVED, "gpu", {"backend": "mock"})
    with pytest.raises(UnimplementedFeature) as exc:
        RuntimeConfig.from_bootstrap()
    assert exc.value.lines == ["root_task.toml:0: gpu.backend: not implemented by this build"]


# -- one declaration -------------------------------------------------------------------------------
def test_a_new_key_in_fields_reaches_the_manifest_with_no_other_edit(tmp_path, monkeypatch):
    system = fields.IR_TREE.children["system"]
    grown = dataclasses.replace(system, children={**system.children, "new_knob": fields.Leaf("int", default=7)})
    monkeypatch.setitem(fields.IR_TREE.children, "system", grown)
    compiled = compile_ir(write_ir(tmp_path))
    assert compiled.resolved["system"]["new_knob"] == 7
    assert b'"new_knob": 7' in compiled.manifest_bytes


def test_guest_config_fails_loudly_when_a_key_is_missing():
    resolved = compile_document().resolved
    del resolved["secure9p"]["walk_depth"]
    with pytest.raises(KeyError, match="walk_depth"):
        NineDoorConfig.from_resolved(resolved, {}, "0" * 64)
    from root_task.console.context import ConsoleConfig

    del resolved["console"]["idle_timeout_s"]
    with pytest.raises(KeyError, match="idle_timeout_s"):
        ConsoleConfig.from_resolved(resolved)


def test_guest_config_modules_do_not_default_manifest_reads():
    for module in ("nine_door/config.py", "root_task/config.py"):
        assert ".get(" not in (REPO / module).read_text(), module


# -- secrets by reference --------------------------------------------------------------------------
def test_env_reference_is_resolved_and_no_token_text_is_emitted(tmp_path, monkeypatch):
    monkeypatch.setenv("COHESIX_TEST_TOKEN", TOKEN)
    monkeypatch.setenv("COHESIX_TEST_QUEEN", "queen-" + TOKEN)
    compiled = compile_runtime_ir(write_ir(tmp_path, {"console.auth_token": "env:COHESIX_TEST_TOKEN",
                                                      "tickets": [{"role": "queen", "secret": "env:COHESIX_TEST_QUEEN"},
                                                                  {"role": "worker-heartbeat", "secret": "w0rk3r-k3y"},
                                                                  {"role": "worker-gpu", "secret": "gpu-k3y"}]}))
    assert compiled.ir.console.auth_token == TOKEN
    assert compiled.resolved["console"]["auth_token_sha256"] == hashlib.sha256(TOKEN.encode()).hexdigest()
    assert compiled.ticket_secrets["queen"] == "queen-" + TOKEN  # the ticket MAC key, as before
    bootstrap = compiled.outputs["root_task/generated/bootstrap.py"]
    assert TOKEN.encode() not in bootstrap.replace(b"queen-" + TOKEN.encode(), b"")
    assert TOKEN.encode() not in compiled.manifest_bytes
    assert compiled.placeholder_secrets == ()
    assert b"PLACEHOLDER_SECRETS = ()" in bootstrap


def test_unset_env_reference_is_a_located_diagnostic(tmp_path, monkeypatch):
    monkeypatch.delenv("COHESIX_TEST_UNSET", raising=False)
    path = write_ir(tmp_path, {"console.auth_token": "env:COHESIX_TEST_UNSET"})
    line = next(i for i, t in enumerate(path.read_text().splitlines(), 1) if t.startswith("console.auth_token"))
    with pytest.raises(IRError) as exc:
        compile_ir(path)
    assert _lines(exc) == [f"{path}:{line}: console.auth_token: environment variable COHESIX_TEST_UNSET is not set"]


def test_file_references_relative_absolute_and_unreadable(tmp_path):
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "queen").write_text("relative-queen-key\n")
    absolute = tmp_path / "token.txt"
    absolute.write_text(TOKEN)
    tickets = [{"role": "queen", "secret": "file:secrets/queen"},
               {"role": "worker-heartbeat", "secret": "hb-key"}, {"role": "worker-gpu", "secret": "gpu-key"}]
    compiled = compile_ir(write_ir(tmp_path, {"console.auth_token": f"file:{absolute}", "tickets": tickets}))
    assert compiled.ticket_secrets["queen"] == "relative-queen-key"  # one trailing newline removed
    assert compiled.ir.console.auth_token == TOKEN
    tickets[0]["secret"] = "file:secrets/missing"
    with pytest.raises(IRError) as exc:
        compile_ir(write_ir(tmp_path, {"tickets": tickets}))
    (only,) = _lines(exc)
    assert only.endswith(": tickets[0].secret: cannot read secret file secrets/missing: No such file or directory")


def test_a_resolved_secret_must_satisfy_the_literal_rule(tmp_path, monkeypatch):
    monkeypatch.setenv("COHESIX_TEST_SPACE", "has space")
    with pytest.raises(IRError) as exc:
        compile_ir(write_ir(tmp_path, {"console.auth_token": "env:COHESIX_TEST_SPACE"}))
    assert _lines(exc)[0].endswith("console.auth_token: must contain only printable ASCII characters (0x21-0x7E)")


def test_coh_rtc_exits_1_on_an_unresolvable_reference(tmp_path):
    path = write_ir(tmp_path, {"console.auth_token": "env:COHESIX_TEST_SURELY_UNSET"})
    proc = subprocess.run([sys.executable, "-m", "coh_rtc", str(path), "--out", str(tmp_path / "gen")],
                          capture_output=True, text=True, cwd=REPO,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)})
    assert proc.returncode == 1
    assert "console.auth_token: environment variable COHESIX_TEST_SURELY_UNSET is not set" in proc.stderr
    assert not (tmp_path / "gen").exists()


def test_placeholders_are_listed_for_the_boot_warning():
    compiled = compile_document()
    assert compiled.placeholder_secrets == ("console.auth_token", "tickets[queen].secret",
                                            "tickets[worker-gpu].secret", "tickets[worker-heartbeat].secret")


def test_the_committed_bootstrap_holds_no_console_token_text():
    text = (REPO / "root_task/generated/bootstrap.py").read_text()
    assert "changeme" not in text
    assert "'auth_token_sha256'" in text
