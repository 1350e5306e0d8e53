"""The compiler pipeline: parse → validate → resolve → (validate relations) → emit.

:func:`compile_ir` is the one entry point for host code that compiles (``coh-rtc`` itself, tests).
:func:`compile_runtime_ir` is the entry point for code that is about to *run* an IR (``cohesix-host
--ir``, ``python -m image.build``): it also refuses values this build does not implement
(``nine_door.features``), located like every other diagnostic. Both are cheap: outputs are rendered
lazily the first time ``Compiled.outputs`` is read, so a caller that only needs the resolved
configuration never imports Jinja2.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from nine_door import features

from .diagnostics import Diagnostic, IRError
from .model import IR, build
from .parse import ParsedIR, parse_ir
from .resolve import manifest_bytes, manifest_dict, manifest_sha256, resolve_data
from .secrets import is_placeholder
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

    @property
    def placeholder_secrets(self) -> tuple[str, ...]:
        """Names of the secrets that hold a demo placeholder (warned about at boot), sorted."""
        names = [f"tickets[{t.role}].secret" for t in self.ir.tickets if is_placeholder(t.secret)]
        if is_placeholder(self.ir.console.auth_token):
            names.append("console.auth_token")
        return tuple(sorted(names))

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


def analyse(parsed: ParsedIR, environ: Mapping[str, str] | None = None) -> tuple[IR, dict[str, Any]]:
    """Validate and resolve a parsed IR into the model and the resolved dict; raise :class:`IRError`
    with every diagnostic found. Secret references resolve against ``environ`` (default os.environ)."""
    checked = check_structure(parsed.document, parsed.directory, environ)
    data = resolve_data(checked.values, checked.schema)
    ir = build(IR, data)
    check_relations(ir, checked)
    if checked.problems:
        raise IRError(to_diagnostics(checked, parsed.index, parsed.display_name))
    return ir, data


def _compile(parsed: ParsedIR, options: OutputOptions | None, environ: Mapping[str, str] | None) -> Compiled:
    ir, data = analyse(parsed, environ)
    resolved = manifest_dict(data)
    encoded = manifest_bytes(resolved)
    return Compiled(
        ir=ir,
        resolved=resolved,
        manifest_bytes=encoded,
        manifest_sha256=manifest_sha256(encoded),
        ir_basename=parsed.basename,
        options=options or OutputOptions(),
    )


def compile_ir(
    path: str | Path, options: OutputOptions | None = None, *, environ: Mapping[str, str] | None = None
) -> Compiled:
    """Compile the IR at ``path``; raise :class:`IRError` (``.lines``) when it is invalid."""
    return _compile(parse_ir(path), options, environ)


def compile_runtime_ir(
    path: str | Path, options: OutputOptions | None = None, *, environ: Mapping[str, str] | None = None
) -> Compiled:
    """Compile an IR that is about to run: also refuse values this build does not implement, with
    ``<file>:<line>: <key>: not implemented by this build`` (the table is ``nine_door.features``)."""
    parsed = parse_ir(path)
    compiled = _compile(parsed, options, environ)
    missing = features.unimplemented(compiled.resolved)
    if missing:
        raise IRError(
            Diagnostic(parsed.index.line_of(key), key, features.PROBLEM, parsed.display_name) for key in missing
        )
    return compiled
