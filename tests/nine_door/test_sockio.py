"""nine_door.sockio: the non-blocking read/drain steps both TCP front ends use."""
from __future__ import annotations

import socket

from nine_door.sockio import drain, recv_step


def _pair():
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    return a, b


def test_recv_step_maps_outcomes_to_data_none_or_close_reason():
    a, b = _pair()
    with a, b:
        assert recv_step(a) is None              # nothing ready: not a close
        b.send(b"abc")
        assert recv_step(a) == b"abc"
        b.close()
        assert recv_step(a) == "eof"
    assert recv_step(a) == "error"               # a closed socket is an error, not an exception


def test_drain_sends_until_the_socket_would_block_and_keeps_the_rest():
    a, b = _pair()
    with a, b:
        out = bytearray(b"x" * (8 << 20))        # more than any socket buffer takes at once
        assert drain(a, out)
        assert 0 < len(out) < 8 << 20            # partly sent, the rest still queued, in order
        received = b""
        while True:
            try:
                received += b.recv(1 << 20)
            except BlockingIOError:
                break
        assert received == b"x" * ((8 << 20) - len(out))
        assert drain(a, bytearray())             # nothing to send is fine
    assert not drain(a, bytearray(b"late"))      # socket error: caller closes
