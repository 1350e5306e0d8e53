"""Tickets (SPEC §4.1, §4.3–§4.5, §4.7): vectors, strict payload codec, validation order."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nine_door import blake3, tickets
from nine_door.tickets import (PayloadError, Quotas, Scope, TicketClaims, TicketError,
                               TicketPayload, check, decode_payload, encode_payload, mint,
                               peek_role)

HEARTBEAT_VECTOR = (
    "cohesix-ticket-01010fe80300000000000010270000000000002c010000000000000800776f726b65722d31"
    "000000000000000000000000.9bada67b2cdede252bdc11e3fc714b04085390cefaa41b8451d07160f5e9bfba")
QUEEN_VECTOR = (
    "cohesix-ticket-010000000000000000000000000000."
    "574095c8f358416843eadd2c94e7f2e8f3dae33e2248533350573a01c3532331")
SECRETS = {"queen": "bootstrap", "worker-heartbeat": "worker", "worker-gpu": "worker-gpu"}
NOW = 1_700_000_000_000


def signed(secret: str, payload: bytes) -> str:
    """A ticket text with a *valid* MAC over arbitrary payload bytes (to reach steps 3–6)."""
    mac = blake3.keyed_hash(blake3.hash(secret.encode()), payload)
    return f"cohesix-ticket-{payload.hex()}.{mac.hex()}"


def run(text, role="worker-heartbeat", subject="worker-1", now=NOW, secrets=SECRETS):
    return check(text, secrets.get, role, subject, now)


def reason(text, **kw) -> str:
    with pytest.raises(TicketError) as info:
        run(text, **kw)
    return info.value.reason


# --- SPEC §4.7 vectors ------------------------------------------------------------------------
def test_heartbeat_vector_is_minted_exactly():
    text = mint("worker", "worker-heartbeat", subject="worker-1", ticks=1000, ops=10000,
                ttl_s=300, issued_at_ms=0)
    assert text == HEARTBEAT_VECTOR
    assert len(text) == 178


def test_queen_vector_is_minted_exactly():
    assert mint("bootstrap", "queen") == QUEEN_VECTOR


def test_vectors_validate():
    assert run(HEARTBEAT_VECTOR) == TicketClaims("worker-heartbeat", "worker-1", 1000, 10000, 300,
                                                 0, "", "")
    claims = run(QUEEN_VECTOR, role="queen", subject=None)
    assert claims.role == "queen" and claims.ticks is None and claims.subject is None


# --- payload codec ----------------------------------------------------------------------------
u64 = st.integers(0, 2**64 - 1)
short_text = st.text(max_size=20).filter(lambda s: len(s.encode()) <= 255)
payloads = st.builds(
    TicketPayload,
    role=st.integers(0, 2),
    ticks=st.none() | u64, ops=st.none() | u64, ttl_s=st.none() | u64,
    subject=st.none() | short_text,
    issued_at_ms=u64, mount_service=short_text, mount_at=short_text,
    scopes=st.none() | st.lists(st.builds(Scope, short_text, st.integers(0, 2),
                                          st.integers(0, 2**32 - 1)), max_size=16).map(tuple),
    quotas=st.none() | st.builds(Quotas, u64, st.integers(0, 2**32 - 1),
                                 st.integers(0, 2**32 - 1)),
)


@settings(max_examples=300, deadline=None)
@given(payloads)
def test_payload_round_trip(payload):
    raw = encode_payload(payload)
    assert decode_payload(raw) == payload
    assert raw[2] == payload.flags


@settings(max_examples=300, deadline=None)
@given(payloads, st.binary(min_size=1, max_size=8))
def test_payload_trailing_bytes_and_truncation_are_rejected(payload, extra):
    raw = encode_payload(payload)
    with pytest.raises(PayloadError):
        decode_payload(raw + extra)
    with pytest.raises(PayloadError):
        decode_payload(raw[:-1])


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=80))
def test_payload_decoder_raises_only_payload_error(raw):
    try:
        payload = decode_payload(raw)
    except PayloadError:
        return
    assert encode_payload(payload) == raw        # strict ⇒ canonical


@pytest.mark.parametrize("raw,why", [
    (bytes.fromhex("020000") + bytes(12), "version 2"),
    (bytes.fromhex("010300") + bytes(12), "reserved role byte 3"),
    (bytes.fromhex("01ff00") + bytes(12), "reserved role byte 255"),
    (bytes.fromhex("010040") + bytes(12), "reserved flag bit 6"),
    (bytes.fromhex("010080") + bytes(12), "reserved flag bit 7"),
    (bytes.fromhex("010000") + bytes(8) + b"\x00\x01" + bytes(256) + b"\x00\x00", "string > 255"),
    (bytes.fromhex("010000") + bytes(8) + b"\x01\x00\xff" + b"\x00\x00", "bad UTF-8"),
    (bytes.fromhex("010010") + bytes(12) + b"\x11", "17 scopes"),
    (bytes.fromhex("010010") + bytes(12) + b"\x01\x00\x00\x03" + bytes(4), "scope verb 3"),
])
def test_payload_rejections(raw, why):
    with pytest.raises(PayloadError):
        decode_payload(raw)


# --- length rule (§4.3) -------------------------------------------------------------------------
@given(st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=40), u64, u64, u64)
def test_heartbeat_ticket_length_is_162_plus_2l(subject, ticks, ops, ttl):
    text = mint("worker", "worker-heartbeat", subject=subject, ticks=ticks, ops=ops, ttl_s=ttl,
                issued_at_ms=NOW)
    assert len(text) == 162 + 2 * len(subject)
    if len(subject) <= 31:
        assert run(text, subject=subject, now=0).subject == subject
    else:
        assert reason(text, subject=subject) == "invalid-claims"


# --- validation order (§4.5) ------------------------------------------------------------------
@pytest.mark.parametrize("text", [
    "",
    HEARTBEAT_VECTOR.upper(),
    HEARTBEAT_VECTOR.replace("cohesix-ticket-", "cohesix-ticket:"),
    HEARTBEAT_VECTOR[:-1],                               # 63-hex MAC
    HEARTBEAT_VECTOR + "0",                              # 65-hex MAC
    HEARTBEAT_VECTOR.replace("-01010f", "-1010f"),        # odd-length payload hex
    HEARTBEAT_VECTOR.replace(".", "", 1),
    "cohesix-ticket-." + "0" * 64,                       # empty payload
    HEARTBEAT_VECTOR.replace("9bada67b", "9BADA67B"),
    " " + HEARTBEAT_VECTOR,
    HEARTBEAT_VECTOR + "\n",
])
def test_step1_bad_shape_is_invalid_claims(text):
    assert reason(text) == "invalid-claims"


def test_step1_length_limit_precedes_everything():
    text = mint("worker", "worker-heartbeat", subject="w" * 32, ticks=1, ops=1, ttl_s=1,
                issued_at_ms=0)
    assert len(text) == 226
    assert reason(text, subject="w" * 32) == "invalid-claims"


def test_step2_wrong_secret_is_denied():
    assert reason(HEARTBEAT_VECTOR, secrets={"worker-heartbeat": "not-worker"}) == "denied"


def test_step2_no_secret_for_role_is_denied():
    assert reason(HEARTBEAT_VECTOR, secrets={}) == "denied"


def test_step2_uses_the_requested_roles_secret():
    # A queen ticket presented for the heartbeat role is checked with the heartbeat secret.
    assert reason(QUEEN_VECTOR) == "denied"


def test_step2_tampered_payload_is_denied():
    tampered = HEARTBEAT_VECTOR.replace("e803", "e903", 1)
    assert reason(tampered) == "denied"


def test_step2_precedes_step3():
    bad_payload_bad_mac = "cohesix-ticket-02." + "0" * 64
    assert reason(bad_payload_bad_mac) == "denied"


@pytest.mark.parametrize("payload", [
    bytes.fromhex("02010f"),                                      # bad version
    bytes.fromhex("0103") + b"\x00" + bytes(12),                   # reserved role
    encode_payload(TicketPayload(1, subject="worker-1")) + b"\x00",  # trailing byte
    encode_payload(TicketPayload(1, subject="worker-1"))[:-1],    # short
    encode_payload(TicketPayload(1, subject="worker-1", scopes=())),
    encode_payload(TicketPayload(1, subject="worker-1", quotas=Quotas(1, 1, 1))),
    encode_payload(TicketPayload(1, subject="worker-1", mount_service="log")),
    encode_payload(TicketPayload(1, subject="worker-1", mount_at="/x")),
])
def test_step3_bad_payload_with_valid_mac_is_invalid_claims(payload):
    assert reason(signed("worker", payload)) == "invalid-claims"


def test_step3_mount_spec_is_allowed_on_queen_tickets():
    text = signed("bootstrap", encode_payload(TicketPayload(0, mount_service="log",
                                                            mount_at="/q")))
    claims = run(text, role="queen", subject=None)
    assert (claims.mount_service, claims.mount_at) == ("log", "/q")


def test_step4_role_byte_must_match_requested_role():
    # Same secret for two roles: the MAC verifies, the role byte still differs.
    secrets = {"worker-heartbeat": "shared", "worker-gpu": "shared"}
    gpu = mint("shared", "worker-gpu", subject="worker-1")
    assert reason(gpu, secrets=secrets) == "denied"
    assert run(gpu, role="worker-gpu", secrets=secrets).role == "worker-gpu"


def test_step3_precedes_step4():
    payload = encode_payload(TicketPayload(2, subject="worker-1", quotas=Quotas(0, 0, 0)))
    assert reason(signed("worker", payload)) == "invalid-claims"


def test_step5_worker_ticket_needs_a_subject():
    assert reason(mint("worker", "worker-heartbeat")) == "invalid-claims"
    assert reason(mint("worker", "worker-heartbeat"), subject=None) == "invalid-claims"


def test_step5_subject_must_match_when_named():
    text = mint("worker", "worker-heartbeat", subject="worker-2")
    assert reason(text) == "denied"
    assert run(text, subject=None).subject == "worker-2"


def test_step5_precedes_step6():
    text = mint("worker", "worker-heartbeat", subject="worker-2", ttl_s=1, issued_at_ms=1)
    assert reason(text, subject="worker-1") == "denied"


def test_step6_expiry_boundary():
    text = mint("worker", "worker-heartbeat", subject="worker-1", ttl_s=5, issued_at_ms=1000)
    assert run(text, now=5999).ttl_s == 5
    assert reason(text, now=6000) == "expired"


def test_step6_no_issue_time_never_expires_here():
    text = mint("worker", "worker-heartbeat", subject="worker-1", ttl_s=1, issued_at_ms=0)
    assert run(text, now=2**62).issued_at_ms == 0


def test_queen_tickets_are_checked_too():
    text = mint("bootstrap", "queen", ttl_s=1, issued_at_ms=1)
    assert reason(text, role="queen", subject=None) == "expired"


def test_unknown_requested_role_is_denied():
    assert reason(HEARTBEAT_VECTOR, role="worker") == "denied"


# --- helpers ----------------------------------------------------------------------------------
def test_peek_role():
    assert peek_role(HEARTBEAT_VECTOR) == "worker-heartbeat"
    assert peek_role(QUEEN_VECTOR) == "queen"
    assert peek_role("cohesix-ticket-0103." + "0" * 64) is None
    assert peek_role("garbage") is None


def test_deadline():
    claims = run(mint("worker", "worker-heartbeat", subject="worker-1", ttl_s=10,
                      issued_at_ms=500), now=0)
    assert claims.deadline_ms(attach_ms=99) == 10_500
    claims = run(mint("worker", "worker-heartbeat", subject="worker-1", ttl_s=10), now=0)
    assert claims.deadline_ms(attach_ms=99) == 10_099
    assert run(HEARTBEAT_VECTOR).deadline_ms(0) == 300_000


def test_mint_rejects_unknown_roles_and_alias():
    with pytest.raises(ValueError):
        mint("s", "worker")                 # the alias is a console/cohsh convenience only
    with pytest.raises(ValueError):
        mint("s", "Queen")


def test_role_table():
    assert tickets.ROLE_BYTES == {"queen": 0, "worker-heartbeat": 1, "worker-gpu": 2}
