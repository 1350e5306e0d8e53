"""Jobs (SPEC §9.3): validation of every field, the queue limit, status lines, fan-out, and the reference
arithmetic with the §9.3 vectors; a Hypothesis property for the job-line parser."""
from __future__ import annotations

import base64
import hashlib
import json
import struct
from array import array

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nine_door import errors as E
from nine_door import frame_v1
from nine_door.gpu import arith
from nine_door.gpu.lines import Job, parse_job_line
from nine_door.jsonline import JsonLineError
from test_gpu_harness import (SELFTEST_B64, SELFTEST_HASH, SELFTEST_RESULT, Gpus, job_line, job_obj,
                              matmul_vector)
from workers.worker_gpu import selftest_job_id, selftest_line


# -- reference arithmetic and the §9.3 vectors ----------------------------------------------------
def test_selftest_vector():
    payload = base64.b64decode(SELFTEST_B64)
    assert "sha256:" + hashlib.sha256(payload).hexdigest() == SELFTEST_HASH
    result = arith.execute("vadd", payload)
    assert list(array("f", result)) == [11.0, 22.0, 33.0, 44.0]
    assert hashlib.sha256(result).hexdigest() == SELFTEST_RESULT


def test_matmul_vector():
    payload = matmul_vector()
    assert hashlib.sha256(payload).hexdigest() == "b212db3df7334224f066e421a3226939efc2e53346fe2f2e555b50a5cf0c331d"
    result = arith.execute("matmul", payload)
    assert struct.unpack("<4f", result) == (19.0, 22.0, 43.0, 50.0)
    assert hashlib.sha256(result).hexdigest() == "52b8d99475b6e4e8072ba9d54090a02f7ffb4f46b7d29a383883a087414e9fa4"


def test_selftest_job_id_and_line():
    assert selftest_job_id("worker-1") == "job-" + hashlib.sha256(b"worker-1:selftest").hexdigest()[:16]
    job = parse_job_line(selftest_line("worker-3", 5).decode().strip())
    assert job.block == (5, 1, 1) and job.grid == (1, 1, 1) and job.kernel == "vadd"


def _f32(x: float) -> float:
    return struct.unpack("<f", struct.pack("<f", x))[0]


def test_matmul_rounds_every_product_and_sum_in_binary32_sequentially():
    """1e8 + 1 − 1e8 in binary32 sequential order is 0 (1 is lost when added to 1e8); a double accumulator
    would give 1. Products are rounded too: 16777217 is not a binary32 value."""
    payload = arith.matmul_payload(1, 3, 1, [1e8, 1.0, -1e8], [1.0, 1.0, 1.0])
    assert struct.unpack("<f", arith.execute("matmul", payload)) == (0.0,)
    payload = arith.matmul_payload(1, 1, 1, [4097.0], [4097.0])
    assert struct.unpack("<f", arith.execute("matmul", payload)) == (_f32(4097.0 * 4097.0),)
    assert _f32(4097.0 * 4097.0) != 4097.0 * 4097.0


def test_vadd_overflow_is_infinity_not_an_error():
    big = 3.0e38
    result = arith.execute("vadd", arith.vadd_payload([big], [big]))
    assert struct.unpack("<f", result) == (float("inf"),)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 4), st.integers(1, 4), st.integers(1, 4), st.data())
def test_matmul_equals_a_scalar_binary32_model(m, k, n, data):
    floats = st.floats(width=32, allow_nan=False, allow_infinity=False)
    a = data.draw(st.lists(floats, min_size=m * k, max_size=m * k))
    b = data.draw(st.lists(floats, min_size=k * n, max_size=k * n))
    expected = []
    for i in range(m):
        for j in range(n):
            acc = 0.0
            for p in range(k):
                acc = _f32_safe(acc + _f32_safe(a[i * k + p] * b[p * n + j]))
            expected.append(acc)
    got = array("f", arith.execute("matmul", arith.matmul_payload(m, k, n, a, b)))
    assert [struct.pack("<f", x) for x in got] == [struct.pack("<f", x) for x in array("f", expected)]


def _f32_safe(x: float) -> float:
    return array("f", [x])[0]


