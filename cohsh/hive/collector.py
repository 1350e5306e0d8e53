"""The hive's poller: what it reads over 9P each tick, and the deltas it publishes for the page.

Every read goes through a :class:`cohsh.pool.Pool` (SPEC §11.7) built with the operator's identity;
the collector holds its pool's control sessions for its whole life so that ring fids can stay open
between ticks (a ring read returns only the records after the fid's position, §7.3, which is exactly
"what changed since last time"). Per tick, the work is bounded whatever the number of workers:

* ``/log/queen.log``: only the bytes appended since the last tick (offset read, checked against the
  last line seen; a trimmed log is re-synchronised from its last 16 KiB). ``spawned``/``revoked`` lines
  update the worker set at once.
* the worker listing: one ``readdir`` of ``/worker`` when it exists; with sharding and no legacy
  alias, ``shard_dirs_per_tick`` of the ``/shard/<hh>/worker`` directories, round robin.
* rings: at most ``ring_budget`` workers per tick (never-read workers first, then round robin), each
  one Tread on its held fid (more only while a backlog remains). With 1 024 workers and the defaults a
  worker is refreshed every ~4 s, its heartbeat rate being the slope over its recent samples.
* ``/proc/ingest/*``: the five small snapshot files, one point per tick for the plots.
* ``/gpu``: listing, ``info`` (once), the last ``lease`` and ``status`` lines, every ``gpu_every`` ticks.

A server fid table holds at most 256 fids per session (nine_door/session.py), so ring fids are spread
over the held sessions, at most ``FIDS_PER_SESSION`` each; past that the least recently read fid is
clunked (and re-opened when its worker's turn comes: it then re-reads from the ring's start).
"""
from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict, deque
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Callable

from cohsh.pool import CONTROL, Pool, PoolError
from cohsh.hive.model import BootFacts, LogEvent, Record, log_event, split_records, WORKER_ID
from nine_door import messages as m
from nine_door.client import Client, ProtocolError
from nine_door.errors import EBADF, ENOENT, ERANGE, ESTALE, DecodeError, NineError
from nine_door.framing import FramingError

FIDS_PER_SESSION = 200
RING_SESSIONS = 6                  # 6 × 200 held ring fids: 1 024 workers without eviction
LAST_RECORDS = 5
LOG_KEEP = 200
LOG_RESYNC_BYTES = 16384
LOG_MAX_BYTES_PER_TICK = 65536
SERIES_POINTS = 240
INGEST_FIELDS = ("p50_ms", "p95_ms", "backpressure", "dropped", "queued")
RATE_WINDOW_S = 10.0
MAX_READS_PER_VISIT = 16

_TRANSPORT = (OSError, ProtocolError, FramingError, DecodeError, EOFError)


@dataclass
class WorkerView:
    """What the page shows for one worker."""

    id: str
    group: str
    kind: str = "?"
    gpu: str | None = None
    beats: int = 0
    records: int = 0
    rate: float = 0.0
    last: deque = field(default_factory=lambda: deque(maxlen=LAST_RECORDS))
    samples: deque = field(default_factory=lambda: deque(maxlen=16))
    visited: bool = False

    def to_json(self) -> dict:
        return {"id": self.id, "group": self.group, "kind": self.kind, "gpu": self.gpu, "beats": self.beats,
                "records": self.records, "rate": round(self.rate, 2), "last": list(self.last)}

    def absorb(self, records: list[Record], now: float) -> bool:
        if not records:                      # silent for a whole window: the rate is 0 now
            if self.rate and self.samples and now - self.samples[-1][0] > RATE_WINDOW_S:
                self.rate = 0.0
                return True
            return False
        for record in records:
            self.records += 1
            self.last.append(record.text)
            if record.beat is not None:
                self.beats = max(self.beats, record.beat)
                if self.kind == "?":
                    self.kind = "heartbeat"
            elif self.kind == "?" and "gpu-worker ready" in record.text:
                self.kind = "gpu"
        self.samples.append((now, self.beats))
        while len(self.samples) > 2 and now - self.samples[0][0] > RATE_WINDOW_S:
            self.samples.popleft()
        t0, b0 = self.samples[0]
        if now - t0 > 0.5:
            self.rate = (self.beats - b0) / (now - t0)
        return True


