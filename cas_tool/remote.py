"""Push and fetch over the 9P TCP listener with the project's client (nine_door/client.py), SPEC §13.5.

Push order and resume: chunks first, then the manifest (the server commits the manifest only when every
chunk is committed). For each chunk a Tgetattr tells what the store has: a QTFILE qid is committed
(skipped: content addressing means it is the same bytes), a pending one reports ``size`` = bytes
received and the upload continues at that offset (§13.1). So an interrupted push, run again, sends only
what the store lacks; :class:`PushStats` counts it.

Fetch resume: the payload is assembled in ``FILE.part``; a rerun re-hashes the complete chunks already
there, keeps the verified prefix and reads on from that offset (committed nodes are immutable, so
offsets stay valid). The whole payload is checked against ``payload_sha256`` before ``FILE`` appears.
"""
from __future__ import annotations

import hashlib
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from nine_door import codec
from nine_door import messages as m
from nine_door.cas import manifest as mf
from nine_door.client import Client, ProtocolError, SocketStreamTransport
from nine_door.errors import ENOENT, NineError
from nine_door.nodes import QTFILE

from .packdir import VerifyError, load_manifest
from .progress import Progress

DEFAULT_ROOT = "/updates"


@dataclass
class PushStats:
    chunks_sent: int = 0
    chunks_skipped: int = 0
    bytes_sent: int = 0


def connect(host: str, port: int, ticket: str, timeout: float = 30.0) -> Client:
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client = Client(SocketStreamTransport(sock))
    client.version(8192)
    client.attach("", ticket)                      # the ticket names the role (§4.2)
    return client


