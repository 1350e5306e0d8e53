"""The manifest codec (SPEC §13.2, §13.5): the two published vectors byte for byte, the strict decoder
under hypothesis, and a corpus of malformed CBOR."""
from __future__ import annotations

import hashlib

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nine_door.cas import ed25519
from nine_door.cas import manifest as mf

PAYLOAD = bytes(range(0x64))
CHUNKS = ("fdeab9acf3710362bd2658cdc9a29e8f9c757fcf9811603a8c447cd1d9151108",
          "25e23b37dfb23fb4d3b0ec008d66d08770f08ef3e7b79e498ab89a2885795db4")
PAYLOAD_SHA = "bce0aff19cf5aa6a7469a30d61d04e4376e4bbf6381052ee9e7f33925c954d52"
UNSIGNED_SHA = "2a1321408a968214973607d96005901baa7d0662fde1e4032eb450cfb831cfa1"
SIGNED_SHA = "9ba90f16c259b3feb50e0989f519ca45d6e67e0fdd9b7d7e432e885e0750975f"
SEED = b"\x11" * 32
PUBKEY = "d04ab232742bb4ab3a1368bd4615e4e6d0224ab71a016baf8520a332c9778737"


def vector() -> mf.Manifest:
    manifest, pieces = mf.build(1, 64, PAYLOAD)
    assert [hashlib.sha256(p).hexdigest() for p in pieces] == list(CHUNKS)
    return manifest


def test_unsigned_vector_is_206_bytes_exactly():
    manifest = vector()
    raw = mf.encode(manifest)
    assert len(raw) == 206 and hashlib.sha256(raw).hexdigest() == UNSIGNED_SHA
    assert manifest.payload_sha256.hex() == PAYLOAD_SHA
    assert mf.decode(raw) == manifest
    # the SPEC's key order
    assert list(cbor2.loads(raw)) == ["hash", "epoch", "chunks", "schema", "chunk_bytes", "payload_bytes",
                                      "payload_sha256"]


def test_signed_vector_is_282_bytes_exactly():
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    manifest = vector()
    assert ed25519.public_key(SEED).hex() == PUBKEY
    signature = ed25519.sign(SEED, manifest.signed_bytes())
    assert Ed25519PrivateKey.from_private_bytes(SEED).sign(manifest.signed_bytes()) == signature
    raw = mf.encode(mf.with_signature(manifest, signature))
    assert len(raw) == 282 and hashlib.sha256(raw).hexdigest() == SIGNED_SHA
    decoded = mf.decode(raw)
    assert decoded.signed_bytes() == mf.encode(manifest)
    assert ed25519.verify(bytes.fromhex(PUBKEY), decoded.signed_bytes(), decoded.signature)


# -- malformed corpus -----------------------------------------------------------------------------------
VALID = mf.encode(vector())
CORPUS = [
    b"", b"\xa7", VALID[:-1], VALID + b"\x00", b"\xff", b"\x1c", b"\x5f\x41\x00",     # truncated/reserved
    b"\xbf\xff", b"\x9f\xff", cbor2.dumps(None), cbor2.dumps(1.5), cbor2.dumps("x"),
    cbor2.dumps({1: 2}), cbor2.dumps({}), cbor2.dumps(cbor2.CBORTag(55799, {})),
    b"\x81" * 5000 + b"\x00",                                                     # deep nesting
    b"\x9b" + b"\xff" * 8,                                                       # absurd array length
    b"\x5b\x00\x00\x00\x01\x00\x00\x00\x00",                                      # 4 GiB byte string
    VALID.replace(b"fsha256", b"fsha512"),
    VALID.replace(b"\xa7", b"\xbf", 1) + b"\xff",                                   # indefinite map
    VALID.replace(b"\xa7", b"\xa8", 1),                                             # wrong pair count
    cbor2.dumps({**cbor2.loads(VALID), "payload_bytes": 0}, canonical=True),
    cbor2.dumps({**cbor2.loads(VALID), "epoch": -1}, canonical=True),
    cbor2.dumps({**cbor2.loads(VALID), "epoch": 1 << 64}, canonical=True),
    cbor2.dumps({**cbor2.loads(VALID), "chunks": []}, canonical=True),
    cbor2.dumps({**cbor2.loads(VALID), "chunks": "x"}, canonical=True),
    cbor2.dumps({**cbor2.loads(VALID), "delta": {"base_epoch": 0}}, canonical=True),
    cbor2.dumps({**cbor2.loads(VALID), "delta": []}, canonical=True),
    cbor2.dumps({**cbor2.loads(VALID), "chunk_bytes": 0}, canonical=True),
    b"\x00" * 70000,
]


@pytest.mark.parametrize("raw", CORPUS, ids=range(len(CORPUS)))
def test_malformed_corpus_is_rejected(raw):
    with pytest.raises(mf.ManifestError):
        mf.decode(raw)


def test_item_end_tells_incomplete_from_malformed():
    for cut in range(len(VALID)):
        with pytest.raises(mf.Incomplete):
            mf.item_end(VALID[:cut])
    assert mf.item_end(VALID + b"junk") == len(VALID)
    with pytest.raises(mf.ManifestError):
        mf.item_end(b"\x1c")


# -- properties -----------------------------------------------------------------------------------------
digests = st.binary(min_size=32, max_size=32)


@st.composite
def manifests(draw) -> mf.Manifest:
    chunk_bytes = draw(st.integers(1, 1 << 20))
    count = draw(st.integers(1, 40))
    payload_bytes = (count - 1) * chunk_bytes + draw(st.integers(1, chunk_bytes))
    delta = draw(st.none() | st.builds(mf.Delta, st.integers(0, mf.U64_MAX), digests))
    signature = draw(st.none() | st.binary(min_size=64, max_size=64))
    return mf.Manifest(draw(st.integers(0, mf.U64_MAX)), chunk_bytes, payload_bytes, draw(digests),
                       tuple(draw(st.lists(digests, min_size=count, max_size=count))), delta, signature)


@settings(max_examples=200, deadline=None)
@given(manifests())
def test_valid_manifests_round_trip(manifest):
    raw = mf.encode(manifest)
    assert mf.decode(raw) == manifest
    assert cbor2.loads(raw) == manifest.as_map()


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_never_raise_anything_but_manifest_error(raw):
    try:
        mf.decode(raw)
    except mf.ManifestError:
        pass


@settings(max_examples=500, deadline=None)
@given(manifests(), st.data())
def test_mutated_manifests_decode_only_to_their_own_encoding(manifest, data):
    raw = bytearray(mf.encode(manifest))
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, len(raw) - 1))
        raw[index] = data.draw(st.integers(0, 255))
    try:
        decoded = mf.decode(bytes(raw))
    except mf.ManifestError:
        return
    assert mf.encode(decoded) == bytes(raw)          # only exact deterministic encodings pass
