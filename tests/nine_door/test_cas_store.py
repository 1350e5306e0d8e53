"""The CAS store through real 9P sessions (SPEC §13.1–§13.4): uploads, commit, every row of the §13.2
rejection table, chunk rules, capacity, roles, pending/committed node rules and garbage collection."""
from __future__ import annotations

import hashlib

import cbor2
import pytest

from nine_door import errors as E
from nine_door import messages as m
from nine_door.cas import manifest as mf
from nine_door.cas import store as cas_store
from nine_door.nodes import QTAPPEND, QTFILE

try:
    from .test_cas_harness import U64_MAX, Uploader, cas_door, pack, worker
    from .test_server_harness import NineRemoteError, queen
except ImportError:  # pragma: no cover
    from test_cas_harness import U64_MAX, Uploader, cas_door, pack, worker
    from test_server_harness import NineRemoteError, queen

PAYLOAD = bytes(range(100))          # the §13.5 vector payload (chunk_bytes 64: two chunks)
SEED = b"\x11" * 32


def setup(**kwargs):
    door = cas_door(**kwargs)
    q = queen(door)
    return door, q, Uploader(q)


def log_has(door, line: str) -> bool:
    return line in door.log_lines()


def reaches(raw, *names: str) -> bool:
    """Whether a walk from the root reaches ``names`` (a refused later step answers a short Rwalk)."""
    try:
        reply = raw.walk(0, 900, *names)
    except NineRemoteError as exc:
        assert exc.errno == E.ENOENT
        return False
    if len(reply.qids) == len(names):
        raw.clunk(900)
        return True
    return False


def assert_not_committed(door, up: Uploader, epoch: int) -> None:
    assert door.cas.committed_manifest(epoch) is None
    assert up.stat(str(epoch), "manifest.cbor").qid.type == QTAPPEND
    assert up.stat(str(epoch), "manifest.cbor").size == 0          # pending bytes discarded


# -- round trip, listing, roles -----------------------------------------------------------------------
def test_upload_commits_and_every_role_reads_it():
    door, q, up = setup()
    manifest, chunks = pack(1, PAYLOAD)
    up.push(1, manifest, chunks)
    assert door.log_lines()[-1] == ("cas-manifest accepted epoch=1 kind=base payload_sha256="
                                    f"{hashlib.sha256(PAYLOAD).hexdigest()} chunks=2")
    assert q.ls("/updates") == ["1"]
    assert q.ls("/updates/1") == ["chunks", "manifest.cbor"]
    assert q.ls("/updates/1/chunks") == sorted(chunks)
    w = worker(door)
    assert w.cat("/updates/1/manifest.cbor") == manifest
    assert b"".join(w.cat(f"/updates/1/chunks/{h}") for h in chunks) in (PAYLOAD, PAYLOAD[64:] + PAYLOAD[:64])
    assert up.stat("1", "manifest.cbor").qid.type == QTFILE
    assert door.mem_stats()["cas_bytes"] == 100


def test_updates_provider_mounts_the_cas_root():
    door, q, up = setup()
    up.push(1, *pack(1, PAYLOAD))
    q.append("/queen/ctl", b'{"mount":{"service":"updates","at":"/log/u"}}\n')
    assert q.ls("/log/u") == ["1"]
    assert door.provider_root("updates") == ("updates",)


def test_no_cas_before_it_is_enabled():
    from test_server_harness import make_door
    door, _, _ = make_door({"root_task.schema": "1.3"})
    q = queen(door)
    assert "updates" not in q.ls("/")
    assert door.provider_root("updates") is None and door.mem_stats()["cas_bytes"] == 0


