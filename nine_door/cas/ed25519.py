"""Ed25519 (RFC 8032 §5.1) in pure Python: verification for the guest, signing for host tools and tests.

Why hand-written: guest code may import only the standard library, construct and cbor2 (DESIGN §2),
and the guest payload has a 4 MiB red line with ~1 MiB of headroom. A native Ed25519 (OpenSSL's
libcrypto through ``cryptography``, or libsodium through PyNaCl) would add its shared library plus
CFFI bindings, several hundred KiB compressed, to verify one signature per manifest. This module is
about 150 lines of Python integers. It is checked against RFC 8032 §7.1's vectors and cross-checked
against ``cryptography`` (OpenSSL) on random keys and messages (tests/nine_door/test_cas_ed25519.py).

Verification follows ref10/OpenSSL (what ``cryptography`` does), so both sides accept the same set:
``S`` must be below the group order, ``A`` and ``R`` must decode (``y < p``, a square root exists,
no "negative zero" ``x``), and the check is the cofactorless ``encode([S]B − [k]A) == R``. It is not
constant time; it only ever handles public data (a public key, a manifest and its signature). The
signing half is constant-time neither and is meant for tests and offline tooling, never for the guest.

Cost: one verification is two 253-bit scalar multiplications done together (Straus/Shamir: one
doubling chain), about 2 ms in CPython on a host core (see docs/cas.md for the guest measurement).
"""
from __future__ import annotations

import hashlib

P = 2 ** 255 - 19
L = 2 ** 252 + 27742317777372353535851937790883648493     # the group order (RFC 8032 "L")
D = -121665 * pow(121666, P - 2, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)

# Points in extended homogeneous coordinates (X, Y, Z, T) with x = X/Z, y = Y/Z, x·y = T/Z.
_IDENTITY = (0, 1, 1, 0)


def _add(a: tuple, b: tuple) -> tuple:
    """RFC 8032 §5.1.4 addition (complete: also doubles, and handles the identity)."""
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    aa = (y1 - x1) * (y2 - x2) % P
    bb = (y1 + x1) * (y2 + x2) % P
    cc = 2 * t1 * t2 * D % P
    dd = 2 * z1 * z2 % P
    e, f, g, h = bb - aa, dd - cc, dd + cc, bb + aa
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _double(a: tuple) -> tuple:
    """RFC 8032 §5.1.4 doubling (cheaper than _add(a, a))."""
    x1, y1, z1, _ = a
    aa = x1 * x1 % P
    bb = y1 * y1 % P
    cc = 2 * z1 * z1 % P
    h = aa + bb
    e = h - (x1 + y1) * (x1 + y1) % P
    g = aa - bb
    f = cc + g
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _neg(a: tuple) -> tuple:
    x, y, z, t = a
    return (-x % P, y, z, -t % P)


def _recover_x(y: int, sign: int) -> int | None:
    """RFC 8032 §5.1.3 steps 2–4: x from y and the sign bit, or None when no such point exists."""
    if y >= P:
        return None
    x2 = (y * y - 1) * pow(D * y * y + 1, P - 2, P) % P
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P:
        x = x * SQRT_M1 % P
    if (x * x - x2) % P:
        return None
    if x & 1 != sign:
        x = P - x
    return x


def decode_point(raw: bytes) -> tuple | None:
    """A 32-byte point encoding → extended coordinates, or None when it is not a valid encoding."""
    if len(raw) != 32:
        return None
    value = int.from_bytes(raw, "little")
    y = value & ((1 << 255) - 1)
    x = _recover_x(y, value >> 255)
    if x is None:
        return None
    return (x, y, 1, x * y % P)


def encode_point(point: tuple) -> bytes:
    x, y, z, _ = point
    zinv = pow(z, P - 2, P)
    x, y = x * zinv % P, y * zinv % P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


_BY = 4 * pow(5, P - 2, P) % P
BASE = (_recover_x(_BY, 0), _BY, 1, _recover_x(_BY, 0) * _BY % P)


def _scalar_mult(k: int, point: tuple) -> tuple:
    result = _IDENTITY
    while k:
        if k & 1:
            result = _add(result, point)
        point = _double(point)
        k >>= 1
    return result


def _double_scalar_mult(a: int, pa: tuple, b: int, pb: tuple) -> tuple:
    """[a]pa + [b]pb with one shared doubling chain (Straus/Shamir), MSB first."""
    both = _add(pa, pb)
    result = _IDENTITY
    for bit in range(max(a.bit_length(), b.bit_length()) - 1, -1, -1):
        result = _double(result)
        pick = ((a >> bit) & 1) | (((b >> bit) & 1) << 1)
        if pick == 1:
            result = _add(result, pa)
        elif pick == 2:
            result = _add(result, pb)
        elif pick == 3:
            result = _add(result, both)
    return result


def _h(*parts: bytes) -> int:
    return int.from_bytes(hashlib.sha512(b"".join(parts)).digest(), "little")


def verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """RFC 8032 §5.1.7 verification (cofactorless, ref10/OpenSSL acceptance); never raises on bad input."""
    if len(public_key) != 32 or len(signature) != 64:
        return False
    a_point = decode_point(public_key)
    if a_point is None:
        return False
    r_raw = signature[:32]
    if decode_point(r_raw) is None:
        return False
    s = int.from_bytes(signature[32:], "little")
    if s >= L:
        return False
    k = _h(r_raw, public_key, message) % L
    check = _double_scalar_mult(s, BASE, k, _neg(a_point))      # [S]B − [k]A
    return encode_point(check) == r_raw


def _expand(seed: bytes) -> tuple[int, bytes]:
    digest = hashlib.sha512(seed).digest()
    a = int.from_bytes(digest[:32], "little")
    a &= (1 << 254) - 8
    a |= 1 << 254
    return a, digest[32:]


def public_key(seed: bytes) -> bytes:
    """The public key of a 32-byte secret seed (RFC 8032 §5.1.5)."""
    if len(seed) != 32:
        raise ValueError("an Ed25519 seed is 32 bytes")
    return encode_point(_scalar_mult(_expand(seed)[0], BASE))


def sign(seed: bytes, message: bytes) -> bytes:
    """RFC 8032 §5.1.6 signature of ``message`` with a 32-byte seed (host tools and tests only)."""
    a, prefix = _expand(seed)
    pub = encode_point(_scalar_mult(a, BASE))
    r = _h(prefix, message) % L
    r_raw = encode_point(_scalar_mult(r, BASE))
    k = _h(r_raw, pub, message) % L
    return r_raw + ((r + k * a) % L).to_bytes(32, "little")
