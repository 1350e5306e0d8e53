"""Real 9P2000.L clients against NineDoor's TCP listener in-process (SPEC §3.14, C3/C4 over TCP).

Clients: PyPI ``p9fs`` (pure-Python, via its py9p client) and Debian diod's ``diodls``/``diodcat``.
diod's tools send an empty ``uname`` and pass ``-a`` as ``aname``, so they attach through the
identity-from-ticket rule of §4.2 with a queen ticket. They cannot write, so the ctl append and
the EACCES-on-write checks run through p9fs (and our own client).
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time

import pytest

from nine_door import messages as m
from nine_door import tickets
from nine_door.client import Client, SocketStreamTransport
from nine_door.errors import EACCES, EINVAL, NineError

try:
    from .test_server_harness import SECRETS, ServedDoor
except ImportError:  # pragma: no cover
    from test_server_harness import SECRETS, ServedDoor

QUEEN_TICKET = tickets.mint(SECRETS["queen"], "queen")
DIOD_TOOLS = shutil.which("diodls") or os.path.exists("/usr/sbin/diodls")


def _tool(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


@pytest.fixture
def served():
    sd = ServedDoor(tcp=True).run_in_thread()
    try:
        yield sd
    finally:
        sd.close()


def tcp_client(sd: ServedDoor) -> Client:
    sock = socket.create_connection(("127.0.0.1", sd.listener.port), timeout=10)
    return Client(SocketStreamTransport(sock))


def wait_for(predicate, timeout_s: float = 10.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    raise AssertionError("condition not reached")


# -- our own client over real TCP -------------------------------------------------------------
def test_tcp_session_c3_and_audit_lines(served):
    c = tcp_client(served)
    assert c.version(65536) == 8192
    with pytest.raises(NineError) as info:
        c.attach("queen", "")                                    # ticket mandatory on TCP
    assert info.value.errno == EACCES
    c.attach("queen", QUEEN_TICKET)
    assert c.read_all("/proc/boot").startswith(b"Cohesix boot: root-task online")
    payload = b'{"spawn":"heartbeat","ticks":5}'
    assert c.append("/queen/ctl", payload) == len(payload)
    fid = c.walk(c.root, ["proc", "boot"])
    with pytest.raises(NineError) as info:
        c.lopen(fid, m.O_WRONLY)
    assert info.value.errno == EACCES
    c.close()
    wait_for(lambda: any("9p.conn.close" in line for line in served.audit_lines))
    assert served.audit_lines[0].startswith("audit 9p.conn.open conn_id=1 peer=127.0.0.1:")
    assert served.audit_lines[-1] == "audit 9p.conn.close conn_id=1 reason=eof"


def test_framing_loss_closes_connection_with_reason(served):
    sock = socket.create_connection(("127.0.0.1", served.listener.port), timeout=10)
    sock.sendall(b"\x03\x00\x00\x00")
    assert sock.recv(100) == b""                                  # closed, no reply
    wait_for(lambda: any("reason=framing" in line for line in served.audit_lines))


def test_frames_before_a_framing_loss_are_answered_before_the_close(served):
    """Issue 12 hardening 2: a valid frame and a size field < 7 in one read: the Tversion still runs
    and its Rversion is sent, then the connection closes with reason=framing."""
    from nine_door import codec

    sock = socket.create_connection(("127.0.0.1", served.listener.port), timeout=10)
    sock.sendall(codec.encode(m.Tversion(m.NOTAG, 8192, "9P2000.L")) + b"\x03\x00\x00\x00")
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    reply = codec.decode_reply(data)
    assert isinstance(reply, m.Rversion) and reply.msize == 8192
    wait_for(lambda: any("reason=framing" in line for line in served.audit_lines))


def test_connection_cap_is_64(served):
    socks = [socket.create_connection(("127.0.0.1", served.listener.port), timeout=10) for _ in range(64)]
    wait_for(lambda: len(served.listener.conns) == 64)
    extra = socket.create_connection(("127.0.0.1", served.listener.port), timeout=10)
    assert extra.recv(10) == b""                                  # closed immediately
    for s in socks + [extra]:
        s.close()


# -- p9fs (PyPI) ------------------------------------------------------------------------------
def test_p9fs_client(served):
    p9fs = pytest.importorskip("p9fs")
    from py9p import py9p

    fs = p9fs.P9FileSystem("127.0.0.1", served.listener.port, "queen", aname=QUEEN_TICKET,
                           version="9P2000.L", skip_instance_cache=True)
    # p9fs paths are relative to the attach root ("/" would become a wname containing "/")
    assert fs.ls("", detail=False) == ["log/", "proc/", "queen/", "worker/"]
    assert fs.cat("proc/boot").startswith(b"Cohesix boot: root-task online\n")
    assert fs.info("proc/boot")["size"] == len(fs.cat("proc/boot"))
    client = fs.client
    client._walk(client.ROOT, 20, ["queen", "ctl"])
    client._lopen(20, os.O_WRONLY | os.O_APPEND)
    data = b'{"spawn":"heartbeat","ticks":5}'
    assert client._write(20, 0, data).count == len(data)
    client._clunk(20)
    assert fs.ls("worker", detail=False) == ["worker/worker-1/"]
    client._walk(client.ROOT, 21, ["proc", "boot"])
    with pytest.raises(py9p.RpcError) as info:
        client._lopen(21, os.O_WRONLY)
    assert info.value.args[0] == EACCES
    with pytest.raises(py9p.RpcError) as info:
        client._walk(client.ROOT, 22, [".."])
    assert info.value.args[0] == EINVAL
    with pytest.raises(py9p.RpcError) as info:
        client._walk(client.ROOT, 22, ["proc"] * 9)
    assert info.value.args[0] == EINVAL


def test_p9fs_without_ticket_is_refused(served):
    p9fs = pytest.importorskip("p9fs")
    from py9p import py9p

    with pytest.raises(py9p.RpcError) as info:
        p9fs.P9FileSystem("127.0.0.1", served.listener.port, "queen", version="9P2000.L",
                          skip_instance_cache=True)
    assert info.value.args[0] == EACCES
    assert "9p attach denied origin=9p:127.0.0.1 uname=queen errno=13" in served.door.log_lines()


# -- diod's tools (Debian) ----------------------------------------------------------------------
def diod(sd: ServedDoor, tool: str, *args: str, aname: str = QUEEN_TICKET) -> subprocess.CompletedProcess:
    return subprocess.run([_tool(tool), "-s", f"127.0.0.1:{sd.listener.port}", "-a", aname, *args],
                          capture_output=True, text=True, timeout=30)


@pytest.mark.skipif(not DIOD_TOOLS, reason="diod tools not installed")
def test_diod_tools(served):
    listing = diod(served, "diodls", "/")
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout.split() == ["log", "proc", "queen", "worker"]
    long = diod(served, "diodls", "-l", "/proc")
    assert long.returncode == 0 and "boot" in long.stdout and long.stdout.startswith("-r--r--r--")
    cat = diod(served, "diodcat", "/proc/boot")
    assert cat.returncode == 0 and cat.stdout.startswith("Cohesix boot: root-task online\n")
    ctl = diod(served, "diodcat", "/queen/ctl")                     # write-only for the queen
    assert ctl.returncode != 0 and "Permission denied" in ctl.stderr
    dotdot = diod(served, "diodls", "/proc/..")
    assert dotdot.returncode != 0 and "Invalid argument" in dotdot.stderr
    deep = diod(served, "diodls", "/a/b/c/d/e/f/g/h/i")
    assert deep.returncode != 0 and "Invalid argument" in deep.stderr
    denied = diod(served, "diodls", "/", aname="not-a-ticket")
    assert denied.returncode != 0 and "Permission denied" in denied.stderr
    # diod sends an empty uname: the identity comes from the ticket (§4.2)
    assert "9p attach denied origin=9p:127.0.0.1 uname= errno=13" in served.door.log_lines()
