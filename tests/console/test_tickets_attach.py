"""ATTACH with real §4.5 ticket validation (nine_door.tickets) and the console's detail mapping."""
from __future__ import annotations

import pytest

from nine_door import tickets
from root_task.console.context import ConsoleConfig, ConsoleContext
from root_task.console.session import ConsoleSession
from root_task.console.throttle import Throttle

from .fakes import FakeDoor, ManualClock

SECRETS = {"queen": "bootstrap", "worker-heartbeat": "worker", "worker-gpu": "worker-gpu"}
SPEC_WORKER_TICKET = (
    "cohesix-ticket-01010fe80300000000000010270000000000002c010000000000000800776f726b65722d31"
    "000000000000000000000000.9bada67b2cdede252bdc11e3fc714b04085390cefaa41b8451d07160f5e9bfba")
SPEC_QUEEN_TICKET = ("cohesix-ticket-010000000000000000000000000000."
                     "574095c8f358416843eadd2c94e7f2e8f3dae33e2248533350573a01c3532331")


def session(door=None, clock=None):
    door = door or FakeDoor(workers={"worker-1"})
    ctx = ConsoleContext(door=door, config=ConsoleConfig(ticket_secrets=SECRETS), throttle=Throttle(),
                         clock=clock or ManualClock(), bridge_factory=door.open_bridge)
    return ConsoleSession(ctx, transport="serial", origin_key="serial", origin_label="serial",
                          conn_id="serial"), door


def test_spec_worker_ticket_attaches():
    s, _ = session()
    assert s.handle_line(f"attach worker {SPEC_WORKER_TICKET}").lines == ("OK ATTACH role=worker-heartbeat",)
    assert s.subject == "worker-1"


def test_spec_queen_ticket_attaches():
    s, _ = session()
    assert s.handle_line(f"attach queen {SPEC_QUEEN_TICKET}").lines == ("OK ATTACH role=queen",)


@pytest.mark.parametrize("role,ticket,detail,reason", [
    ("worker", SPEC_QUEEN_TICKET, "denied", "policy"),                    # MAC fails for worker secret
    ("queen", SPEC_WORKER_TICKET, "denied", "policy"),
    ("worker", "cohesix-ticket-zz.00", "invalid-claims", "policy"),
    ("worker-gpu", tickets.mint("worker-gpu", "worker-gpu"), "invalid-claims", "policy"),   # no subject
    ("worker", tickets.mint("worker", "worker-heartbeat", subject="worker-1", ttl_s=1, issued_at_ms=1),
     "expired", "quota"),
    ("worker", tickets.mint("worker", "worker-heartbeat", subject="worker-9"), "unknown-worker", "policy"),
])
def test_refusals(role, ticket, detail, reason):
    s, door = session()
    assert s.handle_line(f"attach {role} {ticket}").lines == (f"ERR ATTACH reason={reason} detail={detail}",)
    assert door.log[-1].endswith(f"detail={detail}")
    assert s.ctx.throttle.failures("serial") == 1
