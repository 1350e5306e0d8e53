"""Truthful link state (issue 19 acceptance 3): QEMU's ``set_link`` is the substrate's PHY reset. While
the link is down /proc/boot's ``net`` line says ``link_up=false`` and it says ``true`` again once it is
back; each change is one ``net link_up=<bool>`` line in /log/queen.log."""
from __future__ import annotations

import time


def net_line(guest) -> str:
    lines = guest.command_lines("cat /proc/boot")
    return next(line for line in lines if line.startswith("net link_up="))


def wait_for_line(guest, predicate, timeout: float = 15.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        line = net_line(guest)
        if predicate(line) or time.monotonic() > deadline:
            return line
        time.sleep(0.5)


def test_link_down_and_up_are_reported_in_proc_boot_and_logged(guest_factory):
    guest = guest_factory().start()
    assert guest.command_lines("attach queen")[0] == "OK ATTACH role=queen"
    # virtio-net reports its carrier a moment after the interface is brought up (under TCG, up to ~1 s
    # after the console is ready); until then the kernel says the link is down, and so do we
    assert wait_for_line(guest, lambda line: "link_up=true" in line).startswith("net link_up=true ")
    time.sleep(0.5)
    before = [line for line in guest.command_lines("log") if line.startswith("net link_up=")]
    guest.qmp.execute("set_link", {"name": "n0", "up": False})
    assert wait_for_line(guest, lambda line: "link_up=false" in line).startswith("net link_up=false ")
    time.sleep(1.5)       # the state is sampled every 20 ticks (100 ms): a flap shorter than that may be missed
    guest.qmp.execute("set_link", {"name": "n0", "up": True})
    assert wait_for_line(guest, lambda line: "link_up=true" in line).startswith("net link_up=true ")
    time.sleep(1.5)
    log = guest.command_lines("log")
    changes = [line for line in log if line.startswith("net link_up=")]
    assert changes[len(before):] == ["net link_up=false", "net link_up=true"], log