class _Held:
    """One pool session held by the collector, and the ring fids open on it."""

    def __init__(self, session) -> None:
        self.session = session
        self.builds = -1
        self.fids: OrderedDict[str, int] = OrderedDict()     # worker id → fid (LRU order)

    def client(self) -> Client:
        s = self.session
        if s.client is None or not s.healthy():
            s.connect()
        if s.builds != self.builds:          # a rebuilt session has none of our fids
            self.builds = s.builds
            self.fids.clear()
        return s.client


class Hub:
    """Versioned deltas for the event streams; the snapshot comes from the collector, under one lock."""

    def __init__(self, keep: int = 64) -> None:
        self.cond = threading.Condition()
        self.version = 0
        self.deltas: deque[tuple[int, str]] = deque(maxlen=keep)
        self.closed = False

    def publish_locked(self, delta: dict) -> int:
        self.version += 1
        delta["v"] = self.version
        self.deltas.append((self.version, json.dumps(delta, separators=(",", ":"))))
        self.cond.notify_all()
        return self.version

    def since(self, after: int, timeout: float) -> list[tuple[int, str]] | None:
        """Deltas newer than ``after`` (waiting up to ``timeout`` for one); None when some were
        already dropped (the reader must start over from a snapshot)."""
        with self.cond:
            if self.version == after and not self.closed:
                self.cond.wait(timeout)
            if self.version == after:
                return []
            if not self.deltas or self.deltas[0][0] > after + 1:
                return None
            return [(v, text) for v, text in self.deltas if v > after]

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()


