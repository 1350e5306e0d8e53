"""The `.coh` script language (SPEC §11.5): parser, checker and runner.

Why the runner takes an ``Executor`` instead of a connection: the deferred-error rule, EXPECT
semantics and the failure report are pure logic, so they are tested against a fake executor; the
real shell (``cohsh.shell``) is one implementation of the same protocol.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Callable, Protocol, TextIO

MAX_STATEMENTS = 256
MAX_WAIT_MS = 2000

# Error texts (SPEC §11.5), exact.
E_TOO_MANY = f"script exceeds max of {MAX_STATEMENTS} lines"
E_EXPECT_SELECTOR = "EXPECT requires a selector"
E_SUBSTR_TEXT = "EXPECT SUBSTR requires text"
E_NOT_TEXT = "EXPECT NOT requires text"
E_SELECTOR_INVALID = "EXPECT selector is invalid"
E_NO_RESPONSE = "EXPECT requires a prior command response"
E_WAIT_MS = "WAIT requires milliseconds"
E_WAIT_SINGLE = "WAIT accepts a single millisecond value"
E_WAIT_NUMERIC = "WAIT requires a numeric millisecond value"
E_WAIT_MAX = f"WAIT exceeds max of {MAX_WAIT_MS}ms"

_DIGITS = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class Expect:
    selector: str  # OK | ERR | SUBSTR | NOT
    text: str = ""


@dataclass(frozen=True)
class Wait:
    ms: int


@dataclass(frozen=True)
class ShellCommand:
    """A shell command (SPEC §11.4), passed to the executor verbatim."""

    line: str


Action = Expect | Wait | ShellCommand


@dataclass(frozen=True)
class Statement:
    lineno: int  # 1-based physical line
    text: str  # comment-stripped, trimmed source
    action: Action | None  # None when the statement is malformed
    error: str | None = None


@dataclass(frozen=True)
class Failure:
    lineno: int
    statement: str
    reason: str
    last_response: str | None
    transport_lost: bool = False  # the CLI exits 3 instead of 1

    def report(self) -> str:
        """The three-line failure report of SPEC §11.5 (without trailing newline)."""
        return (
            f"Error: script failure at line {self.lineno}: {self.statement}\n"
            f"reason: {self.reason}\n"
            f"last response: {self.last_response if self.last_response is not None else 'none'}"
        )


def strip_comment(raw: str) -> str:
    """Everything from the first ``#`` (even inside a payload) is removed, then the rest is trimmed."""
    return raw.split("#", 1)[0].strip()


def parse_statement(lineno: int, text: str) -> Statement:
    tokens = text.split()
    keyword = tokens[0]
    if keyword == "EXPECT":
        return _parse_expect(lineno, text)
    if keyword == "WAIT":
        return _parse_wait(lineno, text, tokens)
    return Statement(lineno, text, ShellCommand(text))


def _parse_expect(lineno: int, text: str) -> Statement:
    after = text[len("EXPECT"):].lstrip()
    if not after:
        return Statement(lineno, text, None, E_EXPECT_SELECTOR)
    parts = after.split(None, 1)
    selector = parts[0]
    rest = parts[1].lstrip() if len(parts) > 1 else ""
    if selector in ("OK", "ERR"):
        if rest:
            return Statement(lineno, text, None, E_SELECTOR_INVALID)
        return Statement(lineno, text, Expect(selector))
    if selector in ("SUBSTR", "NOT"):
        if not rest:
            return Statement(lineno, text, None, E_SUBSTR_TEXT if selector == "SUBSTR" else E_NOT_TEXT)
        return Statement(lineno, text, Expect(selector, rest))
    return Statement(lineno, text, None, E_SELECTOR_INVALID)


def _parse_wait(lineno: int, text: str, tokens: list[str]) -> Statement:
    if len(tokens) == 1:
        return Statement(lineno, text, None, E_WAIT_MS)
    if len(tokens) > 2:
        return Statement(lineno, text, None, E_WAIT_SINGLE)
    if not _DIGITS.fullmatch(tokens[1]):
        return Statement(lineno, text, None, E_WAIT_NUMERIC)
    ms = int(tokens[1])
    if ms > MAX_WAIT_MS:
        return Statement(lineno, text, None, E_WAIT_MAX)
    return Statement(lineno, text, Wait(ms))


