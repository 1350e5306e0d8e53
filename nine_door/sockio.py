"""Non-blocking socket steps shared by the two TCP front ends on the event pump.

The 9P listener (``nine_door.tcp_listener``) and the TCP console (``root_task.console.tcp``) speak
different protocols but read and write their sockets the same way: one ``recv`` per readiness
callback, and an output queue drained as far as the socket takes it. Both map socket outcomes to the
same audit close reasons (``eof``, ``error``), so the mapping lives here once. It sits in
``nine_door`` because the root task may import NineDoor, not the other way round.
"""
from __future__ import annotations

import socket

RECV_BYTES = 65536


def recv_step(sock: socket.socket, size: int = RECV_BYTES) -> bytes | str | None:
    """One non-blocking read: the bytes, ``None`` if nothing is ready after all, or a close reason
    (``"eof"`` when the peer closed, ``"error"`` on a socket error)."""
    try:
        data = sock.recv(size)
    except (BlockingIOError, InterruptedError):
        return None
    except OSError:
        return "error"
    return data if data else "eof"


def drain(sock: socket.socket, out: bytearray) -> bool:
    """Send from the front of ``out`` until it is empty or the socket would block; the sent bytes are
    removed. Returns False on a socket error (the caller closes the connection)."""
    while out:
        try:
            sent = sock.send(out)
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            return False
        del out[:sent]
    return True


def update_interest(pump, conn, want_read: bool, want_write: bool, on_read, on_write) -> None:
    """Make the pump watch ``conn.sock`` for reading/writing exactly as wanted; ``conn.reading`` and
    ``conn.writing`` record what is registered (both front ends keep that state on their connection)."""
    if want_read != conn.reading:
        if want_read:
            pump.add_reader(conn.sock, on_read, source="net")
        else:
            pump.remove_reader(conn.sock)
        conn.reading = want_read
    if want_write != conn.writing:
        if want_write:
            pump.add_writer(conn.sock, on_write)
        else:
            pump.remove_writer(conn.sock)
        conn.writing = want_write
