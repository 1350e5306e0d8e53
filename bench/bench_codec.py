#!/usr/bin/env python3
"""Secure9P codec benchmark: µs per message for decode + encode of a representative mix.

Compares, in one run on one machine (ratios, never absolute thresholds — DESIGN §4):

* ``fast``      — nine_door.codec, the struct fast path the server uses (strict, dataclasses);
* ``construct`` — nine_door.codec_schema, the interpreted construct schemas (source of truth);
* ``compiled``  — the same schemas through construct's ``.compile()`` (parse + build);
* ``struct``    — a plain hand-written struct baseline: no strictness checks, tuples instead of
                  dataclasses — the floor for any Python codec of this format.

Usage: ``python3 bench/bench_codec.py [--rounds N] [--repeats N]``. Prints a table and the ratios.
"""
from __future__ import annotations

import argparse
import os
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nine_door import codec, codec_schema  # noqa: E402
from nine_door import messages as m  # noqa: E402

QID = m.Qid(m.QTFILE, 3, 4242)
MIX = [  # roughly what a telemetry/ctl workload sends: walks, opens, I/O, clunks, errors
    m.Tattach(1, 0, m.NOFID, "worker-heartbeat:worker-1", "cohesix-ticket-" + "ab" * 40, m.NOFID),
    m.Twalk(2, 0, 1, ("worker", "worker-1", "telemetry")),
    m.Tlopen(3, 1, m.O_WRONLY | m.O_APPEND),
    m.Twrite(4, 1, 0, b'{"hb":1,"seq":42,"t":1700000000000}\n'),
    m.Tread(5, 1, 0, 8168),
    m.Tclunk(6, 1),
    m.Rwalk(2, (m.Qid(m.QTDIR, 0, 1), m.Qid(m.QTDIR, 0, 2), QID)),
    m.Rlopen(3, QID, 8168),
    m.Rwrite(4, 37),
    m.Rread(5, b"Cohesix boot: root-task online\n" * 4),
    m.Rgetattr(7, m.GETATTR_BASIC, QID, m.S_IFREG | 0o666, 0, 0, 1, 0, 37, 8168, 1,
               *([1700000000, 0] * 3), 0, 0, 0, 0),
    m.Rlerror(8, 13),
]
FRAMES = [(codec.encode(msg), type(msg).__name__.startswith("R")) for msg in MIX]


# --- plain struct baseline: same layouts, no validation, tuples ------------------------------
_HDR = struct.Struct("<IBH")
_S = struct.Struct("<H")


def _bs(f, off):
    n = _S.unpack_from(f, off)[0]
    return f[off + 2:off + 2 + n].decode(), off + 2 + n


def _base_decode(f):
    size, mtype, tag = _HDR.unpack_from(f)
    if mtype == m.TATTACH:
        fid, afid = struct.unpack_from("<II", f, 7)
        u, off = _bs(f, 15)
        a, off = _bs(f, off)
        return (mtype, tag, fid, afid, u, a, struct.unpack_from("<I", f, off)[0])
    if mtype == m.TWALK:
        fid, newfid, n = struct.unpack_from("<IIH", f, 7)
        names, off = [], 17
        for _ in range(n):
            s, off = _bs(f, off)
            names.append(s)
        return (mtype, tag, fid, newfid, names)
    if mtype == m.TLOPEN:
        return (mtype, tag) + struct.unpack_from("<II", f, 7)
    if mtype == m.TWRITE:
        return (mtype, tag) + struct.unpack_from("<IQI", f, 7) + (f[23:],)
    if mtype == m.TREAD:
        return (mtype, tag) + struct.unpack_from("<IQI", f, 7)
    if mtype in (m.TCLUNK, m.RWRITE, m.RLERROR):
        return (mtype, tag) + struct.unpack_from("<I", f, 7)
    if mtype == m.RWALK:
        n = _S.unpack_from(f, 7)[0]
        return (mtype, tag, [struct.unpack_from("<BIQ", f, 9 + 13 * i) for i in range(n)])
    if mtype == m.RLOPEN:
        return (mtype, tag) + struct.unpack_from("<BIQI", f, 7)
    if mtype == m.RREAD:
        return (mtype, tag, f[11:])
    if mtype == m.RGETATTR:
        return (mtype, tag) + struct.unpack_from("<QBIQIII" + "Q" * 15, f, 7)
    raise ValueError(mtype)


