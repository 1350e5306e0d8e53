"""A small QMP client (QEMU Machine Protocol: JSON lines over a unix socket), stdlib only.

Why it exists: the harness used to pick host ports by binding port 0, closing the socket and handing
the number to QEMU (``free_port``), a race against every other process on the machine. Now QEMU is
told ``hostfwd=tcp:127.0.0.1:0-:<guest port>`` and binds the ports itself; slirp does not print the
ports it chose, but the human monitor's ``info usernet`` lists every host forward with its bound
source port, and :func:`forwarded_ports` reads them back. labgrid's QEMU driver drives forwards over
QMP the same way (``human-monitor-command`` with ``hostfwd_add``), which :meth:`Qmp.hostfwd_add`
offers for forwards added after start.
"""
from __future__ import annotations

import json
import re
import socket
import time
from dataclasses import dataclass
from pathlib import Path


class QmpError(Exception):
    """QEMU answered a command with an error, or the socket failed/closed."""


# One row of `info usernet` (QEMU 7.2 / libslirp 4.7), e.g.
#   TCP[HOST_FORWARD]  12       127.0.0.1 32901       10.0.2.15   564     0     0
_USERNET_ROW = re.compile(r"^\s*TCP\[HOST_FORWARD\]\s+-?\d+\s+(?P<src>\S+)\s+(?P<sport>\d+)\s+"
                          r"(?P<dst>\S+)\s+(?P<dport>\d+)\s+\d+\s+\d+\s*$")


@dataclass(frozen=True)
class HostForward:
    """A TCP host forward as slirp reports it: host address:port → guest address:port."""

    host_addr: str
    host_port: int
    guest_addr: str
    guest_port: int


def parse_usernet(text: str) -> list[HostForward]:
    """The TCP host forwards listed by ``info usernet``; other rows (connections, UDP) are skipped."""
    found = []
    for line in text.replace("\r", "").split("\n"):
        match = _USERNET_ROW.match(line)
        if match:
            found.append(HostForward(match["src"], int(match["sport"]), match["dst"], int(match["dport"])))
    return found


def forwarded_ports(text: str) -> dict[int, int]:
    """Guest port → bound host port, from ``info usernet``; a guest port forwarded twice is an error."""
    ports: dict[int, int] = {}
    for fwd in parse_usernet(text):
        if fwd.guest_port in ports:
            raise QmpError(f"guest port {fwd.guest_port} is forwarded twice in `info usernet`")
        ports[fwd.guest_port] = fwd.host_port
    return ports


class Qmp:
    """One QMP connection; events that arrive between commands are kept in :attr:`events`."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buf = b""
        self.events: list[dict] = []
        self.greeting = self._read()
        if "QMP" not in self.greeting:
            raise QmpError(f"not a QMP greeting: {self.greeting!r}")
        self.execute("qmp_capabilities")

    @classmethod
    def connect(cls, path: Path | str, timeout: float = 10.0, alive=None) -> "Qmp":
        """Connect to QEMU's ``-qmp unix:<path>,server=on,wait=off`` socket, retrying while QEMU starts.

        ``alive`` (optional callable) stops the retries early when QEMU has already exited.
        """
        deadline = time.monotonic() + timeout
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            try:
                sock.connect(str(path))
                return cls(sock)
            except (FileNotFoundError, ConnectionRefusedError):
                sock.close()
                if time.monotonic() > deadline or (alive is not None and not alive()):
                    raise QmpError(f"no QMP socket at {path} (QEMU not running?)") from None
                time.sleep(0.01)
            except BaseException:
                sock.close()
                raise

    def _read(self) -> dict:
        while b"\n" not in self._buf:
            try:
                chunk = self._sock.recv(65536)
            except OSError as exc:
                raise QmpError(f"QMP socket: {exc}") from None
            if not chunk:
                raise QmpError("QMP socket closed by QEMU")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        try:
            return json.loads(line)
        except ValueError:
            raise QmpError(f"QMP sent a line that is not JSON: {line[:200]!r}") from None

    def execute(self, command: str, arguments: dict | None = None):
        """Run one QMP command and return its ``return`` value."""
        request: dict = {"execute": command}
        if arguments:
            request["arguments"] = arguments
        try:
            self._sock.sendall(json.dumps(request).encode() + b"\n")
        except OSError as exc:
            raise QmpError(f"QMP socket: {exc}") from None
        while True:
            reply = self._read()
            if "event" in reply:
                self.events.append(reply)
            elif "error" in reply:
                raise QmpError(f"{command}: {reply['error'].get('desc', reply['error'])}")
            elif "return" in reply:
                return reply["return"]

    def hmp(self, command_line: str) -> str:
        """A human-monitor command (``info usernet``, ``hostfwd_add`` …); returns its text output."""
        return self.execute("human-monitor-command", {"command-line": command_line})

    def host_forwards(self) -> dict[int, int]:
        """Guest port → host port of every TCP host forward on the user-mode network."""
        return forwarded_ports(self.hmp("info usernet"))

    def hostfwd_add(self, netdev: str, host_port: int, guest_port: int, host_addr: str = "127.0.0.1") -> int:
        """Add a TCP forward after start (port 0: QEMU picks); returns the bound host port."""
        answer = self.hmp(f"hostfwd_add {netdev} tcp:{host_addr}:{host_port}-:{guest_port}")
        if answer.strip():  # success is silent; a refusal is one line of text
            raise QmpError(answer.strip())
        return self.host_forwards()[guest_port]

    def quit(self) -> None:
        """Ask QEMU to exit now (the answer may be lost when QEMU closes the socket first)."""
        try:
            self.execute("quit")
        except QmpError:
            pass

    def close(self) -> None:
        self._sock.close()