@pytest.mark.parametrize("kernel,payload", [
    ("vadd", b""), ("vadd", b"\0" * 4), ("vadd", b"\0" * 12),
    ("matmul", b"\0" * 11), ("matmul", struct.pack("<3I", 0, 1, 1) + b"\0" * 8),
    ("matmul", struct.pack("<3I", 1, 1, 1) + b"\0" * 4), ("matmul", struct.pack("<3I", 1, 1, 1) + b"\0" * 12),
])
def test_layout_errors(kernel, payload):
    with pytest.raises(arith.LayoutError):
        arith.parse(kernel, payload)


# -- submission through /gpu/<G>/job ----------------------------------------------------------------
def test_mock_job_status_lines_and_text_fan_out():
    g = Gpus()
    g.spawn()
    line = job_line(job="j1")
    assert g.submit(line + "\n") == len(line) + 1
    status = [json.loads(x) for x in g.read_lines("/gpu/GPU-0/status")]
    assert status == [{"job": "j1", "state": "QUEUED", "detail": "accepted"},
                      {"job": "j1", "state": "RUNNING", "detail": "scheduled"},
                      {"job": "j1", "state": "OK", "detail": "completed", "result_sha256": SELFTEST_RESULT}]
    assert g.read_lines("/gpu/GPU-0/status")[2] == \
        f'{{"job":"j1","state":"OK","detail":"completed","result_sha256":"{SELFTEST_RESULT}"}}'
    assert g.read_lines("/worker/worker-1/telemetry") == g.read_lines("/gpu/GPU-0/status")[1:]


def test_matmul_job_through_the_mock_backend():
    g = Gpus()
    g.spawn()
    g.submit(job_line(job="mm", kernel="matmul", payload=matmul_vector()))
    assert json.loads(g.read_lines("/gpu/GPU-0/status")[-1])["result_sha256"] == \
        "52b8d99475b6e4e8072ba9d54090a02f7ffb4f46b7d29a383883a087414e9fa4"


def test_job_without_payload_completes_without_a_result_hash():
    g = Gpus()
    g.spawn()
    obj = job_obj(job="np")
    del obj["payload_b64"]
    g.submit(json.dumps(obj))
    assert g.read_lines("/gpu/GPU-0/status")[-1] == '{"job":"np","state":"OK","detail":"completed"}'


def test_cbor_fan_out_is_a_kind_2_server_frame_with_seq_equal_to_its_rseq():
    g = Gpus(overrides={"root_task.schema": "1.2", "telemetry.frame_schema": "cbor_v1"})
    g.spawn()
    w = g.worker("worker-1")
    mine = frame_v1.encode(frame_v1.Frame(seq=1, ts=1, kind=0, payload=b"hello"))
    assert w.append("/worker/worker-1/telemetry", mine) == len(mine)
    g.submit(job_line(job="c1"))
    frames, _, error = frame_v1.split_frames(g.q.read_all("/worker/worker-1/telemetry"))
    assert error is None
    assert [(f.seq, f.kind) for f, _ in frames] == [(1, 0), (2, 2), (3, 2)]
    assert [f.payload.decode() for f, _ in frames[1:]] == g.read_lines("/gpu/GPU-0/status")[1:]
    assert frames[1][0].ts == g.clock.now_ms()
    # the worker's own seq is unchanged by server frames: its seq 2 is not a duplicate
    second = frame_v1.encode(frame_v1.Frame(seq=2, ts=2, kind=0, payload=b"again"))
    w.append("/worker/worker-1/telemetry", second)
    frames, _, _ = frame_v1.split_frames(g.q.read_all("/worker/worker-1/telemetry"))
    assert frames[-1][0].payload == b"again"


def test_fan_out_into_a_full_armed_ring_is_dropped_and_counted():
    g = Gpus(overrides={"root_task.schema": "1.2", "telemetry.ring_bytes_per_worker": 4096})
    g.spawn()
    g.q.append("/worker/worker-1/cursor", b"1")
    ring = g.door.workers["worker-1"].ring
    while ring.used + 31 <= ring.capacity:            # leaves < 31 bytes: no status line fits
        g.q.append("/worker/worker-1/telemetry", b"x" * 30 + b"\n")
    dropped = g.door.ingest.dropped
    g.submit(job_line(job="full"))
    assert g.door.ingest.dropped == dropped + 2       # RUNNING and OK did not fit; no short write
    assert json.loads(g.read_lines("/gpu/GPU-0/status")[-1])["state"] == "OK"


