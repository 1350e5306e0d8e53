"""Secret references in the IR (SPEC §14.2): ``env:NAME`` and ``file:PATH``.

Why references: a secret written into the IR is committed with it. ``console.auth_token`` and
``tickets[].secret`` may instead name an environment variable or a file (absolute, or relative to the
IR file's directory; one trailing ``\\n`` removed). They are resolved when the IR is compiled (coh-rtc,
``cohesix-host``, ``python -m image.build``, ``cohsh --mint-ticket``); the resolved text must then satisfy
the literal rule of its key. An unset variable or an unreadable file is a located §14.3 diagnostic.

Placeholder values (the demo's ``changeme``/``bootstrap``/``worker`` …) still compile so that the demo
and the tests work, but the root task prints one warning line at boot naming every key that holds one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

ENV_PREFIX = "env:"
FILE_PREFIX = "file:"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
PLACEHOLDERS: frozenset[str] = frozenset(
    {"changeme", "bootstrap", "worker", "worker-gpu", "password", "secret", "default"}
)


@dataclass(frozen=True)
class SecretValue:
    """The outcome of resolving one IR secret: its text, or the §14.3 problem."""

    text: str | None
    problem: str | None = None


def is_reference(value: str) -> bool:
    return value.startswith(ENV_PREFIX) or value.startswith(FILE_PREFIX)


def resolve_secret(value: str, ir_directory: Path, environ: Mapping[str, str]) -> SecretValue:
    """Resolve ``value`` (a literal, ``env:NAME`` or ``file:PATH``) to the secret text."""
    if value.startswith(ENV_PREFIX):
        name = value[len(ENV_PREFIX):]
        if not _ENV_NAME.fullmatch(name):
            return SecretValue(None, "env: reference must name [A-Za-z_][A-Za-z0-9_]{0,127}")
        if name not in environ:
            return SecretValue(None, f"environment variable {name} is not set")
        return SecretValue(environ[name])
    if value.startswith(FILE_PREFIX):
        given = value[len(FILE_PREFIX):]
        if not given:
            return SecretValue(None, "file: reference needs a path")
        path = Path(given)
        if not path.is_absolute():
            path = ir_directory / path
        try:
            data = path.read_bytes()
        except OSError as exc:
            return SecretValue(None, f"cannot read secret file {given}: {exc.strerror or type(exc).__name__}")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return SecretValue(None, f"cannot read secret file {given}: not valid UTF-8")
        return SecretValue(text[:-1] if text.endswith("\n") else text)
    return SecretValue(value)


def is_placeholder(text: str) -> bool:
    return text in PLACEHOLDERS
