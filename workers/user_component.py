"""The M1 secondary user component: answers ``PING <n>`` with ``PONG <n>`` over its one channel.

It runs as a forked child of the root task (a fork costs milliseconds on the emulated CPU, an exec of
a fresh interpreter several hundred), keeps only its channel descriptor, and exits when the channel
closes.
"""
from __future__ import annotations

import os
import socket

MAX_FD = os.sysconf("SC_OPEN_MAX")


def serve(channel: socket.socket) -> int:
    while True:
        try:
            message = channel.recv(256)
        except InterruptedError:
            continue
        if not message:
            return 0
        verb, _, arg = message.decode("ascii", "replace").partition(" ")
        if verb == "PING":
            channel.send(f"PONG {arg}".encode("ascii"))


def run_forked(channel: socket.socket) -> None:
    """Child side after fork: drop every descriptor but stdio and the channel, then serve."""
    ch = channel.fileno()
    # Two close_range(2) calls, not a Python loop over every possible descriptor (that loop, with an
    # exception per already-closed fd, cost ~70 ms of emulated CPU before the first PING was read).
    os.closerange(3, ch)
    os.closerange(ch + 1, MAX_FD)
    os._exit(serve(channel))