def test_queen_and_worker_may_submit_while_the_lease_is_active():
    g = Gpus()
    g.spawn()
    w = g.worker("worker-1")
    assert g.submit(job_line(job="by-worker"), client=w) > 0
    assert g.submit(job_line(job="by-queen")) > 0
    assert len(g.read_lines("/worker/worker-1/telemetry")) == 4


def test_job_without_an_active_lease_is_eacces_and_nothing_is_queued():
    g = Gpus()
    assert g.errno(g.submit, job_line()) == E.EACCES
    g.spawn()
    g.q.append("/gpu/GPU-0/ctl", b"RELEASE")
    assert g.errno(g.submit, job_line()) == E.EACCES
    assert g.read_lines("/gpu/GPU-0/status") == []


def _bad(**changes):
    obj = job_obj()
    obj.update(changes)
    return {k: v for k, v in obj.items() if v is not None}


GOOD_HASH = job_obj()["bytes_hash"]
BAD_JOBS = {
    "not json": "{",
    "array": "[]",
    "unknown key": json.dumps(_bad(extra=1)),
    "duplicate key": '{"job":"a","job":"b"}',
    "missing job": json.dumps(_bad(job=None)),
    "missing kernel": json.dumps(_bad(kernel=None)),
    "missing grid": json.dumps(_bad(grid=None)),
    "missing block": json.dumps(_bad(block=None)),
    "missing bytes_hash": json.dumps(_bad(bytes_hash=None)),
    "empty job id": json.dumps(_bad(job="")),
    "job id 33 chars": json.dumps(_bad(job="j" * 33)),
    "job id bad char": json.dumps(_bad(job="a/b")),
    "job id not string": json.dumps(_bad(job=7)),
    "kernel unknown": json.dumps(_bad(kernel="conv")),
    "kernel case": json.dumps(_bad(kernel="VADD")),
    "grid 2 entries": json.dumps(_bad(grid=[1, 1])),
    "grid 4 entries": json.dumps(_bad(grid=[1, 1, 1, 1])),
    "grid zero": json.dumps(_bad(grid=[0, 1, 1])),
    "grid too big": json.dumps(_bad(grid=[2**32, 1, 1])),
    "grid bool": json.dumps(_bad(grid=[True, 1, 1])),
    "grid float": '{"job":"a","kernel":"vadd","grid":[1.0,1,1],"block":[1,1,1],"bytes_hash":"%s"}' % GOOD_HASH,
    "grid not array": json.dumps(_bad(grid="1,1,1")),
    "block negative": json.dumps(_bad(block=[1, -1, 1])),
    "hash prefix": json.dumps(_bad(bytes_hash=GOOD_HASH.replace("sha256:", "sha1:"))),
    "hash uppercase": json.dumps(_bad(bytes_hash="sha256:" + GOOD_HASH[7:].upper())),
    "hash short": json.dumps(_bad(bytes_hash=GOOD_HASH[:-1])),
    "hash mismatch": json.dumps(_bad(bytes_hash="sha256:" + "0" * 64)),
    "inputs not array": json.dumps(_bad(inputs="/a")),
    "inputs relative": json.dumps(_bad(inputs=["a/b"])),
    "inputs dotdot": json.dumps(_bad(inputs=["/a/../b"])),
    "inputs empty component": json.dumps(_bad(inputs=["/a//b"])),
    "inputs nine": json.dumps(_bad(inputs=["/a"] * 9)),
    "outputs not string": json.dumps(_bad(outputs=[1])),
    "timeout zero": json.dumps(_bad(timeout_ms=0)),
    "timeout too big": json.dumps(_bad(timeout_ms=600_001)),
    "timeout string": json.dumps(_bad(timeout_ms="5")),
    "payload not base64": json.dumps(_bad(payload_b64="!!!!")),
    "payload no padding": json.dumps(_bad(payload_b64=SELFTEST_B64.rstrip("="))),
    "payload not canonical": json.dumps(_bad(payload_b64="AB==", bytes_hash="sha256:" + hashlib.sha256(b"\0").hexdigest())),
    "payload empty": json.dumps(_bad(payload_b64="")),
    "vadd layout": json.dumps(job_obj(payload=b"\0" * 12)),
    "matmul layout": json.dumps(job_obj(kernel="matmul", payload=matmul_vector()[:-4])),
    "matmul zero dim": json.dumps(job_obj(kernel="matmul", payload=struct.pack("<3I", 0, 2, 2) + b"\0" * 16)),
    "kernel payload mismatch": json.dumps(job_obj(kernel="matmul")),
}


