"""The root task's view of its configuration: the resolved IR, nothing else (docs → IR → code).

In the guest the values come from ``root_task.generated.bootstrap`` (written by coh-rtc at build time);
in host mode ``cohesix-host --ir PATH`` compiles the IR in memory with the same compiler, so both run
modes read identical structures.
"""
from __future__ import annotations

from dataclasses import dataclass

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing at boot (docs/build.md)
if TYPE_CHECKING:
    from typing import Any


@dataclass(frozen=True)
class RuntimeConfig:
    resolved: dict[str, Any]
    schema: str
    manifest_sha256: str
    ticket_secrets: dict[str, str]

    @classmethod
    def from_bootstrap(cls) -> "RuntimeConfig":
        from root_task.generated import bootstrap

        return cls(
            resolved=bootstrap.RESOLVED,
            schema=bootstrap.MANIFEST_SCHEMA,
            manifest_sha256=bootstrap.MANIFEST_SHA256,
            ticket_secrets=dict(bootstrap.TICKET_SECRETS),
        )

    @classmethod
    def from_ir(cls, path: str) -> "RuntimeConfig":
        """Host mode only: compile an IR file exactly as coh-rtc would (SPEC §1.2)."""
        from coh_rtc import compile_ir  # host package; never imported in the guest

        compiled = compile_ir(path)
        return cls(
            resolved=compiled.resolved,
            schema=compiled.schema,
            manifest_sha256=compiled.manifest_sha256,
            ticket_secrets=dict(compiled.ticket_secrets),
        )

    # Convenience accessors for the values the root task itself uses.
    @property
    def tick_s(self) -> float:
        return self.resolved["system"]["tick_ms"] / 1000.0

    @property
    def console(self) -> dict[str, Any]:
        return self.resolved["console"]

    @property
    def console_tcp_enabled(self) -> bool:
        return bool(self.resolved["console"]["tcp"]["enable"])

    @property
    def console_tcp_port(self) -> int:
        return int(self.resolved["console"]["tcp"]["port"])

    @property
    def ninep_tcp_enabled(self) -> bool:
        return bool(self.resolved["secure9p"]["tcp_listener"]["enable"])

    @property
    def ninep_tcp_port(self) -> int:
        return int(self.resolved["secure9p"]["tcp_listener"]["port"])
