"""Step 4 of the compiler: emission (SPEC §15.2–§15.5).

Everything written is rendered in memory first, from Jinja2 templates with ``StrictUndefined`` (a
missing variable is a bug, not an empty string). Templates only lay text out; values, orderings and
conditions are computed here or in ``scripts.py`` / ``snippets.py``. Outputs contain no timestamps, no
absolute paths (only the IR's basename) and ``\\n`` line endings, so the same IR gives the same bytes
everywhere.
"""

from __future__ import annotations

import functools
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

import jinja2

from .pyliteral import py_literal
from .scripts import scripts_for, shard_labels
from .snippets import proc_nodes, snippet_plans
from .validate import schema_at_least

if TYPE_CHECKING:  # pragma: no cover
    from .compiler import Compiled

BANNER = "GENERATED – do not edit (coh-rtc)"


@functools.lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("coh_rtc", "templates"),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _render(template: str, **context: Any) -> bytes:
    text = environment().get_template(template).render(banner=BANNER, **context)
    return text.encode("utf-8")


def _join(base: str, name: str) -> str:
    return str(PurePosixPath(base) / name)


def render_snippets(compiled: "Compiled") -> dict[str, bytes]:
    common = {"ir_basename": compiled.ir_basename, "sha256": compiled.manifest_sha256}
    return {
        plan.name: _render(f"snippet_{plan.name}.md.j2", **common, **plan.context)
        for plan in snippet_plans(compiled.ir, compiled.resolved)
    }


def _toml_bool(flag: bool) -> str:
    return "true" if flag else "false"


def cohsh_policy_values(compiled: "Compiled") -> dict[str, str]:
    """The values of ``cohsh_policy.toml`` (SPEC §15.2), already written as TOML literals."""
    ir = compiled.ir
    return {
        "schema": ir.schema,
        "control": str(ir.client_policies.cohsh.pool.control),
        "telemetry": str(ir.client_policies.cohsh.pool.telemetry),
        "backoff_ms": str(ir.client_policies.retry.short_write.backoff_ms),
        "max_retries": str(ir.client_policies.retry.short_write.max_retries),
        "batch_frames": _toml_bool(ir.secure9p.batch_frames),
        "msize": str(ir.secure9p.msize),
        "tags_per_session": str(ir.secure9p.tags_per_session),
    }


def render_outputs(compiled: "Compiled") -> dict[str, bytes]:
    """Every output file for ``compiled.options``: path (as given) → bytes, sorted by path."""
    ir, opts, sha = compiled.ir, compiled.options, compiled.manifest_sha256
    common = {"sha256": sha, "ir_basename": compiled.ir_basename}
    has_schema_module = schema_at_least(ir.schema, "1.2")
    out: dict[str, bytes] = {}

    modules = ["bootstrap"] + (["schema"] if has_schema_module else [])
    out[_join(opts.out_dir, "__init__.py")] = _render("init.py.j2", modules=modules, **common)
    out[_join(opts.out_dir, "bootstrap.py")] = _render(
        "bootstrap.py.j2",
        schema=py_literal(ir.schema),
        sha_literal=py_literal(sha),
        basename_literal=py_literal(compiled.ir_basename),
        resolved=py_literal(compiled.resolved),
        ticket_secrets=py_literal(compiled.ticket_secrets),
        placeholder_secrets=py_literal(compiled.placeholder_secrets),
        shard_labels=py_literal(shard_labels(ir)),
        proc_nodes=py_literal(proc_nodes(ir)),
        cas_pubkey=py_literal(ir.cas.store.sign.pubkey_hex if ir.cas.store.sign else None),
        **common,
    )
    if has_schema_module:
        t = ir.telemetry
        out[_join(opts.out_dir, "schema.py")] = _render(
            "schema.py.j2",
            frame_schema=py_literal(t.frame_schema),
            ring_bytes=t.ring_bytes_per_worker,
            memory_budget=t.memory_budget_bytes,
            max_workers=ir.system.max_workers,
            **common,
        )

    out[opts.manifest] = compiled.manifest_bytes
    manifest_name = PurePosixPath(opts.manifest).name
    out[opts.manifest + ".sha256"] = f"{sha}  {manifest_name}\n".encode("ascii")

    script_dir = str(PurePosixPath(opts.cli_script).parent)
    for name, statements in scripts_for(ir).items():
        path = opts.cli_script if name == "boot_v0.coh" else _join(script_dir, name)
        out[path] = _render("script.coh.j2", statements=statements, **common)

    if has_schema_module:
        out[opts.cohsh_policy] = _render("cohsh_policy.toml.j2", policy=cohsh_policy_values(compiled), **common)

    for name, data in compiled.snippets.items():
        out[_join(opts.doc_dir, f"{name}.md")] = data
    return dict(sorted(out.items()))
