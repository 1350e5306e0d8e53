"""What PID 1 must do to the Linux substrate before the root task can run (DESIGN §3).

Linux is only a thin substrate here: we mount the pseudo filesystems, load the few virtio/9p modules
in dependency order (there is no modules.dep and no modprobe), bring eth0 up with the QEMU user-net
address, and power off cleanly. Everything uses syscalls via ctypes or ioctls via ``fcntl``, because
the image carries no userland besides CPython.
"""
from __future__ import annotations

import ctypes
import fcntl
import os
import socket
import struct

MODULES_ORDER_FILE = "/etc/cohesix/modules.order"
RB_POWER_OFF = 0x4321FEDC
SIOCSIFADDR = 0x8916
SIOCSIFNETMASK = 0x891C
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
IFF_RUNNING = 0x40

_libc = None


def libc() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def mount(source: str, target: str, fstype: str, flags: int = 0, data: str = "") -> None:
    os.makedirs(target, exist_ok=True)
    _check(libc().mount(source.encode(), target.encode(), fstype.encode(), flags,
                        data.encode() or None), f"mount {fstype} on {target}")


def mount_pseudo_filesystems() -> None:
    for source, target, fstype in (("proc", "/proc", "proc"), ("sysfs", "/sys", "sysfs"),
                                   ("devtmpfs", "/dev", "devtmpfs"), ("tmpfs", "/tmp", "tmpfs")):
        try:
            mount(source, target, fstype)
        except OSError as exc:
            if exc.errno != 16:  # EBUSY: already mounted (devtmpfs may be automounted)
                raise


def load_module(path: str, params: str = "") -> None:
    """finit_module(2); a module that is already loaded (EEXIST) is fine."""
    nr_finit_module = 273  # aarch64 syscall number
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        ret = libc().syscall(nr_finit_module, fd, params.encode(), 0)
        if ret != 0 and ctypes.get_errno() != 17:
            err = ctypes.get_errno()
            raise OSError(err, f"finit_module {path}: {os.strerror(err)}")
    finally:
        os.close(fd)


def load_modules(groups: set[str] | None = None, order_file: str = MODULES_ORDER_FILE) -> list[str]:
    """Load the image's modules in the recorded dependency order; returns the names loaded.

    ``modules.order`` (written by ``image/stage.py``) lists one absolute ``.ko`` path per line, each
    after its dependencies, and names the groups in comments: ``# net: a b`` (loaded at boot) and
    ``# 9p: c d`` (loaded on demand by the v9fs self-test).
    """
    loaded = []
    try:
        with open(order_file) as fh:
            lines = [line.strip() for line in fh if line.strip()]
    except FileNotFoundError:
        return loaded
    members: dict[str, set[str]] = {}
    for line in lines:
        head, sep, names = line.lstrip("# ").partition(":")
        if line.startswith("#") and sep and " " not in head:
            members[head] = set(names.split())
    wanted = None if groups is None else set().union(*(members.get(g, set()) for g in groups))
    for line in lines:
        if line.startswith("#"):
            continue
        name = os.path.basename(line).split(".ko")[0]
        if wanted is None or name in wanted:
            load_module(line)
            loaded.append(name)
    return loaded


def _ifreq(name: str, payload: bytes = b"") -> bytes:
    return struct.pack("16s", name.encode()) + payload.ljust(24, b"\0")


def configure_interface(name: str = "eth0", address: str = "10.0.2.15", netmask: str = "255.255.255.0") -> None:
    """ip addr add + ip link set up, by ioctl (QEMU user networking: guest 10.0.2.15/24)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        def sockaddr(ip: str) -> bytes:
            return struct.pack("<H2s4s8s", socket.AF_INET, b"\0\0", socket.inet_aton(ip), b"")

        for lo_or_eth, ip, mask in (("lo", "127.0.0.1", "255.0.0.0"), (name, address, netmask)):
            fcntl.ioctl(sock, SIOCSIFADDR, _ifreq(lo_or_eth, sockaddr(ip)))
            fcntl.ioctl(sock, SIOCSIFNETMASK, _ifreq(lo_or_eth, sockaddr(mask)))
            flags = struct.unpack_from("H", fcntl.ioctl(sock, SIOCGIFFLAGS, _ifreq(lo_or_eth)), 16)[0]
            fcntl.ioctl(sock, SIOCSIFFLAGS, _ifreq(lo_or_eth, struct.pack("H", flags | IFF_UP | IFF_RUNNING)))
    finally:
        sock.close()


def link_up(name: str = "eth0") -> bool:
    try:
        with open(f"/sys/class/net/{name}/operstate") as fh:
            return fh.read().strip() in ("up", "unknown")
    except OSError:
        return False


def net_counters(name: str = "eth0") -> dict[str, int]:
    out = {}
    for key, fname in (("rx_frames", "rx_packets"), ("tx_frames", "tx_packets"), ("tx_drops", "tx_dropped")):
        try:
            with open(f"/sys/class/net/{name}/statistics/{fname}") as fh:
                out[key] = int(fh.read().strip())
        except (OSError, ValueError):
            out[key] = 0
    return out


def power_off() -> None:
    """sync + reboot(RB_POWER_OFF): QEMU exits with status 0 (with -no-reboot)."""
    os.sync()
    libc().reboot(RB_POWER_OFF)
    os._exit(0)  # only reached if reboot() failed; PID 1 exiting panics (panic=-1 → QEMU exits)
