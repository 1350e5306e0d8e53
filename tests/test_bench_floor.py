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
