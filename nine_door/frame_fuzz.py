"""Decoder fuzzer for CBOR Frame v1 (SPEC §7.5; issue 13: ``doit fuzz`` ≥ 100 000 inputs).

Why a home-grown mutator (as ``nine_door.fuzz``): the property is narrow and total — *for any bytes,
``decode_one`` returns a frame or raises FrameError, and ``split_frames`` never raises* — and the
interesting inputs are near-valid items. Each iteration builds one input from random **valid** frames
(bit flips, interesting bytes such as tag/indefinite/break heads, truncations, insertions, deletions,
splices of two frames, back-to-back sequences), from a small generic CBOR generator that writes maps
with wrong, missing, unknown or repeated keys, tags and indefinite items, from non-canonical but valid
re-encodings, or from random bytes.

Checks on every input: ``decode_one`` raises nothing but FrameError, with a known ``reason`` and an
offset inside the input; an accepted frame re-encodes to bytes that decode to the same frame (and
re-encode identically); cbor2 — the reference decoder — decodes the accepted item to the same map, and
fails too where ``decode_one`` says the input is truncated; ``split_frames`` agrees with
``decode_one`` on the first item, its records concatenate to the accepted prefix, and each record
decodes alone to its frame.

Run: ``python3 -m nine_door.frame_fuzz --iterations 100000 [--seed N]``; tests call ``run_fuzz``.
Iterations default to env ``FRAME_V1_FUZZ_ITERS`` (else 100 000); the seed to ``0xC0DEC0DE``.
Host-only: it imports cbor2 as the reference, which the guest does not ship.
"""
from __future__ import annotations

import os
import random
import sys
from dataclasses import dataclass

import cbor2

from nine_door import frame_v1 as fv
from nine_door.frame_v1 import Frame, FrameError

DEFAULT_SEED = 0xC0DEC0DE
DEFAULT_ITERATIONS = 100_000

_TEXT_POOL = ("", "heartbeat 1", "worker-1", "é", "日本語", "🦀", "a" * 30, '{"job":"job-1","state":"OK"}',
              "line\n", "seq", "ts", "kind", "meta", "payload")
#: Initial bytes worth planting: tags, indefinite heads, break, reserved info, floats, simple values.
_INTERESTING = (0xC0, 0xC1, 0xC2, 0xD8, 0xD9, 0xDB, 0x5F, 0x7F, 0x9F, 0xBF, 0xFF, 0x1C, 0x3E, 0x5D,
                0xF4, 0xF5, 0xF6, 0xF7, 0xF8, 0xF9, 0xFA, 0xFB, 0xE0, 0x1B, 0x3B, 0x5B, 0x7B, 0x9B, 0xBB,
                0x00, 0x17, 0x18, 0x40, 0x60, 0x80, 0xA0, 0xA4, 0xA5, 0xB7)


def _uint(rng: random.Random, bits: int = 64) -> int:
    """Random unsigned integer biased towards the head-size edges (23/24, 255/256, …)."""
    pick = rng.random()
    if pick < 0.3:
        return min(rng.choice((0, 1, 23, 24, 255, 256, 65535, 65536, (1 << 32) - 1, 1 << 32,
                               (1 << 64) - 1)), (1 << bits) - 1)
    if pick < 0.6:
        return rng.randrange(1000)
    return rng.randrange(1 << bits)


def _text(rng: random.Random) -> str:
    if rng.random() < 0.7:
        return rng.choice(_TEXT_POOL)
    return "".join(chr(rng.choice((rng.randrange(0x20, 0x7F), rng.randrange(0xA0, 0xD7FF),
                                   rng.randrange(0xE000, 0x10FFFF)))) for _ in range(rng.randrange(12)))


def random_frame(rng: random.Random) -> Frame:
    """One random valid frame (text payload for kinds 0–2, any bytes otherwise)."""
    kind = rng.choice((0, 1, 2, rng.randrange(3, 128), rng.randrange(128, 256), 255))
    if kind in fv.TEXT_KINDS:
        payload = _text(rng).encode()
    else:
        payload = rng.randbytes(rng.choice((0, 1, rng.randrange(40), rng.randrange(300))))
    meta = None
    if rng.random() < 0.3:
        meta = {}
        for _ in range(rng.randrange(fv.META_MAX_ENTRIES + 1)):
            meta[_text(rng)] = rng.choice((_text(rng), _uint(rng), True, False))
    return Frame(max(1, _uint(rng)), _uint(rng), kind, payload, meta)


