"""A Route 53 change is polled around the time the zone's recent changes took, on the sandbox's
Route 53 (changes PENDING for the modelled propagation time): GetChange calls counted."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from activities.aws import route53
from activities.aws.route53 import RecordParams, record_sets, upsert
from orchestrator.sandbox.control import SandboxControl
from orchestrator.sandbox.manager import SandboxEnv
from tests.activities.test_step_types import ctx
from tests.sandbox.helpers import slower

PROPAGATION = 3.0  # seconds a change takes here
TESTS_TIME_SCALE = 0.01  # tests/conftest.py's sandbox


def test_the_next_changes_to_a_zone_are_polled_a_few_times_around_its_propagation_time(
    fresh: SandboxEnv, control: SandboxControl, monkeypatch: pytest.MonkeyPatch
) -> None:
    learnt = route53.Propagation()
    monkeypatch.setattr(route53, "PROPAGATION", learnt)
    c = ctx(fresh)
    polls: list[int] = []
    route53.route53(c).meta.events.register(
        "before-call.route53.GetChange", lambda **_: polls.__setitem__(-1, polls[-1] + 1)
    )
    p = RecordParams(zone="shop.example.", record="api.shop.example.", type="CNAME")
    sets = record_sets(c, p)  # the seeded weighted record's sets, one per region
    with slower(control, dns_propagation=PROPAGATION / TESTS_TIME_SCALE):
        for weight in (10, 20, 30):
            polls.append(0)
            upsert(c, p, [{**sets[0], "Weight": weight}])
            estimate = learnt.expected(fresh.topology["zone_id"])
            # INSYNC seen after it: timed from the wait's start, just after the change's answer
            # came back, so up to that answer's way back (a few ms) short of the server's time
            assert estimate is not None and estimate >= PROPAGATION - 0.1
    assert polls[0] >= 12, polls  # every 0.2 s: about 15
    assert max(polls[1:]) <= 7, polls  # 4 sparse, then close: 6 or 7
    now = {s["SetIdentifier"]: s["Weight"] for s in record_sets(c, p)}
    assert now[sets[0]["SetIdentifier"]] == 30


def test_concurrent_changes_complete_under_route53s_quota(
    fresh: SandboxEnv, control: SandboxControl, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Six switches' changes at once, on one client as in a worker, against Route 53's real
    quota (5 requests a second per account): every change lands and is seen INSYNC."""
    monkeypatch.setattr(route53, "PROPAGATION", route53.Propagation())
    c = ctx(fresh)
    zone = fresh.topology["zone_id"]
    names = [f"svc{i}.shop.example." for i in range(6)]
    route53.route53(c).change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": [
        {"Action": "UPSERT", "ResourceRecordSet": {
            "Name": name, "Type": "CNAME", "SetIdentifier": "us-east-1", "Weight": 100,
            "TTL": 60, "ResourceRecords": [{"Value": "east.example."}]}}
        for name in names
    ]})  # fmt: skip
    wanted = {name: 10 + i for i, name in enumerate(names)}

    def switch(name: str) -> None:
        p = RecordParams(zone="shop.example.", record=name, type="CNAME")
        (current,) = record_sets(c, p)
        upsert(c, p, [{**current, "Weight": wanted[name]}])

    control.set_quota("route53", rate=5, burst=5)
    try:
        with (
            slower(control, dns_propagation=1.0 / TESTS_TIME_SCALE),
            ThreadPoolExecutor(len(names)) as pool,
        ):
            list(pool.map(switch, names))  # raises what a switch raised
        state = control.quotas()["route53"]
    finally:
        control.set_quota("route53", rate=0)
    assert state["throttled"] > 0, state  # the quota was met ...
    for name in names:  # ... and every change landed
        p = RecordParams(zone="shop.example.", record=name, type="CNAME")
        assert [s["Weight"] for s in record_sets(c, p)] == [wanted[name]]
