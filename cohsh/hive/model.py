"""What the hive knows about names and records (pure functions; no I/O).

* Shard labels (SPEC §8): ``label(id) = the first <width> hex characters of SHA-256(id)``. The hive
  groups workers by that label whatever the namespace looks like: with sharding enabled the width is
  the one ``/proc/boot`` states; with sharding off every worker is in the one group ``all``
  (docs/spec-decisions.md "Hive").
* ``/proc/boot`` facts the hive needs: the sharding line and the ring frame schema.
* Records: a ``cbor_v1`` ring holds Frame v1 items (decoded with ``nine_door.frame_v1``), a ``text``
  ring holds lines; either way a heartbeat record carries its number ``n`` (§6.4).
* Queen-log event lines (§5.5) that change the worker set: ``spawned <id> …``, ``revoked <id>: …``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from nine_door.frame_v1 import Frame, FrameError, decode_one, describe
from nine_door.shards import shard_label, worker_dir_path

ALL_GROUP = "all"
_SHARDING = re.compile(r"^sharding enable=(true|false) width=([12]) legacy_worker_alias=(true|false)$", re.M)
_TELEMETRY = re.compile(r"^telemetry ring_bytes_per_worker=(\d+) frame_schema=(\S+)$", re.M)
_SCHEMA = re.compile(r"^manifest\.schema=(\S+)$", re.M)
_HEARTBEAT = re.compile(r"heartbeat (\d{1,19})")
_SPAWNED = re.compile(r"spawned (worker-\d+) (?:ticks=\S+ ttl=\S+ ops=\S+|gpu=(\S+) ttl=\S+ streams=\d+)")
_REVOKED = re.compile(r"revoked (worker-\d+): ")
WORKER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True)
class BootFacts:
    """From ``/proc/boot`` (§5.4): sharding and the ring schema (lines absent before schema 1.2)."""

    schema: str = "?"
    sharding: bool = False
    width: int = 2
    legacy_alias: bool = True
    frame_schema: str = "text"

    @classmethod
    def parse(cls, boot: str) -> "BootFacts":
        sharding = _SHARDING.search(boot)
        telemetry = _TELEMETRY.search(boot)
        schema = _SCHEMA.search(boot)
        return cls(
            schema=schema.group(1) if schema else "?",
            sharding=bool(sharding) and sharding.group(1) == "true",
            width=int(sharding.group(2)) if sharding else 2,
            legacy_alias=(sharding.group(3) == "true") if sharding else True,
            frame_schema=telemetry.group(2) if telemetry else "text",
        )

    def group(self, worker_id: str) -> str:
        """The group a worker is shown in: its shard label, or ``all`` when sharding is off."""
        return shard_label(worker_id, self.width) if self.sharding else ALL_GROUP

    def worker_dir(self, worker_id: str) -> str:
        """The canonical worker directory (§8)."""
        return worker_dir_path(worker_id, self.width if self.sharding else 0)


@dataclass(frozen=True)
class Record:
    """One ring record as the page shows it: ``text`` (one line), ``beat`` (heartbeat n or None)."""

    text: str
    beat: int | None


def _beat(text: str) -> int | None:
    found = _HEARTBEAT.fullmatch(text.strip())
    return int(found.group(1)) if found else None


def frame_record(frame: Frame) -> Record:
    beat = None
    if frame.kind == 1:
        beat = frame.seq
    return Record(describe(frame), beat)


def split_records(data: bytes, schema: str) -> tuple[list[Record], int]:
    """Records in ``data`` (whole records, as a ring read returns them) and the bytes consumed.

    Never raises: a ``cbor_v1`` item that does not decode ends the scan (the rest is shown as one
    ``undecodable`` record, so a hostile writer cannot hide it), text that is not UTF-8 is replaced."""
    records: list[Record] = []
    if schema == "cbor_v1":
        pos = 0
        while pos < len(data):
            try:
                frame, end = decode_one(data, pos)
            except (FrameError, ValueError, IndexError) as exc:
                records.append(Record(f"undecodable frame at byte {pos}: {exc}", None))
                return records, len(data)
            records.append(frame_record(frame))
            pos = end
        return records, pos
    for line in data.splitlines():
        text = line.decode("utf-8", "replace")
        records.append(Record(text, _beat(text)))
    return records, len(data)


@dataclass(frozen=True)
class LogEvent:
    """A queen-log line that changes the worker set: ``spawned`` (with ``gpu`` for a GPU worker) or ``gone``."""

    kind: str
    worker: str
    gpu: str | None = None


def log_event(line: str) -> LogEvent | None:
    found = _SPAWNED.fullmatch(line)
    if found:
        return LogEvent("spawned", found.group(1), found.group(2))
    found = _REVOKED.match(line)
    if found:
        return LogEvent("gone", found.group(1))
    return None
