"""Pack directories (SPEC §13.5): ``DIR/manifest.cbor`` and ``DIR/chunks/<hex>``; pack, verify, keygen.

Verification here applies the server's rules offline (the same strict decoder, nine_door/cas/manifest.py,
and the same Ed25519 verifier), so a pack that verifies is one the store accepts, chunk for chunk.
Signing and key generation use ``cryptography`` (OpenSSL) when it is installed, else the pure-Python
RFC 8032 code the guest verifies with; both give identical signatures (Ed25519 is deterministic).
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from nine_door.cas import ed25519
from nine_door.cas import manifest as mf


class VerifyError(Exception):
    """A pack does not verify (exit 1)."""


@dataclass(frozen=True)
class PackResult:
    manifest: mf.Manifest
    new_chunks: int


def read_hex_key(path: str | Path) -> bytes:
    """A key file: exactly 64 hex characters and an optional ``\\n`` (SPEC §13.5, §14.2)."""
    text = Path(path).read_text(encoding="ascii")
    if text.endswith("\n"):
        text = text[:-1]
    if len(text) != 64:
        raise VerifyError(f"{path}: a key file holds 64 hex characters")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise VerifyError(f"{path}: a key file holds 64 hex characters") from None


def sign(seed: bytes, message: bytes) -> bytes:
    try:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    except ImportError:   # pragma: no cover - the pure implementation signs identically
        return ed25519.sign(seed, message)
    return Ed25519PrivateKey.from_private_bytes(seed).sign(message)


def keygen(prefix: str) -> tuple[Path, Path]:
    seed = os.urandom(32)
    try:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        public = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()
    except ImportError:   # pragma: no cover
        public = ed25519.public_key(seed)
    key, pub = Path(prefix + ".key"), Path(prefix + ".pub")
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(seed.hex() + "\n")
    pub.write_text(public.hex() + "\n", encoding="ascii")
    return key, pub


def load_manifest(directory: str | Path) -> tuple[bytes, mf.Manifest]:
    raw = (Path(directory) / "manifest.cbor").read_bytes()
    try:
        return raw, mf.decode(raw)
    except mf.ManifestError as exc:
        raise VerifyError(f"invalid manifest: {exc}") from None


def pack(payload: bytes, epoch: int, chunk_bytes: int, out: str | Path, base: str | Path | None = None,
         sign_key: str | Path | None = None) -> PackResult:
    delta = None
    skip: set[bytes] = set()
    if base is not None:
        _, base_manifest = load_manifest(base)
        delta = mf.Delta(base_manifest.epoch, base_manifest.payload_sha256)
        skip = set(base_manifest.chunks)
    try:
        manifest, pieces = mf.build(epoch, chunk_bytes, payload, delta)
    except ValueError as exc:
        raise VerifyError(str(exc)) from None
    if sign_key is not None:
        manifest = mf.with_signature(manifest, sign(read_hex_key(sign_key), manifest.signed_bytes()))
    chunks_dir = Path(out) / "chunks"
    chunks_dir.mkdir(parents=True, exist_ok=True)
    written: set[bytes] = set()
    for digest, piece in zip(manifest.chunks, pieces):
        if digest in skip or digest in written:
            continue
        (chunks_dir / digest.hex()).write_bytes(piece)
        written.add(digest)
    (Path(out) / "manifest.cbor").write_bytes(mf.encode(manifest))
    return PackResult(manifest, len(written))


def _chunk_bytes(directory: Path, digest: bytes, base: Path | None) -> bytes:
    for where in (directory, base):
        if where is None:
            continue
        path = where / "chunks" / digest.hex()
        if path.exists():
            data = path.read_bytes()
            if hashlib.sha256(data).digest() != digest:
                raise VerifyError(f"chunk {digest.hex()} does not match its name ({path})")
            return data
    raise VerifyError(f"chunk {digest.hex()} is missing")


def verify(directory: str | Path, base: str | Path | None = None, pubkey: str | Path | None = None) -> mf.Manifest:
    """Schema and deterministic encoding, chunk digests and sizes, payload digest, delta base, signature."""
    directory = Path(directory)
    base_dir = Path(base) if base is not None else None
    _, manifest = load_manifest(directory)
    if manifest.delta is not None:
        if base_dir is None:
            raise VerifyError("a delta manifest needs --base")
        _, base_manifest = load_manifest(base_dir)
        if (base_manifest.epoch, base_manifest.payload_sha256) != (manifest.delta.base_epoch,
                                                                    manifest.delta.base_sha256):
            raise VerifyError("delta base does not match --base")
    payload = hashlib.sha256()
    for index, digest in enumerate(manifest.chunks):
        data = _chunk_bytes(directory, digest, base_dir)
        if len(data) != manifest.chunk_size(index):
            raise VerifyError(f"chunk {index} has {len(data)} bytes, expected {manifest.chunk_size(index)}")
        payload.update(data)
    if payload.digest() != manifest.payload_sha256:
        raise VerifyError("payload digest does not match payload_sha256")
    if pubkey is not None:
        if manifest.signature is None:
            raise VerifyError("manifest is not signed")
        if not ed25519.verify(read_hex_key(pubkey), manifest.signed_bytes(), manifest.signature):
            raise VerifyError("signature does not verify")
    return manifest


def dump_json(raw: bytes) -> str:
    """``cas-tool dump``: the CBOR item as JSON, byte strings as lowercase hex, keys sorted, indent 2."""
    import json

    import cbor2

    def plain(value):
        if isinstance(value, bytes):
            return value.hex()
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    return json.dumps(plain(cbor2.loads(raw)), sort_keys=True, indent=2)
