"""GPU tree, spawn gpu, leases and their every end (SPEC §5.1, §5.3, §6.2, §6.3, §9.1, §9.2), in process."""
from __future__ import annotations

import pytest

from nine_door import errors as E
from nine_door import messages as m
from nine_door.gpu.nodes import gpu_rights
from nine_door.namespace import Identity
from test_gpu_harness import Gpus

GPU0_INFO = ('{"id":"GPU-0","name":"Mock 4090","memory_mb":24576,"sm_count":144,"driver_version":"555.0",'
             '"runtime_version":"12.4"}')
GPU1_INFO = ('{"id":"GPU-1","name":"Mock 4060","memory_mb":8192,"sm_count":64,"driver_version":"555.0",'
             '"runtime_version":"12.4"}')


def lease_line(state: str, worker: str = "worker-1", gpu: str = "GPU-0", mem: int = 4096, streams: int = 2,
               ttl: int = 120, priority: int = 0, reason: str | None = None) -> str:
    tail = f',"reason":"{reason}"' if reason else ""
    return (f'{{"schema":"gpu-lease/v1","state":"{state}","gpu_id":"{gpu}","worker_id":"{worker}",'
            f'"mem_mb":{mem},"streams":{streams},"ttl_s":{ttl},"priority":{priority}{tail}}}')


def test_mock_backend_tree_and_info_lines():
    g = Gpus("mock")
    assert "gpu" in g.q.listdir("/")
    assert g.q.listdir("/gpu") == ["GPU-0", "GPU-1"]
    assert g.q.listdir("/gpu/GPU-0") == ["ctl", "info", "job", "lease", "status"]
    assert g.read_lines("/gpu/GPU-0/info") == [GPU0_INFO]
    assert g.read_lines("/gpu/GPU-1/info") == [GPU1_INFO]
    assert g.read_lines("/gpu/GPU-0/lease") == [] and g.read_lines("/gpu/GPU-0/status") == []


def test_backend_none_has_no_tree_and_spawn_gpu_is_enoent():
    g = Gpus("none")
    assert "gpu" not in g.q.listdir("/")
    assert g.errno(g.spawn) == E.ENOENT
    assert g.door.provider_root("gpu") is None


def test_bridge_backend_starts_with_only_the_bridge_files():
    g = Gpus("bridge")
    assert g.q.listdir("/gpu") == ["bridge"]
    assert g.q.listdir("/gpu/bridge") == ["ctl", "jobs"]
    assert g.errno(g.spawn) == E.ENOENT


def test_spawn_gpu_side_effects_in_order():
    g = Gpus()
    assert g.spawn(ttl_s=120) == "worker-1"
    assert g.launcher.started[-1][1] == "worker-gpu"
    assert g.read_lines("/gpu/GPU-0/ctl") == ["LEASE worker-1 mem=4096 streams=2 priority=0"]
    assert g.read_lines("/gpu/GPU-0/lease") == [lease_line("ACTIVE")]
    assert g.log()[-1] == "spawned worker-1 gpu=GPU-0 ttl=120 streams=2"
    worker = g.door.workers["worker-1"]
    assert worker.spawn_budget.ttl_s == 120 and worker.spawn_budget.ticks is None
    assert worker.spawn_budget.ops == g.door.config.gpu_default_ops
    assert g.q.listdir("/worker/worker-1") == ["telemetry"]


def test_spawn_gpu_budget_ops_and_priority():
    g = Gpus()
    g.spawn(lease={"priority": 7}, budget={"ops": 99})
    assert g.door.workers["worker-1"].spawn_budget.ops == 99
    assert g.read_lines("/gpu/GPU-0/ctl") == ["LEASE worker-1 mem=4096 streams=2 priority=7"]


@pytest.mark.parametrize("kwargs,errno", [
    ({"gpu": "GPU-9"}, E.ENOENT),
    ({"mem_mb": 24577}, E.EINVAL),             # above GPU-0's memory
    ({"gpu": "GPU-1", "mem_mb": 8193}, E.EINVAL),
    ({"streams": 0}, E.EINVAL),
    ({"streams": 256}, E.EINVAL),
    ({"ttl_s": 0}, E.EINVAL),
    ({"lease": {"priority": 256}}, E.EINVAL),
    ({"budget": {"ttl_s": 5}}, E.EINVAL),      # budget may contain only ops
    ({"ticks": 3}, E.EINVAL),                  # ticks not allowed
])
def test_spawn_gpu_refusals_create_nothing(kwargs, errno):
    g = Gpus()
    with pytest.raises(Exception) as info:
        g.spawn(**kwargs)
    assert info.value.errno == errno
    assert g.door.workers == {} and g.launcher.started == []
    assert g.read_lines("/gpu/GPU-0/lease") == []


