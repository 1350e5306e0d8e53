"""Executes shell commands against a console client and prints them per SPEC §11.3.

Why one executor for every mode: the REPL, scripts and one-shot commands must print the same lines
and compute the same response line (SPEC §11.5), so they all go through ``Shell.execute``.
"""
from __future__ import annotations

import base64
import binascii
import sys
from typing import TextIO

from cohsh.commands import HELP_LINES, Command, LocalError, translate
from cohsh.script import Outcome
from cohsh.transport_tcp import CommandInterrupted, ConsoleClient, Reply


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
    ) -> None:
        self.client = client
        self.out = out
        self.errors = errors if errors is not None else out
        self.raw_b64 = raw_b64
        self.attach_count = 0
        self.label: str | None = None
        self.last_was_local = False  # the last response line was synthesised locally

    def say(self, line: str) -> None:
        self.out.write(line + "\n")
        self.out.flush()

    def _error(self, message: str) -> None:
        self.errors.write(f"Error: {message}\n")
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
            self.client.remember_attach(translated.wire)
            self.say(f"attached session {self.attach_count} as {self.label}")
        return Outcome(reply.ack)

    def _print_reply(self, command: Command, reply: Reply) -> None:
        for pre in reply.pre:
            self.say("ping: pong" if command.name == "ping" and pre == "PONG" else pre)
        self.say(f"[console] {reply.ack}")
        if self.raw_b64 and command.name == "cat" and reply.content and all(
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
        for content in reply.content:
            self.say(content)
