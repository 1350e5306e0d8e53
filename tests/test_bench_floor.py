"""bench/floor_9p.py and bench_ninep's raw client: the benches' Python floor must answer what the benches
send in a form the project's client and the raw burst checker accept, or every floor ratio is void."""
from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

from bench_ninep import RawBurst, connect, floor_cmd, free_port, slice_ratio, wait_port  # noqa: E402
from nine_door import messages as m  # noqa: E402


@pytest.fixture
def floor(tmp_path):
    data = bytes(range(256)) * 40                  # 10 240 bytes
    path = tmp_path / "bytes"
    path.write_bytes(data)
    port = free_port()
    proc = subprocess.Popen(floor_cmd(port, str(path)), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, proc)
        yield port, data
    finally:
        proc.kill()
        proc.wait(5)


def test_the_floor_answers_the_benches_requests_to_the_project_client(floor):
    port, data = floor
    client = connect({"port": port, "uname": "floor", "aname": ""})
    fid = client.walk(client.root, ("proc", "boot"))
    assert client.getattr(fid).size == len(data)
    client.lopen(fid)
    assert client.read(fid, 100, 4096) == data[100:4196]
    assert client.read(fid, len(data) - 10, 4096) == data[-10:]
    assert client.write(fid, 0, b"x" * 300) == 300
    client.clunk(fid)
    client.close()


def test_raw_bursts_check_type_tag_and_size_against_the_floor(floor):
    port, data = floor
    client = connect({"port": port, "uname": "floor", "aname": ""})
    sock = client.transport.sock
    reads = [m.Tread(i + 1, 7, i * 1000, 1000) for i in range(8)]
    RawBurst(sock, reads, reply_size=11 + 1000).run()
    with pytest.raises(RuntimeError, match="expected 1010"):
        RawBurst(sock, reads, reply_size=11 + 999).run()     # a wrong size is refused, not counted
    client.close()
    other = socket.create_connection(("127.0.0.1", port))
    with pytest.raises(RuntimeError, match="reply type 7"):  # Rlerror (an unsupported Tstatfs) fails a burst
        RawBurst(other, [m.Tstatfs(1, 0)]).run()
    other.close()


def test_slice_ratio_pairs_slices_and_reports_their_spread():
    assert slice_ratio({"a": [2.0, 3.0, 8.0], "b": [1.0, 1.0, 2.0]}, "a", "b") == (3.0, 2.0, 4.0)
    assert slice_ratio({"a": [1.0]}, "a", "b") is None


def test_pipelined_headroom_compares_the_protocol_work_with_what_the_goal_leaves():
    """Only unmet multi-session pipelined goals get a line; the arithmetic is per request (3 per op):
    2× of diod's 100 000 ops/s allows 1e6 / 600 000 µs per request; the floor's 3 µs CPU per op is 1 µs
    per request."""
    from bench_ninep import pipelined_headroom

    def row(sessions, goal, nd_diod):
        servers = {"NineDoor": (150_000.0, 4.0), "diod": (100_000.0, 20.0), "floor": (300_000.0, 3.0)}
        return (("walk_p", "pipelined", sessions, goal), {"servers": servers, "nd_diod": (nd_diod, nd_diod, nd_diod)})

    rows = [row(1, 4.0, 1.5), row(4, 2.0, 2.1), row(16, 2.0, 1.5), row(64, None, 1.0)]
    lines = pipelined_headroom(rows, {"session_pipelined": 0.5})
    assert len(lines) == 1 and lines[0].startswith("16 sessions:")
    assert "allows 1.67 µs" in lines[0] and "takes 1.00 µs" in lines[0] and "leaves 0.67 µs" in lines[0]
    assert lines[0].endswith("within what is left.")
    assert pipelined_headroom(rows, {"session_pipelined": 0.9})[0].endswith("more than is left.")
