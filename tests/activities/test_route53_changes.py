"""Route 53 writes to one hosted zone at the same time go in one change (a group commit), on the
sandbox: what arrives while a change is being sent goes in the next; a batch refused for what it
holds is sent again one write at a time; other errors are each write's; steps waiting on one
change share its GetChange answers."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from activities.aws.route53 import GLOBAL
from activities.aws.route53_changes import ChangeStatuses, ZoneChanges
from orchestrator.config import from_sandbox
from orchestrator.sandbox.control import SandboxControl
from orchestrator.sandbox.faults import FaultRule
from orchestrator.sandbox.manager import SandboxEnv
from tests.activities.test_step_types import RecordingClients
from tests.sandbox.helpers import aws


def _record(name: str, weight: int = 10, value: str = "target.example.") -> dict[str, Any]:
    return {
        "Name": name, "Type": "CNAME", "SetIdentifier": "us-east-1", "Weight": weight, "TTL": 60,
        "ResourceRecords": [{"Value": value}],
    }  # fmt: skip


def _weights(env: SandboxEnv) -> dict[str, int]:
    sets = aws(env, "route53").list_resource_record_sets(HostedZoneId=env.topology["zone_id"])
    return {r["Name"]: r["Weight"] for r in sets["ResourceRecordSets"] if "Weight" in r}


def _at_once(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run each call in its own thread; their results (or errors) in order."""
    out: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        try:
            out[i] = calls[i]()
        except Exception as exc:
            out[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return out


@dataclass
class _Zone:
    """The shop's zone on the sandbox, written through a `ZoneChanges` of its own."""

    env: SandboxEnv
    clients: RecordingClients = field(init=False)
    changes: ZoneChanges = field(default_factory=ZoneChanges)

    def __post_init__(self) -> None:
        self.clients = RecordingClients(from_sandbox(self.env))
        self.r53 = self.clients.aws("route53", GLOBAL)

    def upsert(self, record: dict[str, Any], comment: str = "") -> dict[str, Any]:
        return self.changes.upsert(self.r53, self.env.topology["zone_id"], [record], comment)

    def sending_first(self, control: SandboxControl, delay: float, count: int = 1) -> Any:
        """A first write, its change held `delay` s on the way (and the `count`-1 after it):
        returns once it is being sent, with the thread sending it."""
        control.add_fault(FaultRule(target="aws:route53:ChangeResourceRecordSets",
                                    error="none", delay=delay, count=count))  # fmt: skip
        first: dict[str, Any] = {}
        thread = threading.Thread(
            target=lambda: first.update(self.upsert(_record("a.shop.example."), "first"))
        )
        thread.start()
        deadline = time.monotonic() + 10
        while not self.changes._sending:
            assert time.monotonic() < deadline, "the first write was never sent"
            time.sleep(0.005)
        return thread, first

    def sent(self) -> int:
        return self.clients.calls["ChangeResourceRecordSets"]


def test_writes_arriving_while_one_is_sent_go_together_in_the_next(
    fresh: SandboxEnv, control: SandboxControl
) -> None:
    zone = _Zone(fresh)
    sending, first = zone.sending_first(control, delay=1.0)
    names = [f"b{i}.shop.example." for i in range(6)]
    got = _at_once([(lambda n=n: zone.upsert(_record(n, 20), f"run-{n} s")) for n in names])
    sending.join(timeout=30)
    assert zone.sent() == 2  # not 7
    assert {g["Id"] for g in got} != {first["Id"]} and len({g["Id"] for g in got}) == 1
    weights = _weights(fresh)
    assert weights["a.shop.example."] == 10
    assert all(weights[n] == 20 for n in names)


def test_two_writes_to_one_record_set_never_share_a_change(
    fresh: SandboxEnv, control: SandboxControl
) -> None:
    zone = _Zone(fresh)
    sending, _ = zone.sending_first(control, delay=0.5, count=2)
    got = _at_once([
        lambda: zone.upsert(_record("c.shop.example.", 1)),
        lambda: zone.upsert(_record("c.shop.example.", 2)),
        lambda: zone.upsert(_record("d.shop.example.", 3)),
    ])  # fmt: skip
    sending.join(timeout=30)
    assert not [g for g in got if isinstance(g, Exception)]
    # the first alone; one of c's with d; the other c after them
    assert zone.sent() == 3
    assert got[0]["Id"] != got[1]["Id"] and got[2]["Id"] in (got[0]["Id"], got[1]["Id"])
    assert _weights(fresh)["d.shop.example."] == 3


@pytest.mark.parametrize(
    ("bad", "refused", "sent"),
    [
        # Route 53 refuses the batch (the record is not in the zone): the first write, the
        # batch, then each of its three writes alone
        (_record("e.other.example."), "InvalidChangeBatch", 1 + 1 + 3),
        # botocore refuses it before it is sent: the first, then the two good ones alone
        (_record("e.shop.example.") | {"TTL": -5}, "ParamValidationError", 1 + 2),
    ],
)
def test_a_batch_refused_for_one_record_is_sent_again_one_write_at_a_time(
    fresh: SandboxEnv, control: SandboxControl, bad: dict[str, Any], refused: str, sent: int
) -> None:
    zone = _Zone(fresh)
    sending, _ = zone.sending_first(control, delay=0.5)
    got = _at_once([
        lambda: zone.upsert(_record("f.shop.example.", 5)),
        lambda: zone.upsert(bad),
        lambda: zone.upsert(_record("g.shop.example.", 6)),
    ])  # fmt: skip
    sending.join(timeout=30)
    assert type(got[1]).__name__ == refused
    assert not isinstance(got[0], Exception) and not isinstance(got[2], Exception)
    weights = _weights(fresh)
    assert (weights["f.shop.example."], weights["g.shop.example."]) == (5, 6)
    assert bad["Name"] not in weights
    assert zone.sent() == sent


def test_any_other_error_is_each_writes_own(fresh: SandboxEnv, control: SandboxControl) -> None:
    zone = _Zone(fresh)
    sending, _ = zone.sending_first(control, delay=0.5)
    # the next change is refused as the client's retries would end it: not sent again one by one
    control.add_fault(FaultRule(target="aws:route53:ChangeResourceRecordSets",
                                error="PriorRequestNotComplete", count=None))  # fmt: skip
    got = _at_once([
        (lambda n=n: zone.upsert(_record(n))) for n in ("h.shop.example.", "i.shop.example.")
    ])  # fmt: skip
    sending.join(timeout=30)
    control.clear_faults()
    assert [type(g).__name__ for g in got] == ["PriorRequestNotComplete"] * 2
    assert got[0] is not got[1]  # each its own error, of the modelled class
    assert isinstance(got[0], zone.r53.exceptions.PriorRequestNotComplete)


def test_steps_waiting_on_one_change_share_its_answers(fresh: SandboxEnv) -> None:
    zone, statuses = _Zone(fresh), ChangeStatuses()
    change = zone.upsert(_record("j.shop.example."))
    zone.clients.taken()
    got = _at_once([lambda: statuses.status(zone.r53, change["Id"]) for _ in range(8)])
    assert set(got) <= {"PENDING", "INSYNC"}
    assert zone.clients.taken()["GetChange"] < 8
    deadline = time.monotonic() + 30
    while statuses.status(zone.r53, change["Id"]) != "INSYNC":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    zone.clients.taken()
    assert statuses.status(zone.r53, change["Id"]) == "INSYNC"  # final: not asked again
    assert zone.clients.taken() == {}


def test_a_lone_write_is_sent_at_once(fresh: SandboxEnv) -> None:
    zone = _Zone(fresh)
    ids = [zone.upsert(_record("k.shop.example.", w))["Id"] for w in range(3)]
    assert len(set(ids)) == 3 == zone.sent()
    assert _weights(fresh)["k.shop.example."] == 2
