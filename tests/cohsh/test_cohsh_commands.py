"""Shell command → wire line translation (SPEC §11.4)."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, strategies as st

from cohsh.commands import (
    MSIZE_OVERFLOW_BYTES,
    Command,
    LocalError,
    path_problem,
    translate,
)


def wire(line: str) -> str:
    result = translate(line)
    assert isinstance(result, Command), result
    assert result.wire is not None
    return result.wire


def local(line: str) -> LocalError:
    result = translate(line)
    assert isinstance(result, LocalError), result
    return result


@pytest.mark.parametrize(
    "line, expected",
    [
        ("attach queen", "ATTACH queen"),
        ("attach QUEEN", "ATTACH queen"),
        ("login queen", "ATTACH queen"),
        ("attach worker tkt", "ATTACH worker-heartbeat tkt"),
        ("attach Worker-GPU tkt", "ATTACH worker-gpu tkt"),
        ("attach queen cohesix-ticket-x.y", "ATTACH queen cohesix-ticket-x.y"),
        ("attach wizard", "ATTACH wizard"),  # unknown roles are the server's call (invalid-role)
        ("ping", "PING"),
        ("log", "LOG"),
        ("tail /log/queen.log", "TAIL /log/queen.log"),
        ("cat /proc/boot", "CAT /proc/boot"),
        ("ls /", "LS /"),
        ("detach", "quit"),
        ("quit", "quit"),
        ("CAT /proc/boot", "CAT /proc/boot"),
        ("caps", "caps"),  # console verbs without sugar pass through unchanged
        ("frobnicate now", "frobnicate now"),
    ],
)
def test_simple_commands(line: str, expected: str) -> None:
    assert wire(line) == expected


def test_read_only_set_matches_spec() -> None:
    ro = {name for name in ("ping", "log", "tail /x", "cat /x", "ls /x", "echo a > /x", "attach queen", "kill worker-1")
          if translate(name).read_only}  # type: ignore[union-attr]
    assert ro == {"ping", "log", "tail /x", "cat /x", "ls /x"}


def test_worker_attach_needs_ticket_locally() -> None:
    err = local("attach worker-heartbeat")
    assert err.line.startswith("ERR ATTACH reason=policy detail=invalid-claims msg=")
    assert "ticket" in err.message
    assert local("attach worker-gpu").line.startswith("ERR ATTACH reason=policy detail=invalid-claims")
    assert local("attach").line.startswith("ERR ATTACH reason=policy detail=missing-argument")


@pytest.mark.parametrize(
    "path, ok",
    [
        ("/", True),
        ("/proc/boot", True),
        ("/a/b/c/d/e/f/g/h", True),
        ("/a/b/c/d/e/f/g/h/i", False),
        ("proc/boot", False),
        ("/proc/../boot", False),
        ("/proc/./boot", False),
        ("/proc//boot", False),
        ("/proc/", False),
        ("/pr\0oc", False),
        ("/" + "a" * 95, True),
        ("/" + "a" * 96, False),
        ("", False),
    ],
)
def test_path_validation(path: str, ok: bool) -> None:
    assert (path_problem(path) is None) == ok


@pytest.mark.parametrize("verb", ["cat", "ls", "tail"])
def test_invalid_path_is_a_synthetic_err(verb: str) -> None:
    err = local(f"{verb} /proc/../x")
    assert err.line.startswith(f"ERR {verb.upper()} reason=policy detail=invalid-path msg=")
    assert err.line.endswith(err.message)
    assert local(f"{verb}").line.startswith(f"ERR {verb.upper()} reason=policy detail=missing-argument")


def test_echo_splitting() -> None:
    assert wire("echo hello > /log/queen.log") == "ECHO /log/queen.log hello"
    assert wire('echo "hello world" > /log/queen.log') == "ECHO /log/queen.log hello world"
    assert wire("echo 'a b' > /log/queen.log") == "ECHO /log/queen.log a b"
    assert wire('echo "a" b" > /x') == 'ECHO /x a" b'  # only one surrounding pair is removed
    assert wire('echo {"budget":{"ttl_s":300}} > /queen/ctl') == 'ECHO /queen/ctl {"budget":{"ttl_s":300}}'
    assert local("echo hello").line.startswith("ERR ECHO reason=policy detail=missing-argument")
    assert local("echo hello > relative").line.startswith("ERR ECHO reason=policy detail=invalid-path")


def test_echo_first_gt_split_makes_path_invalid() -> None:
    # "a > /x > /y": text "a", path "/x > /y" which contains whitespace → invalid path.
    assert local("echo a > /x > /y").line.startswith("ERR ECHO reason=policy detail=invalid-path")


def test_msize_overflow_payload() -> None:
    line = wire("echo {{msize_overflow}} > /log/queen.log")
    prefix = "ECHO /log/queen.log "
    assert line.startswith(prefix)
    payload = line[len(prefix):]
    assert len(payload.encode()) == MSIZE_OVERFLOW_BYTES == 8256
    assert isinstance(json.loads(payload), dict)


@pytest.mark.parametrize(
    "line, payload",
    [
        ("spawn heartbeat ticks=100", '{"spawn":"heartbeat","ticks":100}'),
        ("spawn worker ticks=5 ttl_s=60", '{"spawn":"heartbeat","ticks":5,"budget":{"ttl_s":60}}'),
        ("spawn worker-heartbeat ticks=5 ops=7 ttl_s=60",
         '{"spawn":"heartbeat","ticks":5,"budget":{"ttl_s":60,"ops":7}}'),
        ("spawn gpu gpu_id=GPU-0 mem_mb=4096 streams=2 ttl_s=120",
         '{"spawn":"gpu","lease":{"gpu_id":"GPU-0","mem_mb":4096,"streams":2,"ttl_s":120}}'),
        ("spawn worker-gpu ops=9 priority=3 ttl_s=120 streams=2 mem_mb=4096 gpu_id=GPU-1",
         '{"spawn":"gpu","lease":{"gpu_id":"GPU-1","mem_mb":4096,"streams":2,"ttl_s":120,"priority":3},'
         '"budget":{"ops":9}}'),
        ("kill worker-3", '{"kill":"worker-3"}'),
        ("bind /queen /log/q", '{"bind":{"from":"/queen","to":"/log/q"}}'),
        ("mount proc /log/p", '{"mount":{"service":"proc","at":"/log/p"}}'),
    ],
)
def test_ctl_json_key_order(line: str, payload: str) -> None:
    assert wire(line) == f"ECHO /queen/ctl {payload}"


def test_spawn_refusals() -> None:
    err = local("spawn heartbeat ticks=1 colour=blue speed=2")
    assert err.message == "unknown spawn options: colour, speed"
    assert err.line.startswith("ERR SPAWN reason=policy detail=")
    assert local("spawn heartbeat").line.startswith("ERR SPAWN reason=policy detail=missing-argument")
    assert local("spawn gpu gpu_id=GPU-0 ttl_s=1").message.startswith("spawn gpu requires")
    assert "ticks" in local("spawn heartbeat ticks=abc").message
    assert local("spawn gpu ticks=1 gpu_id=G mem_mb=1 streams=1 ttl_s=1").message == "unknown spawn options: ticks"
    assert "unknown spawn role" in local("spawn dragon ticks=1").message
    assert local("bind /a").line.startswith("ERR BIND reason=policy detail=missing-argument")
    assert local("bind /a ../b").line.startswith("ERR BIND reason=policy detail=invalid-path")
    assert local("mount proc rel").line.startswith("ERR MOUNT reason=policy detail=invalid-path")
    assert local("kill").line.startswith("ERR KILL reason=policy detail=missing-argument")


def test_pool_bench_translates_to_a_local_pool_command() -> None:
    """``pool bench`` runs through a session pool (cohsh/pool.py), not the console: no wire line.
    Argument errors are refused locally in the command's own grammar (tests/cohsh/test_cohsh_pool.py)."""
    result = translate("pool bench path=/log/queen.log ops=64 batch=4 payload=pool")
    assert isinstance(result, Command) and result.name == "pool" and result.wire is None
    err = local("pool bench path=/log/queen.log")
    assert err.line.startswith("ERR POOL BENCH reason=policy msg=") and err.print_line


def test_help_is_local() -> None:
    result = translate("help")
    assert isinstance(result, Command) and result.wire is None


_component = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789._-", min_size=1, max_size=8).filter(
    lambda c: c not in (".", ".."))


@given(st.lists(_component, min_size=0, max_size=8))
def test_valid_paths_translate_for_every_path_verb(parts: list[str]) -> None:
    path = "/" + "/".join(parts)
    if len(path) > 96:
        return
    assert wire(f"cat {path}") == f"CAT {path}"
    assert wire(f"echo x > {path}") == f"ECHO {path} x"
    bad = path.rstrip("/") + "/../z"
    assert isinstance(translate(f"ls {bad}"), LocalError)
