"""``--transport qemu`` (SPEC §11.1): boot the guest, then talk to its TCP console.

Why this is only a connector: once QEMU prints ``Cohesix console ready`` the guest's console is an
ordinary TCP endpoint forwarded to 127.0.0.1, so the TCP client is reused unchanged. The launch
itself belongs to the harness (``qemu.harness.QemuGuest``): it asks QEMU for any free host port
(``console_port=0``) and reads the bound one back over QMP; cohsh connects to that port and
guarantees the guest is stopped on exit.
"""
from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from cohsh.transport_tcp import tcp_connector


@dataclass(frozen=True)
class QemuOptions:
    """``None`` kernel/initrd: the harness's defaults (the build outputs)."""

    kernel: str | None = None
    initrd: str | None = None
    qemu_bin: str | None = None
    extra_args: tuple[str, ...] = field(default_factory=tuple)


def _default_guest_factory(**kwargs: Any) -> Any:
    from qemu.harness import QemuGuest  # imported late: only this transport needs QEMU

    return QemuGuest(**kwargs)


class QemuSystem:
    """Boots the guest on first connect; later connects (reconnects) reuse the running guest."""

    def __init__(self, options: QemuOptions, guest_factory: Callable[..., Any] | None = None) -> None:
        self._options = options
        self._factory = guest_factory or _default_guest_factory
        self._guest: Any = None
        self._tcp: Callable[[], socket.socket] | None = None
        self._draining = threading.Event()
        self._drain_thread: threading.Thread | None = None

    def _boot(self) -> None:
        kwargs: dict[str, Any] = {"console_port": 0}  # 0: QEMU binds a free port, no bind-close race
        for key in ("kernel", "initrd", "qemu_bin"):
            value = getattr(self._options, key)
            if value:
                kwargs[key] = value
        if self._options.extra_args:
            kwargs["extra_args"] = list(self._options.extra_args)
        try:
            guest = self._factory(**kwargs)
        except (ImportError, AttributeError) as exc:
            raise ConnectionError(f"qemu transport unavailable: {exc}") from None
        except TypeError as exc:  # e.g. a harness without extra QEMU argument support
            raise ConnectionError(f"qemu harness rejected the options: {exc}") from None
        try:
            guest.start()  # returns once the guest printed "Cohesix console ready"
        except OSError:
            guest.stop()
            raise
        except Exception as exc:
            guest.stop()
            raise ConnectionError(f"qemu guest failed to boot: {exc}") from None
        self._guest = guest
        self._tcp = tcp_connector("127.0.0.1", int(guest.console_port))
        self._start_drain(guest)

    def _start_drain(self, guest: Any) -> None:
        """Keep reading the guest's serial output so QEMU never blocks on a full pty.

        After boot cohsh talks only TCP, but the guest still prints audit lines on serial (SPEC
        §10.8); nobody else reads them, so this thread does (and discards them).
        """
        child = getattr(guest, "child", None)
        if child is None or not hasattr(child, "read_nonblocking"):
            return
        self._draining = threading.Event()

        def drain() -> None:
            while not self._draining.is_set():
                try:
                    child.read_nonblocking(4096, timeout=0.2)
                except Exception as exc:  # pexpect.TIMEOUT: keep going; EOF or anything else: stop
                    if type(exc).__name__ != "TIMEOUT":
                        return

        self._drain_thread = threading.Thread(target=drain, name="cohsh-qemu-serial", daemon=True)
        self._drain_thread.start()

    def connect(self) -> socket.socket:
        if self._guest is None:
            self._boot()
        assert self._tcp is not None
        return self._tcp()

    def stop(self) -> None:
        if self._drain_thread is not None:
            self._draining.set()
            self._drain_thread.join(timeout=5)
            self._drain_thread = None
        if self._guest is not None:
            guest, self._guest = self._guest, None
            guest.stop()
