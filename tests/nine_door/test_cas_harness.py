"""Shared helpers for the CAS tests (SPEC §13): a CAS-enabled door, upload steps over a raw session.

Kept as a ``test_cas_*`` module so the file-ownership rules hold; it defines no tests itself.
"""
from __future__ import annotations

import dataclasses

from nine_door import messages as m
from nine_door.cas import manifest as mf
from nine_door.nodes import QTFILE
from nine_door.server import ChannelBinding

try:
    from .test_server_harness import NineRemoteError, Raw, make_door, queen
except ImportError:  # pragma: no cover
    from test_server_harness import NineRemoteError, Raw, make_door, queen

U64_MAX = (1 << 64) - 1
CAS = {"root_task.schema": "1.3", "cas.enable": True}


def cas_door(chunk_bytes: int = 64, delta: bool = True, pubkey: bytes | None = None, **overrides):
    door, clock, launcher = make_door({**CAS, "cas.store.chunk_bytes": chunk_bytes, "cas.delta.enable": delta,
                                       **overrides})
    if pubkey is not None:   # the compiler needs a key file; the config value is what the server reads
        config = dataclasses.replace(door.config, cas_pubkey_hex=pubkey.hex())
        from nine_door.server import NineDoor
        door = NineDoor(config, None, launcher, clock)
    return door


def pack(epoch: int, payload: bytes, chunk_bytes: int = 64, delta: mf.Delta | None = None,
         seed: bytes | None = None) -> tuple[bytes, dict[str, bytes]]:
    """Manifest bytes and ``{hex: chunk}`` for ``payload`` (signed with ``seed`` if given)."""
    manifest, pieces = mf.build(epoch, chunk_bytes, payload, delta)
    if seed is not None:
        from nine_door.cas import ed25519
        manifest = mf.with_signature(manifest, ed25519.sign(seed, manifest.signed_bytes()))
    import hashlib
    return mf.encode(manifest), {hashlib.sha256(p).hexdigest(): p for p in pieces}


class Uploader:
    """Walk/open/write steps against one raw session; fids from 500 upward."""

    def __init__(self, raw: Raw, root: str = "updates") -> None:
        self.raw = raw
        self.root = root
        self.fid = 500

    def _fid(self) -> int:
        self.fid += 1
        return self.fid

    def walk(self, *names: str) -> int:
        fid = self._fid()
        reply = self.raw.walk(0, fid, self.root, *names)
        if len(reply.qids) != len(names) + 1:                  # a short Rwalk binds nothing
            raise NineRemoteError(2)
        return fid

    def open(self, *names: str, flags: int = m.O_WRONLY) -> int:
        fid = self.walk(*names)
        try:
            self.raw.lopen(fid, flags)
        except NineRemoteError:
            self.raw.clunk(fid)
            raise
        return fid

    def put(self, epoch: int, name: str, data: bytes, offset: int = 0) -> int:
        """One Twrite to ``<epoch>/<name>`` (``manifest.cbor`` or ``chunks/<hex>``) at ``offset``."""
        fid = self.open(str(epoch), *name.split("/"))
        try:
            return self.raw.write(fid, data, offset)
        finally:
            self.raw.clunk(fid)

    def errno(self, epoch: int, name: str, data: bytes, offset: int = 0) -> int:
        try:
            self.put(epoch, name, data, offset)
        except NineRemoteError as exc:
            return exc.errno
        raise AssertionError("expected a refusal")

    def push(self, epoch: int, manifest: bytes, chunks: dict[str, bytes]) -> None:
        for name, data in chunks.items():
            if not self.committed(str(epoch), "chunks", name):     # stored once (§13.1)
                self.put(epoch, f"chunks/{name}", data)
        self.put(epoch, "manifest.cbor", manifest)

    def stat(self, *names: str):
        fid = self.walk(*names)
        try:
            return self.raw.getattr(fid)
        finally:
            self.raw.clunk(fid)

    def committed(self, *names: str) -> bool:
        return self.stat(*names).qid.type == QTFILE


def worker(door) -> Raw:
    """A worker-heartbeat session (spawned through /queen/ctl, attached with its minted ticket)."""
    q = queen(door)
    q.append("/queen/ctl", b'{"spawn":"heartbeat","ticks":100}\n')
    worker_id = sorted(door.workers)[-1]
    record = door.workers[worker_id]
    ticket = door.mint_worker_ticket(worker_id, record.role, record.spawn_budget, record.spawn_ms)
    raw = Raw(door.open_session(ChannelBinding(kind="channel", origin="channel", role="worker-heartbeat",
                                               worker_id=worker_id)))
    raw.version()
    raw.attach(0, f"worker-heartbeat:{worker_id}", ticket)
    return raw
