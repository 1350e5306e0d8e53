"""The root task's view of its configuration: the resolved IR, nothing else (docs → IR → code).

In the guest the values come from ``root_task.generated.bootstrap`` (written by coh-rtc at build time);
in host mode ``cohesix-host --ir PATH`` compiles the IR in memory with the same compiler
(``root_task.host.runtime_config_from_ir``: the only place that imports ``coh_rtc``), so both run modes
read identical structures. Values are read strictly (``resolved["a"]["b"]``): coh-rtc put every key
there, and defaults live only in ``coh_rtc/fields.py``.
"""
from __future__ import annotations

from dataclasses import dataclass

from nine_door import features

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing at boot (docs/build.md)
if TYPE_CHECKING:
    from typing import Any


class UnimplementedFeature(Exception):
    """The generated configuration asks for a feature this build does not implement (features.py)."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


@dataclass(frozen=True)
class RuntimeConfig:
    resolved: dict[str, Any]
    schema: str
    manifest_sha256: str
    ticket_secrets: dict[str, str]
    placeholder_secrets: tuple[str, ...] = ()  # secrets still set to a demo placeholder (boot warning)

    @classmethod
    def from_bootstrap(cls) -> "RuntimeConfig":
        """The guest's configuration; refuses (UnimplementedFeature) what this build does not honour."""
        from root_task.generated import bootstrap

        missing = features.unimplemented(bootstrap.RESOLVED)
        if missing:  # the image builder refuses such an IR; this catches a hand-regenerated bootstrap
            raise UnimplementedFeature([f"{bootstrap.IR_BASENAME}:0: {key}: {features.PROBLEM}" for key in missing])
        return cls(
            resolved=bootstrap.RESOLVED,
            schema=bootstrap.MANIFEST_SCHEMA,
            manifest_sha256=bootstrap.MANIFEST_SHA256,
            ticket_secrets=dict(bootstrap.TICKET_SECRETS),
            placeholder_secrets=tuple(bootstrap.PLACEHOLDER_SECRETS),
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

    @property
    def placeholder_warning(self) -> str | None:
        """The one boot warning line when demo placeholder secrets are in use (SPEC §14.2), else None."""
        if not self.placeholder_secrets:
            return None
        return ("warning: placeholder secrets in use (" + ", ".join(self.placeholder_secrets)
                + "): set them as env:NAME or file:PATH references in the IR")