def test_pending_nodes_exist_without_creation_and_are_listed_once_they_have_bytes():
    door, q, up = setup()
    up.walk("7", "manifest.cbor")
    up.walk("7", "chunks", "ab" * 32)
    assert q.ls("/updates") == []                      # nothing received yet
    assert up.put(7, f"chunks/{'ab' * 32}", b"x") == 1
    assert q.ls("/updates") == ["7"] and q.ls("/updates/7/chunks") == ["ab" * 32]
    for bad in ("07", "-1", "x", str(1 << 64), "１"):
        assert not reaches(q, "updates", bad), bad
    for bad in ("AB" * 32, "ab" * 31, "zz" * 32):
        assert not reaches(q, "updates", "7", "chunks", bad), bad
    assert not reaches(q, "updates", "7", "other")
    assert reaches(q, "updates", str((1 << 64) - 1))       # u64 max is an epoch


def test_non_queen_cannot_upload_or_see_pending_nodes():
    door, q, up = setup()
    up.push(1, *pack(1, PAYLOAD))
    up.put(2, f"chunks/{hashlib.sha256(b'p').hexdigest()}", b"pen")   # pending with bytes
    w = worker(door)
    assert w.ls("/updates") == ["1"]
    for names in (("2",), ("3",), ("2", "chunks"), ("1", "chunks", "cd" * 32)):
        assert not reaches(w, "updates", *names), names
    assert reaches(w, "updates", "1", "chunks", hashlib.sha256(PAYLOAD[:64]).hexdigest())
    w.walk(0, 901, "updates", "1", "manifest.cbor")
    assert w.errno(m.Tlopen(w.next_tag(), 901, m.O_WRONLY)) == E.EPERM        # committed: read-only
    assert door.cas.committed_manifest(2) is None


def test_pending_read_is_ebusy_and_committed_nodes_are_immutable():
    door, q, up = setup()
    manifest, chunks = pack(1, PAYLOAD)
    (first, data), (second, data2) = chunks.items()
    up.put(1, f"chunks/{first}", data[:10])
    fid = up.open("1", "chunks", first, flags=m.O_RDONLY)
    assert q.errno(m.Tread(q.next_tag(), fid, 0, 100)) == E.EBUSY
    writer = up.open("1", "chunks", first)
    assert q.write(writer, data[10:], 10) == len(data) - 10                   # commits
    assert q.read(fid, 0, 100) == data                                       # now readable
    assert q.errno(m.Twrite(q.next_tag(), writer, 64, b"more")) == E.EPERM    # further write
    up.put(1, f"chunks/{second}", data2)
    mfid = up.open("1", "manifest.cbor")
    assert q.write(mfid, manifest, 0) == len(manifest)
    assert q.errno(m.Twrite(q.next_tag(), mfid, len(manifest), b"\x00")) == E.EPERM
    q.walk(0, 950, "updates", "1", "manifest.cbor")
    assert q.errno(m.Tlopen(q.next_tag(), 950, m.O_RDWR)) == E.EPERM
    assert q.errno(m.Tlopen(q.next_tag(), 950, m.O_WRONLY | m.O_TRUNC)) == E.EPERM
    assert q.cat("/updates/1/manifest.cbor") == manifest


def test_positioned_append_resumes_at_the_reported_size():
    door, q, up = setup()
    data = bytes(range(64))
    name = hashlib.sha256(data).hexdigest()
    assert up.put(3, f"chunks/{name}", data[:20]) == 20
    assert up.stat("3", "chunks", name).size == 20
    assert up.errno(3, f"chunks/{name}", data[20:], offset=5) == E.EINVAL
    assert up.errno(3, f"chunks/{name}", data[20:], offset=21) == E.EINVAL
    assert up.put(3, f"chunks/{name}", data[20:30], offset=20) == 10
    assert up.put(3, f"chunks/{name}", data[30:], offset=U64_MAX) == 34       # u64 max: append
    assert up.committed("3", "chunks", name)
    # the same chunk under another epoch path is the committed one (stored once)
    assert up.committed("9", "chunks", name) and door.cas.bytes_used == 64


