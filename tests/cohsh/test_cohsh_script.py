"""The `.coh` language (SPEC §11.5): parsing, checking, running, failure reports."""
from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings, strategies as st

from cohsh import script
from cohsh.script import Failure, Outcome, ScriptAborted


class FakeExecutor:
    """Answers commands from a table; records what it ran."""

    def __init__(self, responses: dict[str, str | None] | None = None, abort_on: str | None = None) -> None:
        self.responses = responses or {}
        self.abort_on = abort_on
        self.ran: list[str] = []

    def execute(self, line: str) -> Outcome:
        self.ran.append(line)
        if line == self.abort_on:
            raise ScriptAborted("connection closed by peer")
        if line == "quit":
            return Outcome("OK QUIT", ends=True)
        return Outcome(self.responses.get(line, "OK " + line.split()[0].upper()))


def run(source: str, **responses: str) -> tuple[Failure | None, FakeExecutor]:
    ex = FakeExecutor(dict(responses))
    slept: list[float] = []
    return script.run(source, ex, sleep=slept.append), ex


# -- every documented error text ------------------------------------------------------------

@pytest.mark.parametrize(
    "line, reason",
    [
        ("EXPECT", "EXPECT requires a selector"),
        ("EXPECT   ", "EXPECT requires a selector"),
        ("EXPECT SUBSTR", "EXPECT SUBSTR requires text"),
        ("EXPECT SUBSTR    ", "EXPECT SUBSTR requires text"),
        ("EXPECT NOT", "EXPECT NOT requires text"),
        ("EXPECT MAYBE", "EXPECT selector is invalid"),
        ("EXPECT ok", "EXPECT selector is invalid"),
        ("EXPECT OK please", "EXPECT selector is invalid"),
        ("WAIT", "WAIT requires milliseconds"),
        ("WAIT 1 2", "WAIT accepts a single millisecond value"),
        ("WAIT soon", "WAIT requires a numeric millisecond value"),
        ("WAIT -5", "WAIT requires a numeric millisecond value"),
        ("WAIT +5", "WAIT requires a numeric millisecond value"),
        ("WAIT 1.5", "WAIT requires a numeric millisecond value"),
        ("WAIT ²", "WAIT requires a numeric millisecond value"),
        ("WAIT 2001", "WAIT exceeds max of 2000ms"),
    ],
)
def test_syntax_error_texts(line: str, reason: str) -> None:
    failure = script.check(f"ping\n{line}\n")
    assert failure == Failure(2, line.strip(), reason, None)


def test_expect_requires_prior_command() -> None:
    assert script.check("# header\n\nEXPECT OK\n") == Failure(3, "EXPECT OK", "EXPECT requires a prior command response", None)
    assert script.check("WAIT 5\nEXPECT OK\n").reason == "EXPECT requires a prior command response"


def test_statement_limit() -> None:
    ok = "\n".join(["ping"] * 256)
    assert script.check(ok) is None
    too_many = "# banner\n" + "\n".join(["ping"] * 257)
    assert script.check(too_many) == Failure(258, "ping", "script exceeds max of 256 lines", None)
    # comments and blank lines do not count
    assert script.check("\n".join(["ping", "# c", ""] * 256)) is None


def test_wait_bounds() -> None:
    assert script.check("WAIT 0\nWAIT 2000\n") is None


def test_comment_stripping_is_at_first_hash_even_in_payloads() -> None:
    stmts = script.parse("echo a#b > /log/queen.log\n  cat /proc/boot   # trailing\n#only\n")
    assert [(s.lineno, s.text) for s in stmts] == [(1, "echo a"), (2, "cat /proc/boot")]


def test_substr_text_is_rest_of_line() -> None:
    (stmt,) = script.parse("EXPECT SUBSTR   a  b c  ")
    assert stmt.action == script.Expect("SUBSTR", "a  b c")


def test_quit_stops_checking_and_running() -> None:
    assert script.check("ping\nquit\nEXPECT MAYBE\nWAIT 99999\n") is None
    failure, ex = run("ping\nquit\nping\n")
    assert failure is None and ex.ran == ["ping", "quit"]


def test_failure_report_format() -> None:
    f = Failure(7, "cat /nope", "command failed: invalid path", "ERR CAT reason=policy msg=invalid path")
    assert f.report() == (
        "Error: script failure at line 7: cat /nope\n"
        "reason: command failed: invalid path\n"
        "last response: ERR CAT reason=policy msg=invalid path"
    )
    assert Failure(1, "EXPECT", "EXPECT requires a selector", None).report().endswith("last response: none")


