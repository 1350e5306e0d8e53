"""The serial console as a cohsh transport: the QEMU guest's stdio driven through pexpect.

Why: the serial console is the physical console of the system (SPEC §10.3), and the same ``.coh``
regression pack must pass over it as over TCP. This client offers the same ``request``/``quit``
interface as :class:`cohsh.transport_tcp.ConsoleClient`, so :class:`cohsh.shell.Shell` and the script
runner work unchanged. Serial lines are delimited by the ``cohesix> `` prompt; the console's echo of
our input and unsolicited ``audit`` lines (SPEC §2.3) are not part of a reply.
"""
from __future__ import annotations

from cohsh.transport_tcp import Reply, TransportLost, is_ack, opens_stream

PROMPT = "cohesix> "


class SerialConsoleClient:
    """Speaks console lines over a started :class:`qemu.harness.QemuGuest` (or any pexpect child)."""

    def __init__(self, guest, timeout_s: float = 30.0) -> None:
        self.guest = guest
        self.timeout_s = timeout_s

    def connect(self) -> None:
        """The serial console is always there (SPEC §10.1: it starts AUTHENTICATED)."""

    def remember_attach(self, wire_line: str) -> None:
        """Nothing to replay: the serial console never drops its session."""

    def close(self) -> None:
        """The serial console never closes; ``quit`` only detaches."""

    def request(self, line: str, *, read_only: bool = False) -> Reply:
        try:
            lines = self.guest.command_lines(line, until=PROMPT, timeout=self.timeout_s)
        except Exception as exc:  # pexpect EOF/TIMEOUT: the guest is gone or wedged
            raise TransportLost(f"serial console: {type(exc).__name__}") from None
        return parse_reply([ln for ln in lines if not ln.startswith("audit ")])

    def quit(self) -> Reply | None:
        return self.request("quit")


def parse_reply(lines: list[str]) -> Reply:
    """Split serial output into lines before the ack, the ack, and streamed content up to ``END``."""
    pre: list[str] = []
    for index, line in enumerate(lines):
        if is_ack(line):
            content: list[str] = []
            if opens_stream(line):
                for item in lines[index + 1:]:
                    if item == "END":
                        break
                    content.append(item)
            return Reply(tuple(pre), line, tuple(content))
        pre.append(line)
    raise TransportLost("serial console: no acknowledgement before the prompt")