@pytest.mark.parametrize("name", sorted(BAD_JOBS))
def test_every_invalid_job_field_is_einval_and_nothing_is_queued(name):
    g = Gpus()
    g.spawn()
    assert g.errno(g.submit, BAD_JOBS[name]) == E.EINVAL
    assert g.read_lines("/gpu/GPU-0/status") == []
    assert g.read_lines("/worker/worker-1/telemetry") == []


def test_non_utf8_job_write_is_einval():
    g = Gpus()
    g.spawn()
    assert g.errno(g.submit, b"\xff\xfe") == E.EINVAL


def test_valid_optional_fields_are_accepted():
    g = Gpus()
    g.spawn()
    g.submit(job_line(job="opt", inputs=["/a/b", "/"], outputs=[], timeout_ms=600_000))
    assert json.loads(g.read_lines("/gpu/GPU-0/status")[-1])["state"] == "OK"


def test_a_retained_job_id_is_einval():
    g = Gpus()
    g.spawn()
    g.submit(job_line(job="same"))
    assert g.errno(g.submit, job_line(job="same")) == E.EINVAL
    assert len(g.read_lines("/gpu/GPU-0/status")) == 3


def test_second_line_failure_is_a_short_write_first_job_kept():
    g = Gpus()
    g.spawn()
    first = job_line(job="a") + "\n"
    assert g.submit(first + "{bad}\n") == len(first)
    assert len(g.read_lines("/gpu/GPU-0/status")) == 3


def test_the_seventeenth_unfinished_job_is_ebusy():
    g = Gpus("bridge")
    g.q.append("/gpu/bridge/ctl", b'{"register":{"id":"G","name":"n","memory_mb":100,"sm_count":1,'
                                  b'"driver_version":"1","runtime_version":"1.0"}}')
    g.spawn(gpu="G", mem_mb=100)
    for i in range(16):
        g.submit(job_line(job=f"q{i}"), gpu="G")
    assert g.errno(g.submit, job_line(job="q16"), "G") == E.EBUSY
    assert len(g.read_lines("/gpu/G/status")) == 16             # 16 QUEUED lines, nothing for q16
    # a finished job frees a slot
    g.q.append("/gpu/bridge/ctl", b'{"job_status":{"gpu":"G","job":"q0","state":"ERR","detail":"bridge-error"}}')
    assert g.submit(job_line(job="q16"), gpu="G") > 0


def test_lease_end_ends_queued_jobs_lease_ended():
    g = Gpus("bridge")
    g.q.append("/gpu/bridge/ctl", b'{"register":{"id":"G","name":"n","memory_mb":100,"sm_count":1,'
                                  b'"driver_version":"1","runtime_version":"1.0"}}')
    g.spawn(gpu="G", mem_mb=100)
    g.submit(job_line(job="a"), gpu="G")
    g.q.append("/gpu/bridge/ctl", b'{"job_status":{"gpu":"G","job":"a","state":"RUNNING","detail":"scheduled"}}')
    g.submit(job_line(job="b"), gpu="G")
    g.q.append("/gpu/G/ctl", b"RELEASE")
    ends = [json.loads(x) for x in g.read_lines("/gpu/G/status") if '"ERR"' in x]
    assert ends == [{"job": "a", "state": "ERR", "detail": "lease-ended"},
                    {"job": "b", "state": "ERR", "detail": "lease-ended"}]
    status = [json.loads(x)["state"] for x in g.read_lines("/gpu/G/status") if '"b"' in x]
    assert status == ["QUEUED", "RUNNING", "ERR"]               # every job's lines in §9.3 order
    assert g.q.read_all("/gpu/bridge/jobs") == b""               # ended jobs are not handed out


