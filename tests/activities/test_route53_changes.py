"""Route 53 writes to one hosted zone at the same time go in one change (a group commit), on the
sandbox: what arrives while a change is being sent goes in the next, the last write to a record
set last; a batch refused for what it holds is sent again one write at a time; other errors are
each write's; a write withdrawn while queued is never sent; steps waiting on one change share its
GetChange answers (and ask again when the asker fails)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from activities.aws.route53 import GLOBAL, RecordParams, upsert
from activities.aws.route53_changes import ChangeStatuses, ZoneChanges
from activities.base import StepContext
from activities.errors import StepError
from orchestrator.config import from_sandbox
from orchestrator.sandbox.control import SandboxControl
from orchestrator.sandbox.faults import FaultRule
from orchestrator.sandbox.manager import SandboxEnv
from tests.activities.test_step_types import RecordingClients
from tests.sandbox.helpers import aws

#: How long the first change is held on its way: the other writes queue meanwhile.
HELD = 2.0


def _record(name: str, weight: int = 10, value: str = "target.example.") -> dict[str, Any]:
    return {
        "Name": name, "Type": "CNAME", "SetIdentifier": "us-east-1", "Weight": weight, "TTL": 60,
        "ResourceRecords": [{"Value": value}],
    }  # fmt: skip


def _weights(env: SandboxEnv) -> dict[str, int]:
    sets = aws(env, "route53").list_resource_record_sets(HostedZoneId=env.topology["zone_id"])
    return {r["Name"]: r["Weight"] for r in sets["ResourceRecordSets"] if "Weight" in r}


def _until(condition: Callable[[], bool], what: str, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.005)


class _Call(threading.Thread):
    """One call in a thread of its own; `outcome` is its result or its error."""

    def __init__(self, call: Callable[[], Any]) -> None:
        super().__init__(daemon=True)
        self.call, self.outcome = call, None

    def run(self) -> None:
        try:
            self.outcome = self.call()
        except BaseException as exc:
            self.outcome = exc

    def ended(self) -> Any:
        self.join(timeout=60)
        assert not self.is_alive(), "the call never returned"
        return self.outcome


@dataclass
class _Zone:
    """The shop's zone on the sandbox, written through a `ZoneChanges` of its own."""

    env: SandboxEnv
    clients: RecordingClients = field(init=False)
    changes: ZoneChanges = field(default_factory=ZoneChanges)

    def __post_init__(self) -> None:
        self.clients = RecordingClients(from_sandbox(self.env))
        self.r53 = self.clients.aws("route53", GLOBAL)

    def upsert(
        self, record: dict[str, Any], beat: Callable[[], None] = lambda: None
    ) -> dict[str, Any]:
        zone = self.env.topology["zone_id"]
        return self.changes.upsert(self.r53, zone, [record], record["Name"], beat=beat)

    def queued(self) -> int:
        with self.changes._cond:
            return sum(len(q) for q in self.changes._queues.values())

    def behind_a_held_change(
        self, control: SandboxControl, writes: list[Callable[[], Any]], count: int = 1
    ) -> tuple[Any, list[Any]]:
        """A first write whose change is held `HELD` s on the way (and the `count`-1 after it);
        `writes` queued behind it one after another, in their order, while it is held. Returns
        the first's outcome and theirs."""
        control.add_fault(FaultRule(target="aws:route53:ChangeResourceRecordSets",
                                    error="none", delay=HELD, count=count))  # fmt: skip
        first = _Call(lambda: self.upsert(_record("a.shop.example.")))
        first.start()
        _until(lambda: bool(self.changes._sending), "the first write was never sent")
        calls = []
        for n, write in enumerate(writes, 1):
            calls.append(_Call(write))
            calls[-1].start()
            _until(lambda n=n: self.queued() == n, f"write {n} was never queued")  # type: ignore[misc]
        assert self.changes._sending, f"all queued within {HELD} s, while the first was held"
        return first.ended(), [c.ended() for c in calls]

    def sent(self) -> int:
        return self.clients.calls["ChangeResourceRecordSets"]


