"""The synchronous 9P client against a small scripted in-memory server, over all transports.

The fake server is written with the codec only, so these tests pin the client's wire behaviour
(fid/tag allocation, paging, chunking, error mapping) independently of NineDoor;
test_client_ninedoor.py runs the same client against the real server.
"""
from __future__ import annotations

import socket
import threading

import pytest

from nine_door import codec
from nine_door import messages as m
from nine_door.client import (Client, InProcessTransport, ProtocolError, SeqPacketTransport,
                              SocketStreamTransport, split_path)
from nine_door.errors import EACCES, EBADF, EINVAL, ENOENT, ENOTDIR, NineError


class FakeServer:
    """A tiny 9P2000.L server: a fixed tree, one fid table, replies built with the codec."""

    def __init__(self, msize: int = 8192, short_write_cap: int | None = None) -> None:
        self.max_msize = msize
        self.short_write_cap = short_write_cap
        self.files = {("proc", "boot"): b"Cohesix boot: root-task online\n" * 40,
                      ("log", "queen.log"): bytearray()}
        self.dirs = {(): ["log", "proc", "big"], ("proc",): ["boot"], ("log",): ["queen.log"],
                     ("big",): [f"entry-{i:03d}" for i in range(60)]}
        for name in self.dirs[("big",)]:
            self.files[("big", name)] = b""
        self.fids: dict[int, list] = {}       # fid -> [path, open_mode or None]
        self.requests: list = []
        self.version_reply = m.VERSION_9P2000L
        self.coalesce = False

    def qid(self, path) -> m.Qid:
        kind = m.QTDIR if path in self.dirs else m.QTFILE
        return m.Qid(kind, 0, hash(path) & 0xFFFF)

    def handle_message(self, message: bytes) -> list[bytes]:
        replies = [codec.encode(self.reply(codec.decode(f))) for f in codec.split_batch(message)]
        return [b"".join(replies)] if self.coalesce else replies

    def reply(self, t):
        self.requests.append(t)
        try:
            return self._reply(t)
        except NineError as exc:
            return m.Rlerror(t.tag, exc.errno)

    def _fid(self, fid):
        if fid not in self.fids:
            raise NineError(EBADF)
        return self.fids[fid]

    def _reply(self, t):
        if isinstance(t, m.Tversion):
            self.fids.clear()
            return m.Rversion(t.tag, min(t.msize, self.max_msize), self.version_reply)
        if isinstance(t, m.Tattach):
            if t.uname != "queen":
                raise NineError(EACCES)
            self.fids[t.fid] = [(), None]
            return m.Rattach(t.tag, self.qid(()))
        if isinstance(t, m.Twalk):
            path = self._fid(t.fid)[0]
            if t.newfid != t.fid and t.newfid in self.fids:
                raise NineError(EBADF)
            qids = []
            for name in t.wnames:
                if path not in self.dirs:
                    err = ENOTDIR
                    break
                if name not in self.dirs[path]:
                    err = ENOENT
                    break
                path = path + (name,)
                qids.append(self.qid(path))
            else:
                self.fids[t.newfid] = [path, None]
                return m.Rwalk(t.tag, tuple(qids))
            if not qids:
                raise NineError(err)
            return m.Rwalk(t.tag, tuple(qids))
        if isinstance(t, m.Tlopen):
            entry = self._fid(t.fid)
            if t.flags & 3 and entry[0] == ("proc", "boot"):
                raise NineError(EACCES)
            entry[1] = t.flags
            return m.Rlopen(t.tag, self.qid(entry[0]), self.max_msize - m.IOHDRSZ)
        if isinstance(t, m.Tread):
            path, mode = self._fid(t.fid)
            assert t.count <= self.max_msize - m.IOHDRSZ
            return m.Rread(t.tag, bytes(self.files[path][t.offset:t.offset + t.count]))
        if isinstance(t, m.Twrite):
            path, mode = self._fid(t.fid)
            data = t.data if self.short_write_cap is None else t.data[:self.short_write_cap]
            self.files[path] += data
            return m.Rwrite(t.tag, len(data))
        if isinstance(t, m.Tclunk):
            self._fid(t.fid)
            del self.fids[t.fid]
            return m.Rclunk(t.tag)
        if isinstance(t, m.Treaddir):
            path, mode = self._fid(t.fid)
            names = sorted(self.dirs[path])
            out, size = [], 0
            for i in range(t.offset, len(names)):
                entry = m.DirEntry(self.qid(path + (names[i],)), i + 1, m.DT_REG, names[i])
                if size + codec.dirent_size(entry.name) > t.count:
                    break
                out.append(entry)
                size += codec.dirent_size(entry.name)
            return m.Rreaddir(t.tag, codec.encode_dirents(out))
        if isinstance(t, m.Tgetattr):
            path, _ = self._fid(t.fid)
            return m.Rgetattr(t.tag, m.GETATTR_BASIC, self.qid(path), m.S_IFREG | 0o444, 0, 0,
                              1, 0, len(self.files.get(path, b"")), 8168, 0, *([0] * 10))
        if isinstance(t, m.Tstatfs):
            self._fid(t.fid)
            return m.Rstatfs(t.tag, m.V9FS_MAGIC, 4096, 0, 0, 0, len(self.files), 0, 0, 255)
        if isinstance(t, m.Tflush):
            return m.Rflush(t.tag)
        raise NineError(EINVAL)


