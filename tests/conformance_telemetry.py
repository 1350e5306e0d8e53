"""SPEC §16 C12 (rings) and C15 (observability counters) over real TCP, against any running system.

Used by tests/root_task/test_host_conformance.py (the host run mode) and tests/qemu/test_ir_images.py
(a booted guest, over its forwarded 9P port). The system runs a real heartbeat worker, whose own writes
would make exact counts racy, so the script first silences it the way the ring itself would: it arms
the worker's cursor and fills the ring with the queen's frames; the worker's next heartbeat finds the
ring full, retries ``max_retries`` times (§3.13) and exits. From then on only this script writes, and
C15's "counters match a scripted load exactly" is checked as exact deltas from a baseline.
"""
from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from nine_door import codec, frame_v1
from nine_door import errors as E
from nine_door import messages as m
from nine_door.client import Client, NineError, SocketStreamTransport

RECORD_PAD = 40          # payload bytes per queen frame (so a full 64 KiB ring takes ~900 frames)


@dataclass
class Target:
    host: str
    port: int
    ticket: str          # a queen ticket (the 9P listener requires one, §3.14)

    def client(self) -> Client:
        client = Client(SocketStreamTransport(socket.create_connection((self.host, self.port), timeout=30)))
        client.version(8192)
        client.attach("queen", self.ticket)
        return client


class QueenWriter:
    """The queen's own Frame v1 producer (writer identity ``queen``, its own ``seq``)."""

    def __init__(self) -> None:
        self.seq = 0

    def frame(self, text: str = "") -> bytes:
        self.seq += 1
        body = (text or f"queen {self.seq}").ljust(RECORD_PAD, ".").encode()
        return frame_v1.encode(frame_v1.Frame(seq=self.seq, ts=self.seq, kind=0, payload=body))

    def batch(self, n: int = 40) -> bytes:
        """``n`` new frames back to back (one Twrite of ~2.6 KiB)."""
        return b"".join(self.frame() for _ in range(n))


def counters(q: Client) -> dict[str, int]:
    """Every integer counter of /proc/9p and /proc/ingest, keyed ``file.key``."""
    out: dict[str, int] = {}
    for path in ("/proc/9p/sessions", "/proc/9p/outstanding", "/proc/9p/short_writes",
                 "/proc/ingest/backpressure", "/proc/ingest/dropped", "/proc/ingest/queued"):
        name = path.rsplit("/", 1)[1]
        for word in q.read_all(path).decode().split():
            key, eq, value = word.partition("=")
            if eq and value.isdigit():
                out[f"{name}.{key}"] = int(value)
    return out


def cursor_state(q: Client, worker: str) -> tuple[int, int, int]:
    text = q.read_all(f"/worker/{worker}/cursor").decode()
    match = re.fullmatch(r"cursor=(\d+) oldest=(\d+) next=(\d+)\n", text)
    assert match, text
    return tuple(int(g) for g in match.groups())  # type: ignore[return-value]


def set_cursor(q: Client, worker: str, value: int) -> None:
    fid = q.open(f"/worker/{worker}/cursor", m.O_WRONLY)
    try:
        assert q.write(fid, 0, f"{value}\n".encode()) == len(f"{value}\n")
    finally:
        q.clunk(fid)


def errno_of(action: Callable[[], object]) -> int | None:
    try:
        action()
    except NineError as exc:
        return exc.errno
    return None


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def spawn_worker(q: Client) -> str:
    before = set(q.listdir("/worker"))
    q.append("/queen/ctl", b'{"spawn":"heartbeat","ticks":100000}')
    (worker,) = set(q.listdir("/worker")) - before
    return worker


