"""The guest's pure-Python Ed25519 (nine_door/cas/ed25519.py): RFC 8032 §7.1 vectors and a cross-check
against ``cryptography`` (OpenSSL) on random keys, messages and corrupted signatures."""
from __future__ import annotations

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st

from nine_door.cas import ed25519

# RFC 8032 §7.1: TEST 1 (empty message), TEST 2 (1 octet), TEST 3 (2 octets)
RFC8032 = [
    ("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"),
    ("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
    ("c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
     "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
     "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"),
]


@pytest.mark.parametrize("seed,public,message,signature", RFC8032)
def test_rfc8032_vectors(seed, public, message, signature):
    seed, public, message, signature = map(bytes.fromhex, (seed, public, message, signature))
    assert ed25519.public_key(seed) == public
    assert ed25519.sign(seed, message) == signature
    assert ed25519.verify(public, message, signature)
    assert not ed25519.verify(public, message + b"\x00", signature)
    assert not ed25519.verify(public, message, signature[:-1] + bytes([signature[-1] ^ 1]))


def openssl_verifies(public: bytes, message: bytes, signature: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


@settings(max_examples=60, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.binary(max_size=300))
def test_signatures_match_openssl(seed, message):
    key = Ed25519PrivateKey.from_private_bytes(seed)
    public = key.public_key().public_bytes_raw()
    assert ed25519.public_key(seed) == public
    assert ed25519.sign(seed, message) == key.sign(message)
    assert ed25519.verify(public, message, key.sign(message))


@settings(max_examples=150, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.binary(max_size=64), st.integers(0, 63), st.integers(1, 255),
       st.booleans())
def test_verdicts_on_corrupted_input_match_openssl(seed, message, index, flip, corrupt_key):
    key = Ed25519PrivateKey.from_private_bytes(seed)
    public = bytearray(key.public_key().public_bytes_raw())
    signature = bytearray(key.sign(message))
    if corrupt_key:
        public[index % 32] ^= flip
    else:
        signature[index] ^= flip
    assert ed25519.verify(bytes(public), message, bytes(signature)) == \
        openssl_verifies(bytes(public), message, bytes(signature))


def test_malformed_inputs_are_false_not_errors():
    public = bytes.fromhex(RFC8032[0][1])
    good = bytes.fromhex(RFC8032[0][3])
    high_s = good[:32] + (int.from_bytes(good[32:], "little") + ed25519.L).to_bytes(32, "little")
    assert not ed25519.verify(public, b"", high_s)                # S >= L (malleability) is refused
    assert not openssl_verifies(public, b"", high_s)
    assert not ed25519.verify(public[:31], b"", good)
    assert not ed25519.verify(public, b"", good[:63])
    not_a_point = (2).to_bytes(32, "little")                      # y = 2 has no x on the curve
    assert ed25519.decode_point(not_a_point) is None
    assert not ed25519.verify(not_a_point, b"", good)
    y_too_big = (ed25519.P + 1).to_bytes(32, "little")
    assert ed25519.decode_point(y_too_big) is None