def _as_map(frame: Frame) -> dict:
    out = {"seq": frame.seq, "ts": frame.ts, "kind": frame.kind, "payload": frame.payload}
    if frame.meta is not None:
        out["meta"] = frame.meta
    return out


# -- a small generic CBOR writer, for inputs the valid-frame path cannot reach --------------------------

class _Pairs(list):
    """A map written from a list of (key, value) pairs, so a key may repeat."""


def _head(major: int, n: int, wide: bool = False) -> bytes:
    """A head for ``n``; ``wide`` takes the next larger (valid, non-shortest) size when there is one."""
    shortest = fv._head(major, n)
    if wide:
        for size in (1, 2, 4, 8):
            if 1 + size > len(shortest) and n < 1 << (8 * size):
                return bytes(((major << 5) | (24 + (1, 2, 4, 8).index(size)),)) + n.to_bytes(size, "big")
    return shortest


def _write(value, rng: random.Random, wide: float = 0.0) -> bytes:
    """Encode a Python value (int, bytes, str, bool, None, float, list, dict) with optional wide heads."""
    w = rng.random() < wide
    if value is True or value is False:
        return b"\xf5" if value else b"\xf4"
    if value is None:
        return b"\xf6"
    if isinstance(value, int):
        return _head(0, value, w) if value >= 0 else _head(1, -1 - value, w)
    if isinstance(value, float):
        return cbor2.dumps(value)
    if isinstance(value, bytes):
        return _head(2, len(value), w) + value
    if isinstance(value, str):
        raw = value.encode("utf-8", "surrogatepass")
        return _head(3, len(raw), w) + raw
    if isinstance(value, list) and not isinstance(value, _Pairs):
        return _head(4, len(value), w) + b"".join(_write(v, rng, wide) for v in value)
    pairs = list(value.items()) if isinstance(value, dict) else value
    return _head(5, len(pairs), w) + b"".join(_write(k, rng, wide) + _write(v, rng, wide) for k, v in pairs)


def _wrong_value(rng: random.Random):
    return rng.choice((-1, -(1 << 64), 0, 256, 1 << 63, True, False, None, 1.5, "text", b"bytes",
                       [1, 2], {"a": 1}, {1: 2}, "\udcff", [[[[[[1]]]]]], {"x": [1.0]}))


def near_valid(rng: random.Random) -> bytes:
    """A map close to a frame: keys dropped, repeated, unknown, or values of the wrong type."""
    frame = random_frame(rng)
    pairs = list(_as_map(frame).items())
    for _ in range(rng.randrange(1, 4)):
        op = rng.randrange(6)
        if op == 0 and pairs:
            pairs.pop(rng.randrange(len(pairs)))
        elif op == 1 and pairs:
            pairs.append(rng.choice(pairs))
        elif op == 2:
            pairs.insert(rng.randrange(len(pairs) + 1), (rng.choice(("extra", "Seq", "", 7, b"seq")), 1))
        elif op == 3 and pairs:
            i = rng.randrange(len(pairs))
            pairs[i] = (pairs[i][0], _wrong_value(rng))
        elif op == 4:
            meta = [(f"k{j}", rng.choice((_text(rng), _uint(rng), True, _wrong_value(rng))))
                    for j in range(rng.randrange(15, 19))]
            pairs.append(("meta", dict(meta) if rng.random() < 0.7 else _Pairs(meta)))
        else:
            rng.shuffle(pairs)
    data = _write(_Pairs(pairs), rng, wide=rng.choice((0.0, 0.3)))
    if rng.random() < 0.2:    # wrap the whole item, or one value, in a tag / an indefinite container
        data = rng.choice((b"\xc0", b"\xd8\x18" + _head(2, len(data)), b"\x9f", b"\xd9\xd9\xf7")) + data \
            + (b"\xff" if rng.random() < 0.5 else b"")
    return data


