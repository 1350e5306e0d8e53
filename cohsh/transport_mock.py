"""``--transport mock`` (SPEC §11.1): the host-mode system in-process, reached over a socket pair.

Why a socket pair and not direct calls: the client speaks exactly the framed console protocol of
SPEC §10.4 to the same session handler the TCP listener uses, so everything the mock exercises
(AUTH, acks, streams, limits) is the real path; only the socket's origin differs.
"""
from __future__ import annotations

import socket
from typing import Any, Callable, Protocol


class HostSystem(Protocol):
    """What ``root_task.host.start_in_process`` returns (docs/internals.md)."""

    def connect_console(self) -> socket.socket: ...

    @property
    def ninep_port(self) -> int: ...

    def stop(self) -> None: ...


Starter = Callable[[str], HostSystem]


def _default_starter(ir_path: str) -> HostSystem:
    from root_task.host import start_in_process  # imported late: only the mock transport needs it

    return start_in_process(ir_path)


class MockSystem:
    """Starts the in-process system on first connect and hands out console sockets."""

    def __init__(self, ir_path: str, starter: Starter | None = None) -> None:
        self._ir_path = ir_path
        self._starter = starter or _default_starter
        self._system: Any = None

    def connect(self) -> socket.socket:
        """A ``Connector``: one end of a fresh socket pair attached to a console session."""
        self._start()
        try:
            return self._system.connect_console()
        except OSError:
            raise
        except Exception as exc:
            raise ConnectionError(f"mock console unavailable: {exc}") from None

    def ninep_endpoint(self) -> tuple[str, int]:
        """Where the in-process system's 9P listener is (host mode always offers one, on an ephemeral
        loopback port): session pools (SPEC §11.7) connect there, so they exercise the same listener,
        sessions and ticket checks as against ``cohesix-host``."""
        self._start()
        port = getattr(self._system, "ninep_port", 0)
        if not port:
            raise ConnectionError("the mock system offers no 9P listener")
        return "127.0.0.1", port

    def _start(self) -> None:
        if self._system is None:
            try:
                self._system = self._starter(self._ir_path)
            except (ImportError, AttributeError) as exc:
                raise ConnectionError(f"mock transport unavailable: {exc}") from None
            except OSError:
                raise
            except Exception as exc:  # an invalid IR, for instance: report it as a failed connect
                raise ConnectionError(f"mock system failed to start: {exc}") from None

    def stop(self) -> None:
        if self._system is not None:
            system, self._system = self._system, None
            system.stop()
