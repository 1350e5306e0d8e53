"""QEMU binds the host forwards itself (port 0) and the ports are read back over QMP (qemu/qmp.py).

Replaces ``free_port()`` (bind, close, hand the number to QEMU): between the close and QEMU's bind
any other process could take the port. Also: the guest ports come from the resolved manifest, and a
missing or corrupt manifest is an error that names the file and how to make it.
"""
from __future__ import annotations

import json
import shutil
import socket
import subprocess

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qemu.launch import GuestPorts, ManifestError
from qemu.qmp import HostForward, Qmp, QmpError, forwarded_ports, parse_usernet

# `info usernet` as QEMU 7.2 prints it (captured from this project's QEMU, connection rows added)
USERNET_7_2 = (
    "Hub -1 (n0):\r\n"
    "  Protocol[State]    FD  Source Address  Port   Dest. Address  Port RecvQ SendQ\r\n"
    "  TCP[HOST_FORWARD]   9       127.0.0.1 39883       10.0.2.15 31337     0     0\r\n"
    "  TCP[HOST_FORWARD]   8       127.0.0.1 39825       10.0.2.15   564     0     0\r\n"
    "  TCP[ESTABLISHED]   23       127.0.0.1 51234       10.0.2.15 31337     0     0\r\n"
    "  UDP[236 sec]       14       10.0.2.15 33233        10.0.2.3    53     0     0\r\n")


def test_usernet_rows_give_the_bound_host_ports():
    assert parse_usernet(USERNET_7_2) == [HostForward("127.0.0.1", 39883, "10.0.2.15", 31337),
                                          HostForward("127.0.0.1", 39825, "10.0.2.15", 564)]
    assert forwarded_ports(USERNET_7_2) == {31337: 39883, 564: 39825}


def test_a_guest_port_forwarded_twice_is_an_error_not_a_guess():
    row = "  TCP[HOST_FORWARD]   7       127.0.0.1 40000       10.0.2.15 31337     0     0\r\n"
    with pytest.raises(QmpError, match="31337"):
        forwarded_ports(USERNET_7_2 + row)


ports = st.integers(1, 65535)
addrs = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t)))


@given(st.lists(st.tuples(st.integers(-1, 999), addrs, ports, addrs, ports, st.integers(0, 99999),
                          st.integers(0, 99999), st.booleans())))
def test_usernet_parser_reads_exactly_the_forward_rows(rows):
    text = "Hub -1 (n0):\r\n  Protocol[State]    FD  Source Address  Port   Dest. Address  Port RecvQ SendQ\r\n"
    want = []
    for fd, src, sport, dst, dport, rq, sq, forward in rows:
        state = "TCP[HOST_FORWARD]" if forward else "TCP[SYN_SYNSENT]"
        text += f"  {state:<17} {fd:>3} {src:>15} {sport:>5} {dst:>15} {dport:>5} {rq:>5} {sq:>5}\r\n"
        if forward:
            want.append(HostForward(src, sport, dst, dport))
    assert parse_usernet(text) == want


@given(st.text())
def test_usernet_parser_never_raises_on_arbitrary_text(text):
    assert all(isinstance(f, HostForward) for f in parse_usernet(text))


# -- real QEMU, paused before any guest code (-S), so this costs well under a second ------------
@pytest.fixture
def paused_qemu(tmp_path):
    if shutil.which("qemu-system-aarch64") is None:
        pytest.skip("qemu-system-aarch64 not installed; run toolchain/setup.sh")
    sock = tmp_path / "qmp.sock"
    proc = subprocess.Popen(
        ["qemu-system-aarch64", "-M", "virt", "-S", "-display", "none", "-serial", "null", "-monitor", "none",
         "-qmp", f"unix:{sock},server=on,wait=off",
         "-netdev", "user,id=n0,hostfwd=tcp:127.0.0.1:0-:31337,hostfwd=tcp:127.0.0.1:0-:564",
         "-device", "virtio-net-device,netdev=n0"], stdin=subprocess.DEVNULL)
    qmp = Qmp.connect(sock, timeout=10, alive=lambda: proc.poll() is None)
    try:
        yield qmp
    finally:
        qmp.quit()
        qmp.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return True
    except OSError:
        return False


def test_qemu_binds_port_zero_forwards_and_qmp_reports_them(paused_qemu):
    ports = paused_qemu.host_forwards()
    assert set(ports) == {31337, 564}
    assert 0 not in ports.values() and len(set(ports.values())) == 2
    assert all(_listening(p) for p in ports.values())


def test_hostfwd_add_after_start_and_a_busy_port_is_refused(paused_qemu):
    added = paused_qemu.hostfwd_add("n0", 0, 8080)
    assert added > 0 and _listening(added)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(QmpError, match="Could not set up host forwarding"):
            paused_qemu.hostfwd_add("n0", busy.getsockname()[1], 8081)


# -- GuestPorts.from_manifest ---------------------------------------------------------------------
def test_guest_ports_come_from_the_manifest(tmp_path):
    path = tmp_path / "resolved.json"
    path.write_text(json.dumps({"console": {"tcp": {"port": 31400}},
                                "secure9p": {"tcp_listener": {"port": 600, "enable": True}}}))
    assert GuestPorts.from_manifest(path) == GuestPorts(console=31400, ninep=600, ninep_enabled=True)


@pytest.mark.parametrize("content", [None, "{not json", '{"console": {}}', "[]"],
                         ids=["missing", "corrupt", "no-ports", "not-an-object"])
def test_a_missing_or_corrupt_manifest_names_the_file_and_the_fix(tmp_path, content):
    path = tmp_path / "resolved.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ManifestError) as info:
        GuestPorts.from_manifest(path)
    assert str(path) in str(info.value) and "doit regen" in str(info.value)
