"""``cohsh --mint-ticket`` (SPEC §4.7): resolve the role's secret and print a ticket.

Why minting goes through ``nine_door.tickets.mint``: the server validates tickets with that module,
so the client cannot produce a format the server does not accept (one implementation per format).
"""
from __future__ import annotations

import os
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

from nine_door.vocabulary import WORKER_ROLES, canonical_role

DEFAULT_CONFIG = "configs/root_task.toml"


class MintError(Exception):
    """A minting refusal; the CLI prints ``Error: <message>`` and exits 2."""


@dataclass(frozen=True)
class MintRequest:
    role: str
    subject: str | None = None
    ticks: int | None = None
    ops: int | None = None
    ttl_s: int | None = None
    issued_at_ms: int | None = None  # None: now
    secret: str | None = None  # --ticket-secret
    config: str | None = None  # --ticket-config


def secret_from_config(path: str, role: str, env: Mapping[str, str] | None = None) -> str | None:
    """The ``secret`` of the ``[[tickets]]`` entry for ``role`` in an IR file, if there is one.

    An ``env:NAME`` / ``file:PATH`` reference is resolved as coh-rtc resolves it (PATH relative to the
    IR file); an unset variable or unreadable file yields None (``no ticket secret for role``)."""
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError):
        return None
    tickets = data.get("tickets")
    if not isinstance(tickets, list):
        return None
    for entry in tickets:
        if isinstance(entry, dict) and entry.get("role") == role:
            secret = entry.get("secret")
            if not isinstance(secret, str) or not secret:
                return None
            from coh_rtc.secrets import resolve_secret as resolve_reference

            resolved = resolve_reference(secret, Path(path).parent, os.environ if env is None else env)
            return resolved.text or None
    return None


def resolve_secret(role: str, flag_secret: str | None, flag_config: str | None,
                   env: Mapping[str, str]) -> str | None:
    """Secret order: ``--ticket-secret``, ``COHSH_TICKET_SECRET``, then the config file's entry
    (``--ticket-config``, else ``COHSH_TICKET_CONFIG``, else ``configs/root_task.toml``)."""
    if flag_secret:
        return flag_secret
    if env.get("COHSH_TICKET_SECRET"):
        return env["COHSH_TICKET_SECRET"]
    config = flag_config or env.get("COHSH_TICKET_CONFIG") or DEFAULT_CONFIG
    return secret_from_config(config, role, env)


def _default_minter(secret: str, role: str, **fields: object) -> str:
    from nine_door.tickets import mint

    return mint(secret, role, **fields)  # type: ignore[arg-type]


def mint_ticket(
    request: MintRequest,
    env: Mapping[str, str] | None = None,
    *,
    now_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    minter: Callable[..., str] = _default_minter,
) -> str:
    env = os.environ if env is None else env
    role = canonical_role(request.role)
    if role is None:
        raise MintError(f"unknown role {request.role}")
    if role in WORKER_ROLES and not request.subject:
        raise MintError("--ticket-subject is required for worker roles")
    secret = resolve_secret(role, request.secret, request.config, env)
    if not secret:
        raise MintError(f"no ticket secret for role {role}")
    issued = request.issued_at_ms if request.issued_at_ms is not None else now_ms()
    try:
        return minter(
            secret,
            role,
            subject=request.subject,
            ticks=request.ticks,
            ops=request.ops,
            ttl_s=request.ttl_s,
            issued_at_ms=issued,
        )
    except (ValueError, OverflowError) as exc:  # e.g. a subject longer than 255 bytes
        raise MintError(f"cannot mint ticket: {exc}") from None