@pytest.fixture
def server():
    return FakeServer()


@pytest.fixture
def client(server):
    c = Client(InProcessTransport(server))
    c.version()
    c.attach("queen")
    return c


def test_version_uses_notag_and_records_msize(server):
    c = Client(InProcessTransport(server))
    assert c.version(65536) == 8192
    assert server.requests[0] == m.Tversion(m.NOTAG, 65536, "9P2000.L")
    assert c.iounit == 8192 - 24


def test_version_unknown_is_an_error(server):
    server.version_reply = "unknown"
    with pytest.raises(NineError) as info:
        Client(InProcessTransport(server)).version()
    assert info.value.errno == EINVAL


def test_attach_sends_nofid_afid_and_returns_root(server):
    c = Client(InProcessTransport(server))
    c.version()
    assert c.attach("queen", "ticket-text") == 0 == c.root
    assert server.requests[-1] == m.Tattach(0, 0, m.NOFID, "queen", "ticket-text", m.NOFID)


def test_failed_attach_releases_its_fid(server):
    c = Client(InProcessTransport(server))
    c.version()
    with pytest.raises(NineError) as info:
        c.attach("nobody")
    assert info.value.errno == EACCES
    assert c.live_fids == frozenset() and c.root is None
    assert c.attach("queen") == 0


def test_tags_increase_and_never_use_notag(client, server):
    client._tag = m.NOTAG - 2
    client.getattr(client.root)
    client.getattr(client.root)
    assert [r.tag for r in server.requests[-2:]] == [m.NOTAG - 1, 0]


def test_walk_allocates_and_recycles_lowest_fid(client, server):
    a = client.walk(client.root, ["proc"])
    b = client.walk(client.root, ["proc", "boot"])
    assert (a, b) == (1, 2)
    client.clunk(a)
    assert client.walk(client.root, []) == 1       # clone; the freed number is reused first
    assert server.requests[-1] == m.Twalk(server.requests[-1].tag, 0, 1, ())


def test_partial_walk_raises_enoent_and_leaves_no_fid(client, server):
    with pytest.raises(NineError) as info:
        client.walk(client.root, ["proc", "missing"])
    assert info.value.errno == ENOENT
    assert client.live_fids == {0}
    assert 1 not in server.fids


def test_first_name_failure_carries_the_servers_errno(client):
    with pytest.raises(NineError) as info:
        client.walk(client.root, ["proc", "boot", "deeper"])
    assert info.value.errno == ENOENT       # partial walk: 2 of 3 names
    with pytest.raises(NineError) as info:
        client.walk(client.root, ["nope"])
    assert info.value.errno == ENOENT


def test_walk_with_newfid_equal_to_fid_rebinds_in_place(client, server):
    fid = client.walk(client.root, ["proc"])
    assert client.walk(fid, ["boot"], newfid=fid) == fid
    assert server.fids[fid][0] == ("proc", "boot")


def test_read_all_loops_until_empty_read(server):
    server.max_msize = 512
    c = Client(InProcessTransport(server))
    c.version(512)
    c.attach("queen")
    content = c.read_all("/proc/boot")
    assert content == server.files[("proc", "boot")]
    reads = [r for r in server.requests if isinstance(r, m.Tread)]
    assert len(content) == 1240
    assert [r.offset for r in reads] == [0, 488, 976, len(content)]     # last read hits EOF
    assert c.live_fids == {0}


def test_append_chunks_by_iounit(server):
    server.max_msize = 512
    c = Client(InProcessTransport(server))
    c.version(512)
    c.attach("queen")
    data = bytes(range(256)) * 5
    assert c.append("/log/queen.log", data) == len(data)
    writes = [r for r in server.requests if isinstance(r, m.Twrite)]
    assert [len(w.data) for w in writes] == [488, 488, 304]
    opens = [r for r in server.requests if isinstance(r, m.Tlopen)]
    assert opens[-1].flags == m.O_WRONLY | m.O_APPEND
    assert bytes(server.files[("log", "queen.log")]) == data


def test_append_stops_at_a_short_write(server):
    server.short_write_cap = 3
    c = Client(InProcessTransport(server))
    c.version()
    c.attach("queen")
    assert c.append("/log/queen.log", b"abcdef") == 3
    assert c.live_fids == {0}


def test_listdir_pages_through_the_listing(server):
    server.max_msize = 512
    c = Client(InProcessTransport(server))
    c.version(512)
    c.attach("queen")
    names = c.listdir("/big")
    assert names == sorted(server.dirs[("big",)])
    pages = [r for r in server.requests if isinstance(r, m.Treaddir)]
    assert len(pages) > 2 and pages[0].offset == 0 and pages[-1].offset == 60


