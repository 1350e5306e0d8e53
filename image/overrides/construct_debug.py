"""Guest stand-in for ``construct.debug`` (image/stage.py ships it in place of the real module).

Why: the real module imports ``pdb`` and ``inspect`` at top level, which pulls ~0.5 MiB of stdlib
(pdb, bdb, cmd, code, inspect, dis, ast, …) into the boot payload, for two interactive debugging
helpers that cannot be used on a serial-console PID 1. ``Probe`` and ``Debugger`` keep their names so
``from construct import *`` works unchanged; constructing either raises at once, so a schema that
uses them fails loudly at import time in the guest (they remain available on the host).
"""
from construct.core import Construct, Subconstruct

_WHY = "construct.{} is a host-only debugging helper; it is not shipped in the Cohesix guest image"


class Probe(Construct):
    def __init__(self, *args, **kwargs):
        raise NotImplementedError(_WHY.format("Probe"))


class Debugger(Subconstruct):
    def __init__(self, *args, **kwargs):
        raise NotImplementedError(_WHY.format("Debugger"))
