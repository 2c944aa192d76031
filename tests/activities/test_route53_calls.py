"""How many Route 53 API calls a Route 53 step makes (5 a second per account on AWS): a hosted
zone's id is looked up once per worker (again only when Route 53 refuses it), preflight's listing
serves the snapshot, the decision's listing serves the write, and verify always lists anew."""

from __future__ import annotations

from typing import Any

import pytest

from activities.aws.route53 import GLOBAL, in_zone, zone_id
from activities.clients import Clients
from orchestrator.config import Config, from_sandbox
from orchestrator.sandbox.manager import Sandbox, SandboxEnv
from tests.activities.phases import activity, apply, prepare, step
from tests.activities.test_step_types import RecordingClients
from tests.sandbox.helpers import aws


def _weights(env: SandboxEnv) -> dict[str, int]:
    r53 = aws(env, "route53", GLOBAL)
    sets = r53.list_resource_record_sets(HostedZoneId=env.topology["zone_id"])
    return {
        r["SetIdentifier"]: r["Weight"]
        for r in sets["ResourceRecordSets"]
        if r["Name"] == "api.shop.example." and "Weight" in r
    }


def test_a_weighted_step_lists_once_to_prepare_and_twice_to_apply(fresh: SandboxEnv) -> None:
    clients = RecordingClients(from_sandbox(fresh))
    stype, params = step("route53_weighted", zone="shop.example.", record="api.shop.example.",
                          weights={"us-east-1": 0, "us-west-2": 100})  # fmt: skip
    snap = prepare(stype, params, clients)
    assert snap == {"weights": {"us-east-1": 100, "us-west-2": 0}}
    assert clients.taken() == {"ListHostedZonesByName": 1, "ListResourceRecordSets": 1}

    apply(stype, params, clients, snap)
    calls = clients.taken()
    assert calls.pop("GetChange") >= 1
    # the decision's listing is written from; verify lists again; the zone's id is known
    assert calls == {"ListResourceRecordSets": 2, "ChangeResourceRecordSets": 1}
    assert _weights(fresh) == {"us-east-1": 0, "us-west-2": 100}

    apply(stype, params, clients, snap)  # again: already there, nothing written
    assert clients.taken() == {"ListResourceRecordSets": 2}

    ctx = activity(clients)
    stype.undo(ctx, params, snap)
    assert stype.verify_undo(ctx, params, snap).ok
    calls = clients.taken()
    assert calls.pop("GetChange") >= 1
    assert calls == {"ListResourceRecordSets": 2, "ChangeResourceRecordSets": 1}
    assert _weights(fresh) == {"us-east-1": 100, "us-west-2": 0}


def test_each_increment_after_the_first_lists_anew(fresh: SandboxEnv) -> None:
    clients = RecordingClients(from_sandbox(fresh))
    stype, params = step("route53_weighted", zone="shop.example.", record="api.shop.example.",
                          weights={"us-east-1": 0, "us-west-2": 100}, increments=3)  # fmt: skip
    snap = prepare(stype, params, clients)
    clients.taken()
    apply(stype, params, clients, snap)
    calls = clients.taken()
    assert calls["ChangeResourceRecordSets"] == 3
    # the decision's, the second and third increments', verify's
    assert calls["ListResourceRecordSets"] == 4
    assert _weights(fresh) == {"us-east-1": 0, "us-west-2": 100}


def test_a_failover_step_writes_from_the_listing_it_decided_on(fresh: SandboxEnv) -> None:
    clients = RecordingClients(from_sandbox(fresh))
    stype, params = step("route53_failover", zone="shop.example.", record="www.shop.example.",
                          primary="us-west-2")  # fmt: skip
    snap = prepare(stype, params, clients)
    assert snap == {"primary": "us-east-1"}
    assert clients.taken()["ListResourceRecordSets"] == 1
    apply(stype, params, clients, snap)
    calls = clients.taken()
    assert (calls["ListResourceRecordSets"], calls["ChangeResourceRecordSets"]) == (2, 1)
    r53 = aws(fresh, "route53", GLOBAL)
    sets = r53.list_resource_record_sets(HostedZoneId=fresh.topology["zone_id"])
    roles = {
        r["SetIdentifier"]: r["Failover"]
        for r in sets["ResourceRecordSets"]
        if r["Name"] == "www.shop.example."
    }
    assert roles == {"us-east-1": "SECONDARY", "us-west-2": "PRIMARY"}


def test_a_zone_made_again_under_its_name_is_looked_up_again(sandbox: Sandbox) -> None:
    env = sandbox.reset()
    clients = RecordingClients(from_sandbox(env))
    old = zone_id(activity(clients), "shop.example.")
    assert old == env.topology["zone_id"]

    env = sandbox.reset()  # the shop's zone deleted and made again: another id
    assert env.topology["zone_id"] != old
    clients.taken()
    stype, params = step("route53_weighted", zone="shop.example.", record="api.shop.example.",
                          weights={"us-east-1": 0, "us-west-2": 100})  # fmt: skip
    snap = prepare(stype, params, clients)
    assert snap == {"weights": {"us-east-1": 100, "us-west-2": 0}}
    # the remembered id refused once, looked up again, then the listing served
    assert clients.taken() == {"ListHostedZonesByName": 1, "ListResourceRecordSets": 2}
    assert zone_id(activity(clients), "shop.example.") == env.topology["zone_id"]


def test_a_zone_given_by_id_is_not_looked_up_and_its_refusal_stands(fresh: SandboxEnv) -> None:
    clients = RecordingClients(from_sandbox(fresh))
    stype, params = step("route53_weighted", zone=fresh.topology["zone_id"],
                          record="api.shop.example.", weights={"us-west-2": 100})  # fmt: skip
    assert prepare(stype, params, clients) == {"weights": {"us-west-2": 0}}
    assert clients.taken() == {"ListResourceRecordSets": 1}
    r53 = clients.aws("route53", GLOBAL)
    with pytest.raises(r53.exceptions.NoSuchHostedZone):
        in_zone(activity(clients), "Z0NOSUCHZONE", lambda z: r53.get_hosted_zone(Id=z))
    assert clients.taken() == {"GetHostedZone": 1}  # no lookup, no second try


def test_zone_ids_are_kept_per_account() -> None:
    clients, asked = Clients(Config()), []

    def lookup(answer: str) -> Any:
        def ask() -> str:
            asked.append(answer)
            return answer

        return ask

    assert clients.recall("zone", lookup("Z1")) == "Z1"
    assert clients.recall("zone", lookup("Z2")) == "Z1"  # kept for every later activity
    clients.account = "payments"  # (a view acting in another account)
    assert clients.recall("zone", lookup("Z3")) == "Z3"
    clients.forget("zone")
    assert clients.recall("zone", lookup("Z4")) == "Z4"
    clients.account = None
    assert clients.recall("zone", lookup("Z5")) == "Z1"
    assert asked == ["Z1", "Z3", "Z4"]
