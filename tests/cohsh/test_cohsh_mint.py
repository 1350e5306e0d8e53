"""Ticket minting (SPEC §4.7): secret resolution, refusals and the SPEC vectors."""
from __future__ import annotations

import importlib.util
import io
from pathlib import Path

import pytest

from cohsh import cli
from cohsh.mint import MintError, MintRequest, mint_ticket, resolve_secret, secret_from_config

WORKER_VECTOR = (
    "cohesix-ticket-01010fe80300000000000010270000000000002c010000000000000800776f726b65722d31"
    "000000000000000000000000.9bada67b2cdede252bdc11e3fc714b04085390cefaa41b8451d07160f5e9bfba"
)
QUEEN_VECTOR = (
    "cohesix-ticket-010000000000000000000000000000."
    "574095c8f358416843eadd2c94e7f2e8f3dae33e2248533350573a01c3532331"
)

IR = """
[root_task]
schema = "1.0"
[[tickets]]
role = "queen"
secret = "from-file-queen"
[[tickets]]
role = "worker-heartbeat"
secret = "from-file-worker"
"""


@pytest.fixture
def ir_file(tmp_path: Path) -> str:
    path = tmp_path / "root_task.toml"
    path.write_text(IR)
    return str(path)


def run_cli(argv: list[str], env: dict[str, str] | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(argv, env=env or {}, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_secret_resolution_order(ir_file: str) -> None:
    env = {"COHSH_TICKET_SECRET": "env-secret", "COHSH_TICKET_CONFIG": ir_file}
    assert resolve_secret("queen", "flag", None, env) == "flag"
    assert resolve_secret("queen", None, None, env) == "env-secret"
    assert resolve_secret("queen", None, None, {"COHSH_TICKET_CONFIG": ir_file}) == "from-file-queen"
    assert resolve_secret("worker-heartbeat", None, ir_file, {"COHSH_TICKET_CONFIG": "/nonexistent"}) == \
        "from-file-worker"
    assert resolve_secret("worker-gpu", None, ir_file, {}) is None
    assert secret_from_config("/nonexistent/root_task.toml", "queen") is None


def test_inline_table_tickets_are_found(tmp_path: Path) -> None:
    path = tmp_path / "ir.toml"
    path.write_text('tickets = [ { role = "queen", secret = "inline" } ]\n')
    assert secret_from_config(str(path), "queen") == "inline"


def test_mint_passes_fields_and_defaults_issue_time(ir_file: str) -> None:
    calls: list[tuple] = []

    def minter(secret: str, role: str, **fields: object) -> str:
        calls.append((secret, role, fields))
        return "T"

    req = MintRequest(role="Worker", subject="worker-1", ticks=1, config=ir_file)
    assert mint_ticket(req, {}, now_ms=lambda: 1234, minter=minter) == "T"
    assert calls == [("from-file-worker", "worker-heartbeat",
                      {"subject": "worker-1", "ticks": 1, "ops": None, "ttl_s": None, "issued_at_ms": 1234})]
    with pytest.raises(MintError, match="^--ticket-subject is required for worker roles$"):
        mint_ticket(MintRequest(role="worker-gpu", secret="s"), {}, minter=minter)
    with pytest.raises(MintError, match="^no ticket secret for role worker-gpu$"):
        mint_ticket(MintRequest(role="worker-gpu", subject="worker-2", config=ir_file), {}, minter=minter)


def test_cli_refusals_exit_2(ir_file: str) -> None:
    code, out, err = run_cli(["--mint-ticket", "--role", "worker-gpu", "--ticket-subject", "worker-2",
                              "--ticket-config", ir_file])
    assert (code, out, err) == (2, "", "Error: no ticket secret for role worker-gpu\n")
    code, out, err = run_cli(["--mint-ticket", "--role", "worker", "--ticket-secret", "x"])
    assert (code, err) == (2, "Error: --ticket-subject is required for worker roles\n")
    code, _, err = run_cli(["--mint-ticket"])
    assert code == 2 and "--role" in err
    code, _, _ = run_cli(["--mint-ticket", "--role", "queen", "--ticket-ticks", "-1"])
    assert code == 2


needs_tickets = pytest.mark.skipif(importlib.util.find_spec("nine_door.tickets") is None,
                                   reason="nine_door.tickets.mint not available")


@needs_tickets
def test_worker_vector_via_cli() -> None:
    code, out, err = run_cli(["--mint-ticket", "--role", "worker-heartbeat", "--ticket-subject", "worker-1",
                              "--ticket-ticks", "1000", "--ticket-ops", "10000", "--ticket-ttl-s", "300",
                              "--ticket-issued-at-ms", "0", "--ticket-secret", "worker"])
    assert (code, out, err) == (0, WORKER_VECTOR + "\n", "")
    assert len(WORKER_VECTOR) == 178


@needs_tickets
def test_queen_vector_via_env_secret() -> None:
    code, out, _ = run_cli(["--mint-ticket", "--role", "queen", "--ticket-issued-at-ms", "0"],
                           env={"COHSH_TICKET_SECRET": "bootstrap"})
    assert (code, out) == (0, QUEEN_VECTOR + "\n")


@needs_tickets
def test_queen_vector_via_repository_config() -> None:
    # The repository IR's queen secret is the SPEC example's `bootstrap`.
    code, out, _ = run_cli(["--mint-ticket", "--role", "QUEEN", "--ticket-issued-at-ms", "0",
                            "--ticket-config", "configs/root_task.toml"])
    assert (code, out) == (0, QUEEN_VECTOR + "\n")


@needs_tickets
def test_unencodable_fields_are_a_usage_error() -> None:
    code, out, err = run_cli(["--mint-ticket", "--role", "worker", "--ticket-subject", "w" * 300,
                              "--ticket-secret", "worker"])
    assert code == 2 and out == "" and err.startswith("Error: ")