def noncanonical(rng: random.Random, frame: Frame) -> bytes:
    """A valid but non-canonical encoding of ``frame``: wide heads and/or another key order."""
    pairs = list(_as_map(frame).items())
    rng.shuffle(pairs)
    return _write(_Pairs(pairs), rng, wide=0.5)


def mutate(rng: random.Random, data: bytes, other: bytes) -> bytes:
    """Apply 1–3 byte-level mutations; ``other`` is a second valid item to splice from."""
    out = bytearray(data)
    for _ in range(rng.choice((1, 1, 2, 3))):
        op = rng.randrange(8)
        pos = rng.randrange(len(out) + 1)
        if op == 0 and out:                 # bit flip
            out[min(pos, len(out) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1 and out:               # an interesting initial byte
            out[min(pos, len(out) - 1)] = rng.choice(_INTERESTING)
        elif op == 2:                       # truncation
            del out[pos:]
        elif op == 3:                       # insertion of random or interesting bytes
            out[pos:pos] = rng.randbytes(rng.randrange(1, 9)) if rng.random() < 0.5 \
                else bytes((rng.choice(_INTERESTING),))
        elif op == 4:                       # deletion of a range
            del out[pos:pos + rng.randrange(1, 9)]
        elif op == 5:                       # splice: our prefix, the other item's suffix
            out = out[:pos] + other[rng.randrange(len(other) + 1):]
        elif op == 6:                       # duplicate a range in place
            end = min(len(out), pos + rng.randrange(1, 12))
            out[pos:pos] = out[pos:end]
        else:                               # smash a length / int head's argument
            if out:
                i = min(pos, len(out) - 1)
                out[i:i + 2] = rng.choice((b"\xff\xff", b"\x00\x00", rng.randbytes(2)))
    return bytes(out)


def make_input(rng: random.Random) -> bytes:
    """One fuzz input (see the module docstring for the mix)."""
    pick = rng.randrange(10)
    if pick < 4:
        return mutate(rng, fv.encode(random_frame(rng)), fv.encode(random_frame(rng)))
    if pick < 6:       # back-to-back frames (split_frames), possibly damaged
        data = b"".join(fv.encode(random_frame(rng)) for _ in range(rng.randrange(1, 5)))
        return mutate(rng, data, fv.encode(random_frame(rng))) if rng.random() < 0.7 else data
    if pick < 8:
        data = near_valid(rng)
        return mutate(rng, data, data) if rng.random() < 0.3 else data
    if pick < 9:
        return noncanonical(rng, random_frame(rng))
    return rng.randbytes(rng.randrange(65))


# -- the checks -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FuzzReport:
    iterations: int
    seed: int
    accepted: int
    refused: int
    failures: int = 0              # iterations that misbehaved (counted with keep_going)
    first_failure: str = ""        # the first one's reproducer

    def line(self) -> str:
        return (f"frame-v1-fuzz: iterations={self.iterations} accepted={self.accepted} "
                f"refused={self.refused} failures={self.failures} seed={self.seed:#x}")


class FuzzFailure(AssertionError):
    """The codec misbehaved on an input; the message carries the input as hex."""


def check_input(data: bytes) -> bool:
    """Run every check on ``data``; True if ``decode_one`` accepted it, False if it refused it."""
    try:
        frame, end = fv.decode_one(data)
        first_error = None
    except FrameError as exc:
        frame, end, first_error = None, 0, exc
    except Exception as exc:  # noqa: BLE001 - the whole point is to catch anything else
        raise FuzzFailure(f"decode_one raised {type(exc).__name__}: {exc} on {data.hex()}") from None
    if first_error is not None:
        if first_error.reason not in fv.REASONS or not isinstance(first_error.offset, int) \
                or not 0 <= first_error.offset <= len(data):
            raise FuzzFailure(f"bad FrameError {first_error.reason!r} at {first_error.offset} on {data.hex()}")
        if first_error.reason == "truncated" and _reference_accepts(data):
            raise FuzzFailure(f"decode_one says truncated, cbor2 decodes it: {data.hex()}")
    else:
        _check_accepted(data, frame, end)
    _check_split(data, frame, first_error)
    return first_error is None


def _reference_accepts(data: bytes) -> bool:
    try:
        cbor2.loads(data)
    except Exception:  # noqa: BLE001 - any refusal by the reference will do
        return False
    return True


def _check_accepted(data: bytes, frame: Frame, end: int) -> None:
    if not 0 < end <= len(data):
        raise FuzzFailure(f"decode_one returned end {end} for {len(data)} bytes: {data.hex()}")
    try:
        again = fv.encode(frame)
        back, back_end = fv.decode_one(again)
    except Exception as exc:  # noqa: BLE001
        raise FuzzFailure(f"accepted frame does not re-encode ({type(exc).__name__}: {exc}): {data.hex()}") \
            from None
    if back != frame or back_end != len(again) or fv.encode(back) != again:
        raise FuzzFailure(f"re-encoding changed the frame {frame!r}: {data.hex()}")
    try:
        reference = cbor2.loads(data[:end])
    except Exception as exc:  # noqa: BLE001
        raise FuzzFailure(f"cbor2 refuses an accepted item ({type(exc).__name__}: {exc}): {data.hex()}") \
            from None
    if reference != _as_map(frame):
        raise FuzzFailure(f"cbor2 decodes {reference!r}, decode_one {frame!r}: {data.hex()}")


def _check_split(data: bytes, first: Frame | None, first_error: FrameError | None) -> None:
    try:
        frames, accepted, error = fv.split_frames(data)
    except Exception as exc:  # noqa: BLE001
        raise FuzzFailure(f"split_frames raised {type(exc).__name__}: {exc} on {data.hex()}") from None
    raws = [raw for _, raw in frames]
    if b"".join(raws) != data[:accepted] or (error is None) != (accepted == len(data)):
        raise FuzzFailure(f"split_frames prefix {accepted} / error {error!r} inconsistent: {data.hex()}")
    if not data:
        if frames or accepted or error is not None:
            raise FuzzFailure(f"split_frames of no bytes gave {frames!r}, {accepted}, {error!r}")
    elif first_error is not None:
        if frames or accepted or error is None or error.reason != first_error.reason:
            raise FuzzFailure(f"split_frames accepted what decode_one refused: {data.hex()}")
    elif not frames or frames[0][0] != first:
        raise FuzzFailure(f"split_frames disagrees with decode_one on the first item: {data.hex()}")
    for frame, raw in frames:
        if fv.decode_one(raw) != (frame, len(raw)):
            raise FuzzFailure(f"record {raw.hex()} does not decode alone to its frame: {data.hex()}")


def run_fuzz(iterations: int | None = None, seed: int = DEFAULT_SEED, keep_going: bool = False) -> FuzzReport:
    """Check ``iterations`` inputs; raise FuzzFailure on the first misbehaviour.

    ``keep_going``: count misbehaving iterations instead (the command line does, so its ``failures=``
    is a count); accepted + refused + failures == iterations.
    """
    if iterations is None:
        iterations = int(os.environ.get("FRAME_V1_FUZZ_ITERS", DEFAULT_ITERATIONS))
    rng = random.Random(seed)
    accepted = refused = failures = 0
    first = ""
    for i in range(iterations):
        data = make_input(rng)
        try:
            ok = check_input(data)
        except FuzzFailure as exc:
            if not keep_going:
                raise FuzzFailure(f"iteration {i}: {exc}") from None
            failures += 1
            first = first or f"iteration {i}: {exc}"
            continue
        if ok:
            accepted += 1
        else:
            refused += 1
    return FuzzReport(iterations, seed, accepted, refused, failures, first)


def main(argv: list[str] | None = None) -> int:
    from nine_door import fuzz_cli

    return fuzz_cli.main("python3 -m nine_door.frame_fuzz", "Fuzz the CBOR Frame v1 decoder (SPEC §7.5).", "frame-v1-fuzz", run_fuzz, DEFAULT_SEED,
                         "inputs to try (default: $FRAME_V1_FUZZ_ITERS or 100000)", argv)


if __name__ == "__main__":
    sys.exit(main())
