"""The fault runs (issue 19): link reset, RX flood and corrupt frames against a booted guest.

One :class:`FaultRig` boots the guest from a test copy of the IR (9P TCP listener on, a 100 ms watch
interval so the tick meter has resolution) with the NIC tap (qemu/launch.py ``NicTap``), spawns one
heartbeat worker whose armed telemetry ring takes the writer's records, and then runs each fault the
same way (:meth:`FaultRig.run`):

1. start live traffic: the ring writer (9P, session pool) and the console loop (TCP console, cohsh's
   reconnecting client); sample the serial console for a warm-up;
2. the fault itself, sampling the serial console (answers + watch-log tick gaps) throughout;
3. recovery: from the end of the fault until a fresh TCP console connection answers ``PING`` and a fresh
   9P session reads ``/proc/boot`` (both must, within ``plan.recovery_limit_s``);
4. cut the console client's connection once more and wait until cohsh's reconnect (AUTH, re-ATTACH,
   the command re-issued) completes;
5. stop the writer, read the ring back through another session and compare with the writer's ledger.

Each run ends in one summary line (:meth:`RunResult.line`).
"""
from __future__ import annotations

import re
import threading
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from cohsh.pool import Pool, PoolError, PoolPolicy
from qemu.ir_image import build_for_ir
from cohsh.transport_tcp import ConsoleClient, TcpPolicy, TransportLost, tcp_connector
from qemu.faults.frames import Addresses, Mangler, flood_frames
from qemu.faults.probes import SerialProbe, TickGapMeter
from qemu.faults.tapwire import Injector, Mirror, encode_frame
from qemu.faults.traffic import ConsoleLoop, RingWriter, audit, read_ring_payloads
from qemu.harness import QemuGuest
from qemu.launch import NETDEV, GuestPorts

REPO = Path(__file__).resolve().parents[2]
WATCH_INTERVAL_MS = 100
RING = "/worker/worker-1/telemetry"
CURSOR = "/worker/worker-1/cursor"
SPAWN = '{"spawn":"heartbeat","ticks":1000000,"budget":{"ttl_s":86400}}'


@dataclass(frozen=True)
class FaultPlan:
    """How long and how hard each fault is; :data:`QUICK` is what CI runs, :data:`FULL` ``doit faults``."""

    warmup_s: float
    link_flaps: int
    link_down_s: float
    link_up_s: float                       # between flaps: traffic resumes before the next reset
    flood_s: float
    flood_frames_per_s: int
    corrupt_s: float
    records_per_run: int                   # ≤ 800: 59-byte records, all in the 64 KiB armed ring
    writer_batch: int = 4                  # records per append, one append every writer_period_s
    writer_period_s: float = 0.04
    recovery_limit_s: float = 20.0
    max_tick_gap_ms: int = 3000            # "the pump keeps ticking": no stall longer than this
    console_policy: TcpPolicy = TcpPolicy()
    pool_io_timeout_s: float = 10.0         # the writer's pool: a reply later than this is a lost session


# CI: the console client and the writer's pool time out in 1.5 s (both are overridable for exactly this),
# so a 3 s link outage is long enough to make each lose and rebuild its connection while the fault lasts.
QUICK = FaultPlan(warmup_s=1.0, link_flaps=1, link_down_s=3.0, link_up_s=0.0, flood_s=3.0, flood_frames_per_s=200000,
                  corrupt_s=3.0, records_per_run=600,
                  console_policy=TcpPolicy(read_timeout_s=0.5, ack_timeout_s=1.5), pool_io_timeout_s=1.5)
# doit faults: SPEC §11.6 client timing (5 s ack timeout) and outages longer than it, repeated.
FULL = FaultPlan(warmup_s=2.0, link_flaps=3, link_down_s=8.0, link_up_s=4.0, flood_s=15.0, flood_frames_per_s=200000,
                 corrupt_s=20.0, records_per_run=800, writer_batch=2, writer_period_s=0.1)


