#!/usr/bin/env python3
"""The Python floor for a 9P server: epoll, recv, a canned reply per request, send — and nothing else.

Why it exists: issue 20 asks for round-trip ratios against diod (C) and, where a goal cannot be reached in
Python, for the floor and how close NineDoor is to it. This server does the least any Python 9P server on
NineDoor's path must do — one ``epoll.poll``, one ``recv`` and one ``send`` per batch of frames, a
``struct`` header parse and a reply built from constants per frame — and none of the protocol: no
validation, no fid table, no namespace, no permissions (every walk succeeds, every fid names one file).
Benches run it beside NineDoor and diod with the same client, so ``floor ÷ diod`` says what ratio a Python
server could reach at best on this machine, and ``NineDoor ÷ floor`` how much of that NineDoor keeps.

It answers what the benches send: Tversion, Tattach, Twalk (one zero qid per name), Tgetattr (a regular
file of ``--file``'s size), Tlopen, Tread (the bytes of ``--file`` at the offset), Twrite (count = all),
Tclunk; anything else gets Rlerror EOPNOTSUPP. Not a test double: no test relies on it.

Usage: ``python3 bench/floor_9p.py --port P [--file PATH]`` (serves until killed).
"""
from __future__ import annotations

import argparse
import select
import socket
import struct

HDR = struct.Struct("<IBH")
U32 = struct.Struct("<I")
U16 = struct.Struct("<H")
READ = struct.Struct("<IQI")          # Tread: fid offset count
QID = bytes(13)
EOPNOTSUPP = 95


def reply(mtype: int, tag: int, frame: bytes, data: bytes) -> bytes:
    """One canned reply; only what a client checks (type, tag, counts, sizes) is filled in."""
    if mtype == 100:                                   # Tversion → Rversion, msize as asked
        version = b"9P2000.L"
        return HDR.pack(13 + len(version), 101, tag) + frame[7:11] + U16.pack(len(version)) + version
    if mtype == 104:                                   # Tattach → Rattach
        return HDR.pack(20, 105, tag) + QID
    if mtype == 110:                                   # Twalk → Rwalk, a qid per name
        names = U16.unpack_from(frame, 15)[0]
        return HDR.pack(9 + 13 * names, 111, tag) + U16.pack(names) + QID * names
    if mtype == 24:                                    # Tgetattr → Rgetattr of a regular file
        body = struct.pack("<Q13sIIIQQQQQ", 0x7FF, QID, 0o100644, 0, 0, 1, 0, len(data), 8192,
                           (len(data) + 511) // 512) + bytes(8 * 10)
        return HDR.pack(7 + len(body), 25, tag) + body
    if mtype == 12:                                    # Tlopen → Rlopen
        return HDR.pack(24, 13, tag) + QID + U32.pack(0)
    if mtype == 116:                                   # Tread → Rread of the file's bytes
        _fid, offset, count = READ.unpack_from(frame, 7)
        piece = data[offset:offset + count]
        return HDR.pack(11 + len(piece), 117, tag) + U32.pack(len(piece)) + piece
    if mtype == 118:                                   # Twrite → Rwrite, everything taken
        return HDR.pack(11, 119, tag) + frame[19:23]
    if mtype == 120:                                   # Tclunk → Rclunk
        return HDR.pack(7, 121, tag)
    return HDR.pack(11, 7, tag) + U32.pack(EOPNOTSUPP)


def serve(port: int, data: bytes) -> None:
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(128)
    listener.setblocking(False)
    poller = select.epoll()
    poller.register(listener.fileno(), select.EPOLLIN)
    conns: dict[int, list] = {}                        # fd → [socket, pending input, pending output]
    while True:
        for fd, mask in poller.poll():
            if fd == listener.fileno():
                sock, _ = listener.accept()
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                conns[sock.fileno()] = [sock, b"", b""]
                poller.register(sock.fileno(), select.EPOLLIN)
                continue
            conn = conns[fd]
            sock = conn[0]
            if mask & select.EPOLLOUT:
                sent = sock.send(conn[2])
                conn[2] = conn[2][sent:]
                if not conn[2]:
                    poller.modify(fd, select.EPOLLIN)
                continue
            try:
                chunk = sock.recv(65536)
            except OSError:
                chunk = b""
            if not chunk:
                poller.unregister(fd)
                sock.close()
                del conns[fd]
                continue
            buf = conn[1] + chunk if conn[1] else chunk
            out, pos = [], 0
            while len(buf) - pos >= 7:
                size, mtype, tag = HDR.unpack_from(buf, pos)
                if len(buf) - pos < size:
                    break
                out.append(reply(mtype, tag, buf[pos:pos + size], data))
                pos += size
            conn[1] = buf[pos:]
            if out:
                payload = b"".join(out)
                if conn[2]:
                    conn[2] += payload
                    continue
                sent = sock.send(payload)
                if sent < len(payload):
                    conn[2] = payload[sent:]
                    poller.modify(fd, select.EPOLLIN | select.EPOLLOUT)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--file", help="bytes served by every Tread (default: none)")
    args = parser.parse_args(argv)
    data = b""
    if args.file:
        with open(args.file, "rb") as f:
            data = f.read()
    serve(args.port, data)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