class Collector:
    """Polls one Cohesix system through ``make_pool()`` every ``interval_s`` and feeds ``hub``."""

    def __init__(self, make_pool: Callable[[int], Pool], *, interval_s: float = 0.25, ring_budget: int = 64,
                 shard_dirs_per_tick: int = 32, gpu_every: int = 4,
                 clock: Callable[[], float] = time.monotonic, log: Callable[[str], None] = lambda s: None) -> None:
        self.make_pool = make_pool
        self.interval_s = interval_s
        self.ring_budget = ring_budget
        self.shard_dirs_per_tick = shard_dirs_per_tick
        self.gpu_every = gpu_every
        self.clock = clock
        self.log = log
        self.hub = Hub()
        self.workers: dict[str, WorkerView] = {}
        self.boot: BootFacts | None = None
        self.flat = True
        self.log_lines: deque[str] = deque(maxlen=LOG_KEEP)
        self.series: deque[list] = deque(maxlen=SERIES_POINTS)
        self.gpus: list[dict] = []
        self.status = "starting"
        self.ticks = 0
        self.tick_ms = 0.0
        self._t0 = clock()
        self._pool: Pool | None = None
        self._stack = ExitStack()
        self._held: list[_Held] = []
        self._log_pos = 0
        self._log_last = b""
        self._rr = 0
        self._shard_rr = 0
        self._missing_ingest: dict[str, int] = {}
        self._gpu_info: dict[str, dict] = {}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- life cycle -----------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="hive-collector", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self.hub.close()
        if self._thread is not None:
            self._thread.join(10)
        self._release()

    def poke(self) -> None:
        """Run the next tick now (after an action, so its effect shows without waiting a period)."""
        self._wake.set()

    def _release(self) -> None:
        try:
            self._stack.close()
        finally:
            self._stack = ExitStack()
            self._held = []
            if self._pool is not None:
                self._pool.close()
                self._pool = None

    def _run(self) -> None:
        while not self._stop.is_set():
            started = self.clock()
            try:
                self.tick()
            except PoolError as exc:
                self._lost(exc.message)
            except _TRANSPORT as exc:
                self._lost(f"9P session lost: {exc}")
            except Exception as exc:            # never let one bad reply end the view
                self._lost(f"internal error: {type(exc).__name__}: {exc}")
            self.tick_ms = (self.clock() - started) * 1000
            self._wake.wait(max(0.0, self.interval_s - (self.clock() - started)))
            self._wake.clear()

    def _lost(self, why: str) -> None:
        self.log(f"hive: collector: {why}")
        self._release()
        with self.hub.cond:
            self.status = f"disconnected: {why}"
            self.hub.publish_locked({"status": self.status})
        self._stop.wait(1.0)

    def _connect(self) -> None:
        pool = self.make_pool(1 + RING_SESSIONS)
        self._pool = pool
        pool.open()
        for _ in range(1 + RING_SESSIONS):
            self._held.append(_Held(self._stack.enter_context(pool.lease(CONTROL))))
        general = self._held[0].client()
        self.boot = BootFacts.parse(general.read_all("/proc/boot").decode("utf-8", "replace"))
        self.flat = self._exists(general, "/worker")

    # -- one tick -------------------------------------------------------------------------------------
    def tick(self) -> None:
        if not self._held:
            self._connect()
        general = self._held[0].client()
        now = self.clock()
        changed: set[str] = set()
        removed: set[str] = set()
        new_lines = self._read_log(general)
        for line in new_lines:
            event = log_event(line)
            if event is not None:
                self._apply_event(event, changed, removed)
        self._reconcile(general, changed, removed)
        self._read_rings(now, changed, removed)
        point = [round(now - self._t0, 3)] + [self._ingest(general, name) for name in INGEST_FIELDS]
        gpus = None
        if self.ticks % self.gpu_every == 0:
            gpus = self._read_gpus(general)
        self.ticks += 1
        with self.hub.cond:
            for wid in removed:
                self.workers.pop(wid, None)
            delta: dict = {"t": point[0], "ingest": point,
                           "workers": [self.workers[w].to_json() for w in sorted(changed - removed)
                                       if w in self.workers],
                           "removed": sorted(removed), "tick_ms": round(self.tick_ms, 1),
                           "count": len(self.workers)}
            self.series.append(point)
            if new_lines:
                self.log_lines.extend(new_lines)
                delta["log"] = new_lines[-LOG_KEEP:]
            if gpus is not None and gpus != self.gpus:
                self.gpus = gpus
                delta["gpus"] = gpus
            if self.status != "live":
                self.status = "live"
                delta["status"] = "live"
                delta["meta"] = self._meta()
            self.hub.publish_locked(delta)

    def snapshot(self) -> tuple[int, str]:
        """The whole state as the page starts from it (``snapshot`` event), and its version."""
        with self.hub.cond:
            doc = {"v": self.hub.version, "snapshot": True, "status": self.status, "meta": self._meta(),
                   "workers": [w.to_json() for w in self.workers.values()], "series": list(self.series),
                   "fields": list(INGEST_FIELDS), "log": list(self.log_lines), "gpus": self.gpus,
                   "count": len(self.workers), "tick_ms": round(self.tick_ms, 1)}
            return self.hub.version, json.dumps(doc, separators=(",", ":"))

    def _meta(self) -> dict:
        boot = self.boot or BootFacts()
        return {"schema": boot.schema, "sharding": boot.sharding, "width": boot.width,
                "frame_schema": boot.frame_schema, "interval_ms": int(self.interval_s * 1000),
                "ring_budget": self.ring_budget}

    # -- worker set -----------------------------------------------------------------------------------
    def _add(self, wid: str, changed: set[str]) -> WorkerView:
        view = self.workers.get(wid)
        if view is None:
            assert self.boot is not None
            view = WorkerView(wid, self.boot.group(wid))
            with self.hub.cond:
                self.workers[wid] = view
            changed.add(wid)
        return view

    def _apply_event(self, event: LogEvent, changed: set[str], removed: set[str]) -> None:
        if event.kind == "spawned":
            removed.discard(event.worker)
            view = self._add(event.worker, changed)
            view.kind, view.gpu = ("gpu", event.gpu) if event.gpu else ("heartbeat", None)
            changed.add(event.worker)
        else:
            removed.add(event.worker)
            self._forget_fid(event.worker)

    def _reconcile(self, client: Client, changed: set[str], removed: set[str]) -> None:
        assert self.boot is not None
        if self.flat:
            listed = set(self._listdir(client, "/worker") or ())
            groups = None
        else:
            labels = [f"{i:0{self.boot.width}x}" for i in range(16 ** self.boot.width)]
            take = labels[self._shard_rr:self._shard_rr + self.shard_dirs_per_tick]
            self._shard_rr = (self._shard_rr + len(take)) % len(labels)
            groups = set(take)
            listed = set()
            for label in take:
                listed.update(self._listdir(client, f"/shard/{label}/worker") or ())
        for wid in listed:
            if WORKER_ID.fullmatch(wid) and wid not in removed:
                self._add(wid, changed)
        for wid in list(self.workers):
            if wid not in listed and (groups is None or self.workers[wid].group in groups) \
                    and wid not in changed:
                removed.add(wid)
                self._forget_fid(wid)

    # -- rings ----------------------------------------------------------------------------------------
    def _slice(self) -> list[str]:
        ids = sorted(self.workers)
        fresh = [w for w in ids if not self.workers[w].visited]
        chosen = fresh[:self.ring_budget]
        if len(chosen) < self.ring_budget and ids:
            start = self._rr % len(ids)
            rest = [w for w in ids[start:] + ids[:start] if w not in set(chosen)]
            more = rest[:self.ring_budget - len(chosen)]
            chosen += more
            if more:
                self._rr = (ids.index(more[-1]) + 1) % len(ids)
        return chosen

    def _session_for(self, wid: str) -> tuple[_Held, int | None]:
        for held in self._held[1:]:
            if wid in held.fids:
                return held, held.fids[wid]
        return min(self._held[1:], key=lambda h: len(h.fids)), None

    def _forget_fid(self, wid: str) -> None:
        for held in self._held[1:]:
            fid = held.fids.pop(wid, None)
            if fid is not None and held.session.client is not None:
                try:
                    held.session.client.clunk(fid)
                except NineError:
                    pass

    def _read_rings(self, now: float, changed: set[str], removed: set[str]) -> None:
        assert self.boot is not None
        for wid in self._slice():
            if wid in removed:
                continue
            view = self.workers[wid]
            held, fid = self._session_for(wid)
            client = held.client()
            fid = held.fids.get(wid)
            try:
                if fid is None:
                    if len(held.fids) >= FIDS_PER_SESSION:
                        old, old_fid = held.fids.popitem(last=False)
                        try:
                            client.clunk(old_fid)
                        except NineError:
                            pass
                    fid = client.open(self.boot.worker_dir(wid) + "/telemetry", m.O_RDONLY)
                    held.fids[wid] = fid
                held.fids.move_to_end(wid)
                records: list[Record] = []
                for _ in range(MAX_READS_PER_VISIT):
                    try:
                        data = client.read(fid, 0, client.iounit)
                    except NineError as exc:
                        if exc.errno == ERANGE:       # records were evicted; the position moved on (§7.3)
                            continue
                        raise
                    if not data:
                        break
                    got, _ = split_records(data, self.boot.frame_schema)
                    records.extend(got)
            except NineError as exc:
                held.fids.pop(wid, None)
                if exc.errno in (ENOENT, ESTALE, EBADF):
                    removed.add(wid)
                    continue
                self.log(f"hive: reading {wid}: {exc}")
                continue
            first = not view.visited
            view.visited = True
            if view.absorb(records, now) or first:
                changed.add(wid)

    # -- files ----------------------------------------------------------------------------------------
    @staticmethod
    def _exists(client: Client, path: str) -> bool:
        try:
            fid = client.walk(client.root, [p for p in path.split("/") if p])
        except NineError:
            return False
        client.clunk(fid)
        return True

    @staticmethod
    def _listdir(client: Client, path: str) -> list[str] | None:
        try:
            return client.listdir(path)
        except NineError:
            return None

    def _read_log(self, client: Client) -> list[str]:
        """Lines appended to ``/log/queen.log`` since the last tick (bounded; see the module doc)."""
        fid = client.open("/log/queen.log", m.O_RDONLY)
        try:
            size = client.getattr(fid).size
            pos, last = self._log_pos, self._log_last
            in_step = pos <= size and (pos == 0 or
                                      self._read_range(client, fid, pos - len(last), len(last)) == last)
            if in_step and size - pos <= LOG_MAX_BYTES_PER_TICK:
                data = self._read_range(client, fid, pos, size - pos)
            else:
                start = max(0, size - (LOG_RESYNC_BYTES if not in_step else LOG_MAX_BYTES_PER_TICK))
                data = self._read_range(client, fid, start, size - start)
                if start > 0:
                    data = data.split(b"\n", 1)[1] if b"\n" in data else b""
                if not in_step and last:
                    marker = data.rfind(last)
                    if marker >= 0 and (marker == 0 or data[marker - 1:marker] == b"\n"):
                        data = data[marker + len(last):]
        finally:
            client.clunk(fid)
        end = data.rfind(b"\n")
        if end < 0:
            self._log_pos = size - len(data)
            return []
        complete = data[:end + 1]
        self._log_pos = size - (len(data) - len(complete))
        self._log_last = complete[complete.rfind(b"\n", 0, len(complete) - 1) + 1:]
        return complete.decode("utf-8", "replace").splitlines()

    @staticmethod
    def _read_range(client: Client, fid: int, offset: int, count: int) -> bytes:
        out = bytearray()
        while len(out) < count:
            chunk = client.read(fid, offset + len(out), min(client.iounit, count - len(out)))
            if not chunk:
                break
            out += chunk
        return bytes(out)

    def _ingest(self, client: Client, name: str) -> float | None:
        skip = self._missing_ingest.get(name, 0)
        if skip:
            self._missing_ingest[name] = skip - 1
            return None
        try:
            text = client.read_all(f"/proc/ingest/{name}").decode("ascii", "replace").strip()
        except NineError:
            self._missing_ingest[name] = 40           # absent in this IR: look again in ~10 s
            return None
        _, _, value = text.partition("=")
        try:
            return float(value)
        except ValueError:
            return None

    def _read_gpus(self, client: Client) -> list[dict]:
        names = self._listdir(client, "/gpu")
        if not names:
            return []
        gpus = []
        for gid in names:
            if gid == "bridge":
                continue
            info = self._gpu_info.get(gid)
            if info is None:
                info = _json_line(self._read_text(client, f"/gpu/{gid}/info"), last=False)
                if info:
                    self._gpu_info[gid] = info
            gpus.append({"id": gid, "info": info or {},
                         "lease": _json_line(self._read_text(client, f"/gpu/{gid}/lease")),
                         "job": _json_line(self._read_text(client, f"/gpu/{gid}/status"))})
        return gpus

    @staticmethod
    def _read_text(client: Client, path: str) -> str:
        try:
            return client.read_all(path).decode("utf-8", "replace")
        except NineError:
            return ""


def _json_line(text: str, last: bool = True) -> dict | None:
    """The last (or first) line of a JSON-lines file as an object; a non-JSON line as ``{"text": …}``."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return None
    line = lines[-1] if last else lines[0]
    try:
        value = json.loads(line)
    except ValueError:
        return {"text": line[:512]}
    return value if isinstance(value, dict) else {"text": line[:512]}
