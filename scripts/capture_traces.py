#!/usr/bin/env python3
"""Capture serial console traces from a booted guest into ``tests/traces/`` (issue 19, trace replay).

Usage (from the repository root, with the image in ``out/`` current)::

    .venv/bin/python scripts/capture_traces.py            # boot one guest, (re)write every trace
    .venv/bin/python scripts/capture_traces.py --host     # capture from `python -m root_task.host` instead
                                                           # (printed only, files untouched: for comparing)

A *trace* is an input script -- a list of byte chunks, each written to the serial console as one
write, followed by a pause -- and the console output that pexpect saw for it (decoded as UTF-8, with
the ``\\r\\n`` of the terminal's output processing kept). The inputs are defined in :data:`TRACES`
below; this script plays them, in order, on ONE guest boot and writes ``tests/traces/NN_<name>.json``
with the input (hex, plus a readable ``repr``) and the observed output. Nothing in the output is
typed by hand: rerun the script when the console legitimately changes, and review the diff.

How one session carries many traces (the same protocol is used by the replay tests, so capture and
replay see identical console states):

1. Every trace starts at a fresh line (nothing typed) and detached (``quit`` sent after the previous
   trace; the serial console answers ``OK QUIT`` attached or not, SPEC §10.3).
2. The chunks are written one by one, each followed by its pause (so a UTF-8 sequence split across
   two chunks reaches the console in two reads).
3. The end of a trace is marked by a sentinel line ``trace-end-NN`` (an unknown verb): the trace's
   output is everything the console printed before the echo of that sentinel. Every trace's input ends
   with ``\\n`` so the sentinel always starts a fresh line.
4. ``quit`` (not recorded) detaches again before the next trace.

The traces form one session in file order: later traces may depend on earlier ones (``log`` shows the
audit lines of earlier attaches), so replay always plays every trace, in order, on one console.

Normalisation (:func:`normalise`) -- applied to BOTH sides before comparing, kept minimal. None of the
current traces print a value that legitimately differs between boots or run modes (no timings, worker
ids, ports or addresses are printed by the verbs they use), so there is one rule, for the terminal
layer outside the system under test:

- ``\\r\\r\\n`` -> ``\\r\\n``. The console writes only ``\\n`` (root_task/tty.py); the guest's tty turns
  it into ``\\r\\n`` (ONLCR), and QEMU's ``-serial mon:stdio`` keeps OPOST on the pty pexpect reads, whose
  ONLCR turns that into ``\\r\\r\\n``. In the host run mode there is only the one pty: ``\\r\\n``. A lone
  ``\\r`` or ``\\r\\n`` is never touched. The stored ``output`` is the raw capture (``\\r\\r\\n`` kept).

- a whole line ``net link_up=true`` / ``net link_up=false`` (exactly that, nothing after it) is removed.
  It is a ``/log/queen.log`` line (shown by ``log``) written when the root task's link watch, polling
  every 20 ticks, sees the NIC's carrier change (root_task/boot.py ``_watch_link``): whether and where
  a guest logs it depends on when the carrier came up relative to the first poll, and the host run mode
  has no guest NIC. ``/proc/boot``'s ``net link_up=... rx_frames=...`` line is NOT touched.

Everything else is compared byte for byte on the decoded output: echo, ``\\b \\b`` erase sequences,
prompts and line boundaries included.

Add a rule here (and say why) only for a value that truly differs between boots; never normalise
echo, erase sequences, ``\\r`` or line boundaries: that is the line discipline under test.

Bytes a trace must not contain: ``0x01`` (Ctrl-A is QEMU's ``mon:stdio`` escape, it would reach the
monitor, not the guest) and ``0x13``/``0x11`` (Ctrl-S/Ctrl-Q: the console terminal keeps IXON, so
Ctrl-S would stop all output and hang the trace).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TRACE_DIR = REPO / "tests" / "traces"
PROMPT = "cohesix> "
FORBIDDEN = (0x01, 0x11, 0x13)
DEFAULT_PAUSE = 0.05   # seconds after each chunk: long enough for a separate read on the guest's UART


@dataclass(frozen=True)
class Trace:
    name: str
    chunks: tuple[bytes, ...]
    note: str
    pause: float = DEFAULT_PAUSE
    spec_expect: tuple[str, ...] = ()   # substrings SPEC requires in the normalised output


def _t(name: str, note: str, *chunks: bytes | str, spec: tuple[str, ...] = ()) -> Trace:
    data = tuple(c.encode("utf-8") if isinstance(c, str) else c for c in chunks)
    return Trace(name, data, note, spec_expect=spec)


EURO = "€".encode()          # e2 82 ac
E_ACUTE = "é".encode()       # c3 a9
EMOJI = "😀".encode()        # f0 9f 98 80

#: The trace inputs, in session order (NN = index + 1). Ctrl-C comes last: see its note.
TRACES: tuple[Trace, ...] = (
    _t("help", "help: OK HELP, the 4 lines, END (§10.5)", b"help\n"),
    _t("ping", "ping: PONG precedes the ack; verb case-insensitive (§10.2)", b"ping\n", b"PiNg\n"),
    _t("empty_lines", "empty and blank lines re-print the prompt; \\r\\n is \\n\\n after ICRNL",
       b"\n", b"   \n", b"\r\n", b"\t\n", spec=("cohesix> ",)),
    _t("unknown_verbs", "unknown verbs: ERR PARSE detail=unknown-verb", b"bogus\n", b"FROB a b  c\n",
       b"test\n"),
    _t("backspace_del_0x7f", "0x7f deletes the previous char, echo \\b \\b; on an empty line: nothing",
       b"pinx\x7fg\n", b"\x7f\x7f\x7fping\n", b"hx\x7f\x7felp\x7f\x7f\x7f\x7f\x7fping\n"),
    _t("backspace_0x08", "0x08 deletes like 0x7f", b"helz\x08p\n", b"\x08\x08ab\x08\x08\x08ping\n"),
    _t("backspace_split_writes", "edits split across writes: echo per read",
       b"pi", b"nq", b"\x7f", b"\x08", b"ng", b"\n"),
    _t("ctrl_u_and_controls", "Ctrl-U and other control bytes are dropped (§10.2), not line kill",
       b"garbage\x15ping\n", b"pi\x15ng\n", b"p\x00i\x04n\x1bg\n", b"\x1b[Aping\n", b"\x07\x0b\x0c\x0eping\n"),
    _t("utf8_split", "UTF-8 split across writes is joined; echoed as whole characters",
       b"h" + E_ACUTE[:1], E_ACUTE[1:] + b"llo\n", EURO[:1], EURO[1:2], EURO[2:] + b"\n",
       EMOJI[:2], EMOJI[2:] + b"x\n"),
    _t("utf8_backspace_invalid", "a delete removes a whole multi-byte char; invalid UTF-8 dropped",
       b"pin" + E_ACUTE[:1], E_ACUTE[1:], b"\x7fg\n", b"pi\xffn\xfe\xc0g\n", EURO + EMOJI + b"\x7f\x7f\n"),
    _t("overlong_line", "> 256 chars: echo stops at the limit, ERR PARSE line-too-long at \\n (§10.3)",
       b"a" * 256 + b"\n", b"b" * 257 + b"\n", b"c" * 300 + b"\x7f" * 50 + b"\n", b"ping\n",
       spec=("detail=line-too-long",)),
    _t("overlong_split", "an over-long line built from several writes, then a normal line",
       b"x" * 200, b"y" * 100, b"z" * 10 + b"\n", "é".encode() * 255 + "€€".encode() + b"\n", b"ping\n"),
    _t("attach_log_quit", "attach queen, log (queen.log), quit",
       b"attach queen\n", b"log\n", b"quit\n", b"log\n"),
    _t("attach_cat_ls", "attach, ls and cat through NineDoor; errors for bad paths",
       b"attach queen\n", b"attach queen\n", b"ls /\n", b"ls /proc\n", b"cat /proc/ingest\n",
       b"cat /nope\n", b"cat relative\n", b"quit\n"),
    _t("unattached_verbs", "verbs needing attachment, unattached; bad role",
       b"log\n", b"cat /proc/boot\n", b"attach wizard\n", b"spawn {}\n"),
    _t("ctrl_c", "Ctrl-C (0x03) is a control byte: dropped like any other (§10.2)",
       b"ab\x03cd\n", b"pi\x03ng\n",
       spec=("abcd\r\nERR PARSE reason=policy detail=unknown-verb\r\n", "ping\r\nPONG\r\nOK PING reply=pong\r\n")),
)

#: Traces whose behaviour is a known deviation (a bug to fix, not to normalise): the replay tests
#: mark them xfail(strict=True), so a fix makes them fail until the traces are recaptured and this
#: entry removed.
KNOWN_DEVIATIONS: dict[str, str] = {}


def trace_path(index: int, trace: Trace) -> Path:
    return TRACE_DIR / f"{index + 1:02d}_{trace.name}.json"


_LINK_LINE = re.compile(r"^net link_up=(?:true|false)\r\n", re.MULTILINE)


def normalise(text: str) -> str:
    """The documented normalisation (module docstring): its two rules, nothing else."""
    return _LINK_LINE.sub("", text.replace("\r\r\n", "\r\n"))


def load_traces(directory: Path = TRACE_DIR) -> list[dict]:
    """The stored traces, in session order, each with ``chunks`` decoded to bytes."""
    traces = []
    for path in sorted(directory.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        data["chunks"] = [bytes.fromhex(c["hex"]) for c in data["input"]]
        data["pauses"] = [c["pause_s"] for c in data["input"]]
        data["file"] = path.name
        data.setdefault("spec_expect", [])
        traces.append(data)
    return traces


class SessionDead(Exception):
    """The console stopped answering (or its process exited) during a trace."""


def _send_bytes(child, data: bytes) -> None:
    # pexpect's str-mode send() would encode; write the raw bytes so split UTF-8 stays split.
    import os
    os.write(child.child_fd, data)


def play_trace(child, index: int, chunks: list[bytes], pauses: list[float], timeout: float = 20.0) -> str:
    """Play one trace on a console at a fresh line and return its output (see the module docstring).

    ``child``: a str-mode pexpect spawn (as :class:`qemu.harness.QemuGuest` and the host tests make)
    whose last match was a prompt. Raises :class:`SessionDead` with the output seen so far.
    """
    import pexpect

    for chunk, pause in zip(chunks, pauses):
        if any(b in FORBIDDEN for b in chunk):
            raise ValueError(f"trace {index + 1}: chunk holds a forbidden byte: {chunk!r}")
        _send_bytes(child, chunk)
        time.sleep(pause)
    sentinel = f"trace-end-{index + 1:02d}"
    _send_bytes(child, sentinel.encode() + b"\n")
    try:
        child.expect(re.escape(sentinel) + r"\r*\n", timeout=timeout)
        output = child.before
        child.expect_exact(PROMPT, timeout=timeout)
        _send_bytes(child, b"quit\n")
        child.expect(r"OK QUIT\r*\n" + re.escape(PROMPT), timeout=timeout)
    except (pexpect.TIMEOUT, pexpect.EOF) as exc:
        seen = child.before if isinstance(child.before, str) else ""
        raise SessionDead(seen + f"\n<{type(exc).__name__}>") from None
    return output


def play_all(child, traces: list[dict]) -> dict[str, str]:
    """Play every trace in order on one console; name -> output (``SessionDead`` text marks a dead one)."""
    results: dict[str, str] = {}
    dead: str | None = None
    for index, trace in enumerate(traces):
        if dead is not None:
            results[trace["name"]] = f"<not played: console died in trace {dead}>"
            continue
        try:
            results[trace["name"]] = play_trace(child, index, trace["chunks"], trace["pauses"])
        except SessionDead as exc:
            results[trace["name"]] = str(exc)
            dead = trace["name"]
    return results


def spawn_host(logfile=None):
    """`python -m root_task.host` under pexpect (as tests/root_task/test_host_mode.py), at its first prompt."""
    import pexpect

    from qemu.launch import free_port

    # --no-signals: the console sees every control byte, as the guest's does (Ctrl-C would stop the host)
    child = pexpect.spawn(sys.executable, ["-m", "root_task.host", "--no-signals", "--console-port",
                                           str(free_port()), "--9p-port", str(free_port())],
                          cwd=str(REPO), encoding="utf-8", codec_errors="replace", timeout=30, echo=False)
    child.delaybeforesend = None
    if logfile is not None:
        child.logfile_read = logfile
    child.expect_exact("Cohesix console ready", timeout=60)
    child.expect_exact(PROMPT, timeout=10)
    return child


def _definitions() -> list[dict]:
    return [{"name": t.name, "note": t.note, "chunks": list(t.chunks), "pauses": [t.pause] * len(t.chunks)}
            for t in TRACES]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", action="store_true", help="play on the host run mode; print, write nothing")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
    defs = _definitions()
    if args.host:
        child = spawn_host()
        try:
            results = play_all(child, defs)
        finally:
            child.terminate(force=True)
        for d in defs:
            print(f"--- {d['name']}\n{results[d['name']]!r}")
        return 0

    from qemu.harness import QemuGuest

    guest = QemuGuest(log_path=REPO / "out" / "test-logs" / "capture_traces.log")
    guest.start()
    try:
        results = play_all(guest.child, defs)
    finally:
        guest.stop()
    TRACE_DIR.mkdir(parents=True, exist_ok=True)
    for old in TRACE_DIR.glob("*.json"):
        old.unlink()
    for index, (trace, d) in enumerate(zip(TRACES, defs)):
        record = {
            "name": trace.name,
            "note": trace.note,
            "captured_from": "guest (QEMU, out/Image + out/rootfs.cpio) serial console via pexpect",
            "input": [{"hex": c.hex(), "repr": repr(c), "pause_s": p} for c, p in zip(d["chunks"], d["pauses"])],
            "output": results[trace.name],
            "spec_expect": list(trace.spec_expect),
        }
        trace_path(index, trace).write_text(json.dumps(record, indent=1, ensure_ascii=True) + "\n",
                                            encoding="utf-8")
        print(f"{trace_path(index, trace).relative_to(REPO)}: {len(results[trace.name])} chars")
    return 0


if __name__ == "__main__":
    sys.exit(main())
