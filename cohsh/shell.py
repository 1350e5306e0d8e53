"""Executes shell commands against a console client and prints them per SPEC §11.3.

Why one executor for every mode: the REPL, scripts and one-shot commands must print the same lines
and compute the same response line (SPEC §11.5), so they all go through ``Shell.execute``.

Content rendering (``tail``/``cat`` of a ``cbor_v1`` ring, docs/cohsh.md "Telemetry"): the console
streams binary content as ``b64:`` lines of 48 bytes each, cut from the start of what it read
(SPEC §10.5). When every content line is ``b64:`` and the bytes are CBOR Frame v1 items (§7.5),
cohsh prints one line per frame instead (``describe``, or ``to_json`` with ``--json``). This only
changes the printed content, never the ack, so the script response line (§11.5) is untouched.
``consume`` (read a ring from its cursor, then commit the cursor, §7.4) is built from plain console
verbs, so it works over every transport.
"""
from __future__ import annotations

import base64
import binascii
import json
import re
import sys
import time
from dataclasses import dataclass
from typing import TextIO

from cohsh.commands import HELP_LINES, Command, LocalError, ring_paths, translate
from cohsh.pool import Pool, PoolError, PoolOptions
from cohsh.script import Outcome
from cohsh.transport_tcp import CommandInterrupted, ConsoleClient, Reply
from nine_door.frame_v1 import Frame, FrameError, decode_one, describe, to_json

B64_PREFIX = "b64:"
NOTE_PREFIX = "[cohsh]"
# The console splits content lines longer than this many bytes, never inside a UTF-8 sequence, so a
# piece of a longer line is 4093..4096 bytes long (SPEC §10.5).
CONSOLE_SPLIT_BYTES = 4096
_PIECE_MIN_BYTES = CONSOLE_SPLIT_BYTES - 3
_CURSOR_LINE = re.compile(r"cursor=([0-9]+) oldest=([0-9]+) next=([0-9]+)")


# -- content rendering (pure; tested directly) ---------------------------------------------------

def b64_content(lines: tuple[str, ...] | list[str]) -> bytes | None:
    """The bytes behind a content stream made only of ``b64:`` lines, else ``None``.

    The console cuts its base64 lines from the start of the bytes it read, 48 bytes each, the last
    one shorter; concatenating the decoded lines in order gives those bytes back exactly.
    """
    if not lines or not all(line.startswith(B64_PREFIX) for line in lines):
        return None
    try:
        return b"".join(base64.b64decode(line[len(B64_PREFIX):], validate=True) for line in lines)
    except (binascii.Error, ValueError):
        return None


@dataclass(frozen=True)
class FrameScan:
    """Frames found in a byte stream: ``skipped`` leading bytes before the first whole frame (a
    ``tail`` that starts mid-frame), ``trailing`` bytes of an incomplete last frame (a ``cat`` cut
    by the console's 256-line limit)."""

    frames: tuple[Frame, ...]
    skipped: int = 0
    trailing: int = 0


def _frames_from(data: bytes, pos: int, partial_tail: bool) -> tuple[list[Frame], int] | None:
    frames: list[Frame] = []
    while pos < len(data):
        try:
            frame, pos = decode_one(data, pos)
        except FrameError as exc:
            if partial_tail and frames and exc.reason == "truncated":
                return frames, len(data) - pos
            return None
        frames.append(frame)
    return frames, 0


def scan_frames(data: bytes, *, resync: bool = False, partial_tail: bool = False) -> FrameScan | None:
    """Parse ``data`` as Frame v1 items back to back; ``None`` when it is not such a stream.

    ``resync``: the stream may start inside a frame; the first offset from which every byte to the
    end parses as whole frames wins (a frame starts with a CBOR map head, so only those offsets are
    tried). ``partial_tail``: the stream may end inside a frame (``truncated`` at the end, after at
    least one whole frame).
    """
    starts = range(len(data)) if resync else range(min(len(data), 1))
    for start in starts:
        if data[start] >> 5 != 5:   # major type 5 (map)
            continue
        found = _frames_from(data, start, partial_tail)
        if found is not None:
            return FrameScan(tuple(found[0]), start, found[1])
    return None