def test_a_running_bridge_job_times_out():
    g = Gpus("bridge")
    g.q.append("/gpu/bridge/ctl", b'{"register":{"id":"G","name":"n","memory_mb":100,"sm_count":1,'
                                  b'"driver_version":"1","runtime_version":"1.0"}}')
    g.spawn(gpu="G", mem_mb=100)
    g.submit(job_line(job="slow", timeout_ms=1000), gpu="G")
    g.q.append("/gpu/bridge/ctl", b'{"job_status":{"gpu":"G","job":"slow","state":"RUNNING","detail":"scheduled"}}')
    g.clock.advance(0.9)
    g.door.on_tick()
    assert json.loads(g.read_lines("/gpu/G/status")[-1])["state"] == "RUNNING"
    g.clock.advance(0.2)
    g.door.on_tick()
    assert g.read_lines("/gpu/G/status")[-1] == '{"job":"slow","state":"ERR","detail":"timeout"}'
    assert g.read_lines("/worker/worker-1/telemetry")[-1] == '{"job":"slow","state":"ERR","detail":"timeout"}'


# -- Hypothesis: the job-line parser --------------------------------------------------------------
_values = st.recursive(st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.text(max_size=12),
                       lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                       max_leaves=10)
_keys = st.sampled_from(["job", "kernel", "grid", "block", "bytes_hash", "inputs", "outputs", "timeout_ms",
                         "payload_b64", "other"])


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_keys, _values, max_size=9))
def test_job_parser_accepts_or_refuses_any_object(obj):
    try:
        job = parse_job_line(json.dumps(obj))
    except JsonLineError:
        return
    assert isinstance(job, Job)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_job_parser_on_arbitrary_text(raw):
    try:
        parse_job_line(raw.decode("utf-8", "replace"))
    except JsonLineError:
        pass


@settings(max_examples=150, deadline=None)
@given(st.lists(st.floats(width=32, allow_nan=False), min_size=1, max_size=6), st.data(),
       st.sampled_from(["j", "job-1", "A.b_c-9"]), st.integers(1, 600_000))
def test_valid_jobs_round_trip_through_the_parser(a, data, job_id, timeout_ms):
    b = data.draw(st.lists(st.floats(width=32, allow_nan=False), min_size=len(a), max_size=len(a)))
    payload = arith.vadd_payload(a, b)
    line = job_line(job=job_id, payload=payload, timeout_ms=timeout_ms)
    job = parse_job_line(line)
    assert (job.job_id, job.payload, job.timeout_ms) == (job_id, payload, timeout_ms)
    assert json.dumps(job.obj, separators=(",", ":")) == line        # the bridge sees keys as submitted


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["vadd", "matmul", "conv"]), st.binary(max_size=64))
def test_payload_decoder_accepts_exact_layouts_only(kernel, payload):
    try:
        parsed = arith.parse(kernel, payload)
    except arith.LayoutError:
        return
    if kernel == "vadd":
        assert len(payload) % 8 == 0 and len(parsed.a) == len(parsed.b) == len(payload) // 8
    else:
        assert kernel == "matmul" and len(payload) == 12 + 4 * (parsed.m * parsed.k + parsed.k * parsed.n)
        assert len(arith.execute(kernel, payload)) == 4 * parsed.m * parsed.n


def test_mock_refuses_to_hold_the_event_loop_for_a_huge_matmul():
    """700×1×700 fits one Twrite (5612 payload bytes, base64 inside the job line) but is 490 000
    multiply-adds: ERR timeout, not run; a job at the cap runs."""
    from nine_door.gpu.service import MOCK_MAX_MACS

    g = Gpus()
    g.spawn()
    big = arith.matmul_payload(700, 1, 700, [1.0] * 700, [1.0] * 700)
    assert arith.work("matmul", big) == 490_000 > MOCK_MAX_MACS
    line = job_line(job="huge", kernel="matmul", payload=big)
    assert g.submit(line) == len(line)
    assert g.read_lines("/gpu/GPU-0/status")[-2:] == ['{"job":"huge","state":"RUNNING","detail":"scheduled"}',
                                                      '{"job":"huge","state":"ERR","detail":"timeout"}']
    at_cap = arith.matmul_payload(512, 1, 512, [1.0] * 512, [1.0] * 512)
    assert arith.work("matmul", at_cap) == 512 * 512 <= MOCK_MAX_MACS
    g.submit(job_line(job="cap", kernel="matmul", payload=at_cap))
    assert json.loads(g.read_lines("/gpu/GPU-0/status")[-1])["state"] == "OK"
