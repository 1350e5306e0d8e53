"""Hypothesis property tests: random valid IRs compile, round-trip, and locate their keys.

* every IR drawn from :func:`valid_irs` compiles;
* re-emitting the resolved manifest as TOML and compiling that gives the same manifest bytes;
* compiling is deterministic (same bytes twice);
* the line locator (a parser of TOML layout) finds the line of every key, whatever layout is used;
* the doc-region parser round-trips any snippet body.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coh_rtc import IRError, compile_ir
from coh_rtc.fields import PROC_9P_NODES, PROC_INGEST_FIELDS, ROLE_LABELS, SCHEMAS, schema_key
from coh_rtc.locate import index_lines
from coh_rtc.snippets import find_regions, replace_regions
from coh_rtc.tomlwrite import dumps, resolved_to_document, write_document

# COH_RTC_EXAMPLES raises the example count for a deeper local run.
SETTINGS = settings(max_examples=int(os.environ.get("COH_RTC_EXAMPLES", "60")), deadline=None, suppress_health_check=[HealthCheck.too_slow])
PUBKEY = "d04ab232742bb4ab3a1368bd4615e4e6d0224ab71a016baf8520a332c9778737"

printable = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40)


def at_least(schema: str, version: str) -> bool:
    return schema_key(schema) >= schema_key(version)


@st.composite
def valid_irs(draw: st.DrawFn) -> dict[str, Any]:
    schema = draw(st.sampled_from(SCHEMAS))
    msize = draw(st.integers(512, 8192))
    wants_sharding = at_least(schema, "1.2") and draw(st.booleans())
    walk_depth = draw(st.integers(5 if wants_sharding else (3 if at_least(schema, "1.2") else 1), 8))
    listener = draw(st.booleans())
    nine_port, console_port = draw(st.lists(st.integers(1, 65535), min_size=2, max_size=2, unique=True))
    roles_enabled = {"queen": True, "worker-heartbeat": draw(st.booleans()), "worker-gpu": draw(st.booleans())}
    ticket_roles = [r for r in ROLE_LABELS if roles_enabled[r] or draw(st.booleans())]
    line = draw(st.integers(64, 4096))
    limits = {name: draw(st.integers(1, line)) for name in ("role", "ticket", "path", "json", "id", "echo")}
    backend = draw(st.sampled_from(["none", "mock", "bridge"] if listener else ["none", "mock"]))
    cas_enable = at_least(schema, "1.3") and draw(st.booleans())
    services = ["proc", "log", "queen", "workers"] + (["gpu"] if backend != "none" else []) + (["updates"] if cas_enable else [])
    mounts: list[dict[str, str]] = []
    for idx in range(draw(st.integers(0, 3))):
        parent = draw(st.sampled_from([""] + [m["at"] for m in mounts])) if mounts else ""
        at = f"{parent}/m{idx}"
        if at.count("/") <= walk_depth:
            mounts.append({"service": draw(st.sampled_from(services)), "at": at})
    doc: dict[str, Any] = {
        "root_task": {"schema": schema},
        "system": {"arch": "aarch64", "machine": "virt", "tick_ms": draw(st.integers(1, 1000))},
        "secure9p": {"msize": msize, "walk_depth": walk_depth, "tcp_listener": {"enable": listener, "port": nine_port}},
        "roles": {
            "queen": {"enable": True},
            "worker-heartbeat": {
                "enable": roles_enabled["worker-heartbeat"],
                "default_budget": {"ops": draw(st.integers(1, 2**63 - 1)), "ttl_s": draw(st.integers(1, 2**63 - 1))},
            },
            "worker-gpu": {"enable": roles_enabled["worker-gpu"], "default_budget": {"ops": draw(st.integers(1, 2**40))}},
        },
        "tickets": [{"role": r, "secret": draw(printable)} for r in draw(st.permutations(ticket_roles))],
        "namespace": {"mounts": mounts},
        "console": {
            "serial": draw(st.booleans()),
            "auth_token": draw(printable),
            "idle_timeout_s": draw(st.integers(30, 86400)),
            "tcp": {"enable": draw(st.booleans()), "port": console_port, "max_sessions": draw(st.integers(1, 16))},
            "limits": {"line": line, **limits},
        },
        "gpu": {"backend": backend},
    }
    max_workers = draw(st.integers(1, 4096))
    server_backoff = 5
    if at_least(schema, "1.1"):
        server_backoff = draw(st.integers(1, 10000))
        doc["secure9p"].update(
            tags_per_session=draw(st.integers(1, 1024)),
            batch_frames=draw(st.booleans()),
            short_write_policy={"enable": draw(st.booleans()), "backoff_ms": server_backoff},
        )
    if at_least(schema, "1.2"):
        min_exp = max(9, (msize - 1).bit_length())
        ring = 2 ** draw(st.integers(min_exp, 24))
        max_workers = draw(st.integers(1, min(4096, (1 << 30) // ring)))
        budget = draw(st.integers(max(1 << 20, ring * max_workers), 1 << 30))
        doc["telemetry"] = {
            "ring_bytes_per_worker": ring,
            "frame_schema": draw(st.sampled_from(["text", "cbor_v1"])),
            "memory_budget_bytes": budget,
        }
        doc["sharding"] = {
            "enable": wants_sharding,
            "scheme": {"kind": "hex_prefix", "width": draw(st.sampled_from([1, 2]))},
            "legacy_worker_alias": draw(st.booleans()),
        }
        doc["client_policies"] = {
            "cohsh": {"pool": {"control": draw(st.integers(1, 16)), "telemetry": draw(st.integers(1, 16))}},
            "retry": {"short_write": {"max_retries": draw(st.integers(0, 16)), "backoff_ms": draw(st.integers(server_backoff, 10000))}},
        }
        doc["observability"] = {
            "proc_9p": draw(st.lists(st.sampled_from(PROC_9P_NODES), unique=True)),
            "proc_ingest": {
                "fields": draw(st.lists(st.sampled_from(PROC_INGEST_FIELDS), unique=True)),
                "watch_interval_ms": draw(st.one_of(st.just(0), st.integers(100, 60000))),
            },
        }
    doc["system"]["max_workers"] = max_workers
    if at_least(schema, "1.3"):
        store: dict[str, Any] = {
            "root": "/u" + draw(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-", max_size=30)),
            "chunk_bytes": draw(st.integers(64, msize - 24)),
            "hash": "sha256",
        }
        if draw(st.booleans()):
            store["sign"] = {"algo": "ed25519", "pubkey_path": "keys/cas.pub"}
        doc["cas"] = {"enable": cas_enable, "store": store, "delta": {"enable": draw(st.booleans())}}
    return doc


def _write(directory: Path, doc: dict[str, Any]) -> Path:
    (directory / "keys").mkdir(exist_ok=True)
    (directory / "keys" / "cas.pub").write_text(PUBKEY + "\n")
    return write_document(directory / "root_task.toml", doc)


@SETTINGS
@given(valid_irs())
def test_random_valid_irs_compile_and_round_trip(doc: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        first = compile_ir(_write(Path(tmp), doc))
        assert first.schema == doc["root_task"]["schema"]
        again = compile_ir(Path(tmp) / "root_task.toml")
        assert again.manifest_bytes == first.manifest_bytes  # deterministic
        redo = resolved_to_document(first.resolved, first.ticket_secrets, first.ir.console.auth_token)
        (Path(tmp) / "second").mkdir()
        second = compile_ir(_write(Path(tmp) / "second", redo))
        assert second.manifest_bytes == first.manifest_bytes
        assert second.ticket_secrets == first.ticket_secrets


def _leaf_paths(node: Any, prefix: str = "") -> list[str]:
    if isinstance(node, dict):
        out: list[str] = []
        for key, value in node.items():
            out += _leaf_paths(value, f"{prefix}.{key}" if prefix else key)
        return out
    if isinstance(node, list) and node and all(isinstance(v, dict) for v in node):
        return [p for idx, v in enumerate(node) for p in _leaf_paths(v, f"{prefix}[{idx}]")]
    return [prefix]


def _with_headers(doc: dict[str, Any]) -> str:
    """The same document written with [table] headers and [[array]] headers (not dotted keys)."""
    lines: list[str] = []

    def table(node: dict[str, Any], path: str, header: str) -> None:
        scalars = {k: v for k, v in node.items() if not isinstance(v, dict) and not (isinstance(v, list) and v and isinstance(v[0], dict))}
        if header:
            lines.append(header)
        for key, value in scalars.items():
            lines.append(dumps({key: value}).rstrip("\n"))
        for key, value in node.items():
            sub = f"{path}.{key}" if path else key
            if isinstance(value, dict):
                table(value, sub, f"[{sub}]")
            elif isinstance(value, list) and value and isinstance(value[0], dict):
                for item in value:
                    table(item, sub, f"[[{sub}]]")

    table(doc, "", "")
    return "\n".join(lines) + "\n"


@SETTINGS
@given(valid_irs(), st.booleans())
def test_locator_finds_every_key(doc: dict[str, Any], headers: bool) -> None:
    text = _with_headers(doc) if headers else dumps(doc)
    index = index_lines(text)
    source = text.splitlines()
    for path in _leaf_paths(doc):
        line = index.line_of(path)
        assert line > 0, path
        key = path.rsplit(".", 1)[-1].split("[")[0]
        assert key in source[line - 1], (path, line, source[line - 1])


@SETTINGS
@given(
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r"), max_size=200),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r<"), max_size=200),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r<"), max_size=80),
)
def test_doc_regions_round_trip(snippet: str, before: str, after: str) -> None:
    snippet = snippet.replace("<!--", "")
    body = snippet if snippet.endswith("\n") or not snippet else snippet + "\n"
    before = before if before.endswith("\n") or not before else before + "\n"
    text = f"{before}<!-- coh-rtc:proc_tree:start -->\nold\n<!-- coh-rtc:proc_tree:end -->\n{after}"
    new, unknown = replace_regions(text, {"proc_tree": body})
    assert unknown == []
    (region,) = find_regions(new)
    assert new[region.start : region.end] == body
    assert new.startswith(before) and new.endswith(f"<!-- coh-rtc:proc_tree:end -->\n{after}")


_scalars = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.booleans(),
    st.text(max_size=20),
    st.floats(allow_nan=False, allow_infinity=False),
    st.lists(st.integers(0, 9), max_size=3),
    st.just({}),
)
_DIAGNOSTIC = re.compile(r"^[^:]+:\d+: (-|[A-Za-z0-9_.\[\]-]+): \S.*$")


@st.composite
def mutated_irs(draw: st.DrawFn) -> dict[str, Any]:
    """A valid IR with 1–4 random leaves replaced, deleted or added (mostly invalid)."""
    doc = draw(valid_irs())
    for _ in range(draw(st.integers(1, 4))):
        node = doc
        while True:
            keys = list(node) if isinstance(node, dict) else []
            if not keys:
                break
            key = draw(st.sampled_from(keys))
            child = node[key]
            if isinstance(child, dict) and child and draw(st.booleans()):
                node = child
                continue
            action = draw(st.sampled_from(["replace", "delete", "add"]))
            if action == "replace":
                node[key] = draw(_scalars)
            elif action == "delete":
                del node[key]
            else:
                node[draw(st.sampled_from(["extra", "enable", "port", "x-y"]))] = draw(_scalars)
            break
    return doc


@SETTINGS
@given(mutated_irs())
def test_arbitrary_documents_compile_or_fail_with_diagnostics_only(doc: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = _write(Path(tmp), doc)
        try:
            compiled = compile_ir(path)
        except IRError as err:
            assert err.lines, "an IRError always carries diagnostics"
            assert err.lines == sorted(err.lines, key=lambda l: (int(l.split(":")[1]), l.split(": ")[1]))
            for line in err.lines:
                assert line.startswith(f"{path}:") and _DIAGNOSTIC.match(line[len(str(path)) - 1 :]), line
        else:
            assert compiled.outputs  # rendering never fails for an accepted IR