def test_writes_arriving_while_one_is_sent_go_together_in_the_next(
    fresh: SandboxEnv, control: SandboxControl
) -> None:
    zone = _Zone(fresh)
    names = [f"b{i}.shop.example." for i in range(6)]
    first, got = zone.behind_a_held_change(
        control, [(lambda n=n: zone.upsert(_record(n, 20))) for n in names]
    )
    assert zone.sent() == 2  # not 7
    assert len({g["Id"] for g in got}) == 1 and got[0]["Id"] != first["Id"]
    weights = _weights(fresh)
    assert weights["a.shop.example."] == 10
    assert all(weights[n] == 20 for n in names)


def test_the_last_write_to_a_record_set_is_the_last_sent(
    fresh: SandboxEnv, control: SandboxControl
) -> None:
    zone = _Zone(fresh)

    def both(weight: int) -> dict[str, Any]:
        return zone.changes.upsert(zone.r53, fresh.topology["zone_id"],
                                   [_record("c.shop.example.", weight),
                                    _record("d.shop.example.", weight)], "both")  # fmt: skip

    _, got = zone.behind_a_held_change(control, [
        lambda: zone.upsert(_record("c.shop.example.", 1)),
        lambda: both(2),  # overlaps the one before: left for a later change
        lambda: zone.upsert(_record("d.shop.example.", 3)),  # must not overtake it
        lambda: zone.upsert(_record("e.shop.example.", 4)),  # free to go with the first
    ], count=3)  # fmt: skip
    assert not [g for g in got if isinstance(g, Exception)]
    assert got[0]["Id"] == got[3]["Id"] and len({g["Id"] for g in got[:3]}) == 3
    assert zone.sent() == 4  # the first; c and e; both; d
    weights = _weights(fresh)
    assert (weights["c.shop.example."], weights["d.shop.example."]) == (2, 3)


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
    _, got = zone.behind_a_held_change(control, [
        lambda: zone.upsert(_record("f.shop.example.", 5)),
        lambda: zone.upsert(bad),
        lambda: zone.upsert(_record("g.shop.example.", 6)),
    ])  # fmt: skip
    assert type(got[1]).__name__ == refused
    assert not isinstance(got[0], Exception) and not isinstance(got[2], Exception)
    weights = _weights(fresh)
    assert (weights["f.shop.example."], weights["g.shop.example."]) == (5, 6)
    assert bad["Name"] not in weights
    assert zone.sent() == sent


def test_any_other_error_is_each_writes_own(fresh: SandboxEnv, control: SandboxControl) -> None:
    zone = _Zone(fresh)
    # once the first is on its way, every change is refused as when the client's retries end
    control.add_fault(FaultRule(target="aws:route53:ChangeResourceRecordSets", error="none",
                                delay=HELD))  # fmt: skip
    control.add_fault(FaultRule(target="aws:route53:ChangeResourceRecordSets",
                                error="PriorRequestNotComplete", count=None))  # fmt: skip
    first = _Call(lambda: zone.upsert(_record("a.shop.example.")))
    first.start()
    _until(lambda: bool(zone.changes._sending), "the first write was never sent")
    calls = [_Call(lambda n=n: zone.upsert(_record(n))) for n in ("h.shop.example.",
                                                                  "i.shop.example.")]  # fmt: skip
    for n, call in enumerate(calls, 1):
        call.start()
        _until(lambda n=n: zone.queued() == n, "never queued")  # type: ignore[misc]
    first.ended()
    got = [c.ended() for c in calls]
    control.clear_faults()
    assert [type(g).__name__ for g in got] == ["PriorRequestNotComplete"] * 2
    assert got[0] is not got[1]  # each its own error, of the modelled class
    assert isinstance(got[0], zone.r53.exceptions.PriorRequestNotComplete)
    assert zone.sent() == 2  # the first, and the batch: not sent again one by one


def test_a_write_withdrawn_while_queued_is_never_sent(
    fresh: SandboxEnv, control: SandboxControl
) -> None:
    zone, cancelled = _Zone(fresh), threading.Event()

    def beat() -> None:  # what a cancelled step's heartbeat does
        if cancelled.is_set():
            raise StepError("Cancelled", "the step was cancelled")

    def withdrawn() -> Any:
        cancelled.set()
        return zone.upsert(_record("w.shop.example."), beat=beat)

    _, got = zone.behind_a_held_change(control, [
        withdrawn, lambda: zone.upsert(_record("x.shop.example.", 7)),
    ])  # fmt: skip
    assert isinstance(got[0], StepError) and got[0].kind == "Cancelled"
    assert got[1]["Status"] == "PENDING" and zone.sent() == 2
    weights = _weights(fresh)
    assert "w.shop.example." not in weights and weights["x.shop.example."] == 7
    assert zone.queued() == 0


