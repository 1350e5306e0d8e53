"""The reference arithmetic of GPU jobs (SPEC §9.3): ``vadd`` and ``matmul`` in IEEE-754 binary32.

Why plain Python and not a vector library: the result bytes are hashed (``result_sha256``) and compared
between the mock backend in the VM, ``gpu-bridge-host`` on the host and any real GPU, so the arithmetic
must be *the* definition, not an approximation of it. Every product and every sum is rounded to
binary32, and matmul accumulates sequentially over ``p = 0..k-1`` from +0.0 (a BLAS ``A @ B`` sums in
another order and gives other bytes; bench/bench_gpu.py measures both against this).

Why computing in doubles is exact: a binary32 value is exactly a double; the sum or product of two
binary32 values computed in double precision (53-bit significand, ≥ 2·24+2 bits) and then rounded once
to binary32 equals the correctly rounded binary32 operation. Rounding goes through ``array('f')``, a C
cast: round-to-nearest-even, overflow to ±inf (``struct.pack('f')`` would raise on overflow instead).

Layouts are little-endian (SPEC §9.3); :func:`parse` raises :class:`LayoutError` for any byte string
that does not match the kernel's layout exactly.
"""
from __future__ import annotations

import sys
from array import array
from dataclasses import dataclass

KERNELS = ("vadd", "matmul")
_BIG_ENDIAN = sys.byteorder == "big"


class LayoutError(ValueError):
    """The payload does not match the kernel's inline layout (EINVAL at submission)."""


@dataclass(frozen=True)
class VaddInput:
    a: array
    b: array


@dataclass(frozen=True)
class MatmulInput:
    m: int
    k: int
    n: int
    a: array      # m×k, row-major
    b: array      # k×n, row-major


def _floats(data: bytes) -> array:
    values = array("f")
    values.frombytes(data)
    if _BIG_ENDIAN:
        values.byteswap()
    return values


def _to_bytes(values: array) -> bytes:
    if _BIG_ENDIAN:
        values = array("f", values)
        values.byteswap()
    return values.tobytes()


def parse(kernel: str, payload: bytes) -> VaddInput | MatmulInput:
    """Decode an inline payload for ``kernel``; LayoutError when the bytes do not fit the layout."""
    if kernel == "vadd":
        if not payload or len(payload) % 8:
            raise LayoutError(f"vadd needs 8n bytes (n >= 1), got {len(payload)}")
        half = len(payload) // 2
        return VaddInput(_floats(payload[:half]), _floats(payload[half:]))
    if kernel == "matmul":
        if len(payload) < 12:
            raise LayoutError("matmul needs the m, k, n header (12 bytes)")
        m, k, n = (int.from_bytes(payload[i:i + 4], "little") for i in (0, 4, 8))
        if not (m and k and n):
            raise LayoutError("matmul dimensions must be >= 1")
        expected = 12 + 4 * (m * k + k * n)
        if len(payload) != expected:
            raise LayoutError(f"matmul {m}x{k}x{n} needs {expected} bytes, got {len(payload)}")
        split = 12 + 4 * m * k
        return MatmulInput(m, k, n, _floats(payload[12:split]), _floats(payload[split:]))
    raise LayoutError(f"unknown kernel {kernel!r}")


def work(kernel: str, payload: bytes) -> int:
    """Multiply-adds (matmul: m·k·n) or adds (vadd: n) a valid payload asks for, from its header alone."""
    if kernel == "matmul":
        m, k, n = (int.from_bytes(payload[i:i + 4], "little") for i in (0, 4, 8))
        return m * k * n
    return len(payload) // 8


def vadd(a: array, b: array) -> array:
    """``c[i] = f32(a[i] + b[i])``: the double sum of two binary32 values, rounded once by the array."""
    return array("f", [x + y for x, y in zip(a, b)])


def matmul(m: int, k: int, n: int, a: array, b: array) -> array:
    """``C[i][j] = Σ_p f32(A[i][p]·B[p][j])`` accumulated sequentially in binary32 from +0.0.

    One one-element ``array('f')`` does the rounding after every product and every sum."""
    cell = array("f", [0.0])
    out = array("f", bytes(4 * m * n))
    for i in range(m):
        row = a[i * k:(i + 1) * k]
        for j in range(n):
            acc = 0.0
            col = j
            for x in row:
                cell[0] = x * b[col]          # product rounded to binary32
                cell[0] = acc + cell[0]       # sum rounded to binary32
                acc = cell[0]
                col += n
            out[i * n + j] = acc
    return out


def execute(kernel: str, payload: bytes) -> bytes:
    """The result bytes (little-endian binary32, row-major) of ``kernel`` on an inline payload."""
    parsed = parse(kernel, payload)
    if isinstance(parsed, VaddInput):
        return _to_bytes(vadd(parsed.a, parsed.b))
    return _to_bytes(matmul(parsed.m, parsed.k, parsed.n, parsed.a, parsed.b))


def matmul_payload(m: int, k: int, n: int, a: list[float], b: list[float]) -> bytes:
    """Encode a matmul payload (tests, benches, the bridge's self-checks)."""
    if len(a) != m * k or len(b) != k * n:
        raise ValueError("matrix sizes do not match m, k, n")
    return (m.to_bytes(4, "little") + k.to_bytes(4, "little") + n.to_bytes(4, "little")
            + _to_bytes(array("f", a)) + _to_bytes(array("f", b)))


def vadd_payload(a: list[float], b: list[float]) -> bytes:
    if len(a) != len(b) or not a:
        raise ValueError("vadd needs two vectors of the same length >= 1")
    return _to_bytes(array("f", a)) + _to_bytes(array("f", b))