def test_a_leased_gpu_is_busy_and_the_other_is_free():
    g = Gpus()
    g.spawn()
    with pytest.raises(Exception) as info:
        g.spawn()
    assert info.value.errno == E.EBUSY
    assert g.spawn(gpu="GPU-1", mem_mb=8192) == "worker-2"


def test_disabled_role_and_worker_limit():
    g = Gpus(overrides={"roles.worker-gpu.enable": False})
    with pytest.raises(Exception) as info:
        g.spawn()
    assert info.value.errno == E.EPERM
    g = Gpus(overrides={"system.max_workers": 1})
    g.ctl({"spawn": "heartbeat", "ticks": 5})
    with pytest.raises(Exception) as info:
        g.spawn()
    assert info.value.errno == E.EBUSY
    assert g.read_lines("/gpu/GPU-0/lease") == []


def _released(g: Gpus, token: str, worker: str = "worker-1", ttl: int = 120) -> None:
    assert g.read_lines("/gpu/GPU-0/lease")[-1] == lease_line("RELEASED", worker=worker, ttl=ttl, reason=token)
    assert g.read_lines("/gpu/GPU-0/ctl")[-1] == f"RELEASE {worker} {token}"
    assert worker not in g.door.workers
    assert "worker-1" not in g.q.listdir("/worker")


def test_kill_ends_the_lease_killed_by_queen():
    g = Gpus()
    g.spawn()
    g.ctl({"kill": "worker-1"})
    _released(g, "killed-by-queen")
    assert g.log()[-3:] == ["killed worker-1", "gpu lease released gpu=GPU-0 worker=worker-1 reason=killed-by-queen",
                            "revoked worker-1: killed by queen"]
    assert g.launcher.stopped == ["worker-1"]
    assert g.spawn() == "worker-2"          # the GPU is free again; ids are never reused


def test_ttl_ends_the_lease_lease_expired():
    g = Gpus()
    g.spawn(ttl_s=10)
    g.clock.advance(9.9)
    g.door.on_tick()
    assert "worker-1" in g.door.workers
    g.clock.advance(0.2)
    g.door.on_tick()
    _released(g, "lease-expired", ttl=10)
    assert g.log()[-2:] == ["gpu lease released gpu=GPU-0 worker=worker-1 reason=lease-expired",
                            "revoked worker-1: lease expired"]


def test_the_first_request_after_the_deadline_ends_the_lease_too():
    g = Gpus()
    g.spawn(ttl_s=10)
    w = g.worker("worker-1")
    g.clock.advance(11)
    assert g.errno(w.listdir, "/gpu") == E.ESTALE
    _released(g, "lease-expired", ttl=10)
    assert g.log()[-1] == "revoked worker-1: lease expired"


def test_release_ctl_ends_the_lease_released_by_queen():
    g = Gpus()
    g.spawn()
    assert g.q.append("/gpu/GPU-0/ctl", b"RELEASE\n") == 8
    _released(g, "released-by-queen")
    assert g.log()[-2:] == ["gpu lease released gpu=GPU-0 worker=worker-1 reason=released-by-queen",
                            "revoked worker-1: lease released"]
    assert g.errno(g.q.append, "/gpu/GPU-0/ctl", b"RELEASE") == E.ENOENT


def test_budget_revocation_ends_the_lease_worker_revoked():
    g = Gpus()
    g.spawn(budget={"ops": 3})
    w = g.worker("worker-1")
    with pytest.raises(Exception):
        for _ in range(10):
            w.listdir("/gpu")
    _released(g, "worker-revoked")
    assert g.log()[-2:] == ["gpu lease released gpu=GPU-0 worker=worker-1 reason=worker-revoked",
                            "revoked worker-1: operation budget exhausted"]


def test_priority_changes_the_lease_and_appends_lines():
    g = Gpus()
    g.spawn()
    assert g.q.append("/gpu/GPU-0/ctl", b"PRIORITY 9\n") == 11
    assert g.read_lines("/gpu/GPU-0/ctl")[-1] == "PRIORITY worker-1 9"
    assert g.read_lines("/gpu/GPU-0/lease") == [lease_line("ACTIVE"), lease_line("ACTIVE", priority=9)]


@pytest.mark.parametrize("text", [b"PRIORITY 256", b"PRIORITY -1", b"PRIORITY x", b"PRIORITY", b"PRIORITY 1 2",
                                  b"priority 3", b"RELEASE now", b"LEASE worker-1", b"\xff", b"{}"])
