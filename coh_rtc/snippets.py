"""Data for the documentation snippets (SPEC §15.5) and the marked regions that embed them.

Snippet *content decisions* (which leaves, which rows, in what order) are made here; the Markdown
layout lives in ``templates/snippet_*.md.j2``. Documentation embeds a snippet between the lines
``<!-- coh-rtc:<name>:start -->`` and ``<!-- coh-rtc:<name>:end -->``; :func:`find_regions` and
:func:`replace_regions` implement that contract for both writing and ``--check``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from .model import IR
from .scripts import shard_labels
from .validate import schema_at_least

_MARKER = re.compile(r"^<!-- coh-rtc:([A-Za-z0-9_.-]+):(start|end) -->$")

PROC_FORMATS: dict[str, str] = {
    "/proc/boot": "boot transcript lines, `manifest.*`, `secure9p …` (SPEC §5.4)",
    "/proc/9p/sessions": "`sessions total=<n> queen=<n> worker=<n> shard_count=<n>` (+ `shard <label> <n>` lines)",
    "/proc/9p/outstanding": "`outstanding current=<n> peak=<n> limit=<tags_per_session>`",
    "/proc/9p/short_writes": "`short_writes total=<n> zero=<n> bytes_deferred=<n>`",
    "/proc/ingest/p50_ms": "`p50_ms=<x>` (three decimals)",
    "/proc/ingest/p95_ms": "`p95_ms=<x>` (three decimals)",
    "/proc/ingest/backpressure": "`backpressure=<n>`",
    "/proc/ingest/dropped": "`dropped=<n>`",
    "/proc/ingest/queued": "`queued=<n>`",
    "/proc/ingest/watch": "server log: `watch ts_ms=<uptime_ms> p50_ms=<x> p95_ms=<x> queued=<n> backpressure=<n> dropped=<n>`",
}


def proc_nodes(ir: IR) -> tuple[str, ...]:
    """Enabled ``/proc`` files (SPEC §5.1, §12), sorted."""
    nodes = ["/proc/boot"]
    nodes += [f"/proc/9p/{n}" for n in ir.observability.proc_9p]
    nodes += [f"/proc/ingest/{f}" for f in ir.observability.proc_ingest.fields]
    if ir.observability.proc_ingest.watch_interval_ms > 0:
        nodes.append("/proc/ingest/watch")
    return tuple(sorted(nodes))


def _leaf_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return json.dumps(list(value))
    return str(value)


def manifest_leaves(resolved: Any, prefix: str = "") -> list[tuple[str, str]]:
    """(dotted key, value text) for every leaf of the resolved manifest, sorted by key."""
    leaves: list[tuple[str, str]] = []
    if isinstance(resolved, dict):
        for key, value in resolved.items():
            leaves += manifest_leaves(value, f"{prefix}.{key}" if prefix else key)
    elif isinstance(resolved, list) and any(isinstance(v, dict) for v in resolved):
        for idx, value in enumerate(resolved):
            leaves += manifest_leaves(value, f"{prefix}[{idx}]")
    else:
        leaves.append((prefix, _leaf_text(resolved)))
    return sorted(leaves)


@dataclass(frozen=True)
class SnippetPlan:
    """One snippet to render: its name (file name without ``.md``) and template variables."""

    name: str
    context: dict[str, Any]


def snippet_plans(ir: IR, resolved: dict[str, Any]) -> list[SnippetPlan]:
    s9 = ir.secure9p
    plans = [
        SnippetPlan("root_task_manifest", {"leaves": manifest_leaves(resolved)}),
        SnippetPlan(
            "secure9p_limits",
            {
                "rows": [
                    ("msize", f"{s9.msize} bytes"),
                    ("walk depth", str(s9.walk_depth)),
                    ("tags per session", str(s9.tags_per_session)),
                    ("batched frames", _leaf_text(s9.batch_frames)),
                    (
                        "short-write policy",
                        f"{'enabled' if s9.short_write_policy.enable else 'disabled'}, "
                        f"backoff {s9.short_write_policy.backoff_ms} ms",
                    ),
                    (
                        "9P TCP listener (in the VM)",
                        f"enabled on port {s9.tcp_listener.port}" if s9.tcp_listener.enable else "disabled",
                    ),
                ]
            },
        ),
    ]
    if schema_at_least(ir.schema, "1.2"):
        t = ir.telemetry
        plans.append(
            SnippetPlan(
                "telemetry_cbor_schema",
                {
                    "frame_schema": t.frame_schema,
                    "ring_bytes": t.ring_bytes_per_worker,
                    "memory_budget": t.memory_budget_bytes,
                },
            )
        )
        plans.append(
            SnippetPlan("proc_tree", {"rows": [(node, PROC_FORMATS[node]) for node in proc_nodes(ir)]})
        )
        labels = shard_labels(ir)
        sh = ir.sharding
        plans.append(
            SnippetPlan(
                "sharding",
                {
                    "enable": sh.enable,
                    "width": sh.scheme.width,
                    "count": len(labels),
                    "first": labels[0] if labels else "",
                    "last": labels[-1] if labels else "",
                    "alias": sh.legacy_worker_alias,
                },
            )
        )
    if schema_at_least(ir.schema, "1.3"):
        store = ir.cas.store
        plans.append(
            SnippetPlan(
                "cas_layout",
                {
                    "enable": ir.cas.enable,
                    "root": store.root,
                    "chunk_bytes": store.chunk_bytes,
                    "hash": store.hash,
                    "signed": store.sign is not None,
                    "pubkey_hex": store.sign.pubkey_hex if store.sign else "",
                    "delta": ir.cas.delta.enable,
                },
            )
        )
    return plans


# Known snippet names of any schema (used to tell "not generated for this schema" from "unknown").
ALL_SNIPPETS = (
    "root_task_manifest",
    "secure9p_limits",
    "telemetry_cbor_schema",
    "proc_tree",
    "sharding",
    "cas_layout",
)


@dataclass(frozen=True)
class Region:
    """A marked region: snippet name and the character span of its body (between marker lines)."""

    name: str
    start: int
    end: int


def find_regions(text: str) -> list[Region]:
    """Marked regions of a Markdown text; an unterminated start marker is ignored."""
    regions: list[Region] = []
    open_name: str | None = None
    body_start = 0
    offset = 0
    for line in text.splitlines(keepends=True):
        m = _MARKER.match(line.rstrip("\n"))
        if m:
            name, kind = m.groups()
            if kind == "start":
                open_name, body_start = name, offset + len(line)
            elif open_name == name:
                regions.append(Region(name, body_start, offset))
                open_name = None
        offset += len(line)
    return regions


def replace_regions(text: str, snippets: dict[str, str]) -> tuple[str, list[str]]:
    """Text with every known region's body replaced by its snippet; also the unknown region names."""
    unknown: list[str] = []
    pieces: list[str] = []
    cursor = 0
    for region in find_regions(text):
        if region.name not in snippets:
            unknown.append(region.name)
            continue
        pieces.append(text[cursor : region.start])
        pieces.append(snippets[region.name])
        cursor = region.end
    pieces.append(text[cursor:])
    return "".join(pieces), unknown