def run_c12_c15(target: Target, settle_s: float = 20.0) -> dict[str, object]:
    """Run C12 and C15; returns what was measured (for the caller's report)."""
    q = target.client()
    writer = QueenWriter()
    worker = spawn_worker(q)
    ring = f"/worker/{worker}/telemetry"
    capacity = int(re.search(rb"ring_bytes_per_worker=(\d+)", q.read_all("/proc/boot")).group(1))
    wfid = q.open(ring, m.O_WRONLY | m.O_APPEND)

    # -- C12: an unarmed ring wraps without error; a reader left behind gets ERANGE once -----------
    reader = q.open(ring, m.O_RDONLY)                 # position: the oldest record now
    batch_bytes = len(writer.batch())
    for _ in range(capacity // batch_bytes + 2):
        batch = writer.batch()
        assert q.write(wfid, 0, batch) == len(batch)  # wraps, never short, never an error
    assert any(line.startswith(f"telemetry ring wrap worker={worker} ")
               for line in q.read_all("/log/queen.log").decode().splitlines())
    assert errno_of(lambda: q.read(reader, 0, 8000)) == E.ERANGE
    assert q.read(reader, 0, 8000)                    # continues at the oldest record
    q.clunk(reader)

    # -- C12: the cursor never regresses ---------------------------------------------------------
    _, _, nxt = cursor_state(q, worker)
    set_cursor(q, worker, nxt)                        # armed: everything so far is consumed
    assert errno_of(lambda: set_cursor(q, worker, nxt - 1)) == E.EINVAL
    assert cursor_state(q, worker)[0] == nxt

    # -- C12: an armed ring short-writes when full (the worker's heartbeats then stop) -------------
    while True:
        batch = writer.batch()
        if q.write(wfid, 0, batch) < len(batch):
            break
    one = writer.frame("probe")
    assert q.write(wfid, 0, one) == 0                 # full of unconsumed records: count 0
    wait_until(lambda: _stable(q, "/proc/ingest/backpressure", 2.0), settle_s, "the worker to give up")

    # -- C15: exact deltas of a scripted load -----------------------------------------------------
    base = counters(q)
    assert q.write(wfid, 0, one) == 0                             # 1 short write, 0 bytes
    c, oldest, nxt = cursor_state(q, worker)
    set_cursor(q, worker, nxt)                                     # consume everything: resumes
    fresh = writer.frame("after the cursor advanced")
    assert q.write(wfid, 0, fresh) == len(fresh)
    assert q.write(wfid, 0, fresh) == len(fresh)                   # a duplicate seq: acknowledged…
    c2, oldest2, nxt2 = cursor_state(q, worker)
    assert (c2, nxt2) == (nxt, nxt + 1)                            # …but not stored
    k = 3                                                          # a burst of k requests in flight
    raw = socket.create_connection((target.host, target.port), timeout=30)
    try:
        raw.sendall(codec.encode(m.Tversion(m.NOTAG, 8192, "9P2000.L")))
        _recv_frames(raw, 1)
        raw.sendall(codec.encode(m.Tattach(1, 0, m.NOFID, "queen", target.ticket, m.NOFID)))
        _recv_frames(raw, 1)
        raw.sendall(b"".join(codec.encode(m.Tgetattr(10 + i, 0, m.GETATTR_BASIC)) for i in range(k)))
        assert len(_recv_frames(raw, k)) == k
        after = counters(q)
    finally:
        raw.close()
    assert after["short_writes.total"] - base["short_writes.total"] == 1
    assert after["short_writes.zero"] - base["short_writes.zero"] == 1
    assert after["short_writes.bytes_deferred"] - base["short_writes.bytes_deferred"] == len(one)
    assert after["backpressure.backpressure"] - base["backpressure.backpressure"] == 1
    assert after["dropped.dropped"] - base["dropped.dropped"] == 0   # armed: consumed evictions only
    assert after["queued.queued"] == 1                                # everything consumed but `fresh`
    assert after["sessions.total"] - base["sessions.total"] == 1       # the raw session, attached
    assert after["sessions.queen"] - base["sessions.queen"] == 1
    assert after["outstanding.peak"] == max(base["outstanding.peak"], k)
    assert after["outstanding.current"] == 1                           # the read of the file itself
    watch = q.read_all("/proc/ingest/watch").decode().splitlines()
    assert watch and all(re.fullmatch(r"watch( [a-z0-9_]+=\d+(\.\d{3})?)+", line) for line in watch)
    q.clunk(wfid)
    q.close()
    return {"worker": worker, "capacity": capacity, "peak": after["outstanding.peak"]}


def _stable(q: Client, path: str, seconds: float) -> bool:
    first = q.read_all(path)
    time.sleep(seconds)
    return q.read_all(path) == first


def _recv_frames(sock: socket.socket, n: int) -> list[bytes]:
    data, frames = b"", []
    while len(frames) < n:
        chunk = sock.recv(65536)
        assert chunk, "connection closed"
        data += chunk
        while len(data) >= 4 and len(data) >= int.from_bytes(data[:4], "little"):
            size = int.from_bytes(data[:4], "little")
            frames.append(data[:size])
            data = data[size:]
    return frames