def test_ctl_text_errors_are_einval_and_change_nothing(text):
    g = Gpus()
    g.spawn()
    before = (g.read_lines("/gpu/GPU-0/ctl"), g.read_lines("/gpu/GPU-0/lease"))
    assert g.errno(g.q.append, "/gpu/GPU-0/ctl", text) == E.EINVAL
    assert (g.read_lines("/gpu/GPU-0/ctl"), g.read_lines("/gpu/GPU-0/lease")) == before


def test_ctl_without_an_active_lease_is_enoent():
    g = Gpus()
    assert g.errno(g.q.append, "/gpu/GPU-0/ctl", b"PRIORITY 3") == E.ENOENT
    assert g.errno(g.q.append, "/gpu/GPU-0/ctl", b"RELEASE") == E.ENOENT


def test_ctl_second_line_failure_is_a_short_write():
    g = Gpus()
    g.spawn()
    assert g.q.append("/gpu/GPU-0/ctl", b"PRIORITY 4\nPRIORITY 999\n") == 11
    assert g.read_lines("/gpu/GPU-0/ctl")[-1] == "PRIORITY worker-1 4"


def test_access_matrix_rows_for_gpu_workers():
    g = Gpus()
    g.spawn()
    g.spawn(gpu="GPU-1", mem_mb=10)
    g.ctl({"spawn": "heartbeat", "ticks": 5})
    w1, w2, hb = g.worker("worker-1"), g.worker("worker-2"), g.worker("worker-3")
    assert w1.listdir("/gpu") == ["GPU-0"] and w2.listdir("/gpu") == ["GPU-1"]
    assert g.read_lines("/gpu/GPU-0/info", w1) == [GPU0_INFO]
    assert g.read_lines("/gpu/GPU-0/lease", w1) == [lease_line("ACTIVE")]
    assert g.read_lines("/gpu/GPU-0/ctl", w1) == ["LEASE worker-1 mem=4096 streams=2 priority=0"]
    assert g.errno(w1.open, "/gpu/GPU-0/ctl", m.O_WRONLY) == E.EACCES        # ctl: R for the holder
    assert g.errno(w1.open, "/gpu/GPU-0/job", m.O_RDONLY) == E.EACCES        # job: W only
    gpu_dir = w1.walk(w1.root, ["gpu"])       # one name per walk: a later name's failure is a short Rwalk
    assert g.errno(w1.walk, gpu_dir, ["GPU-1"]) == E.EACCES                  # another worker's GPU
    assert g.errno(hb.listdir, "/gpu") == E.EACCES                            # heartbeat: no /gpu
    assert g.errno(g.q.open, "/gpu/GPU-0/job", m.O_RDONLY) == E.EACCES       # queen: job is W only


def test_walks_after_the_lease_end_are_eacces():
    g = Gpus()
    g.spawn()
    info = g.door.ns.lookup_global(("gpu", "GPU-0", "info"))
    root = g.door.ns.lookup_global(("gpu",))
    ident = Identity("worker-gpu", "worker-1")
    assert gpu_rights(info, ident).read and gpu_rights(root, ident).read
    g.q.append("/gpu/GPU-0/ctl", b"RELEASE")
    assert not gpu_rights(info, ident).reach and not gpu_rights(root, ident).reach
    # a new holder of GPU-0 gets the rights, the old identity does not
    g.spawn()
    assert gpu_rights(info, Identity("worker-gpu", "worker-2")).read and not gpu_rights(info, ident).reach


def test_the_workers_open_gpu_fids_are_estale_after_the_lease_end():
    g = Gpus()
    g.spawn()
    w = g.worker("worker-1")
    job = w.open("/gpu/GPU-0/job", m.O_WRONLY)
    lease = w.open("/gpu/GPU-0/lease", m.O_RDONLY)
    g.q.append("/gpu/GPU-0/ctl", b"RELEASE")
    assert g.errno(w.write, job, 0, b"{}") == E.ESTALE
    assert g.errno(w.read, lease, 0, 100) == E.ESTALE


def test_handle_guard_alone_gives_estale():
    """Without revocation (the session object still live), the open handle itself refuses (§9.2)."""
    from nine_door.gpu.nodes import LeaseHandle, _check_lease

    g = Gpus()
    g.spawn()
    node = g.door.ns.lookup_global(("gpu", "GPU-0", "job"))
    handle = LeaseHandle(b"", node.gpu.lease)

    class Caller:
        worker = object()
    _check_lease(node, handle, Caller())           # lease current: fine
    g.q.append("/gpu/GPU-0/ctl", b"RELEASE")
    with pytest.raises(Exception) as info:
        _check_lease(node, handle, Caller())
    assert info.value.errno == E.ESTALE


def test_gpu_provider_can_be_mounted():
    g = Gpus()
    g.ctl({"mount": {"service": "gpu", "at": "/log/g"}})
    assert g.q.listdir("/log/g") == ["GPU-0", "GPU-1"]
