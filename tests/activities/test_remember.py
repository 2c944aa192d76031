"""`StepContext.remember`: a lookup that cannot change while one activity runs (a load
balancer's ARN) is made once per activity, not in each of observe, write and verify; a hosted
zone's id is kept longer, by the worker's clients (`Clients.recall`); `pass_on` hands one
reading to the next phase of the same activity."""

from __future__ import annotations

import pytest

from activities.aws.route53 import zone_id
from activities.base import StepContext
from activities.clients import Clients
from activities.errors import StepError
from orchestrator.config import Config


def _ctx() -> StepContext:
    return StepContext("run", "step", "us-east-1", "us-west-2", None, "drill", Clients(Config()))


def test_a_lookup_is_made_once_per_context_and_a_failure_is_not_kept() -> None:
    ctx, calls = _ctx(), []

    def lookup() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise StepError("Throttling", "slow down")
        return "Z123"

    with pytest.raises(StepError):
        ctx.remember("zone", lookup)
    assert ctx.remember("zone", lookup) == "Z123" == ctx.remember("zone", lookup)
    assert len(calls) == 2
    assert _ctx().remember("zone", lambda: "Z999") == "Z999"  # another activity looks again


def test_route53_zone_ids_are_remembered_by_the_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []

    class Route53:
        def list_hosted_zones_by_name(self, DNSName: str) -> dict[str, object]:
            asked.append(DNSName)
            return {"HostedZones": [{"Name": DNSName, "Id": "/hostedzone/ZSHOP"}]}

    monkeypatch.setattr("activities.aws.route53.route53", lambda ctx: Route53())
    ctx = _ctx()
    assert zone_id(ctx, "shop.example") == zone_id(ctx, "shop.example.") == "ZSHOP"
    assert zone_id(ctx, "ZGIVEN") == "ZGIVEN"  # an id is not looked up
    assert zone_id(_ctx(), "shop.example.") == "ZSHOP"  # (another worker's clients look again)
    assert asked == ["shop.example.", "shop.example."]


def test_a_reading_passed_on_is_taken_once() -> None:
    ctx = _ctx()
    assert ctx.take("sets") is None
    ctx.pass_on("sets", [1])
    ctx.pass_on("sets", [2])  # a newer reading replaces it
    assert ctx.take("sets") == [2]
    assert ctx.take("sets") is None