def parse(source: str) -> list[Statement]:
    """All statements of a script, in order (malformed ones carry ``error``)."""
    out: list[Statement] = []
    for lineno, raw in enumerate(source.splitlines(), start=1):
        text = strip_comment(raw)
        if text:
            out.append(parse_statement(lineno, text))
    return out


def _is_quit(stmt: Statement) -> bool:
    return isinstance(stmt.action, ShellCommand) and stmt.action.line.lower() == "quit"


def check(source: str) -> Failure | None:
    """Syntax check without connecting (``--check``): the first failure, or ``None``.

    Checks the statement limit, EXPECT selectors, WAIT values and that every EXPECT follows some
    command. Statements after ``quit`` are ignored, as they are when running.
    """
    seen_command = False
    for index, stmt in enumerate(parse(source)):
        if index >= MAX_STATEMENTS:
            return Failure(stmt.lineno, stmt.text, E_TOO_MANY, None)
        if stmt.error is not None:
            return Failure(stmt.lineno, stmt.text, stmt.error, None)
        if isinstance(stmt.action, Expect) and not seen_command:
            return Failure(stmt.lineno, stmt.text, E_NO_RESPONSE, None)
        if isinstance(stmt.action, ShellCommand):
            seen_command = True
            if _is_quit(stmt):
                return None
    return None


@dataclass(frozen=True)
class Outcome:
    """What one shell command produced, as the script runner sees it.

    ``response`` is the response line of SPEC §11.5 (``None`` when nothing at all came back);
    ``ends`` is true for ``quit``.
    """

    response: str | None
    ends: bool = False


class Executor(Protocol):
    def execute(self, line: str) -> Outcome: ...


class ScriptAborted(Exception):
    """The executor lost its transport; the runner reports it and the CLI exits 3."""


def _expect_holds(expect: Expect, response: str) -> bool:
    if expect.selector == "OK":
        return response.startswith("OK")
    if expect.selector == "ERR":
        return response.startswith("ERR")
    if expect.selector == "SUBSTR":
        return expect.text in response
    return expect.text not in response


def _err_message(response: str) -> str:
    _, sep, msg = response.partition(" msg=")
    return msg if sep else response


def run(
    source: str,
    executor: Executor,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> Failure | None:
    """Run a script; return the first failure or ``None`` on success.

    The whole script is syntax-checked first, so a malformed script has no side effects.
    An executor signals transport loss with ``ScriptAborted``; the failure then has
    ``transport_lost`` set (the CLI maps it to exit 3; scripts never reconnect).
    """
    failure = check(source)
    if failure is not None:
        return failure
    statements = parse(source)[:MAX_STATEMENTS]
    response: str | None = None
    for index, stmt in enumerate(statements):
        action = stmt.action
        if isinstance(action, Wait):
            sleep(action.ms / 1000.0)
        elif isinstance(action, Expect):
            if response is None:
                return Failure(stmt.lineno, stmt.text, E_NO_RESPONSE, response)
            if not _expect_holds(action, response):
                return Failure(stmt.lineno, stmt.text, f"EXPECT {action.selector} failed", response)
        elif isinstance(action, ShellCommand):
            try:
                outcome = executor.execute(action.line)
            except ScriptAborted as exc:
                return Failure(stmt.lineno, stmt.text, f"command failed: connection lost: {exc}", None, True)
            response = outcome.response
            if outcome.ends:
                return None
            if response is None:
                return Failure(stmt.lineno, stmt.text, "command failed: no response", None)
            nxt = statements[index + 1].action if index + 1 < len(statements) else None
            if response.startswith("ERR") and not isinstance(nxt, Expect):
                return Failure(stmt.lineno, stmt.text, f"command failed: {_err_message(response)}", response)
    return None


def write_failure(failure: Failure, err: TextIO) -> None:
    err.write(failure.report() + "\n")
    err.flush()
