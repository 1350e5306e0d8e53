"""The hive's session token (docs/hive.md "Security model").

Why a token on a loopback server: any local process (or a web page in the operator's browser making
requests to 127.0.0.1) could otherwise drive ``/queen/ctl`` with the queen's ticket. The token is
printed once on start; the first request carries it in the URL (``/?token=…``), the server answers
with an HttpOnly, SameSite=Strict cookie and a redirect that drops it from the address bar. Every
request without a valid token or cookie is answered 403 with nothing else.
"""
from __future__ import annotations

import hmac
import secrets
from urllib.parse import parse_qs

COOKIE_NAME = "cohsh_hive"
TOKEN_BYTES = 24
MAX_TOKEN_CHARS = 128


def new_token() -> str:
    """A fresh URL-safe token (192 random bits)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def _same(candidate: str | None, token: str) -> bool:
    if not candidate or len(candidate) > MAX_TOKEN_CHARS:
        return False
    return hmac.compare_digest(candidate.encode("utf-8", "replace"), token.encode("utf-8"))


def cookie_token(header: str | None) -> str | None:
    """The value of our cookie in a ``Cookie:`` header, or None (malformed pairs are skipped)."""
    if not header:
        return None
    for part in header.split(";"):
        name, eq, value = part.strip().partition("=")
        if eq and name == COOKIE_NAME:
            return value.strip().strip('"')
    return None


def query_token(query: str) -> str | None:
    """The ``token`` parameter of a query string, or None."""
    try:
        values = parse_qs(query, keep_blank_values=True, max_num_fields=16).get("token")
    except ValueError:
        return None
    return values[0] if values else None


def check(token: str, cookie_header: str | None, query: str) -> str | None:
    """How the request proved the token: ``"cookie"``, ``"url"``, or None (refuse)."""
    if _same(cookie_token(cookie_header), token):
        return "cookie"
    if _same(query_token(query), token):
        return "url"
    return None


def set_cookie(token: str) -> str:
    """The ``Set-Cookie`` value: HttpOnly (page scripts never see it), SameSite=Strict (no cross-site
    request carries it), path ``/``, session lifetime."""
    return f"{COOKIE_NAME}={token}; HttpOnly; SameSite=Strict; Path=/"
