"""The compiler pipeline: parse → validate → resolve → (validate relations) → emit.

:func:`compile_ir` is the one entry point for host code (``coh-rtc`` itself, ``cohesix-host --ir``,
tests). It is cheap: outputs are rendered lazily the first time ``Compiled.outputs`` is read, so a
caller that only needs the resolved configuration never imports Jinja2.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .diagnostics import IRError
from .model import IR
from .parse import ParsedIR, parse_ir
from .resolve import manifest_bytes, manifest_dict, manifest_sha256, resolve
from .validate import check_relations, check_structure, to_diagnostics


@dataclass(frozen=True)
class OutputOptions:
    """Where outputs go (SPEC §15.1 options); paths are used as given, relative ones stay relative."""

    out_dir: str = "root_task/generated"
    manifest: str = "out/manifests/root_task_resolved.json"
    cli_script: str = "tests/cli/boot_v0.coh"
    cohsh_policy: str = "out/cohsh_policy.toml"
    doc_dir: str = "docs/snippets"


@dataclass(frozen=True)
class Compiled:
    """A successfully compiled IR."""

    ir: IR
    resolved: dict[str, Any] = field(repr=False)
    manifest_bytes: bytes = field(repr=False)
    manifest_sha256: str
    ir_basename: str
    options: OutputOptions = field(default_factory=OutputOptions)

    @property
    def schema(self) -> str:
        return self.ir.schema

    @property
    def ticket_secrets(self) -> dict[str, str]:
        """Role → secret (sorted by role); the only place secrets leave the compiler."""
        return {t.role: t.secret for t in self.ir.tickets}

    @functools.cached_property
    def outputs(self) -> Mapping[str, bytes]:
        """Relative output path (as given in the options) → file bytes, sorted by path."""
        from .emit import render_outputs  # deferred: Jinja2 is only needed when writing files

        return render_outputs(self)

    @functools.cached_property
    def snippets(self) -> Mapping[str, bytes]:
        """Snippet name (``root_task_manifest``) → snippet bytes."""
        from .emit import render_snippets

        return render_snippets(self)


def analyse(parsed: ParsedIR) -> IR:
    """Validate and resolve a parsed IR; raise :class:`IRError` with every diagnostic found."""
    checked = check_structure(parsed.document, parsed.directory)
    ir = resolve(checked.values, checked.schema)
    check_relations(ir, checked)
    if checked.problems:
        raise IRError(to_diagnostics(checked, parsed.index, parsed.display_name))
    return ir


def compile_ir(path: str | Path, options: OutputOptions | None = None) -> Compiled:
    """Compile the IR at ``path``; raise :class:`IRError` (``.lines``) when it is invalid."""
    parsed = parse_ir(path)
    ir = analyse(parsed)
    resolved = manifest_dict(ir)
    data = manifest_bytes(resolved)
    return Compiled(
        ir=ir,
        resolved=resolved,
        manifest_bytes=data,
        manifest_sha256=manifest_sha256(data),
        ir_basename=parsed.basename,
        options=options or OutputOptions(),
    )
