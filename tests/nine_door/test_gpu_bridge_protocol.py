"""The bridge protocol on the server side (SPEC §9.4): /gpu/bridge/ctl and the consuming jobs stream."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nine_door import errors as E
from nine_door.gpu.lines import JobStatus, Register, Unregister, parse_bridge_line
from nine_door.jsonline import JsonLineError
from test_gpu_harness import SELFTEST_RESULT, Gpus, job_line

INFO = {"id": "GPU-7", "name": "Bridge 7", "memory_mb": 1000, "sm_count": 10, "driver_version": "550.1",
        "runtime_version": "12.2"}


def reg(info: dict | None = None, **changes) -> bytes:
    body = dict(info or INFO)
    body.update(changes)
    return json.dumps({"register": body}, separators=(",", ":")).encode()


def status(job: str, state: str, detail: str, gpu: str = "GPU-7", **extra) -> bytes:
    return json.dumps({"job_status": {"gpu": gpu, "job": job, "state": state, "detail": detail, **extra}}).encode()


@pytest.fixture
def g():
    gpus = Gpus("bridge")
    assert gpus.q.append("/gpu/bridge/ctl", reg()) == len(reg())
    return gpus


def test_register_creates_the_gpu_with_its_info_line(g):
    assert g.q.listdir("/gpu") == ["GPU-7", "bridge"]
    assert g.read_lines("/gpu/GPU-7/info") == [json.dumps(INFO, separators=(",", ":"))]


def test_reregistering_identical_info_is_a_no_op(g):
    g.spawn(gpu="GPU-7", mem_mb=10)
    assert g.q.append("/gpu/bridge/ctl", reg()) == len(reg())
    assert g.door.workers and g.read_lines("/gpu/GPU-7/lease")[-1].find('"ACTIVE"') > 0


def test_different_info_replaces_a_free_gpu_and_is_ebusy_for_a_leased_one(g):
    g.q.append("/gpu/bridge/ctl", reg(name="Renamed"))
    assert json.loads(g.read_lines("/gpu/GPU-7/info")[0])["name"] == "Renamed"
    g.spawn(gpu="GPU-7", mem_mb=10)
    assert g.errno(g.q.append, "/gpu/bridge/ctl", reg(name="Again")) == E.EBUSY
    assert json.loads(g.read_lines("/gpu/GPU-7/info")[0])["name"] == "Renamed"


@pytest.mark.parametrize("line", [
    reg(id="bridge"), reg(id="bad id"), reg(id="x" * 33), reg(memory_mb=0), reg(sm_count=-1), reg(name=""),
    reg(memory_mb="1"), json.dumps({"register": {**INFO, "extra": 1}}).encode(),
    json.dumps({"register": {k: v for k, v in INFO.items() if k != "sm_count"}}).encode(),
    b'{"register":{}}', b'{"register":[]}', b'{"unregister":""}', b'{"hello":1}', b'{}', b"not json",
    b'{"register":' + json.dumps(INFO).encode() + b',"unregister":"GPU-7"}',
])
def test_bad_bridge_lines_are_einval(g, line):
    assert g.errno(g.q.append, "/gpu/bridge/ctl", line) == E.EINVAL
    assert g.q.listdir("/gpu") == ["GPU-7", "bridge"]


def test_jobs_stream_hands_each_job_out_once_with_keys_as_submitted(g):
    g.spawn(gpu="GPU-7", mem_mb=10)
    line = job_line(job="s1")
    g.submit(line, gpu="GPU-7")
    fid = g.q.open("/gpu/bridge/jobs")
    data = g.q.read(fid, 0, 8000)
    assert data == f'{{"gpu":"GPU-7","worker":"worker-1","job":{line}}}\n'.encode()
    assert g.q.read(fid, 0, 8000) == b""                         # consumed
    g.submit(job_line(job="s2"), gpu="GPU-7")
    assert g.errno(g.q.read, fid, 0, 20) == E.EINVAL              # a line larger than count
    assert g.q.read(fid, 0, 8000).startswith(b'{"gpu":"GPU-7"')   # still there afterwards


def test_job_status_round_trip_and_fan_out(g):
    g.spawn(gpu="GPU-7", mem_mb=10)
    g.submit(job_line(job="r1"), gpu="GPU-7")
    g.q.append("/gpu/bridge/ctl", status("r1", "RUNNING", "scheduled"))
    g.q.append("/gpu/bridge/ctl", status("r1", "OK", "completed", result_sha256=SELFTEST_RESULT))
    assert [json.loads(x)["state"] for x in g.read_lines("/gpu/GPU-7/status")] == ["QUEUED", "RUNNING", "OK"]
    assert g.read_lines("/worker/worker-1/telemetry") == g.read_lines("/gpu/GPU-7/status")[1:]
    assert g.errno(g.q.append, "/gpu/bridge/ctl", status("r1", "OK", "completed")) == E.ENOENT   # finished


@pytest.mark.parametrize("line,errno", [
    (status("q1", "RUNNING", "running"), E.EINVAL),
    (status("q1", "OK", "done"), E.EINVAL),
    (status("q1", "ERR", "lease-ended"), E.EINVAL),              # the server's own detail
    (status("q1", "ERR", "oops"), E.EINVAL),
    (status("q1", "QUEUED", "accepted"), E.EINVAL),
    (status("q1", "ERR", "bridge-error", result_sha256="0" * 64), E.EINVAL),
    (status("q1", "OK", "completed", result_sha256="XYZ"), E.EINVAL),
    (status("nope", "RUNNING", "scheduled"), E.ENOENT),
    (status("q1", "RUNNING", "scheduled", gpu="GPU-8"), E.ENOENT),
])
def test_job_status_errors(g, line, errno):
    g.spawn(gpu="GPU-7", mem_mb=10)
    g.submit(job_line(job="q1"), gpu="GPU-7")
    before = g.read_lines("/gpu/GPU-7/status")
    assert g.errno(g.q.append, "/gpu/bridge/ctl", line) == errno
    assert g.read_lines("/gpu/GPU-7/status") == before


def test_running_twice_is_einval(g):
    g.spawn(gpu="GPU-7", mem_mb=10)
    g.submit(job_line(job="t"), gpu="GPU-7")
    g.q.append("/gpu/bridge/ctl", status("t", "RUNNING", "scheduled"))
    assert g.errno(g.q.append, "/gpu/bridge/ctl", status("t", "RUNNING", "scheduled")) == E.EINVAL


def test_unregister_ends_the_lease_bridge_disconnected(g):
    g.spawn(gpu="GPU-7", mem_mb=10)
    info_fid = g.q.open("/gpu/GPU-7/info")
    g.q.append("/gpu/bridge/ctl", b'{"unregister":"GPU-7"}')
    assert g.log()[-2:] == ["gpu lease released gpu=GPU-7 worker=worker-1 reason=bridge-disconnected",
                            "revoked worker-1: lease released"]
    assert g.q.listdir("/gpu") == ["bridge"]
    assert g.errno(g.q.read, info_fid, 0, 100) == E.ENOENT
    assert g.errno(g.q.append, "/gpu/bridge/ctl", b'{"unregister":"GPU-7"}') == E.ENOENT


def test_the_registering_session_ending_unregisters_its_gpus():
    g = Gpus("bridge")
    bridge = g.client()
    bridge.attach("queen")
    bridge.append("/gpu/bridge/ctl", reg() + b"\n" + reg(id="GPU-8"))
    g.spawn(gpu="GPU-8", mem_mb=10)
    g.submit(job_line(job="pending"), gpu="GPU-8")
    bridge.session.close()
    assert g.q.listdir("/gpu") == ["bridge"]
    assert "gpu lease released gpu=GPU-8 worker=worker-1 reason=bridge-disconnected" in g.log()
    assert g.log()[-1] == "revoked worker-1: lease released"


def test_only_the_queen_reaches_the_bridge_files(g):
    g.spawn(gpu="GPU-7", mem_mb=10)
    w = g.worker("worker-1")
    assert w.listdir("/gpu") == ["GPU-7"]
    gpu_dir = w.walk(w.root, ["gpu"])
    assert g.errno(w.walk, gpu_dir, ["bridge"]) == E.EACCES
    assert g.errno(g.q.append, "/gpu/bridge/jobs", b"x") == E.EACCES      # only the server appends


def test_a_job_whose_stream_line_would_not_fit_one_read_is_einval(g):
    """A job line that fits its Twrite but whose jobs-stream wrapper would exceed iounit (msize − 24)."""
    g.spawn(gpu="GPU-7", mem_mb=10)

    def line_of(size: int) -> str:
        base = json.loads(job_line(job="big"))
        base["inputs"] = ["/x"]
        pad = size - len(json.dumps(base, separators=(",", ":")))
        parts = [200] * (pad // 201) + [pad % 201 - 1] if pad % 201 else [200] * (pad // 201)
        base["inputs"] = ["/x" + "".join("/" + "b" * n for n in parts if n > 0)]
        return json.dumps(base, separators=(",", ":"))

    too_long = line_of(8160)
    assert len(too_long) == 8160                              # fits one Twrite (iounit 8168)
    assert g.errno(g.submit, too_long, "GPU-7") == E.EINVAL
    assert g.read_lines("/gpu/GPU-7/status") == []
    fits = line_of(8168 - 43 - len("big"))                  # the wrapper adds gpu and worker ids
    assert g.submit(fits, gpu="GPU-7") == len(fits)
    fid = g.q.open("/gpu/bridge/jobs")
    assert len(g.q.read(fid, 0, g.q.iounit)) <= 8168


# -- Hypothesis: the bridge-line and ctl parsers ----------------------------------------------------
_scalars = st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.text(max_size=10)
_objects = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=3)
                        | st.dictionaries(st.sampled_from(["id", "name", "memory_mb", "sm_count", "driver_version",
                                                           "runtime_version", "gpu", "job", "state", "detail",
                                                           "result_sha256", "x"]), inner, max_size=7),
                        max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["register", "unregister", "job_status", "other"]), _objects)
def test_bridge_parser_accepts_or_refuses_any_object(key, value):
    try:
        command = parse_bridge_line(json.dumps({key: value}))
    except JsonLineError:
        return
    assert isinstance(command, (Register, Unregister, JobStatus))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=40))
def test_gpu_ctl_on_arbitrary_bytes_is_a_spec_errno_or_applied(data):
    g = Gpus()
    g.spawn()
    try:
        count = g.q.append("/gpu/GPU-0/ctl", data)
    except Exception as exc:  # noqa: BLE001 - must be a refusal with a SPEC errno
        assert exc.errno in (E.EINVAL, E.ENOENT), exc
        return
    assert 0 <= count <= len(data)