class _Pacer:
    """``--limit-rate``: sleep so that no more than ``rate`` bytes/s leave (0 = unlimited)."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.start = time.monotonic()
        self.sent = 0

    def __call__(self, count: int) -> None:
        if not self.rate:
            return
        self.sent += count
        ahead = self.sent / self.rate - (time.monotonic() - self.start)
        if ahead > 0:
            time.sleep(ahead)


def _root(path: str) -> list[str]:
    return [part for part in path.split("/") if part]


FID_BASE = 1 << 20                 # pipelined requests use fids far above the client's own (from 0)


def window_of(client: Client) -> int:
    """Requests one session may have in flight: ``tags_per_session`` from ``/proc/boot`` (§3.12, §5.4)."""
    try:
        boot = client.read_all("/proc/boot").decode()
    except (NineError, UnicodeDecodeError):
        return 1
    for line in boot.splitlines():
        if line.startswith("secure9p "):
            for field in line.split()[1:]:
                key, _, value = field.partition("=")
                if key == "tags_per_session" and value.isdigit():
                    return max(1, int(value))
    return 1


class Pipe:
    """Requests sent ``window`` at a time, replies matched by tag (the server answers each session's
    requests in order, §3.12, so a Tlopen, its Twrites and the Tclunk may travel in one burst).
    The first Rlerror in request order raises :class:`NineError`."""

    def __init__(self, client: Client, window: int) -> None:
        self.client = client
        self.window = max(1, window)

    def run(self, requests: list) -> list:
        out = []
        for start in range(0, len(requests), self.window):
            part = requests[start:start + self.window]
            transport = self.client.transport
            transport.send(b"".join(codec.encode(r) for r in part))
            replies = {}
            for _ in part:
                reply = codec.decode_reply(transport.recv())
                replies[reply.tag] = reply
            for request in part:
                reply = replies.get(request.tag)
                if reply is None:
                    raise ProtocolError(f"no reply for tag {request.tag}")
                if isinstance(reply, m.Rlerror):
                    raise NineError(reply.ecode, type(request).__name__)
                if isinstance(request, m.Twalk) and len(reply.qids) != len(request.wnames):
                    raise NineError(ENOENT, f"walk stopped at {request.wnames[len(reply.qids)]!r}")
                out.append(reply)
        return out


def _upload_all(client: Client, pipe: Pipe, base: list[str], items: list[tuple[list[str], bytes]],
                stats: PushStats, piece: int, pace: _Pacer, progress: Progress) -> list[bool]:
    """Upload each ``(names, data)`` from what the store already holds; per item, whether bytes were sent.

    Per group of items: one burst of Twalk + Tgetattr each (what does the store hold?), then one burst
    of Tlopen, the Twrites of the missing tail, Tclunk for each pending item (Tclunk alone for committed
    ones)."""
    sent: list[bool] = []
    tag = client.next_tag
    group = max(1, pipe.window // 2)
    piece = max(1, min(piece, client.iounit))
    for first in range(0, len(items), group):
        batch = items[first:first + group]
        fids = [FID_BASE + i for i in range(len(batch))]
        probes = []
        for fid, (names, _) in zip(fids, batch):
            probes += [m.Twalk(tag(), client.root, fid, tuple(base + names)), m.Tgetattr(tag(), fid, m.GETATTR_BASIC)]
        replies = pipe.run(probes)
        work = []
        for index, (fid, (names, data)) in enumerate(zip(fids, batch)):
            attr = replies[2 * index + 1]
            if attr.qid.type == QTFILE:             # committed: the same bytes are already there
                progress.advance(len(data))
                sent.append(False)
                work.append(m.Tclunk(tag(), fid))
                continue
            offset = attr.size
            progress.advance(offset)
            sent.append(True)
            work.append(m.Tlopen(tag(), fid, m.O_WRONLY))
            while offset < len(data):
                work.append(m.Twrite(tag(), fid, offset, data[offset:offset + piece]))
                offset += piece
            work.append(m.Tclunk(tag(), fid))
        for start in range(0, len(work), pipe.window):
            for request, reply in zip(work[start:start + pipe.window], pipe.run(work[start:start + pipe.window])):
                if isinstance(request, m.Twrite):
                    if reply.count != len(request.data):
                        raise OSError("server accepted a short count on an upload")
                    stats.bytes_sent += reply.count
                    progress.advance(reply.count)
                    pace(reply.count)
    return sent


def push(directory: str | Path, client: Client, root: str = DEFAULT_ROOT, piece: int = 1 << 16,
         rate: int = 0, window: int | None = None) -> PushStats:
    raw, manifest = load_manifest(directory)
    chunks_dir = Path(directory) / "chunks"
    items = []
    seen = set()
    for digest in manifest.chunks:
        path = chunks_dir / digest.hex()
        if digest not in seen and path.exists():
            seen.add(digest)
            items.append((["chunks", digest.hex()], path.read_bytes()))
    stats = PushStats()
    progress = Progress(f"push epoch {manifest.epoch}", sum(len(d) for _, d in items) + len(raw))
    pipe = Pipe(client, window if window is not None else window_of(client))
    base = _root(root) + [str(manifest.epoch)]
    try:
        sent = _upload_all(client, pipe, base, items, stats, piece, _Pacer(rate), progress)
        stats.chunks_sent = sum(sent)
        stats.chunks_skipped = len(sent) - stats.chunks_sent
        _upload_all(client, Pipe(client, pipe.window), base, [(["manifest.cbor"], raw)], stats, piece,
                    _Pacer(rate), progress)
    finally:
        progress.close()
    return stats


def _read_node(client: Client, names: list[str], offset: int = 0, progress: Progress | None = None) -> bytes:
    fid = client.walk(client.root, names)
    try:
        client.lopen(fid, m.O_RDONLY)
        out = bytearray()
        while chunk := client.read(fid, offset + len(out), client.iounit):
            out += chunk
            if progress is not None:
                progress.advance(len(chunk))
        return bytes(out)
    finally:
        client.clunk(fid)


def _fetch_chunks(client: Client, pipe: Pipe, base: list[str], manifest: mf.Manifest, first: int, within: int,
                  handle, progress: Progress) -> int:
    """Chunks ``first``… appended to ``handle`` (the first from offset ``within``): per chunk one
    Twalk, Tlopen, Tread of the whole chunk (a chunk fits one Rread, §14.2) and Tclunk, pipelined."""
    tag = client.next_tag
    group = max(1, pipe.window // 4)
    received = 0
    for start in range(first, len(manifest.chunks), group):
        positions = range(start, min(start + group, len(manifest.chunks)))
        requests = []
        for slot, position in enumerate(positions):
            fid = FID_BASE + slot
            offset = within if position == first else 0
            requests += [m.Twalk(tag(), client.root, fid, tuple(base + ["chunks", manifest.chunks[position].hex()])),
                         m.Tlopen(tag(), fid, m.O_RDONLY), m.Tread(tag(), fid, offset, client.iounit),
                         m.Tclunk(tag(), fid)]
        replies = pipe.run(requests)
        for slot, position in enumerate(positions):
            data = replies[4 * slot + 2].data
            expected = manifest.chunk_size(position) - (within if position == first else 0)
            if len(data) < expected:        # never with chunk_bytes <= iounit; read the rest plainly
                data += _read_node(client, base + ["chunks", manifest.chunks[position].hex()],
                                   manifest.chunk_size(position) - expected + len(data))
            handle.write(data)
            received += len(data)
            progress.advance(len(data))
    return received


def fetch(client: Client, epoch: int, out: str | Path, root: str = DEFAULT_ROOT,
          pubkey: bytes | None = None, window: int | None = None) -> tuple[mf.Manifest, int]:
    """Download epoch ``epoch`` into ``out``; returns the manifest and the payload bytes read this run."""
    base = _root(root) + [str(epoch)]
    raw = _read_node(client, base + ["manifest.cbor"])
    try:
        manifest = mf.decode(raw)
    except mf.ManifestError as exc:
        raise VerifyError(f"invalid manifest: {exc}") from None
    if pubkey is not None:
        from nine_door.cas import ed25519
        if manifest.signature is None or not ed25519.verify(pubkey, manifest.signed_bytes(), manifest.signature):
            raise VerifyError("manifest signature does not verify")
    part = Path(str(out) + ".part")
    have = _verified_prefix(part, manifest)
    progress = Progress(f"fetch epoch {epoch}", manifest.payload_bytes)
    progress.advance(have)
    pipe = Pipe(client, window if window is not None else window_of(client))
    try:
        with open(part, "r+b" if part.exists() else "wb") as handle:
            handle.truncate(have)
            handle.seek(have)
            index, within = divmod(have, manifest.chunk_bytes)
            received = _fetch_chunks(client, pipe, base, manifest, index, within, handle, progress)
    finally:
        progress.close()
    digest = hashlib.sha256()
    with open(part, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    if digest.digest() != manifest.payload_sha256 or part.stat().st_size != manifest.payload_bytes:
        part.unlink()
        raise VerifyError("fetched payload does not match payload_sha256")
    os.replace(part, out)
    return manifest, received


def _verified_prefix(part: Path, manifest: mf.Manifest) -> int:
    """Bytes of ``part`` to keep: whole chunks that hash right, plus the partial chunk after them."""
    if not part.exists():
        return 0
    data = part.read_bytes()[:manifest.payload_bytes]
    keep = 0
    for index, digest in enumerate(manifest.chunks):
        piece = data[keep:keep + manifest.chunk_size(index)]
        if len(piece) < manifest.chunk_size(index):
            return keep + len(piece)          # a partial chunk: resumed by offset, checked at the end
        if hashlib.sha256(piece).digest() != digest:
            return keep
        keep += len(piece)
    return keep