# -- chunk rules (§13.3) --------------------------------------------------------------------------------
def test_wrong_chunk_name_is_rejected_and_discarded():
    door, q, up = setup()
    name = "00" * 32
    data = b"z" * 64
    assert up.put(4, f"chunks/{name}", data[:30]) == 30
    assert up.errno(4, f"chunks/{name}", data[30:], offset=30) == E.EINVAL
    assert log_has(door, f"cas-chunk rejected epoch=4 expected={name} actual={hashlib.sha256(data).hexdigest()} "
                         "bytes=64")
    assert up.stat("4", "chunks", name).size == 0 and not up.committed("4", "chunks", name)
    assert door.cas.bytes_used == 0 and q.ls("/updates") == []


def test_chunk_over_chunk_bytes_is_emsgsize_and_keeps_what_was_received():
    door, q, up = setup()
    name = "11" * 32
    assert up.errno(5, f"chunks/{name}", b"x" * 65) == E.EMSGSIZE
    assert up.put(5, f"chunks/{name}", b"x" * 60) == 60
    assert up.errno(5, f"chunks/{name}", b"x" * 5, offset=60) == E.EMSGSIZE
    assert up.stat("5", "chunks", name).size == 60


def test_store_holds_at_most_64_mib_of_chunk_bytes():
    assert cas_store.STORE_BYTES == 64 << 20
    door = cas_door(chunk_bytes=8168)
    store = door.cas
    q = queen(door)
    ident = q.session.identity
    chunks_dir = store.lookup(store.root, "1", ident).children["chunks"]
    count = 0
    while True:
        data = count.to_bytes(8, "big") * 1021
        chunk = store.lookup(chunks_dir, hashlib.sha256(data).hexdigest(), ident)
        if store.bytes_used + len(data) > store.capacity:
            break
        store.chunk_write(chunk, ("updates", "1", "chunks", chunk.name), 0, data)
        count += 1
    assert count == (64 << 20) // 8168
    up = Uploader(q)
    data = b"last" * 2042
    with pytest.raises(NineRemoteError) as exc:
        up.put(1, f"chunks/{hashlib.sha256(data).hexdigest()}", data)
    assert exc.value.errno == E.ENOSPC
    assert door.mem_stats()["cas_bytes"] == count * 8168


# -- the §13.2 rejection table ------------------------------------------------------------------------
def reencode(manifest: bytes, **changes) -> bytes:
    value = cbor2.loads(manifest)
    value.update(changes)
    return cbor2.dumps({k: v for k, v in value.items() if v is not None}, canonical=True)


def test_invalid_manifest_rows():
    door, q, up = setup()
    manifest, chunks = pack(1, PAYLOAD)
    for name, data in chunks.items():
        up.put(1, f"chunks/{name}", data)
    value = cbor2.loads(manifest)
    cases = {
        "not a map": cbor2.dumps([1, 2]),
        "not canonical (key order)": cbor2.dumps(dict(reversed(list(value.items())))),
        "not canonical (long int head)": manifest.replace(b"eepoch\x01", b"eepoch\x18\x01"),
        "wrong schema": reencode(manifest, schema="cohesix-cas/manifest-v2"),
        "epoch != path": reencode(manifest, epoch=2),
        "chunk_bytes != store": reencode(manifest, chunk_bytes=50),
        "bool epoch": reencode(manifest, epoch=True),
        "unknown key": reencode(manifest, extra=1),
        "missing key": reencode(manifest, hash=None),
        "chunks count": reencode(manifest, chunks=value["chunks"][:1]),
        "short digest": reencode(manifest, payload_sha256=b"\x00" * 31),
        "bad signature size": reencode(manifest, signature=b"\x00" * 63),
        "trailing byte": manifest + b"\x00",
        "malformed": b"\xff",
    }
    for label, raw in cases.items():
        assert up.errno(1, "manifest.cbor", raw) == E.EINVAL, (label, raw.hex())
        assert door.log_lines()[-1] == "cas-manifest rejected epoch=1 reason=invalid-manifest", label
        assert_not_committed(door, up, 1)
    up.put(1, "manifest.cbor", manifest)                   # the valid one still commits afterwards
    assert door.cas.committed_manifest(1) is not None


