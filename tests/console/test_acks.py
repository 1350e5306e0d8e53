"""OK/ERR grammar (SPEC §10.6) and the errno mapping."""
from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nine_door import errors as E
from root_task.console import acks

ERR_RE = re.compile(r"^ERR [A-Z]+ reason=(busy|quota|cut|policy) detail=[a-z-]+( delay_ms=\d+)?"
                    r"( path=\S+)?( error=E[A-Z]+)?( msg=.*)?$")


def test_ok_forms():
    assert acks.ok("auth") == "OK AUTH"
    assert acks.ok("ping", "reply=pong") == "OK PING reply=pong"


def test_spec_example_ls_enoent():
    assert acks.errno_refusal("ls", E.ENOENT, path="/nope", on_path=True) == \
        "ERR LS reason=policy detail=invalid-path path=/nope error=ENOENT msg=invalid path"


def test_field_order_and_throttle_example():
    assert acks.err("attach", "quota", "throttled", delay_ms=250) == \
        "ERR ATTACH reason=quota detail=throttled delay_ms=250"
    assert acks.err("X", "policy", "d", msg="m m", error="EINVAL", path="/p", delay_ms=1) == \
        "ERR X reason=policy detail=d delay_ms=1 path=/p error=EINVAL msg=m m"


def test_transport_short_form():
    assert acks.transport_err("AUTH", "invalid-token") == "ERR AUTH reason=invalid-token"
    assert acks.transport_err("AUTH", "rate-limited", 90000) == "ERR AUTH reason=rate-limited delay_ms=90000"
    assert acks.transport_err("FRAME", "invalid-length") == "ERR FRAME reason=invalid-length"


def test_invalid_path_form():
    assert acks.invalid_path("cat", "proc") == \
        "ERR CAT reason=policy detail=invalid-path path=proc error=EINVAL msg=invalid path"


@pytest.mark.parametrize("errno,on_path,reason,detail,msg", [
    (E.ENOENT, True, "policy", "invalid-path", "invalid path"),
    (E.ENOTDIR, True, "policy", "invalid-path", "not a directory"),
    (E.EISDIR, False, "policy", "invalid-path", "is a directory"),
    (E.EINVAL, True, "policy", "invalid-path", "invalid path"),
    (E.EINVAL, False, "policy", "invalid-payload", "invalid argument"),
    (E.EACCES, True, "policy", "denied", "permission denied"),
    (E.EPERM, False, "policy", "denied", "operation not permitted"),
    (E.EAGAIN, False, "quota", "buffer-full", "resource temporarily unavailable"),
    (E.EMSGSIZE, False, "quota", "too-big", "message too long"),
    (E.ERANGE, False, "quota", "stale", "numerical result out of range"),
    (E.EBUSY, False, "busy", "busy", "device or resource busy"),
    (E.EBADF, False, "cut", "closed", "bad file descriptor"),
    (E.ESTALE, False, "cut", "revoked", "stale file handle"),
    (E.EOPNOTSUPP, False, "policy", "unsupported", "operation not supported"),
])
def test_errno_table(errno, on_path, reason, detail, msg):
    line = acks.errno_refusal("cat", errno, path="/p", on_path=on_path)
    assert line == (f"ERR CAT reason={reason} detail={detail} path=/p error={E.ERRNO_NAMES[errno]} "
                    f"msg={msg}")


def test_unknown_reason_rejected():
    with pytest.raises(ValueError):
        acks.err("X", "nope", "d")


@given(st.sampled_from(sorted(E.ERRNO_NAMES)), st.booleans(),
       st.one_of(st.none(), st.from_regex(r"/[a-z]{1,8}", fullmatch=True)))
def test_property_errno_lines_match_grammar(errno, on_path, path):
    assert ERR_RE.match(acks.errno_refusal("echo", errno, path=path, on_path=on_path))