@dataclass
class RunResult:
    name: str
    frames_injected: int = 0
    max_tick_gap_ms: int = 0
    tick_lines: int = 0
    recovery_s: float | None = None
    acked: int = 0
    stored: int = 0
    lost: int = -1
    doubled: int = -1
    unacked: int = 0
    serial_answers: int = 0
    serial_max_latency_s: float = 0.0
    console_ok: int = 0
    console_reconnects: int = 0
    reconnect_completed: bool = False
    pool_recoveries: int = 0
    details: dict = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def line(self) -> str:
        recovery = "none" if self.recovery_s is None else f"{self.recovery_s:.2f}"
        extra = "".join(f" {k}={v}" for k, v in self.details.items())
        verdict = "PASS" if self.ok else "FAIL " + "; ".join(self.problems)
        return (f"fault {self.name}: frames_injected={self.frames_injected} max_tick_gap_ms={self.max_tick_gap_ms} "
                f"recovery_s={recovery} writes_acked={self.acked} lost={self.lost} doubled={self.doubled} "
                f"console_reconnects={self.console_reconnects} serial_answers={self.serial_answers}"
                f"{extra} {verdict}")

    def judge(self, plan: FaultPlan) -> None:
        if self.lost != 0 or self.doubled != 0:
            self.problems.append(f"9P writes lost={self.lost} doubled={self.doubled}")
        if self.recovery_s is None:
            self.problems.append(f"TCP console / 9P did not serve within {plan.recovery_limit_s:g} s")
        if self.max_tick_gap_ms > plan.max_tick_gap_ms:
            self.problems.append(f"pump stalled {self.max_tick_gap_ms} ms")
        if self.tick_lines < 2:
            self.problems.append("no watch lines sampled")
        if not self.reconnect_completed:
            self.problems.append("cohsh console reconnect did not complete")
        if self.acked == 0:
            self.problems.append("no 9P write was acknowledged")


# -- the image -------------------------------------------------------------------------------------------
def fault_ir_text(base: str) -> str:
    """The shipped IR with the 9P TCP listener on and a 100 ms watch interval (the tick meter)."""
    text = re.sub(r"(\[secure9p\.tcp_listener\][^\[]*?)enable = false", r"\1enable = true", base, flags=re.S)
    text, n = re.subn(r"watch_interval_ms = \d+", f"watch_interval_ms = {WATCH_INTERVAL_MS}", text)
    if n != 1 or "enable = true" not in text.split("[secure9p.tcp_listener]", 1)[1].split("[", 1)[0]:
        raise ValueError("configs/root_task.toml changed shape: cannot derive the fault-run IR")
    return text


@dataclass(frozen=True)
class FaultImage:
    out: Path
    ports: GuestPorts
    ticket_secrets: dict
    token: str


def build_image(work: Path, cache: Path = REPO / "out" / "cache") -> FaultImage:
    from coh_rtc import compile_ir

    work.mkdir(parents=True, exist_ok=True)
    ir = work / "root_task.toml"
    ir.write_text(fault_ir_text((REPO / "configs" / "root_task.toml").read_text()))
    compiled = compile_ir(ir)
    build_for_ir(ir, work / "out", cache)
    resolved = compiled.resolved
    ports = GuestPorts(console=resolved["console"]["tcp"]["port"],
                       ninep=resolved["secure9p"]["tcp_listener"]["port"], ninep_enabled=True)
    token = tomllib.loads(ir.read_text())["console"]["auth_token"]
    return FaultImage(work / "out", ports, dict(compiled.ticket_secrets), token)