def _base_encode(t):
    mtype, tag = t[0], t[1]
    if mtype == m.TATTACH:
        u, a = t[4].encode(), t[5].encode()
        body = struct.pack("<II", t[2], t[3]) + _S.pack(len(u)) + u + _S.pack(len(a)) + a \
            + struct.pack("<I", t[6])
    elif mtype == m.TWALK:
        body = struct.pack("<IIH", t[2], t[3], len(t[4])) + b"".join(
            _S.pack(len(e)) + e for e in (n.encode() for n in t[4]))
    elif mtype == m.TLOPEN:
        body = struct.pack("<II", *t[2:])
    elif mtype == m.TWRITE:
        body = struct.pack("<IQI", t[2], t[3], len(t[5])) + t[5]
    elif mtype == m.TREAD:
        body = struct.pack("<IQI", *t[2:])
    elif mtype in (m.TCLUNK, m.RWRITE, m.RLERROR):
        body = struct.pack("<I", t[2])
    elif mtype == m.RWALK:
        body = _S.pack(len(t[2])) + b"".join(struct.pack("<BIQ", *q) for q in t[2])
    elif mtype == m.RLOPEN:
        body = struct.pack("<BIQI", *t[2:])
    elif mtype == m.RREAD:
        body = struct.pack("<I", len(t[2])) + t[2]
    elif mtype == m.RGETATTR:
        body = struct.pack("<QBIQIII" + "Q" * 15, *t[2:])
    else:
        raise ValueError(mtype)
    return _HDR.pack(7 + len(body), mtype, tag) + body


# --- contenders ---------------------------------------------------------------------------------
def fast_roundtrip(frame, reply):
    return codec.encode((codec.decode_reply if reply else codec.decode)(frame))


def construct_roundtrip(frame, reply):
    return codec_schema.schema_encode(codec_schema.schema_decode(frame, replies=reply))


_COMPILED = {False: codec_schema.RequestFrame.compile(), True: codec_schema.ReplyFrame.compile()}


def compiled_roundtrip(frame, reply):
    schema = _COMPILED[reply]
    return schema.build(schema.parse(frame))


def struct_roundtrip(frame, reply):
    return _base_encode(_base_decode(frame))


CONTENDERS = [("fast", fast_roundtrip), ("construct", construct_roundtrip),
              ("compiled", compiled_roundtrip), ("struct", struct_roundtrip)]


def check(fn) -> None:
    """Correctness first: every contender must round-trip every frame of the mix."""
    for frame, reply in FRAMES:
        assert fn(frame, reply) == frame, (fn.__name__, frame.hex())


def sample(fn, rounds: int) -> float:
    """Seconds for ``rounds`` passes over the mix."""
    start = time.perf_counter()
    for _ in range(rounds):
        for frame, reply in FRAMES:
            fn(frame, reply)
    return time.perf_counter() - start


def measure(contenders, rounds: dict[str, int], repeats: int) -> dict[str, float]:
    """Best-of-``repeats`` µs per message for each contender, the contenders' samples interleaved.

    Interleaved (fast, construct, compiled, struct, fast, ...) rather than one contender's samples
    after the other's: on a shared machine a burst of load then hits every contender alike instead
    of one of them, so the ratios move much less from run to run. Best-of filters what is left.
    """
    for _, fn in contenders:
        check(fn)
    best = {name: float("inf") for name, _ in contenders}
    for _ in range(repeats):
        for name, fn in contenders:
            best[name] = min(best[name], sample(fn, rounds[name]))
    return {name: best[name] / (rounds[name] * len(FRAMES)) * 1e6 for name, _ in contenders}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=300,
                        help="passes over the %d-message mix per sample (fast, struct; the "
                             "construct contenders do 1/20 of that)" % len(MIX))
    parser.add_argument("--repeats", type=int, default=15, help="samples per contender; the best counts")
    args = parser.parse_args(argv)
    rounds = {name: max(1, args.rounds // (1 if name in ("fast", "struct") else 20))
              for name, _ in CONTENDERS}
    results = measure(CONTENDERS, rounds, args.repeats)
    base = results["struct"]
    print(f"Secure9P codec: decode+encode, {len(MIX)}-message mix, Python "
          f"{sys.version.split()[0]}")
    print(f"{'codec':<12}{'us/msg':>10}{'x struct':>10}{'x fast':>10}")
    for name, _ in CONTENDERS:
        us = results[name]
        print(f"{name:<12}{us:>10.2f}{us / base:>10.2f}{us / results['fast']:>10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
