"""PID 1 in the VM: prepare the Linux substrate, then run the root task (SPEC §1.2 "VM target").

``/init`` in the boot image is a short launcher that switches the cyclic GC off for the boot, puts
``/usr/lib/cohesix`` on ``sys.path`` and calls :func:`main`. Anything that escapes here powers the
machine off, so a crash ends the QEMU run instead of leaving a wedged guest.
"""
from __future__ import annotations

import gc
import os
import sys

GUEST_PYTHON = "/usr/bin/python3"
GUEST_LIBDIR = "/usr/lib/cohesix"


def _exit_after() -> float | None:
    value = os.environ.get("cohesix_exit_after")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        print(f"ignoring cohesix_exit_after={value!r}: not a number", flush=True)
        return None


def _memstat_s() -> float:
    try:
        return float(os.environ.get("cohesix_memstat") or 0)
    except ValueError:
        return 0.0


def main() -> int:
    from root_task import platform as substrate
    from root_task.boot import Platform, RootTask
    from root_task.config import RuntimeConfig

    try:
        substrate.mount_pseudo_filesystems()
        config = RuntimeConfig.from_bootstrap()
        wants_net = config.console_tcp_enabled or config.ninep_tcp_enabled
        if wants_net:
            substrate.load_modules(groups={"net"})
            substrate.configure_interface("eth0")
        platform = Platform(
            bind_addr="0.0.0.0", console_port=config.console_tcp_port, ninep_port=config.ninep_tcp_port,
            ninep_always=False, serial_in=0, serial_out=1, python=GUEST_PYTHON, pythonpath=GUEST_LIBDIR,
            isolate_workers=os.getuid() == 0,
            net_info=(lambda: {"link_up": substrate.link_up("eth0"), **substrate.net_counters("eth0")})
            if wants_net else None,
            power_off=substrate.power_off,
            v9fs_selftest=os.environ.get("cohesix_v9fs_selftest") == "1", memstat_s=_memstat_s())
        from root_task.tty import enter_console_mode

        enter_console_mode(0)  # /dev/console: the console does its own line editing and echo
        task = RootTask(config, platform, exit_after_s=_exit_after())
        task.boot()
        # /init switched the cyclic GC off for the boot (image/stage.py INIT_SOURCE): its passes over
        # the heap that the imports build cost ~7 M emulated instructions (~4 %) before ready, and
        # nothing boot leaves behind needs collecting earlier. From here on it runs as usual.
        gc.enable()
        task.pump.run()
        return task.exit_status
    except BaseException:  # noqa: BLE001 - PID 1 must never just die
        import traceback  # only on this path: it is costly to import on the emulated CPU

        traceback.print_exc()
        sys.stderr.flush()
        if os.getpid() == 1:
            substrate.power_off()
        raise


if __name__ == "__main__":
    sys.exit(main())
