"""The M1 secondary user component: answers ``PING <n>`` with ``PONG <n>`` over its one channel.

It runs as a forked child of the root task (a fork costs milliseconds on the emulated CPU, an exec of
a fresh interpreter several hundred), keeps only its channel descriptor, and exits when the channel
closes.
"""
from __future__ import annotations

import os
import socket


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


def run_forked(channel: socket.socket, keep_fds: tuple[int, ...] = (0, 1, 2)) -> None:
    """Child side after fork: drop every descriptor but the channel (and stdio), then serve."""
    keep = set(keep_fds) | {channel.fileno()}
    for fd in range(3, 1024):
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass
    os._exit(serve(channel))
