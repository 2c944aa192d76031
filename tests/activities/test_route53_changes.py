"""Route 53 writes to one hosted zone at the same time go in one change (a group commit), on the
sandbox: what arrives while a change is being sent goes in the next; a batch refused for what it
holds is sent again one write at a time; other errors are each write's; steps waiting on one
change share its GetChange answers."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from activities.aws.route53 import GLOBAL
from activities.aws.route53_changes import ChangeStatuses, ZoneChanges
from orchestrator.config import from_sandbox
from orchestrator.sandbox.control import SandboxControl
from orchestrator.sandbox.faults import FaultRule
from orchestrator.sandbox.manager import SandboxEnv
from tests.activities.test_route53_calls import CountingClients
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


def _while_sending(changes: ZoneChanges, first: Callable[[], Any]) -> threading.Thread:
    """Start `first` and return once its change is being sent."""
    thread = threading.Thread(target=first)
    thread.start()
    deadline = time.monotonic() + 10
    while not changes._sending:
        assert time.monotonic() < deadline, "the first write was never sent"
        time.sleep(0.005)
    return thread


def test_writes_arriving_while_one_is_sent_go_together_in_the_next(
    fresh: SandboxEnv, control: SandboxControl
) -> None:
    clients = CountingClients(from_sandbox(fresh))
    r53, zone, changes = clients.aws("route53", GLOBAL), fresh.topology["zone_id"], ZoneChanges()
    control.add_fault(FaultRule(target="aws:route53:ChangeResourceRecordSets", error="none",
                                delay=1.0))  # fmt: skip
    first: dict[str, Any] = {}
    sending = _while_sending(changes, lambda: first.update(
        changes.upsert(r53, zone, [_record("a.shop.example.")], "run-a s")))  # fmt: skip
    names = [f"b{i}.shop.example." for i in range(6)]
    got = _at_once([
        (lambda n=n: changes.upsert(r53, zone, [_record(n, 20)], f"run-{n} s")) for n in names
    ])  # fmt: skip
    sending.join(timeout=30)
    assert clients.calls["ChangeResourceRecordSets"] == 2  # not 7
    assert {g["Id"] for g in got} != {first["Id"]} and len({g["Id"] for g in got}) == 1
    weights = _weights(fresh)
    assert weights["a.shop.example."] == 10
    assert all(weights[n] == 20 for n in names)


def test_two_writes_to_one_record_set_never_share_a_change(
    fresh: SandboxEnv, control: SandboxControl
) -> None:
    clients = CountingClients(from_sandbox(fresh))
    r53, zone, changes = clients.aws("route53", GLOBAL), fresh.topology["zone_id"], ZoneChanges()
    control.add_fault(FaultRule(target="aws:route53:ChangeResourceRecordSets", error="none",
                                delay=0.5, count=2))  # fmt: skip
    sending = _while_sending(changes, lambda: changes.upsert(
        r53, zone, [_record("a.shop.example.")], "first"))  # fmt: skip
    got = _at_once([
        lambda: changes.upsert(r53, zone, [_record("c.shop.example.", 1)], "c1"),
        lambda: changes.upsert(r53, zone, [_record("c.shop.example.", 2)], "c2"),
        lambda: changes.upsert(r53, zone, [_record("d.shop.example.", 3)], "d"),
    ])  # fmt: skip
    sending.join(timeout=30)
    assert not [g for g in got if isinstance(g, Exception)]
    # the first alone; one of c's with d; the other c after them
    assert clients.calls["ChangeResourceRecordSets"] == 3
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
    clients = CountingClients(from_sandbox(fresh))
    r53, zone, changes = clients.aws("route53", GLOBAL), fresh.topology["zone_id"], ZoneChanges()
    control.add_fault(FaultRule(target="aws:route53:ChangeResourceRecordSets", error="none",
                                delay=0.5))  # fmt: skip
    sending = _while_sending(changes, lambda: changes.upsert(
        r53, zone, [_record("a.shop.example.")], "first"))  # fmt: skip
    got = _at_once([
        lambda: changes.upsert(r53, zone, [_record("f.shop.example.", 5)], "good"),
        lambda: changes.upsert(r53, zone, [bad], "bad"),
        lambda: changes.upsert(r53, zone, [_record("g.shop.example.", 6)], "good too"),
    ])  # fmt: skip
    sending.join(timeout=30)
    assert type(got[1]).__name__ == refused
    assert not isinstance(got[0], Exception) and not isinstance(got[2], Exception)
    weights = _weights(fresh)
    assert (weights["f.shop.example."], weights["g.shop.example."]) == (5, 6)
    assert bad["Name"] not in weights
    assert clients.calls["ChangeResourceRecordSets"] == sent


def test_any_other_error_is_each_writes_own(fresh: SandboxEnv, control: SandboxControl) -> None:
    clients = CountingClients(from_sandbox(fresh))
    r53, zone, changes = clients.aws("route53", GLOBAL), fresh.topology["zone_id"], ZoneChanges()
    control.add_fault(FaultRule(target="aws:route53:ChangeResourceRecordSets", error="none",
                                delay=0.5))  # fmt: skip
    sending = _while_sending(changes, lambda: changes.upsert(
        r53, zone, [_record("a.shop.example.")], "first"))  # fmt: skip
    # the next change is refused as the client's retries would end it: not sent again one by one
    control.add_fault(FaultRule(target="aws:route53:ChangeResourceRecordSets",
                                error="PriorRequestNotComplete", count=None))  # fmt: skip
    got = _at_once([
        (lambda n=n: changes.upsert(r53, zone, [_record(n)], n))
        for n in ("h.shop.example.", "i.shop.example.")
    ])  # fmt: skip
    sending.join(timeout=30)
    control.clear_faults()
    assert [type(g).__name__ for g in got] == ["PriorRequestNotComplete"] * 2
    assert got[0] is not got[1]  # each its own error, of the modelled class
    assert isinstance(got[0], r53.exceptions.PriorRequestNotComplete)


def test_steps_waiting_on_one_change_share_its_answers(fresh: SandboxEnv) -> None:
    clients = CountingClients(from_sandbox(fresh))
    r53, zone = clients.aws("route53", GLOBAL), fresh.topology["zone_id"]
    change = ZoneChanges().upsert(r53, zone, [_record("j.shop.example.")], "j")
    statuses = ChangeStatuses()
    clients.taken()
    got = _at_once([lambda: statuses.status(r53, change["Id"]) for _ in range(8)])
    assert set(got) <= {"PENDING", "INSYNC"}
    assert clients.taken()["GetChange"] < 8
    deadline = time.monotonic() + 30
    while statuses.status(r53, change["Id"]) != "INSYNC":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    clients.taken()
    assert statuses.status(r53, change["Id"]) == "INSYNC"  # final: not asked again
    assert clients.taken() == {}


def test_a_lone_write_is_sent_at_once(fresh: SandboxEnv) -> None:
    n = 3
    clients = CountingClients(from_sandbox(fresh))
    r53, zone, changes = clients.aws("route53", GLOBAL), fresh.topology["zone_id"], ZoneChanges()
    ids = [changes.upsert(r53, zone, [_record("k.shop.example.", w)], "k")["Id"] for w in range(n)]
    assert len(set(ids)) == n and clients.calls["ChangeResourceRecordSets"] == n
    assert _weights(fresh)["k.shop.example."] == n - 1
