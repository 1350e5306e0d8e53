"""Verb parser (SPEC §10.2, §10.5) and console path rules."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from root_task.console.parser import (VERBS, Command, ConsoleLimits, ParseError, parse, validate_path)

L = ConsoleLimits()


@pytest.mark.parametrize("line,expected", [
    ("ping", Command("ping")),
    ("PING", Command("ping")),
    ("  Help  ", Command("help")),
    ("cat /proc/boot", Command("cat", ("/proc/boot",))),
    ("ls    /", Command("ls", ("/",))),
    ("attach QUEEN", Command("attach", ("QUEEN",))),
    ("attach worker cohesix-ticket-00.ab", Command("attach", ("worker", "cohesix-ticket-00.ab"))),
    ("echo /log/queen.log hello  world ", Command("echo", ("/log/queen.log",), "hello  world ")),
    ("echo /log/queen.log", Command("echo", ("/log/queen.log",), "")),
    ('spawn {"spawn":"heartbeat", "ticks":5}', Command("spawn", (), '{"spawn":"heartbeat", "ticks":5}')),
    ("kill worker-1", Command("kill", ("worker-1",))),
])
def test_parses(line, expected):
    assert parse(line) == expected


@pytest.mark.parametrize("line,detail", [
    ("", "empty-line"),
    ("    ", "empty-line"),
    ("frobnicate", "unknown-verb"),
    ("cat", "missing-argument"),
    ("attach", "missing-argument"),
    ("spawn   ", "missing-argument"),
    ("echo", "missing-argument"),
    ("kill", "missing-argument"),
    ("ping now", "too-many-arguments"),
    ("cat /a /b", "too-many-arguments"),
    ("attach queen t extra", "too-many-arguments"),
    ("cat /" + "a" * 96, "argument-too-long"),
    ("attach " + "q" * 17, "argument-too-long"),
    ("attach queen " + "t" * 225, "argument-too-long"),
    ("kill " + "w" * 33, "argument-too-long"),
    ("echo /x " + "p" * 129, "argument-too-long"),
    ("spawn " + "j" * 193, "argument-too-long"),
    ("x" * 257, "line-too-long"),
])
def test_errors(line, detail):
    assert parse(line) == ParseError(detail)


def test_limits_at_boundary_accepted():
    assert parse("cat /" + "a" * 95) == Command("cat", ("/" + "a" * 95,))
    assert parse("echo /x " + "p" * 128).rest == "p" * 128
    assert parse("spawn " + "j" * 192).rest == "j" * 192


def test_limits_come_from_config():
    small = ConsoleLimits(path=4)
    assert parse("cat /abc", small) == Command("cat", ("/abc",))
    assert parse("cat /abcd", small) == ParseError("argument-too-long")


@pytest.mark.parametrize("path,names", [
    ("/", []), ("/proc/boot", ["proc", "boot"]), ("/a/b/c/d/e/f/g/h", list("abcdefgh")),
])
def test_valid_paths(path, names):
    assert validate_path(path, 8) == names


@pytest.mark.parametrize("path", [
    "proc", "", "/proc/", "//proc", "/proc/../x", "/./proc", "/a/b/c/d/e/f/g/h/i", "/a\0b",
])
def test_invalid_paths(path):
    assert validate_path(path, 8) is None


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=300))
def test_property_parser_total(line):
    """The parser never raises and respects every field limit it accepts."""
    result = parse(line)
    assert isinstance(result, (Command, ParseError))
    if isinstance(result, Command):
        assert result.verb in VERBS
        assert len(line) <= L.line
        if result.verb in ("cat", "ls", "tail", "echo"):
            assert len(result.args[0]) <= L.path
        if result.verb == "echo":
            assert len(result.rest) <= L.echo
        if result.verb == "spawn":
            assert 0 < len(result.rest) <= L.json


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(VERBS)), st.text(alphabet="abcXYZ/-_.", min_size=1, max_size=20))
def test_property_verb_case_insensitive(verb, arg):
    for variant in (verb, verb.upper(), verb.capitalize()):
        r1, r2 = parse(f"{variant} {arg}"), parse(f"{verb} {arg}")
        assert r1 == r2
