"""The CAS manifest (SPEC §13.2): deterministic CBOR, decoded strictly, encoded canonically.

Why "decode, check types, re-encode and compare": the rule is that the bytes are *exactly* the core
deterministic encoding (RFC 8949 §4.2.1) of a valid manifest map. Rather than a second, hand-written
CBOR parser with its own notion of minimal heads, sorted keys and definite lengths, the bytes are
decoded by cbor2 (whose pure-Python part is what the guest ships), every field is checked for its
exact type, and the value is encoded again with cbor2's canonical encoder: any non-minimal integer,
indefinite length, unsorted or duplicate key, tag, float, or trailing byte makes the two differ. For
text keys shorter than 24 bytes (all of ours) cbor2's length-first canonical order *is* RFC 8949's
bytewise order of the encoded keys, which is the order SPEC spells out.

This module only judges the bytes; the checks that need the store (epoch order, delta base, chunks,
signature key) are in :mod:`nine_door.cas.store`, in the order of SPEC's rejection table.

``cbor2`` is imported by the functions that use it (:func:`_cbor2`), not at the top: importing it also
loads ``typing``, ``datetime``, ``threading`` and ``contextlib``, ~0.1 s of the emulated guest's boot
(the CAS store is built at boot, SPEC §13), while only the first manifest upload needs it.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

SCHEMA = "cohesix-cas/manifest-v1"
HASH = "sha256"
MAX_MANIFEST_BYTES = 65536
MAX_CHUNKS = 1024
U64_MAX = (1 << 64) - 1

REQUIRED_KEYS = frozenset({"schema", "epoch", "hash", "chunk_bytes", "payload_bytes", "payload_sha256", "chunks"})
OPTIONAL_KEYS = frozenset({"delta", "signature"})


class ManifestError(ValueError):
    """The bytes are not the deterministic encoding of a valid manifest (reason ``invalid-manifest``)."""


class Incomplete(Exception):
    """The bytes so far are a proper prefix of a CBOR item: wait for more (SPEC §13.2 commit trigger)."""


@dataclass(frozen=True)
class Delta:
    base_epoch: int
    base_sha256: bytes


@dataclass(frozen=True)
class Manifest:
    """A decoded manifest; :func:`encode` gives back its exact bytes."""

    epoch: int
    chunk_bytes: int
    payload_bytes: int
    payload_sha256: bytes
    chunks: tuple[bytes, ...]
    delta: Delta | None = None
    signature: bytes | None = None

    @property
    def kind(self) -> str:
        return "base" if self.delta is None else "delta"

    def chunk_size(self, index: int) -> int:
        """The size the chunk at ``index`` must have (every chunk is full but the last, §13.2)."""
        if index < len(self.chunks) - 1:
            return self.chunk_bytes
        return self.payload_bytes - (len(self.chunks) - 1) * self.chunk_bytes

    def as_map(self, with_signature: bool = True) -> dict:
        value = {"schema": SCHEMA, "epoch": self.epoch, "hash": HASH, "chunk_bytes": self.chunk_bytes,
                 "payload_bytes": self.payload_bytes, "payload_sha256": self.payload_sha256,
                 "chunks": list(self.chunks)}
        if self.delta is not None:
            value["delta"] = {"base_epoch": self.delta.base_epoch, "base_sha256": self.delta.base_sha256}
        if with_signature and self.signature is not None:
            value["signature"] = self.signature
        return value

    def signed_bytes(self) -> bytes:
        """What the signature covers: the deterministic encoding without the ``signature`` key."""
        return encode_map(self.as_map(with_signature=False))


def _cbor2():
    """The ``cbor2`` module, imported on first use (the first manifest upload pays for it, not the boot)."""
    import cbor2

    return cbor2


def encode_map(value: dict) -> bytes:
    return _cbor2().dumps(value, canonical=True)


def encode(manifest: Manifest) -> bytes:
    return encode_map(manifest.as_map())


def item_end(data: bytes) -> int:
    """Length of the first CBOR item of ``data``; :class:`Incomplete` if ``data`` stops inside it,
    :class:`ManifestError` if it is not well-formed CBOR (or nests beyond what cbor2 decodes)."""
    cbor2 = _cbor2()
    stream = io.BytesIO(data)
    try:
        cbor2.CBORDecoder(stream).decode()
    except cbor2.CBORDecodeEOF:
        raise Incomplete() from None
    except Exception as exc:  # noqa: BLE001 - any decoder failure is malformed input
        raise ManifestError(f"not well-formed CBOR: {exc.__class__.__name__}") from None
    return stream.tell()


def _uint(value: object, name: str, minimum: int = 0) -> int:
    if value.__class__ is not int or not minimum <= value <= U64_MAX:
        raise ManifestError(f"{name} must be a uint >= {minimum}")
    return value


def _digest(value: object, name: str) -> bytes:
    if value.__class__ is not bytes or len(value) != 32:
        raise ManifestError(f"{name} must be bytes(32)")
    return value


def decode(data: bytes) -> Manifest:
    """Strict decode: exactly one CBOR map, exact field types, deterministic encoding; else ManifestError.

    Field rules that need no store: ``schema``/``hash`` values, ``payload_bytes ≥ 1``, 1..1024 chunk
    digests, ``len(chunks) = ceil(payload_bytes / chunk_bytes)``, the shape of ``delta``, a 64-byte
    ``signature``. ``chunk_bytes`` and ``epoch`` against the store and the path are checked by the store.
    """
    if len(data) > MAX_MANIFEST_BYTES:
        raise ManifestError("manifest too big")
    try:
        end = item_end(data)
    except Incomplete:
        raise ManifestError("truncated CBOR") from None
    if end != len(data):
        raise ManifestError("trailing bytes after the manifest map")
    try:
        value = _cbor2().loads(data)
    except Exception as exc:  # noqa: BLE001
        raise ManifestError(f"not decodable: {exc.__class__.__name__}") from None
    if value.__class__ is not dict:
        raise ManifestError("manifest is not a map")
    keys = set(value)
    if not all(key.__class__ is str for key in keys):
        raise ManifestError("manifest keys must be text")
    if not REQUIRED_KEYS <= keys or not keys <= REQUIRED_KEYS | OPTIONAL_KEYS:
        raise ManifestError("missing or unknown manifest keys")
    if value["schema"] != SCHEMA or value["schema"].__class__ is not str:
        raise ManifestError("unknown schema")
    if value["hash"] != HASH or value["hash"].__class__ is not str:
        raise ManifestError("hash must be sha256")
    epoch = _uint(value["epoch"], "epoch")
    chunk_bytes = _uint(value["chunk_bytes"], "chunk_bytes", 1)
    payload_bytes = _uint(value["payload_bytes"], "payload_bytes", 1)
    payload_sha256 = _digest(value["payload_sha256"], "payload_sha256")
    chunks = value["chunks"]
    if chunks.__class__ is not list or not 1 <= len(chunks) <= MAX_CHUNKS:
        raise ManifestError("chunks must be an array of 1..1024 digests")
    digests = tuple(_digest(item, "chunks[]") for item in chunks)
    if len(digests) != -(-payload_bytes // chunk_bytes):
        raise ManifestError("len(chunks) != ceil(payload_bytes / chunk_bytes)")
    delta = None
    if "delta" in value:
        raw = value["delta"]
        if raw.__class__ is not dict or set(raw) != {"base_epoch", "base_sha256"}:
            raise ManifestError("delta must be {base_epoch, base_sha256}")
        delta = Delta(_uint(raw["base_epoch"], "delta.base_epoch"), _digest(raw["base_sha256"], "delta.base_sha256"))
    signature = None
    if "signature" in value:
        signature = value["signature"]
        if signature.__class__ is not bytes or len(signature) != 64:
            raise ManifestError("signature must be bytes(64)")
    manifest = Manifest(epoch, chunk_bytes, payload_bytes, payload_sha256, digests, delta, signature)
    if encode(manifest) != data:
        raise ManifestError("not the deterministic encoding")
    return manifest


def build(epoch: int, chunk_bytes: int, payload: bytes, delta: Delta | None = None) -> tuple[Manifest, list[bytes]]:
    """The unsigned manifest of ``payload`` cut into ``chunk_bytes`` pieces, and the pieces (cas-tool pack)."""
    import hashlib

    if not payload:
        raise ValueError("an empty payload has no manifest (payload_bytes >= 1)")
    pieces = [payload[i:i + chunk_bytes] for i in range(0, len(payload), chunk_bytes)]
    if len(pieces) > MAX_CHUNKS:
        raise ValueError(f"{len(pieces)} chunks exceed {MAX_CHUNKS}; use a larger chunk size")
    manifest = Manifest(epoch, chunk_bytes, len(payload), hashlib.sha256(payload).digest(),
                        tuple(hashlib.sha256(piece).digest() for piece in pieces), delta)
    return manifest, pieces


def with_signature(manifest: Manifest, signature: bytes) -> Manifest:
    return Manifest(manifest.epoch, manifest.chunk_bytes, manifest.payload_bytes, manifest.payload_sha256,
                    manifest.chunks, manifest.delta, signature)