# -- running -----------------------------------------------------------------------------------

def test_deferred_error_rule() -> None:
    err = "ERR LS reason=policy detail=invalid-path path=/nope error=ENOENT msg=invalid path"
    failure, _ = run("ls /nope\nping\n", **{"ls /nope": err})
    assert failure == Failure(1, "ls /nope", "command failed: invalid path", err)
    failure, _ = run("ls /nope\nEXPECT ERR\nEXPECT SUBSTR ENOENT\nEXPECT NOT EACCES\nping\n", **{"ls /nope": err})
    assert failure is None
    # the deferral needs the *next* statement to be an EXPECT: WAIT in between is fatal
    failure, _ = run("ls /nope\nWAIT 1\nEXPECT ERR\n", **{"ls /nope": err})
    assert failure is not None and failure.lineno == 1
    # an error on the last statement is fatal too; messages without msg= use the whole line
    failure, _ = run("frob\n", frob="ERR PARSE reason=policy detail=unknown-verb")
    assert failure.reason == "command failed: ERR PARSE reason=policy detail=unknown-verb"


def test_expect_failures_name_selector_and_last_response() -> None:
    failure, _ = run("cat /proc/boot\nEXPECT ERR\n", **{"cat /proc/boot": "OK CAT path=/proc/boot data=x"})
    assert failure == Failure(2, "EXPECT ERR", "EXPECT ERR failed", "OK CAT path=/proc/boot data=x")
    failure, _ = run("ping\nEXPECT SUBSTR pang\n", ping="OK PING reply=pong")
    assert failure.reason == "EXPECT SUBSTR failed"
    failure, _ = run("ping\nEXPECT NOT pong\n", ping="OK PING reply=pong")
    assert failure.reason == "EXPECT NOT failed"
    failure, _ = run("x\nEXPECT OK\n", x="ERR X reason=policy detail=denied")
    assert failure.reason == "EXPECT OK failed"


def test_wait_sleeps_and_keeps_response() -> None:
    ex = FakeExecutor({"ping": "OK PING reply=pong"})
    slept: list[float] = []
    assert script.run("ping\nWAIT 250\nEXPECT SUBSTR pong\n", ex, sleep=slept.append) is None
    assert slept == [0.25]


def test_command_without_response_is_fatal_even_before_expect() -> None:
    ex = FakeExecutor({"ping": None})  # type: ignore[dict-item]
    failure = script.run("ping\nEXPECT ERR\n", ex, sleep=lambda s: None)
    assert failure is not None and failure.lineno == 1 and failure.last_response is None


def test_transport_loss_is_reported_as_transport_failure() -> None:
    ex = FakeExecutor(abort_on="tail /log/queen.log")
    failure = script.run("ping\ntail /log/queen.log\nEXPECT OK\n", ex, sleep=lambda s: None)
    assert failure is not None and failure.transport_lost
    assert failure.lineno == 2 and failure.last_response is None
    assert failure.reason.startswith("command failed: connection lost")


def test_syntax_errors_are_found_before_anything_runs() -> None:
    failure, ex = run("ping\nping\nWAIT 5000\n")
    assert failure.reason == "WAIT exceeds max of 2000ms" and ex.ran == []


# -- property tests ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Stmt:
    text: str
    kind: str  # "cmd", "quit", "expect", "wait"
    error: str | None = None


_word = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789=/-_.", min_size=1, max_size=10)
_free = st.text(alphabet="abcdefgh XYZ=/-_.!", min_size=1, max_size=12).map(str.strip).filter(bool)

_cmds = st.sampled_from(["ping", "log", "cat /proc/boot", "ls /", "attach queen", "echo hi > /log/queen.log"]).map(
    lambda t: Stmt(t, "cmd"))