def _json_line(obj: object) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def frame_line(frame: Frame, json_mode: bool) -> str:
    """One printed line for a frame: ``describe`` (readable) or ``to_json`` as compact JSON."""
    return _json_line(to_json(frame)) if json_mode else describe(frame)


def plain_line(line: str, json_mode: bool) -> str:
    """A content line that is not a frame: verbatim, or ``{"line":…}`` / ``{"b64":…}`` with --json."""
    if not json_mode:
        return line
    if line.startswith(B64_PREFIX):
        return _json_line({"b64": line[len(B64_PREFIX):]})
    return _json_line({"line": line})


def render_content(verb: str, lines: tuple[str, ...] | list[str],
                   json_mode: bool = False) -> tuple[list[str], list[str]]:
    """What ``tail``/``cat`` print for a content stream: ``(lines, notes)``.

    Frame streams become one line per frame. ``tail`` shows the *last* 256 console lines, so its
    bytes may start inside a frame (resynchronised, with a note when bytes were skipped); ``cat``
    shows the *first* 256, so its bytes may end inside one (a note says how many were left out).
    Anything else is printed as it came (``--json``: one JSON object per line).
    """
    data = b64_content(lines)
    scan = None
    if data is not None:
        scan = scan_frames(data, resync=verb == "tail", partial_tail=verb == "cat")
    if scan is None:
        return [plain_line(line, json_mode) for line in lines], []
    notes = []
    if scan.skipped:
        notes.append(f"{NOTE_PREFIX} {verb}: skipped {scan.skipped} leading bytes "
                     f"(the stream started inside a frame)")
    if scan.trailing:
        notes.append(f"{NOTE_PREFIX} {verb}: {scan.trailing} trailing bytes of an incomplete frame "
                     f"not shown (the console sends the first 256 lines)")
    return [frame_line(frame, json_mode) for frame in scan.frames], notes


def ring_records(lines: tuple[str, ...] | list[str], json_mode: bool = False) -> list[list[str]]:
    """Whole records in a ``cat`` of a telemetry ring, each as the lines to print for it.

    ``cat`` starts at a record boundary (the open's position, SPEC §7.3) and the console reads whole
    records, but it sends only the first 256 lines: a Frame v1 stream may end inside a frame, which
    is not a whole record and is left out. Text records are lines; a text line the console split
    into 4096-byte pieces is put back together (a piece is 4093..4096 bytes long and continues on
    the next line). Text with control bytes arrives as ``b64:`` lines and is split at ``\\n``.
    """
    data = b64_content(lines)
    if data is not None:
        scan = scan_frames(data, partial_tail=True)
        if scan is not None:
            return [[frame_line(frame, json_mode)] for frame in scan.frames]
        if data[0] >> 5 == 5:   # a map head: a frame stream without one whole frame (never UTF-8 text)
            return []
        parts = data.split(b"\n")[:-1]   # the remainder after the last \n is not a whole record
        return [[plain_line(B64_PREFIX + base64.b64encode(part).decode("ascii"), json_mode)]
                for part in parts]
    records: list[list[str]] = []
    index = 0
    while index < len(lines):
        pieces = [lines[index]]
        while (len(pieces[-1].encode("utf-8")) >= _PIECE_MIN_BYTES and index + 1 < len(lines)):
            index += 1
            pieces.append(lines[index])
        index += 1
        if json_mode:
            records.append([plain_line("".join(pieces), True)])
        else:
            records.append(pieces)
    return records


def parse_cursor(lines: tuple[str, ...] | list[str]) -> tuple[int, int, int] | None:
    """``(cursor, oldest, next)`` from the cursor file's one line (SPEC §7.4), else ``None``."""
    if len(lines) != 1:
        return None
    match = _CURSOR_LINE.fullmatch(lines[0].strip())
    if match is None:
        return None
    c, o, n = (int(g) for g in match.groups())
    return c, o, n