def test_too_big_manifest():
    door, q, up = setup()
    fid = up.open("1", "manifest.cbor")
    head = b"\x5a" + (70000).to_bytes(4, "big")           # a byte string longer than 65536: incomplete
    sent = q.write(fid, head, 0)
    while sent + 8000 <= 65536:
        sent += q.write(fid, b"\x00" * 8000, sent)
    assert q.errno(m.Twrite(q.next_tag(), fid, sent, b"\x00" * 8000)) == E.EMSGSIZE
    assert door.log_lines()[-1] == "cas-manifest rejected epoch=1 reason=too-big"
    assert_not_committed(door, up, 1)


def test_epoch_not_increasing():
    door, q, up = setup()
    up.push(5, *pack(5, PAYLOAD))
    for epoch in (5, 3, 0):
        manifest, chunks = pack(epoch, PAYLOAD[:50])
        for name, data in chunks.items():
            if epoch != 5 and not up.committed(str(epoch), "chunks", name):
                up.put(epoch, f"chunks/{name}", data)
        if epoch == 5:          # the committed manifest itself is immutable
            assert up.errno(5, "manifest.cbor", manifest, offset=len(pack(5, PAYLOAD)[0])) == E.EPERM
            continue
        assert up.errno(epoch, "manifest.cbor", manifest) == E.EINVAL
        assert door.log_lines()[-1] == f"cas-manifest rejected epoch={epoch} reason=epoch-not-increasing"
        assert_not_committed(door, up, epoch)


def test_invalid_delta_rows():
    base_manifest, base_chunks = pack(1, PAYLOAD)
    new = PAYLOAD[:64] + b"new tail" * 5
    good_delta = mf.Delta(1, hashlib.sha256(PAYLOAD).digest())
    for label, delta_enable, delta in (
            ("disabled", False, good_delta),
            ("base not committed", True, mf.Delta(0, hashlib.sha256(PAYLOAD).digest())),
            ("base sha mismatch", True, mf.Delta(1, b"\x01" * 32))):
        door, q, up = setup(delta=delta_enable)
        up.push(1, base_manifest, base_chunks)
        manifest, chunks = pack(2, new, delta=delta)
        for name, data in chunks.items():
            if name not in base_chunks:
                up.put(2, f"chunks/{name}", data)
        assert up.errno(2, "manifest.cbor", manifest) == E.EINVAL, label
        assert door.log_lines()[-1] == "cas-manifest rejected epoch=2 reason=invalid-delta", label
        assert_not_committed(door, up, 2)


def test_delta_pack_uploads_only_new_chunks():
    door, q, up = setup()
    up.push(1, *pack(1, PAYLOAD))
    before = door.cas.bytes_used
    new = PAYLOAD[:64] + b"new tail" * 5
    manifest, chunks = pack(2, new, delta=mf.Delta(1, hashlib.sha256(PAYLOAD).digest()))
    fresh = {n: d for n, d in chunks.items() if n not in door.cas.chunks}
    assert len(fresh) == 1
    up.push(2, manifest, fresh)
    assert door.log_lines()[-1].startswith("cas-manifest accepted epoch=2 kind=delta ")
    assert door.cas.bytes_used == before + 40
    assert q.ls("/updates/2/chunks") == sorted(chunks)      # lists every referenced chunk


def test_signatures_required_when_configured():
    from nine_door.cas import ed25519
    door = cas_door(pubkey=ed25519.public_key(SEED))
    q = queen(door)
    up = Uploader(q)
    unsigned, chunks = pack(1, PAYLOAD)
    for name, data in chunks.items():
        up.put(1, f"chunks/{name}", data)
    assert up.errno(1, "manifest.cbor", unsigned) == E.EACCES
    assert door.log_lines()[-1] == "cas-manifest rejected epoch=1 reason=missing-signature"
    assert_not_committed(door, up, 1)
    forged, _ = pack(1, PAYLOAD, seed=b"\x22" * 32)
    assert up.errno(1, "manifest.cbor", forged) == E.EACCES
    assert door.log_lines()[-1] == "cas-manifest rejected epoch=1 reason=signature-failed"
    assert_not_committed(door, up, 1)
    signed, _ = pack(1, PAYLOAD, seed=SEED)
    assert up.put(1, "manifest.cbor", signed) == len(signed) == 282
    assert door.cas.committed_manifest(1).signature is not None


