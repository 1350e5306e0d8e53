"""The one place that knows how to start the guest (SPEC §2.2).

``scripts/qemu-run.sh`` is a thin wrapper around :func:`main`, the pexpect harness calls
:func:`qemu_command`, so the interactive run, the tests and the benchmarks boot the same machine.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_KERNEL = REPO_ROOT / "out" / "Image"
DEFAULT_INITRD = REPO_ROOT / "out" / "rootfs.cpio"
DEFAULT_MANIFEST = REPO_ROOT / "out" / "manifests" / "root_task_resolved.json"
# One source for the kernel command line, shared with the image builder (recorded in its manifest):
# quiet + loglevel keep kernel chatter off the console; panic=-1 with -no-reboot turns a PID 1 crash
# into a QEMU exit instead of a hung guest.
KERNEL_ARGS = (REPO_ROOT / "image" / "kernel_cmdline.txt").read_text().strip()
MEMORY_MB = 256
NETDEV = "n0"  # the user-mode netdev id (QMP hostfwd_add and filter-dump name it)


class ManifestError(Exception):
    """The resolved IR manifest is missing or unreadable; the message names the file and the fix."""


@dataclass(frozen=True)
class GuestPorts:
    """The guest-side ports come from the IR the image was built from."""

    console: int = 31337
    ninep: int = 564
    ninep_enabled: bool = False

    @classmethod
    def from_manifest(cls, path: Path | str = DEFAULT_MANIFEST) -> "GuestPorts":
        """Read the ports from a resolved manifest; a missing or corrupt one is an error, not defaults.

        Silent defaults used to forward the wrong guest port when the IR moved the console, and the
        boot then timed out far from the cause.
        """
        path = Path(path)
        fix = "run `doit regen` (writes it from configs/root_task.toml) or `doit build`"
        try:
            resolved = json.loads(path.read_text())
        except FileNotFoundError:
            raise ManifestError(f"{path}: resolved IR manifest not found; {fix}") from None
        except (OSError, ValueError) as exc:
            raise ManifestError(f"{path}: cannot read the resolved IR manifest ({exc}); {fix}") from None
        try:
            listener = resolved["secure9p"]["tcp_listener"]
            return cls(console=int(resolved["console"]["tcp"]["port"]), ninep=int(listener["port"]),
                       ninep_enabled=bool(listener["enable"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ManifestError(f"{path}: not a resolved IR manifest (no {exc} in the console/secure9p "
                                f"ports); {fix}") from None


@dataclass(frozen=True)
class NicTap:
    """Two unix sockets on the guest NIC's receive path (frames the user-mode network sends the guest).

    ``mirror``: QEMU writes a copy of every guest-bound frame there (``filter-mirror``); ``inject``: every
    frame a host process writes there is delivered to the guest NIC as if the network had sent it
    (``filter-redirector`` with ``indev``). Both are QEMU chardev servers (``wait=off``): with nobody
    connected QEMU drops the copies and injects nothing. The mirror comes first in the filter chain, so
    injected frames are not mirrored back. Wire format on both, QEMU's (net/filter-mirror.c, vnet headers
    off): a 4-byte big-endian length, then the Ethernet frame.
    """

    mirror: Path | str
    inject: Path | str

    def arguments(self) -> list[str]:
        # queue=tx: a netfilter's "tx" queue carries what the netdev (slirp) transmits, i.e. guest-bound
        # frames; a redirector on that queue hands its indev's frames on towards the guest NIC.
        return ["-chardev", f"socket,id=tapmirror,path={self.mirror},server=on,wait=off",
                "-chardev", f"socket,id=tapinject,path={self.inject},server=on,wait=off",
                "-object", f"filter-mirror,id=tapmirror0,netdev={NETDEV},queue=tx,outdev=tapmirror",
                "-object", f"filter-redirector,id=tapinject0,netdev={NETDEV},queue=tx,indev=tapinject"]


def find_qemu(explicit: str | None = None) -> str:
    candidate = explicit or os.environ.get("COHESIX_QEMU") or "qemu-system-aarch64"
    found = shutil.which(candidate)
    if not found:
        raise FileNotFoundError(f"{candidate} not found; run toolchain/setup.sh")
    return found


def free_port() -> int:
    """A port that was free a moment ago (bind, read, close): racy, so QEMU does not use it.

    Host-mode tests still use it for ``cohesix-host``; QEMU binds its forwards itself (port 0) and the
    harness reads the ports back over QMP (qemu/qmp.py).
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def qemu_command(kernel: Path | str = DEFAULT_KERNEL, initrd: Path | str = DEFAULT_INITRD,
                 console_port: int = 31337, ninep_port: int = 5640, net: str = "user",
                 exit_after: float | None = None, qemu: str | None = None,
                 guest: GuestPorts | None = None, memory_mb: int = MEMORY_MB,
                 extra_append: str = "", qmp_socket: Path | str | None = None,
                 pcap: Path | str | None = None, nic_tap: NicTap | None = None) -> list[str]:
    """The QEMU command line (SPEC §2.2); the only builder, used by qemu-run.sh, the harness and benches.

    A host port of 0 lets QEMU pick a free one (read back with ``qemu.qmp``); ``qmp_socket`` adds a
    QMP server on that unix socket; ``pcap`` records every frame on the guest NIC (``filter-dump``,
    guest-side addresses and ports) into that file. ``nic_tap`` opens the guest NIC's receive path to a
    host process (fault injection, qemu/faults): see :class:`NicTap`.
    """
    guest = guest or GuestPorts.from_manifest()
    append = KERNEL_ARGS
    if extra_append:
        append += " " + extra_append
    if exit_after is not None:
        append += f" cohesix_exit_after={exit_after:g}"
    cmd = [find_qemu(qemu), "-machine", "virt,gic-version=3", "-cpu", "cortex-a57", "-smp", "1",
           "-m", str(memory_mb), "-nographic", "-serial", "mon:stdio", "-no-reboot",
           "-kernel", str(kernel), "-initrd", str(initrd), "-append", append]
    if qmp_socket is not None:
        cmd += ["-qmp", f"unix:{qmp_socket},server=on,wait=off"]
    if net == "user":
        forwards = f"hostfwd=tcp:127.0.0.1:{console_port}-:{guest.console}"
        if guest.ninep_enabled:
            forwards += f",hostfwd=tcp:127.0.0.1:{ninep_port}-:{guest.ninep}"
        cmd += ["-netdev", f"user,id={NETDEV},{forwards}", "-device", f"virtio-net-device,netdev={NETDEV}"]
        if pcap is not None:
            cmd += ["-object", f"filter-dump,id=capture0,netdev={NETDEV},file={pcap}"]
        if nic_tap is not None:
            cmd += nic_tap.arguments()
    elif net != "none":
        raise ValueError(f"--net must be user or none, not {net!r}")
    elif pcap is not None:
        raise ValueError("--pcap needs --net user (there is no guest NIC to capture)")
    elif nic_tap is not None:
        raise ValueError("a NIC tap needs --net user (there is no guest NIC to tap)")
    return cmd


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="qemu-run.sh", description="Boot the Cohesix image under QEMU.")
    parser.add_argument("--kernel", default=str(DEFAULT_KERNEL))
    parser.add_argument("--initrd", default=str(DEFAULT_INITRD))
    parser.add_argument("--console-port", type=int, default=31337, help="host port (0: QEMU picks)")
    parser.add_argument("--9p-port", dest="ninep_port", type=int, default=5640, help="host port (0: QEMU picks)")
    parser.add_argument("--net", choices=("user", "none"), default="user")
    parser.add_argument("--exit-after", type=float, default=None)
    parser.add_argument("--qemu", default=None)
    parser.add_argument("--pcap", default=None, help="record the guest NIC's frames into this pcap file")
    parser.add_argument("--qmp", default=None, help="serve QMP on this unix socket path")
    parser.add_argument("--manifest", default=str(DEFAULT_MANIFEST),
                        help="resolved IR manifest the image was built from (its guest ports)")
    args = parser.parse_args(argv)
    for label, path in (("kernel", args.kernel), ("initrd", args.initrd)):
        if not Path(path).is_file():
            print(f"{label} not found: {path} (run `doit build`)", file=sys.stderr)
            return 1
    try:
        guest = GuestPorts.from_manifest(args.manifest)
        cmd = qemu_command(args.kernel, args.initrd, args.console_port, args.ninep_port, args.net,
                           args.exit_after, args.qemu, guest, qmp_socket=args.qmp, pcap=args.pcap)
    except (ManifestError, ValueError, FileNotFoundError) as exc:
        print(f"qemu-run.sh: {exc}", file=sys.stderr)
        return 1
    if args.pcap:
        Path(args.pcap).parent.mkdir(parents=True, exist_ok=True)
    os.execv(cmd[0], cmd)  # the script exits with QEMU's status


if __name__ == "__main__":
    sys.exit(main())
