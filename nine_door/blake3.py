"""Pure-Python BLAKE3 (hash and keyed_hash, 32-byte output) for ticket MACs (SPEC §4.4).

Why pure Python in the guest: the boot payload carries only CPython's standard library plus
``construct``/``cbor2`` (R7 keeps it < 4 MiB), and the stdlib has no BLAKE3. Ticket payloads
are < 1 KiB, so a direct transcription of the BLAKE3 reference implementation (a few hundred
microseconds per ticket) is ample; SPEC §17 item 4 allows any correct implementation. The
tests compare it with the PyPI ``blake3`` package on random inputs and keys.

Structure follows the reference: ``_compress`` is the BLAKE3 compression function; a chunk is
up to 16 blocks of 64 bytes chained through the compression function; chunks form a binary
tree whose left subtree always holds the largest power-of-two number of chunks that still
leaves at least one chunk on the right; the root node's compression gets the ROOT flag.
"""
from __future__ import annotations

import struct

__all__ = ["hash", "keyed_hash", "OUT_LEN", "KEY_LEN"]

OUT_LEN = 32
KEY_LEN = 32
_BLOCK_LEN = 64
_CHUNK_LEN = 1024
_M = 0xFFFFFFFF

_CHUNK_START = 1 << 0
_CHUNK_END = 1 << 1
_PARENT = 1 << 2
_ROOT = 1 << 3
_KEYED_HASH = 1 << 4

_IV = (0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A,
       0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19)
_PERMUTATION = (2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8)
_WORDS16 = struct.Struct("<16I")
_WORDS8 = struct.Struct("<8I")


def _g(s: list[int], a: int, b: int, c: int, d: int, mx: int, my: int) -> None:
    s[a] = (s[a] + s[b] + mx) & _M
    x = s[d] ^ s[a]
    s[d] = ((x >> 16) | (x << 16)) & _M
    s[c] = (s[c] + s[d]) & _M
    x = s[b] ^ s[c]
    s[b] = ((x >> 12) | (x << 20)) & _M
    s[a] = (s[a] + s[b] + my) & _M
    x = s[d] ^ s[a]
    s[d] = ((x >> 8) | (x << 24)) & _M
    s[c] = (s[c] + s[d]) & _M
    x = s[b] ^ s[c]
    s[b] = ((x >> 7) | (x << 25)) & _M


def _compress(cv: tuple[int, ...], block: tuple[int, ...], counter: int, block_len: int,
              flags: int) -> list[int]:
    """The BLAKE3 compression function: 7 rounds over a 16-word state; returns 16 words."""
    s = [*cv, _IV[0], _IV[1], _IV[2], _IV[3], counter & _M, (counter >> 32) & _M, block_len, flags]
    m = block
    for r in range(7):
        _g(s, 0, 4, 8, 12, m[0], m[1])
        _g(s, 1, 5, 9, 13, m[2], m[3])
        _g(s, 2, 6, 10, 14, m[4], m[5])
        _g(s, 3, 7, 11, 15, m[6], m[7])
        _g(s, 0, 5, 10, 15, m[8], m[9])
        _g(s, 1, 6, 11, 12, m[10], m[11])
        _g(s, 2, 7, 8, 13, m[12], m[13])
        _g(s, 3, 4, 9, 14, m[14], m[15])
        if r < 6:
            m = tuple(m[i] for i in _PERMUTATION)
    for i in range(8):
        s[i] ^= s[i + 8]
        s[i + 8] ^= cv[i]
    return s


# A pending compression whose flags may still gain ROOT: (cv, block, counter, block_len, flags).
_Output = tuple


def _chunk_output(key: tuple[int, ...], chunk: bytes, counter: int, flags: int) -> _Output:
    """Chain a chunk's blocks; the last block's compression is returned un-run (it may be root)."""
    cv = key
    nblocks = max(1, -(-len(chunk) // _BLOCK_LEN))
    for i in range(nblocks):
        raw = chunk[i * _BLOCK_LEN:(i + 1) * _BLOCK_LEN]
        block = _WORDS16.unpack(raw.ljust(_BLOCK_LEN, b"\x00"))
        block_flags = flags | (_CHUNK_START if i == 0 else 0)
        if i == nblocks - 1:
            return (cv, block, counter, len(raw), block_flags | _CHUNK_END)
        cv = tuple(_compress(cv, block, counter, _BLOCK_LEN, block_flags)[:8])
    raise AssertionError("unreachable")


def _cv(output: _Output) -> tuple[int, ...]:
    return tuple(_compress(*output)[:8])


def _subtree_output(key: tuple[int, ...], data: bytes, first_chunk: int, flags: int) -> _Output:
    nchunks = max(1, -(-len(data) // _CHUNK_LEN))
    if nchunks == 1:
        return _chunk_output(key, data, first_chunk, flags)
    left_chunks = 1 << ((nchunks - 1).bit_length() - 1)
    split = left_chunks * _CHUNK_LEN
    left = _cv(_subtree_output(key, data[:split], first_chunk, flags))
    right = _cv(_subtree_output(key, data[split:], first_chunk + left_chunks, flags))
    return (key, left + right, 0, _BLOCK_LEN, flags | _PARENT)


def _root_hash(key: tuple[int, ...], data: bytes, flags: int) -> bytes:
    cv, block, counter, block_len, out_flags = _subtree_output(key, bytes(data), 0, flags)
    words = _compress(cv, block, 0, block_len, out_flags | _ROOT)
    return _WORDS8.pack(*words[:8])


def hash(data: bytes) -> bytes:  # noqa: A001 - mirrors the BLAKE3 API name
    """Plain BLAKE3 hash, 32 bytes."""
    return _root_hash(_IV, data, 0)


def keyed_hash(key: bytes, data: bytes) -> bytes:
    """BLAKE3 keyed-hash mode (a MAC), 32 bytes; ``key`` must be exactly 32 bytes."""
    if len(key) != KEY_LEN:
        raise ValueError("BLAKE3 key must be 32 bytes")
    return _root_hash(_WORDS8.unpack(bytes(key)), data, _KEYED_HASH)