# -- the rig ---------------------------------------------------------------------------------------------
class FaultRig:
    def __init__(self, image: FaultImage, plan: FaultPlan, log_path: Path | None = None,
                 say=lambda line: None) -> None:
        self.image, self.plan, self.say = image, plan, say
        self.guest = QemuGuest(kernel=image.out / "Image", initrd=image.out / "rootfs.cpio",
                               guest_ports=image.ports, log_path=log_path, nic_tap=True)
        self.mirror: Mirror | None = None
        self.injector: Injector | None = None
        self.pool: Pool | None = None
        self.addr = Addresses()

    @property
    def secret(self) -> str:
        return self.image.ticket_secrets["queen"]

    def start(self) -> "FaultRig":
        """Boot, connect the tap, attach, spawn the worker and arm its ring; on any failure, stop."""
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> "FaultRig":
        self.guest.start()
        tap = self.guest.tap
        self.mirror = Mirror(tap.mirror)
        self.injector = Injector(tap.inject)
        lines = self.guest.command_lines("attach queen")
        if not lines or lines[0] != "OK ATTACH role=queen":
            raise RuntimeError(f"serial attach failed: {lines}")
        self.pool = Pool("127.0.0.1", self.guest.ninep_port, secret=self.secret, env={}, control=1, telemetry=1,
                         policy=PoolPolicy(max_retries=12), io_timeout_s=self.plan.pool_io_timeout_s).open()
        self.pool.write("/queen/ctl", SPAWN)
        deadline = time.monotonic() + 30
        while True:
            try:
                self.pool.write(CURSOR, "1")          # armed: the ring keeps every record until read
                break
            except PoolError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        read_ring_payloads(self.pool, RING)
        return self

    def stop(self) -> None:
        for thing in (self.pool, self.mirror, self.injector):
            if thing is not None:
                try:
                    thing.close()
                except Exception:  # noqa: BLE001 - shutting down: the guest stops regardless
                    pass
        self.guest.stop()

    def __enter__(self) -> "FaultRig":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def probe_net(self) -> dict:
        """/proc/boot's ``net`` line, read over the serial console."""
        return SerialProbe(self.guest, TickGapMeter(WATCH_INTERVAL_MS)).net_counters()

    # -- recovery probes ---------------------------------------------------------------------------------
    def console_serves(self) -> bool:
        client = ConsoleClient(tcp_connector("127.0.0.1", self.guest.console_port, timeout_s=2.0), self.image.token,
                               policy=TcpPolicy(read_timeout_s=0.5, ack_timeout_s=2.0))
        try:
            client.connect()
            return client.request("PING").ack.startswith("OK PING")
        except TransportLost:
            return False
        finally:
            client.close()

    def ninep_serves(self) -> bool:
        try:
            with Pool("127.0.0.1", self.guest.ninep_port, secret=self.secret, env={}, control=1, telemetry=1,
                      connect_timeout_s=2.0, io_timeout_s=2.0) as pool:
                return pool.read("/proc/boot").startswith(b"Cohesix boot: root-task online")
        except PoolError:
            return False

    def recovery(self, fault_end: float) -> float | None:
        """Seconds from ``fault_end`` until a fresh console connection and a fresh 9P session both serve."""
        console = ninep = False
        while time.monotonic() - fault_end < self.plan.recovery_limit_s:
            console = console or self.console_serves()
            ninep = ninep or self.ninep_serves()
            if console and ninep:
                return time.monotonic() - fault_end
            time.sleep(0.1)
        return None

    # -- one run -----------------------------------------------------------------------------------------
    def run(self, name: str, fault) -> RunResult:
        """Traffic, ``fault(probe, result)`` (returns when the fault has ended), recovery and the audit."""
        plan, result = self.plan, RunResult(name)
        began = time.monotonic()
        phases: dict[str, float] = {}
        probe = SerialProbe(self.guest, TickGapMeter(WATCH_INTERVAL_MS))
        probe.start()
        writer = RingWriter(self.pool, RING, label=name, batch=plan.writer_batch, period_s=plan.writer_period_s,
                            max_records=plan.records_per_run).start()
        console = ConsoleLoop("127.0.0.1", self.guest.console_port, self.image.token,
                              policy=plan.console_policy).start()
        try:
            sample_for(probe, plan.warmup_s)
            fault_start = time.monotonic()
            fault(probe, result)
            fault_end = time.monotonic()
            probe.sample()
            result.recovery_s = self.recovery(fault_end)
            phases["fault"], phases["recovery"] = fault_end - fault_start, time.monotonic() - fault_end
            probe.sample()
            if not console.wait_answering(fault_end, plan.recovery_limit_s):
                result.problems.append("the console client did not answer again after the fault")
            result.details["console_losses_in_fault"] = console.stats.reconnects_started
            result.details["console_reconnects_in_fault"] = console.stats.reconnects_done
            console.cut()
            result.reconnect_completed = console.wait_reconnected(plan.recovery_limit_s)
            probe.sample()
        finally:
            stopping = time.monotonic()
            ledger = writer.stop()
            stats = console.stop()
            phases["stop"] = time.monotonic() - stopping
        payloads = read_ring_payloads(self.pool, RING)
        check = audit(ledger, payloads)
        probe.sample()
        result.acked, result.stored, result.lost, result.doubled = len(ledger.acked), check.stored, check.lost, check.doubled
        result.unacked, result.pool_recoveries = len(ledger.unacked), ledger.recoveries
        result.console_ok = stats.ok
        result.details["console_gave_up"] = stats.lost
        result.details["console_ok"] = stats.ok
        result.console_reconnects = stats.reconnects_done
        result.max_tick_gap_ms, result.tick_lines = probe.meter.max_gap_ms, probe.meter.lines
        result.serial_answers, result.serial_max_latency_s = probe.answered, probe.max_latency_s
        result.details["acked_in_fault"] = sum(1 for t in ledger.acked_at if fault_start <= t <= fault_end)
        result.details["pool_recoveries"] = ledger.recoveries
        result.details["pool_resent"] = ledger.resent
        if ledger.failures:
            result.details["pool_errors"] = ",".join(f"{k}:{v}" for k, v in sorted(ledger.failures.items()))
        result.details["serial_max_s"] = f"{probe.max_latency_s:.2f}"
        phases["total"] = time.monotonic() - began
        result.details["run_s"] = "/".join(f"{k}:{v:.1f}" for k, v in phases.items())
        result.judge(plan)
        self.say(result.line())
        return result

    # -- the three faults --------------------------------------------------------------------------------
    def link_reset(self) -> RunResult:
        def fault(probe: SerialProbe, result: RunResult) -> None:
            for flap in range(self.plan.link_flaps):
                if flap:
                    sample_for(probe, self.plan.link_up_s)
                self.guest.qmp.execute("set_link", {"name": NETDEV, "up": False})
                sample_for(probe, self.plan.link_down_s)
                down = probe.net_counters()["link_up"]
                self.guest.qmp.execute("set_link", {"name": NETDEV, "up": True})
                if down:
                    result.problems.append("/proc/boot said link_up=true while the link was down")
            result.details["link_flaps"] = self.plan.link_flaps
        return self.run("link-reset", fault)

    def rx_flood(self) -> RunResult:
        def fault(probe: SerialProbe, result: RunResult) -> None:
            self.addr = Addresses.learn(self.mirror.take()) if self.mirror else self.addr
            burst = max(1, self.plan.flood_frames_per_s // 20)       # one burst every 50 ms
            blob = b"".join(encode_frame(f) for f in flood_frames(self.addr, burst))
            before = probe.net_counters()["rx_frames"]
            stop = threading.Event()

            def flood() -> None:
                next_at = time.monotonic()
                while not stop.is_set():
                    self.injector.send_encoded(blob, burst)
                    next_at += 0.05
                    time.sleep(max(0.0, next_at - time.monotonic()))

            sent_before = self.injector.sent
            thread = threading.Thread(target=flood, name="rx-flood", daemon=True)
            thread.start()
            sample_for(probe, self.plan.flood_s)
            stop.set()
            thread.join(10)
            result.frames_injected = self.injector.sent - sent_before
            time.sleep(0.5)
            delivered = probe.net_counters()["rx_frames"] - before
            result.details["guest_rx_frames"] = delivered
            # more frames offered than the guest took in: the ring was full and QEMU dropped the rest
            result.details["not_delivered"] = max(0, result.frames_injected - delivered)
            if delivered >= result.frames_injected:
                result.problems.append("the flood never filled the RX ring (every frame was delivered)")
        return self.run("rx-flood", fault)

    def corrupt_frames(self) -> RunResult:
        def fault(probe: SerialProbe, result: RunResult) -> None:
            ports = (self.image.ports.console, self.image.ports.ninep)
            live = self.mirror.take()
            self.addr = Addresses.learn(live) if live else self.addr
            mangler = Mangler(self.addr, ports, seed=19)
            sent_before = self.injector.sent
            end = time.monotonic() + self.plan.corrupt_s
            next_sample = time.monotonic()
            while time.monotonic() < end:
                batch = mangler.batch(self.mirror.take())
                self.injector.send_many(batch)
                if time.monotonic() >= next_sample:
                    probe.sample()
                    next_sample = time.monotonic() + 1.0
                time.sleep(0.02)
            self.injector.send_many(mangler.flush() or [])
            result.frames_injected = self.injector.sent - sent_before
            result.details.update({k: mangler.counts[k] for k in sorted(mangler.counts)})
            if mangler.counts["duplicate"] == 0 or mangler.counts["bad_tcp_csum"] == 0:
                result.problems.append("no live TCP frames were mirrored to corrupt")
        return self.run("corrupt-frames", fault)

    def all_runs(self) -> list[RunResult]:
        return [self.link_reset(), self.rx_flood(), self.corrupt_frames()]


def sample_for(probe: SerialProbe, seconds: float, every_s: float = 1.0) -> None:
    """Keep the serial console busy (and the tick meter fed) for ``seconds``."""
    end = time.monotonic() + seconds
    while True:
        probe.sample()
        left = end - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(every_s, left))