class BenchProgress:
    """``pool bench`` progress on a terminal: one line rewritten in place (``\r``), at most 10 times a
    second, shown only once a run has lasted 0.3 s, and erased before the result line is printed."""

    DELAY_S = 0.3
    PERIOD_S = 0.1

    def __init__(self, out: TextIO, label: str = "[pool] bench", unit: str = "appends",
                 clock=time.monotonic) -> None:
        self.out = out
        self.label, self.unit = label, unit
        self.clock = clock
        self.started = clock()
        self.last = 0.0
        self.width = 0

    def __call__(self, done: int, total: int) -> None:
        now = self.clock()
        if now - self.started < self.DELAY_S or (now - self.last < self.PERIOD_S and done < total):
            return
        self.last = now
        rate = done / (now - self.started) if now > self.started else 0.0
        text = f"{self.label} {done}/{total} {self.unit} ({100 * done // max(total, 1)}%, {rate:,.0f}/s)"
        self.out.write("\r" + text.ljust(self.width))
        self.out.flush()
        self.width = len(text)

    def clear(self) -> None:
        if self.width:
            self.out.write("\r" + " " * self.width + "\r")
            self.out.flush()
            self.width = 0


def _is_tty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _role_from_ack(ack: str, fallback: str) -> str:
    for token in ack.split()[2:]:
        if token.startswith("role="):
            return token[len("role="):]
    return fallback