def test_open_failure_clunks_the_walked_fid(client, server):
    with pytest.raises(NineError) as info:
        client.open("/proc/boot", m.O_WRONLY)
    assert info.value.errno == EACCES
    assert client.live_fids == {0} and set(server.fids) == {0}


def test_clunk_forgets_the_fid_even_when_refused(client, server):
    fid = client.walk(client.root, ["proc"])
    del server.fids[fid]                     # the server already lost it
    with pytest.raises(NineError) as info:
        client.clunk(fid)
    assert info.value.errno == EBADF
    assert fid not in client.live_fids


def test_getattr_statfs_flush(client):
    fid = client.walk(client.root, ["proc", "boot"])
    attr = client.getattr(fid)
    assert attr.valid == m.GETATTR_BASIC and attr.size == 31 * 40
    assert client.statfs(fid).type == m.V9FS_MAGIC
    client.flush(5)


def test_version_resets_local_fids(client):
    client.walk(client.root, ["proc"])
    client.version()
    assert client.live_fids == frozenset() and client.root is None


def test_reply_with_wrong_tag_is_a_protocol_error():
    class WrongTag:
        def handle_message(self, frame):
            return [codec.encode(m.Rclunk(codec.decode(frame).tag + 1))]
    with pytest.raises(ProtocolError):
        Client(InProcessTransport(WrongTag())).clunk(3)


def test_reply_of_wrong_type_is_a_protocol_error():
    class WrongType:
        def handle_message(self, frame):
            return [codec.encode(m.Rflush(codec.decode(frame).tag))]
    with pytest.raises(ProtocolError):
        Client(InProcessTransport(WrongType())).clunk(3)


def test_no_reply_is_a_protocol_error():
    class Silent:
        def handle_message(self, frame):
            return []
    with pytest.raises(ProtocolError):
        Client(InProcessTransport(Silent())).clunk(3)


def test_in_process_transport_splits_coalesced_replies(server):
    server.coalesce = True
    transport = InProcessTransport(server)
    transport.send(codec.encode(m.Tversion(m.NOTAG, 8192, "9P2000.L"))
                   + codec.encode(m.Tflush(1, 0)))
    assert codec.decode_reply(transport.recv()).msize == 8192
    assert codec.decode_reply(transport.recv()) == m.Rflush(1)


def test_split_path():
    assert split_path("/") == [] and split_path("") == []
    assert split_path("/proc/boot") == ["proc", "boot"] == split_path("proc//boot/")


# --- socket transports ------------------------------------------------------------------------
def _serve_stream(sock, server):
    """Serve a stream socket; replies are dribbled out one byte at a time to test reassembly."""
    reader = codec.FrameReader()
    with sock:
        while data := sock.recv(4096):
            for frame in reader.feed(data):
                for reply in server.handle_message(frame):
                    for i in range(len(reply)):
                        sock.sendall(reply[i:i + 1])


def _serve_seqpacket(sock, server):
    with sock:
        while message := sock.recv(65536):
            sock.send(b"".join(server.handle_message(message)))   # coalesce a batch's replies


def _exercise(client):
    assert client.version() == 8192
    client.attach("queen")
    assert client.read_all("/proc/boot").startswith(b"Cohesix boot")
    assert client.append("/log/queen.log", b"via socket\n") == 11
    assert client.listdir("/") == ["big", "log", "proc"]


def test_socket_stream_transport(server):
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    thread = threading.Thread(target=_serve_stream, args=(theirs, server), daemon=True)
    thread.start()
    client = Client(SocketStreamTransport(ours))
    _exercise(client)
    client.close()
    thread.join(timeout=10)
    assert not thread.is_alive()


def test_seqpacket_transport_with_batched_requests(server):
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    thread = threading.Thread(target=_serve_seqpacket, args=(theirs, server), daemon=True)
    thread.start()
    transport = SeqPacketTransport(ours)
    client = Client(transport)
    _exercise(client)
    # Two frames in one message; the server answers both in one message; recv yields each.
    transport.send_batch([codec.encode(m.Tflush(40, 1)), codec.encode(m.Tflush(41, 2))])
    assert [codec.decode_reply(transport.recv()) for _ in range(2)] == [m.Rflush(40), m.Rflush(41)]
    client.close()
    thread.join(timeout=10)
    assert not thread.is_alive()


@pytest.mark.parametrize("kind,transport", [(socket.SOCK_STREAM, SocketStreamTransport),
                                            (socket.SOCK_SEQPACKET, SeqPacketTransport)])
def test_peer_close_is_a_connection_error(kind, transport):
    ours, theirs = socket.socketpair(socket.AF_UNIX, kind)
    theirs.close()
    with pytest.raises((ConnectionError, OSError)):
        Client(transport(ours)).version()
    ours.close()
