"""Page actions → the shell's own ctl writes (SPEC §6.2, §11.4), through the session pool.

Why through ``cohsh.commands.translate``: a spawn or kill from the page must mean exactly what the same
words mean in ``cohsh`` — same option names, same local refusals, same JSON line. The action's fields
are checked (digits, id syntax) and turned into the shell line (``spawn heartbeat ticks=5``), the
shell's translation gives ``ECHO /queen/ctl <json>``, and the JSON is written to ``/queen/ctl`` with the
queen's pool. A server refusal comes back as the pool's message with the SPEC errno text, e.g.
``write /queen/ctl: no such file or directory (ENOENT)``.

``commit`` consumes a worker's ring up to what is there now, as ``cohsh consume`` does: read the
cursor, read the ring, write ``cursor + k`` (``Pool.tail(commit=True)``). A cursor write adds no line
to ``/log/queen.log`` by itself (§5.5), so the hive appends ``hive cursor commit worker=<id>
cursor=<n>`` there as a queen write (docs/spec-decisions.md "Hive"): every page action is on record.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from cohsh.commands import LocalError, translate
from cohsh.hive.model import WORKER_ID, BootFacts
from cohsh.pool import Pool, PoolError

_NUMBER = re.compile(r"[0-9]{1,20}")
_GPU_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
CTL_PREFIX = "ECHO /queen/ctl "
MAX_ACTION_BYTES = 4096

_FIELDS = {
    "spawn-heartbeat": (("ticks", True), ("ttl_s", False), ("ops", False)),
    "spawn-gpu": (("gpu_id", True), ("mem_mb", True), ("streams", True), ("ttl_s", True),
                  ("priority", False), ("ops", False)),
    "kill": (("worker", True),),
    "commit": (("worker", True),),
}


@dataclass(frozen=True)
class ActionResult:
    """``ok``; ``message`` for the page (the errno text on failure); ``line`` what was written."""

    ok: bool
    message: str
    line: str | None = None

    def to_json(self) -> dict:
        return {"ok": self.ok, "message": self.message, "line": self.line}


class ActionError(ValueError):
    """A malformed action (refused before anything is written)."""


def _value(name: str, raw: object, required: bool) -> str | None:
    if raw is None or raw == "":
        if required:
            raise ActionError(f"{name} is required")
        return None
    if isinstance(raw, bool) or not isinstance(raw, (str, int)):
        raise ActionError(f"{name} must be a string or an integer")
    text = str(raw).strip()
    if name == "worker":
        if not WORKER_ID.fullmatch(text):
            raise ActionError(f"invalid worker id {text[:80]!r}")
    elif name == "gpu_id":
        if not _GPU_ID.fullmatch(text):
            raise ActionError(f"invalid gpu_id {text[:80]!r}")
    elif not _NUMBER.fullmatch(text):
        raise ActionError(f"{name} must be a non-negative integer")
    return text


def shell_line(action: object) -> tuple[str, str]:
    """``(kind, shell line)`` for a page action object; :class:`ActionError` when malformed."""
    if not isinstance(action, dict):
        raise ActionError("an action is a JSON object")
    kind = action.get("action")
    if not isinstance(kind, str) or kind not in _FIELDS:
        raise ActionError(f"unknown action (expected one of {', '.join(_FIELDS)})")
    fields = _FIELDS[kind]
    unknown = set(action) - {"action"} - {name for name, _ in fields}
    if unknown:
        raise ActionError(f"unknown field(s): {', '.join(sorted(unknown))[:200]}")
    values = {name: _value(name, action.get(name), required) for name, required in fields}
    if kind == "kill":
        return kind, f"kill {values['worker']}"
    if kind == "commit":
        return kind, f"consume {values['worker']}"
    words = ["spawn", "heartbeat" if kind == "spawn-heartbeat" else "gpu"]
    words += [f"{name}={value}" for name, value in values.items() if value is not None]
    return kind, " ".join(words)


class Actions:
    """Runs page actions with ``pool`` (the queen's); ``after`` is called after each write."""

    def __init__(self, pool: Pool, boot: Callable[[], BootFacts | None],
                 after: Callable[[], None] = lambda: None) -> None:
        self.pool = pool
        self.boot = boot
        self.after = after

    def perform(self, action: object) -> ActionResult:
        try:
            kind, line = shell_line(action)
        except ActionError as exc:
            return ActionResult(False, str(exc))
        command = translate(line)
        if isinstance(command, LocalError):
            return ActionResult(False, command.message)
        try:
            if kind == "commit":
                return self._commit(command.worker or "")
            assert command.wire is not None and command.wire.startswith(CTL_PREFIX)
            ctl = command.wire[len(CTL_PREFIX):]
            self.pool.write("/queen/ctl", ctl + "\n")
            return ActionResult(True, f"{line}: ok", ctl)
        except PoolError as exc:
            return ActionResult(False, exc.message)
        finally:
            self.after()

    def _commit(self, worker: str) -> ActionResult:
        boot = self.boot() or BootFacts()
        tail = self.pool.tail(boot.worker_dir(worker) + "/telemetry", commit=True)
        audit = f"hive cursor commit worker={worker} cursor={tail.cursor}"
        self.pool.write("/log/queen.log", audit + "\n")
        return ActionResult(True, f"committed cursor {tail.cursor} for {worker}", audit)