def test_missing_chunk_chunk_size_and_payload_mismatch():
    door, q, up = setup()
    manifest, chunks = pack(1, PAYLOAD)
    (first, data1), (second, data2) = chunks.items()
    up.put(1, f"chunks/{first}", data1)
    up.put(1, f"chunks/{second}", data2[:10])                # pending, not committed
    assert up.errno(1, "manifest.cbor", manifest) == E.ENOENT
    assert door.log_lines()[-1] == "cas-manifest rejected epoch=1 reason=missing-chunk"
    assert_not_committed(door, up, 1)
    # chunk-size: the 36-byte chunk first, the 64-byte one last (all digests committed)
    up.put(1, f"chunks/{second}", data2[10:], offset=10)
    value = cbor2.loads(manifest)
    swapped = reencode(manifest, chunks=[value["chunks"][1], value["chunks"][0]])
    assert up.errno(1, "manifest.cbor", swapped) == E.EINVAL
    assert door.log_lines()[-1] == "cas-manifest rejected epoch=1 reason=chunk-size"
    # payload-mismatch: right chunks, wrong payload digest
    wrong = reencode(manifest, payload_sha256=b"\x00" * 32)
    assert up.errno(1, "manifest.cbor", wrong) == E.EINVAL
    assert door.log_lines()[-1] == "cas-manifest rejected epoch=1 reason=payload-mismatch"
    assert_not_committed(door, up, 1)
    assert [line for line in door.log_lines() if "accepted" in line] == []


def test_manifest_commits_only_when_the_cbor_item_is_complete():
    door, q, up = setup()
    manifest, chunks = pack(1, PAYLOAD)
    for name, data in chunks.items():
        up.put(1, f"chunks/{name}", data)
    fid = up.open("1", "manifest.cbor")
    for start in range(0, len(manifest), 50):
        q.write(fid, manifest[start:start + 50], start)
        done = start + 50 >= len(manifest)
        assert (door.cas.committed_manifest(1) is not None) == done


# -- garbage collection (§13.3) -------------------------------------------------------------------------
def test_ninth_commit_removes_the_lowest_epoch_and_its_unshared_chunks():
    door, q, up = setup()
    shared = b"S" * 64
    payloads = {e: shared + f"epoch {e}".encode() for e in range(1, 10)}
    for epoch, payload in payloads.items():
        up.push(epoch, *pack(epoch, payload))
    assert q.ls("/updates") == [str(e) for e in range(2, 10)]
    assert door.log_lines()[-1].startswith("cas-manifest accepted epoch=9 ")
    gone = hashlib.sha256(b"epoch 1").hexdigest()
    assert gone not in door.cas.chunks
    assert hashlib.sha256(shared).hexdigest() in door.cas.chunks
    assert door.cas.bytes_used == 64 + sum(len(f"epoch {e}") for e in range(2, 10))
    w = worker(door)
    assert not reaches(w, "updates", "1") and reaches(w, "updates", "2")
    assert w.cat(f"/updates/9/chunks/{hashlib.sha256(shared).hexdigest()}") == shared


def test_an_abandoned_push_is_collected_when_a_later_epoch_commits():
    door, q, up = setup()
    up.push(1, *pack(1, PAYLOAD))
    left_manifest, left = pack(2, b"L" * 64 + b"abandoned")
    for name, data in left.items():                          # epoch 2: chunks, never a manifest
        up.put(2, f"chunks/{name}", data)
    up.put(2, "manifest.cbor", left_manifest[:10])            # and a partial manifest
    assert door.cas.bytes_used == 100 + 73
    up.push(3, *pack(3, PAYLOAD + b"!"))
    assert door.log_lines()[-1] == "cas-gc after epoch=3 pending_epochs=1 chunks=2 bytes=73"
    assert door.cas.bytes_used == 100 + 37                    # epoch 3 added one 37-byte chunk
    assert all(name not in door.cas.chunks for name in left)
    assert q.ls("/updates") == ["1", "3"]                     # pending epoch 2 can never commit: gone
    assert up.errno(2, "manifest.cbor", left_manifest) == E.EINVAL   # a new walk: a fresh pending 2
    assert log_has(door, "cas-manifest rejected epoch=2 reason=epoch-not-increasing")


