"""coh-rtc: the root-task IR compiler (SPEC §14, §15).

``root_task.toml`` is the single source of truth for the root task. The compiler parses it (tomllib),
validates it (red lines, bounds, schema gating; every diagnostic is ``<file>:<line>: <field>:
<problem>``), resolves defaults and legacy values into typed frozen dataclasses, and emits the
generated package, the resolved manifest, ``.coh`` scripts, the cohsh policy and doc snippets.

Host code uses :func:`compile_ir` (or :func:`compile_runtime_ir`, which also refuses values this build
does not implement, for code about to run the IR)::

    from coh_rtc import compile_ir, IRError
    compiled = compile_ir("configs/root_task.toml")   # raises IRError(.lines) when invalid
    compiled.resolved, compiled.manifest_sha256, compiled.ticket_secrets, compiled.outputs
"""

from .compiler import Compiled, OutputOptions, compile_ir, compile_runtime_ir
from .diagnostics import Diagnostic, IRError
from .fields import SCHEMAS

__all__ = ["Compiled", "Diagnostic", "IRError", "OutputOptions", "SCHEMAS", "compile_ir", "compile_runtime_ir"]