def test_a_write_of_no_record_sets_is_refused_before_any_call(fresh: SandboxEnv) -> None:
    clients = RecordingClients(from_sandbox(fresh))
    ctx = StepContext("run", "s", "us-east-1", "us-west-2", None, "drill", clients)
    with pytest.raises(StepError, match="none of its CNAME record sets") as err:
        upsert(ctx, RecordParams(zone="shop.example.", record="gone.shop.example."), [])
    assert err.value.kind == "NotFound" and clients.taken() == {}


def test_steps_waiting_on_one_change_share_its_answers(fresh: SandboxEnv) -> None:
    zone, statuses = _Zone(fresh), ChangeStatuses()
    change = zone.upsert(_record("j.shop.example."))
    zone.clients.taken()
    calls = [_Call(lambda: statuses.status(zone.r53, change["Id"])) for _ in range(8)]
    for c in calls:
        c.start()
    assert {c.ended() for c in calls} <= {"PENDING", "INSYNC"}
    assert zone.clients.taken()["GetChange"] < 8
    _until(lambda: statuses.status(zone.r53, change["Id"]) == "INSYNC", "never INSYNC", 30)
    zone.clients.taken()
    assert statuses.status(zone.r53, change["Id"]) == "INSYNC"  # final: not asked again
    assert zone.clients.taken() == {}


class _Route53:
    """A Route 53 client whose first GetChange is held, then refused."""

    def __init__(self) -> None:
        self.asked, self.release = 0, threading.Event()
        self.lock = threading.Lock()

    def get_change(self, Id: str) -> dict[str, Any]:
        with self.lock:
            self.asked += 1
            first = self.asked == 1
        if first:
            self.release.wait(timeout=30)
            raise RuntimeError("Throttling: Rate exceeded")
        return {"ChangeInfo": {"Id": Id, "Status": "PENDING"}}


def test_when_the_asker_fails_one_waiter_asks_for_all() -> None:
    statuses, r53 = ChangeStatuses(), _Route53()
    asker = _Call(lambda: statuses.status(r53, "/change/C1"))
    asker.start()
    _until(lambda: r53.asked == 1, "never asked")
    waiters = [_Call(lambda: statuses.status(r53, "/change/C1")) for _ in range(10)]
    for w in waiters:
        w.start()
    time.sleep(0.2)  # (they wait for the asker)
    r53.release.set()
    assert isinstance(asker.ended(), RuntimeError)
    assert [w.ended() for w in waiters] == ["PENDING"] * 10
    assert r53.asked == 2  # the failed ask, and one for the ten


def test_a_lone_write_is_sent_at_once(fresh: SandboxEnv) -> None:
    zone = _Zone(fresh)
    ids = [zone.upsert(_record("k.shop.example.", w))["Id"] for w in range(3)]
    assert len(set(ids)) == 3 == zone.sent()
    assert _weights(fresh)["k.shop.example."] == 2


class _SlowRoute53:
    """A Route 53 client whose changes take `seconds` each."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def change_resource_record_sets(self, **_: Any) -> dict[str, Any]:
        time.sleep(self.seconds)
        return {"ChangeInfo": {"Id": "/change/C2", "Status": "PENDING"}}


def test_a_queued_write_heartbeats_though_the_zone_wakes_it_often() -> None:
    changes, r53, beats = ZoneChanges(), _SlowRoute53(3.0), []
    first = _Call(lambda: changes.upsert(r53, "Z1", [_record("a.shop.example.")], "first"))
    first.start()
    _until(lambda: bool(changes._sending), "never sent")
    queued = _Call(lambda: changes.upsert(r53, "Z1", [_record("b.shop.example.")], "b",
                                          beat=lambda: beats.append(time.monotonic())))  # fmt: skip
    queued.start()
    ends = time.monotonic() + 2.5
    while time.monotonic() < ends:  # other writes to the zone come and go
        with changes._cond:
            changes._cond.notify_all()
        time.sleep(0.05)
    assert len(beats) >= 2  # one a second, though woken every 50 ms
    first.ended()
    assert queued.ended()["Id"] == "/change/C2"