class Shell:
    """Runs shell lines; implements ``cohsh.script.Executor``.

    ``errors`` receives ``Error: <message>`` lines for local refusals (stdout in the interactive
    shell and scripts; stderr for one-shot commands, whose errors end the process).
    ``raw_b64`` makes ``cat`` write decoded ``b64:`` content as raw bytes (one-shot mode).
    """

    def __init__(
        self,
        client: ConsoleClient,
        out: TextIO = sys.stdout,
        *,
        errors: TextIO | None = None,
        raw_b64: bool = False,
        pool_options: PoolOptions | None = None,
    ) -> None:
        self.client = client
        self.out = out
        self.errors = errors if errors is not None else out
        self.raw_b64 = raw_b64
        self.attach_count = 0
        self.label: str | None = None
        self.last_was_local = False  # the last response line was synthesised locally
        # Session pools (SPEC §11.7): built on the first ``pool`` command for the current identity.
        self.pool_options = pool_options if pool_options is not None else PoolOptions()
        self.attach_ticket: str | None = None
        self.pool_error: PoolError | None = None   # the last pool failure (the CLI picks the exit code)
        self._pool: Pool | None = None
        self._pool_key: tuple[str, str | None] | None = None

    def close(self) -> None:
        """Release what the shell holds besides the console (the session pool)."""
        if self._pool is not None:
            pool, self._pool, self._pool_key = self._pool, None, None
            pool.close()

    def say(self, line: str) -> None:
        self.out.write(line + "\n")
        self.out.flush()

    def _error(self, message: str) -> None:
        self.errors.write(f"Error: {message}\n")
        self.errors.flush()

    def _note(self, line: str) -> None:
        """A ``[cohsh] …`` remark about printed content: on the error stream, so that a one-shot
        command's stdout holds only content (stdout and the error stream are one in the shell)."""
        self.errors.write(line + "\n")
        self.errors.flush()

    def execute(self, line: str) -> Outcome:
        translated = translate(line)
        self.last_was_local = isinstance(translated, LocalError)
        if isinstance(translated, LocalError):
            if translated.print_line:
                self.say(translated.line)
            else:
                self._error(translated.message)
            return Outcome(translated.line)
        if translated.name == "help":
            for text in HELP_LINES:
                self.say(text)
            return Outcome(HELP_LINES[-1])
        if translated.name == "quit":
            reply = self.client.quit()
            if reply is not None:
                self._print_reply(translated, reply)
            self.label = None
            self.say("closing session")
            return Outcome(reply.ack if reply is not None else "OK QUIT", ends=True)
        if translated.name == "detach":
            self.client.quit()
            self.label = None
            self.say("OK DETACH")
            return Outcome("OK DETACH")
        if translated.name == "consume":
            return self._consume(translated)
        if translated.name == "pool":
            return self._pool_bench(translated)
        if translated.name == "workers":             # several reads (cohsh/workers_view.py)
            from cohsh.workers_view import run_workers

            return run_workers(self._step, self.say)
        if translated.name == "spawn" and translated.repeat > 1:
            return self._spawn_many(translated)
        if translated.name == "gpu":                 # several reads (cohsh/gpu_view.py)
            from cohsh.gpu_view import run_gpu

            return run_gpu(self._step, self.say)
        if translated.name == "updates":             # several reads (cohsh/cas_view.py)
            from cohsh.cas_view import run_updates

            return run_updates(translated.wire.split(" ", 1)[1], self._step, self.say)
        assert translated.wire is not None
        try:
            reply = self.client.request(translated.wire, read_only=translated.read_only)
        except CommandInterrupted as exc:
            self._error(str(exc))
            return Outcome(None)
        self._print_reply(translated, reply)
        if translated.name == "attach" and reply.ack.startswith("OK ATTACH"):
            self.attach_count += 1
            self.label = _role_from_ack(reply.ack, translated.label or "")
            words = translated.wire.split()
            self.attach_ticket = words[2] if len(words) > 2 else None
            self.client.remember_attach(translated.wire)
            self.say(f"attached session {self.attach_count} as {self.label}")
        return Outcome(reply.ack)

    def _print_reply(self, command: Command, reply: Reply) -> None:
        for pre in reply.pre:
            self.say("ping: pong" if command.name == "ping" and pre == "PONG" else pre)
        self.say(f"[console] {reply.ack}")
        if self.raw_b64 and command.name == "cat" and not command.json and reply.content and all(
            c.startswith("b64:") for c in reply.content
        ):
            try:
                data = b"".join(base64.b64decode(c[4:], validate=True) for c in reply.content)
            except (binascii.Error, ValueError):
                data = None
            if data is not None:
                self.out.flush()
                buffer = getattr(self.out, "buffer", None)
                if buffer is not None:
                    buffer.write(data)
                    buffer.flush()
                else:
                    self.out.write(data.decode("latin-1"))
                return
        if command.name in ("tail", "cat"):
            lines, notes = render_content(command.name, reply.content, command.json)
            for note in notes:
                self._note(note)
            for line in lines:
                self.say(line)
            return
        for content in reply.content:
            self.say(content)

    # -- consume: read a ring from its cursor, then commit (SPEC §7.4 resume procedure) -----------

    def _spawn_many(self, command: Command) -> Outcome:
        """``spawn … count=<n>``: the same ctl line n times (never repeated after a reconnect: a spawn
        is not idempotent). Stops at the first refusal, e.g. EBUSY at ``max_workers``, and says how
        many were spawned; progress on a terminal."""
        assert command.wire is not None
        progress = BenchProgress(self.out, "[spawn]", "workers") if _is_tty(self.out) else None
        done, ack = 0, "OK ECHO"
        try:
            while done < command.repeat:
                try:
                    reply = self.client.request(command.wire, read_only=False)
                except CommandInterrupted as exc:
                    self._error(str(exc))
                    return Outcome(None)
                ack = reply.ack
                if not ack.startswith("OK"):
                    self.say(f"[console] {ack}")
                    break
                done += 1
                if progress is not None:
                    progress(done, command.repeat)
        finally:
            if progress is not None:
                progress.clear()
        self.say(f"spawned {done} of {command.repeat} workers")
        return Outcome(ack)

    def _step(self, wire: str) -> Reply | Outcome:
        """One console request of ``consume``: its reply, or the Outcome that ends ``consume`` (the request
        could not complete, already reported; or a refusal, whose ack is printed and becomes the response
        line). Every step may be repeated after a reconnect: reads change nothing and a cursor write of
        the value already committed is a no-op (§7.4)."""
        try:
            reply = self.client.request(wire, read_only=True)
        except CommandInterrupted as exc:
            self._error(str(exc))
            return Outcome(None)
        if not reply.ack.startswith("OK"):
            self.say(f"[console] {reply.ack}")
            return Outcome(reply.ack)
        return reply

    def _read_cursor(self, path: str) -> tuple[int, int, int] | Outcome:
        reply = self._step(f"CAT {path}")
        if isinstance(reply, Outcome):
            return reply
        state = parse_cursor(reply.content)
        if state is None:
            message = f"unexpected content in {path}: {' | '.join(reply.content)[:80]}"
            self._error(message)
            return Outcome(f"ERR CONSUME reason=policy detail=invalid-payload msg={message}")
        return state

    def _consume(self, command: Command) -> Outcome:
        """``consume <id> [max=<k>]``: read the cursor; arm an unarmed ring at ``oldest`` (so the
        position the read starts from is known exactly and nothing unread is evicted from then on);
        read the ring from the cursor; print the whole records; commit ``start + k``.

        Response line (scripts): ``OK CONSUME worker=<id> records=<k> cursor=<c>``, or the ERR
        line of the step that failed (e.g. ``ERR CAT … error=EACCES`` for a non-queen session).
        """
        assert command.worker is not None
        cursor_path, ring_path = ring_paths(command.worker)
        state = self._read_cursor(cursor_path)
        if isinstance(state, Outcome):
            return state
        cursor, oldest, _next = state
        if cursor == 0:
            committed = self._step(f"ECHO {cursor_path} {oldest}")
            if isinstance(committed, Outcome):
                return committed
            state = self._read_cursor(cursor_path)   # the write may have been clamped (§7.4)
            if isinstance(state, Outcome):
                return state
            cursor = state[0]
        reply = self._step(f"CAT {ring_path}")
        if isinstance(reply, Outcome):
            return reply
        records = ring_records(reply.content, command.json)
        count = len(records) if command.limit is None else min(command.limit, len(records))
        for record in records[:count]:
            for line in record:
                self.say(line)
        new_cursor = cursor + count
        if count:
            committed = self._step(f"ECHO {cursor_path} {new_cursor}")
            if isinstance(committed, Outcome):
                return committed
        self.say(f"consumed {count} records, cursor={new_cursor}")
        return Outcome(f"OK CONSUME worker={command.worker} records={count} cursor={new_cursor}")

    # -- pool bench (SPEC §11.7) -------------------------------------------------------------------

    def _pool_for_identity(self) -> Pool:
        """The pool of the current identity: the attached role and its ticket, else ``--role`` /
        ``--ticket``, else queen (a ticket is minted when none is known, cohsh/pool.py)."""
        options = self.pool_options
        role = self.label or options.role or "queen"
        ticket = self.attach_ticket if self.label is not None else None
        ticket = ticket or options.ticket
        key = (role, ticket)
        if self._pool is None or self._pool_key != key:
            self.close()
            self._pool = options.make(role, ticket)
            self._pool_key = key
        return self._pool

    def _pool_bench(self, command: Command) -> Outcome:
        """Append ``<payload>-<i>\n`` (i = 1..ops) through the telemetry sessions; print exactly one
        result line, ``OK POOL BENCH …`` or ``ERR POOL BENCH reason=<token> msg=<text>``."""
        bench = command.pool
        assert bench is not None
        self.pool_error = None
        progress = BenchProgress(self.out) if _is_tty(self.out) else None
        try:
            pool = self._pool_for_identity()
            pool.open()
            records = [f"{bench.payload}-{i}\n".encode() for i in range(1, bench.ops + 1)]
            started = time.perf_counter()
            try:
                result = pool.append_many(bench.path, records, batch=bench.batch, progress=progress)
            finally:
                if progress is not None:
                    progress.clear()
            elapsed_ms = round((time.perf_counter() - started) * 1000)
        except PoolError as exc:
            if exc.transport and self._pool is not None:
                self.close()            # rebuilt from scratch next time (the endpoint may come back)
            self.pool_error = exc
            line = exc.line("POOL BENCH")
            self.say(line)
            return Outcome(line)
        line = (f"OK POOL BENCH ops={bench.ops} short_writes={result.short_writes} "
                f"retries={result.retries} elapsed_ms={elapsed_ms}")
        self.say(line)
        return Outcome(line)
