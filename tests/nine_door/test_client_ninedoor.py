"""The client against the real NineDoor server (in-process and over a stream), end to end."""
from __future__ import annotations

import pytest

from nine_door import messages as m
from nine_door.client import Client, InProcessTransport
from nine_door.errors import EACCES, ENOENT, NineError
from nine_door.server import ChannelBinding
from test_server_harness import make_door


class StreamSession:
    """Adapts a session's stream entry point (``feed``) to the in-process transport."""

    def __init__(self, session) -> None:
        self.session = session

    def handle_message(self, frame: bytes) -> list[bytes]:
        out = []
        for i in range(0, len(frame), 5):              # arbitrary chunking of the byte stream
            out.extend(self.session.feed(frame[i:i + 5]))
        return out


@pytest.fixture(params=["message", "stream"])
def client(request):
    door, _clock, _launcher = make_door()
    session = door.open_session(ChannelBinding(kind="channel", origin="channel"))
    target = session if request.param == "message" else StreamSession(session)
    c = Client(InProcessTransport(target))
    assert c.version(65536) == 8192
    c.attach("queen")
    return c


def test_c3_style_session(client):
    assert client.read_all("/proc/boot").startswith(b"Cohesix boot: root-task online")
    with pytest.raises(NineError) as info:
        client.open("/proc/boot", m.O_WRONLY)
    assert info.value.errno == EACCES
    assert client.live_fids == {client.root}


def test_listdir_and_append(client):
    assert {"log", "proc", "queen"} <= set(client.listdir("/"))
    assert client.append("/log/queen.log", b"client-test\n") == 12
    assert b"client-test\n" in client.read_all("/log/queen.log")


def test_missing_path_and_attributes(client):
    with pytest.raises(NineError) as info:
        client.walk(client.root, ["proc", "nope"])
    assert info.value.errno == ENOENT
    fid = client.walk(client.root, ["proc", "boot"])
    attr = client.getattr(fid)
    assert attr.mode & m.S_IFREG and attr.size > 0
    assert client.statfs(fid).namelen == 255
    client.clunk(fid)
    assert client.live_fids == {client.root}