_expects = st.one_of(
    st.sampled_from(["OK", "ERR"]).map(lambda s: Stmt(f"EXPECT {s}", "expect")),
    st.tuples(st.sampled_from(["SUBSTR", "NOT"]), _free).map(lambda p: Stmt(f"EXPECT {p[0]} {p[1]}", "expect")),
    st.just(Stmt("EXPECT", "expect", "EXPECT requires a selector")),
    st.just(Stmt("EXPECT SUBSTR", "expect", "EXPECT SUBSTR requires text")),
    st.just(Stmt("EXPECT NOT", "expect", "EXPECT NOT requires text")),
    _word.filter(lambda w: w not in ("OK", "ERR", "SUBSTR", "NOT")).map(
        lambda w: Stmt(f"EXPECT {w}", "expect", "EXPECT selector is invalid")),
)
_waits = st.one_of(
    st.integers(0, 2000).map(lambda n: Stmt(f"WAIT {n}", "wait")),
    st.integers(2001, 10**9).map(lambda n: Stmt(f"WAIT {n}", "wait", "WAIT exceeds max of 2000ms")),
    st.just(Stmt("WAIT", "wait", "WAIT requires milliseconds")),
    st.tuples(st.integers(0, 9), st.integers(0, 9)).map(
        lambda p: Stmt(f"WAIT {p[0]} {p[1]}", "wait", "WAIT accepts a single millisecond value")),
    st.sampled_from(["x", "1e3", "-1", "0x10", "5ms"]).map(
        lambda w: Stmt(f"WAIT {w}", "wait", "WAIT requires a numeric millisecond value")),
)
_stmt = st.one_of(_cmds, _cmds, _expects, _waits, st.just(Stmt("quit", "quit")))
_noise = st.sampled_from(["", "   ", "# comment", "\t# indented comment #2"])


def oracle_check(stmts: list[Stmt]) -> tuple[int, str] | None:
    """Index of the first failing statement and its reason, per SPEC §11.5."""
    seen_command = False
    for i, s in enumerate(stmts):
        if i >= 256:
            return i, "script exceeds max of 256 lines"
        if s.error:
            return i, s.error
        if s.kind == "expect" and not seen_command:
            return i, "EXPECT requires a prior command response"
        if s.kind in ("cmd", "quit"):
            seen_command = True
        if s.kind == "quit":
            return None
    return None


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_stmt, st.lists(_noise, max_size=2), st.booleans()), max_size=40))
def test_check_matches_oracle(items: list[tuple[Stmt, list[str], bool]]) -> None:
    lines: list[str] = []
    linenos: list[int] = []
    for stmt, noise, trailing_comment in items:
        lines.extend(noise)
        lines.append("  " + stmt.text + ("  # note" if trailing_comment else ""))
        linenos.append(len(lines))
    stmts = [item[0] for item in items]
    expected = oracle_check(stmts)
    failure = script.check("\n".join(lines) + "\n")
    if expected is None:
        assert failure is None
    else:
        index, reason = expected
        assert failure == Failure(linenos[index], stmts[index].text, reason, None)


@settings(max_examples=50, deadline=None)
@given(st.integers(257, 300))
def test_limit_fails_at_257th_statement(n: int) -> None:
    failure = script.check("\n".join(f"WAIT {i % 2000}" for i in range(n)))
    assert failure is not None and failure.lineno == 257 and failure.reason == "script exceeds max of 256 lines"


_run_stmt = st.one_of(
    st.tuples(st.sampled_from(["a", "b", "c"]), st.booleans()).map(lambda p: ("cmd", p[0], p[1])),
    st.sampled_from(["OK", "ERR"]).map(lambda s: ("expect", s, False)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_run_stmt, min_size=1, max_size=30))
def test_run_matches_oracle(items: list[tuple[str, str, bool]]) -> None:
    """Random command/EXPECT sequences with random OK/ERR answers against a direct model."""
    lines: list[str] = []
    responses: list[str | None] = []
    for kind, word, fails in items:
        if kind == "cmd":
            n = len(lines)
            lines.append(f"{word}{n}")
            responses.append(f"ERR {word.upper()} reason=policy detail=denied" if fails
                             else f"OK {word.upper()}")
        else:
            lines.append(f"EXPECT {word}")
            responses.append(None)
    table = {lines[i]: responses[i] for i in range(len(lines)) if responses[i] is not None}

    # model
    expected: tuple[int, str] | None = None
    last: str | None = None
    seen = False
    for i, line in enumerate(lines):
        if line.startswith("EXPECT"):
            sel = line.split()[1]
            if not seen:
                expected = (i, "EXPECT requires a prior command response")
                break
            if not last.startswith(sel):  # type: ignore[union-attr]
                expected = (i, f"EXPECT {sel} failed")
                break
        else:
            seen = True
            last = table[line]
            nxt = lines[i + 1] if i + 1 < len(lines) else ""
            if last.startswith("ERR") and not nxt.startswith("EXPECT"):
                expected = (i, f"command failed: {last}")
                break

    failure = script.run("\n".join(lines), FakeExecutor(table), sleep=lambda s: None)  # type: ignore[arg-type]
    if expected is None:
        assert failure is None
    else:
        assert failure is not None
        assert (failure.lineno - 1, failure.reason) == expected