def test_collection_keeps_what_a_push_for_a_later_epoch_counts_on():
    door, q, up = setup()
    orphan = b"O" * 64
    orphan_name = hashlib.sha256(orphan).hexdigest()
    up.put(2, f"chunks/{orphan_name}", orphan)                # committed chunk of an abandoned epoch 2
    manifest4, chunks4 = pack(4, orphan + b"four")
    assert up.committed("4", "chunks", orphan_name)           # push 4 skips it (claims it by the walk)
    mine = next(name for name in chunks4 if name != orphan_name)
    up.put(4, f"chunks/{mine}", chunks4[mine][:2])            # push 4 is halfway through its last chunk
    up.push(3, *pack(3, PAYLOAD))                             # meanwhile epoch 3 commits
    assert door.log_lines()[-1] == "cas-gc after epoch=3 pending_epochs=1 chunks=0 bytes=0"
    assert orphan_name in door.cas.chunks and len(door.cas.chunks[mine].data) == 2
    up.put(4, f"chunks/{mine}", chunks4[mine][2:], offset=2)  # push 4 resumes and commits
    up.put(4, "manifest.cbor", manifest4)
    assert door.cas.committed_manifest(4) is not None
    assert worker(door).cat(f"/updates/4/chunks/{orphan_name}") == orphan


def test_nothing_to_collect_logs_nothing():
    door, q, up = setup()
    up.push(1, *pack(1, PAYLOAD))
    up.push(2, *pack(2, PAYLOAD + b"2"))
    assert not any(line.startswith("cas-gc") for line in door.log_lines())


def test_walk_created_pending_entries_are_bounded():
    door, q, up = setup()
    store = door.cas
    ident = q.session.identity
    chunks_dir = store.lookup(store.root, "1", ident).children["chunks"]
    first = store.lookup(chunks_dir, "00" * 32, ident)
    assert up.put(1, f"chunks/{'01' * 32}", b"kept") == 4            # has bytes: never dropped as idle
    for n in range(2, cas_store.MAX_IDLE_CHUNKS + 2):
        store.lookup(chunks_dir, n.to_bytes(32, "big").hex(), ident)
    idle = [c for c in store.chunks.values() if not c.data]
    assert len(idle) == cas_store.MAX_IDLE_CHUNKS and first.removed
    assert store.chunks["01" * 32].data == b"kept"
    epoch_one = store.epochs[1]
    for epoch in range(2, cas_store.MAX_PENDING_EPOCHS + 3):
        store.lookup(store.root, str(epoch), ident)
    assert len(store.epochs) == cas_store.MAX_PENDING_EPOCHS
    assert not epoch_one.directory.removed                    # it has bytes (a chunk uploaded through it)
    assert 2 not in store.epochs and 3 not in store.epochs    # the oldest untouched went first


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=300, deadline=None)
@given(st.integers(0, (1 << 64) - 1) | st.integers(1 << 64, 1 << 70))
def test_epoch_names_round_trip_and_stop_at_u64(n):
    assert cas_store.parse_epoch(str(n)) == (n if n < 1 << 64 else None)
    assert cas_store.parse_epoch("0" + str(n)) is None          # no leading zeros


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=70))
def test_epoch_and_chunk_names_match_their_definitions(text):
    expected = int(text) if (text.isascii() and text.isdigit() and (text == "0" or text[0] != "0")
                             and int(text) < 1 << 64) else None
    assert cas_store.parse_epoch(text) == expected
    assert cas_store.is_chunk_name(text) == (len(text) == 64 and all(c in "0123456789abcdef" for c in text))
