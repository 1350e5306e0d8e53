"""In-guest interoperability check: the Linux kernel's own 9P client (v9fs) mounts NineDoor.

Enabled by the boot parameter ``cohesix_v9fs_selftest=1`` (used by the QEMU interop test with an IR
that enables the 9P TCP listener). There is no shell in the image, so the root task forks a child that
does what ``mount -t 9p -o trans=tcp,…`` + ``ls`` + ``cat`` + ``echo >>`` would do, with plain
syscalls. The parent keeps serving the listener, so the kernel client talks to the real server.

The child reports *through the mount itself*: it appends ``v9fs …`` lines to ``/log/queen.log``, which
the test reads back with the console's ``log`` verb. A failing step is reported the same way
(``v9fs error step=<step> errno=<n>``), so the test sees exactly which step failed.
"""
from __future__ import annotations

import os

MOUNT_POINT = "/mnt/v9"
SPAWN_LINE = '{"spawn":"heartbeat","ticks":3}\n'


def mount_options(port: int, ticket: str, msize: int = 8192) -> str:
    """The SPEC §3.14 recommended options (queen identity, ticket as aname)."""
    return f"trans=tcp,port={port},version=9p2000.L,msize={msize},access=any,uname=queen,aname={ticket}"


def run_child(port: int, ticket: str) -> int:
    """Child side: mount, exercise, report, unmount. Returns the exit status."""
    from root_task import platform as substrate

    step = "modules"
    try:
        substrate.load_modules(groups={"9p"})
        step = "mount"
        substrate.mount("127.0.0.1", MOUNT_POINT, "9p", 0, mount_options(port, ticket))
        report = []
        step = "ls"
        entries = sorted(os.listdir(MOUNT_POINT))
        report.append(f"v9fs ls / entries={','.join(entries)}")
        step = "cat"
        with open(f"{MOUNT_POINT}/proc/boot", "rb") as fh:
            first = fh.read().split(b"\n", 1)[0].decode()
        report.append(f"v9fs cat /proc/boot first={first}")
        step = "append"
        fd = os.open(f"{MOUNT_POINT}/queen/ctl", os.O_WRONLY | os.O_APPEND)
        try:
            written = os.write(fd, SPAWN_LINE.encode())
        finally:
            os.close(fd)
        report.append(f"v9fs append /queen/ctl bytes={written}")
        step = "deny"
        try:
            os.open(f"{MOUNT_POINT}/proc/boot", os.O_WRONLY | os.O_APPEND)
            report.append("v9fs write /proc/boot allowed")
        except OSError as exc:
            report.append(f"v9fs write /proc/boot errno={exc.errno}")
        step = "telemetry"
        worker_dir = f"{MOUNT_POINT}/worker/worker-1"
        if "shard" in entries:                  # §8: the canonical directory, and the alias beside it
            worker_dir = _shard_dir(report, "worker-1")
        report.extend(_read_ring(worker_dir))
        step = "report"
        with open(f"{MOUNT_POINT}/log/queen.log", "a") as log:
            log.write("\n".join(report) + "\nv9fs done\n")
        step = "umount"
        substrate.libc().umount2(MOUNT_POINT.encode(), 0)
        return 0
    except OSError as exc:
        _report_failure(step, exc.errno or 0)
        return 1


def _shard_dir(report: list[str], worker_id: str) -> str:
    """Walk the canonical ``/shard/<label>/worker/<id>/telemetry`` (depth 5) and report whether the
    legacy alias, when present, reaches the same node (same inode, i.e. the same qid path)."""
    from nine_door.shards import shard_label

    width = len(os.listdir(f"{MOUNT_POINT}/shard")[0])
    path = f"/shard/{shard_label(worker_id, width)}/worker/{worker_id}"
    canonical = os.stat(f"{MOUNT_POINT}{path}/telemetry").st_ino
    alias = f"{MOUNT_POINT}/worker/{worker_id}/telemetry"
    same = "absent" if not os.path.isdir(f"{MOUNT_POINT}/worker") else str(os.stat(alias).st_ino == canonical).lower()
    report.append(f"v9fs shard path={path}/telemetry alias_same={same}")
    return MOUNT_POINT + path


def _read_ring(worker_dir: str, wait_s: float = 20.0) -> list[str]:
    """Read the spawned worker's ring and cursor through the mount, as a consumer would (§7.4): wait
    for its first record, decode what arrived (CBOR Frame v1 or text lines), commit the cursor past
    the first record, and read the cursor back."""
    import time

    deadline = time.monotonic() + wait_s
    data = b""
    while not data and time.monotonic() < deadline:
        fd = os.open(f"{worker_dir}/telemetry", os.O_RDONLY)
        try:
            data = os.read(fd, 8192)          # a stream: whole records from the open's position
        finally:
            os.close(fd)
        if not data:
            time.sleep(0.2)
    from nine_door import frame_v1

    frames, _, _ = frame_v1.split_frames(data)
    if frames:
        lines = [f"v9fs telemetry frames={len(frames)} first={frame_v1.describe(frames[0][0])}"]
    else:
        first_line = data.split(b"\n", 1)[0].decode(errors="replace")
        lines = [f"v9fs telemetry text first={first_line}"]
    with open(f"{worker_dir}/cursor", "rb") as fh:
        lines.append("v9fs cursor before " + fh.read().decode().strip())
    fd = os.open(f"{worker_dir}/cursor", os.O_WRONLY)
    try:
        os.write(fd, b"2\n")
    finally:
        os.close(fd)
    with open(f"{worker_dir}/cursor", "rb") as fh:
        lines.append("v9fs cursor after " + fh.read().decode().strip())
    return lines


def _report_failure(step: str, errno: int) -> None:
    # The mount may be what failed, so the failure goes to the kernel log and stderr instead.
    os.write(2, f"v9fs error step={step} errno={errno}\n".encode())


def start(port: int, ticket: str) -> int:
    """Fork the self-test child; returns its pid (the root task reaps it like any orphan)."""
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            status = run_child(port, ticket)
        finally:
            os._exit(status)
    return pid
