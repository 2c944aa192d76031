"""Route 53: weighted records (shift traffic by weight) and failover records (move PRIMARY).

Every change waits until Route 53 reports it INSYNC (propagated to its name servers), so the step
that follows sees the traffic where it was sent.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from activities.aws.common import call, wait_until
from activities.base import (
    Change,
    Check,
    State,
    StateStep,
    StepContext,
    StepParams,
    require,
)

GLOBAL = "us-east-1"  # Route 53 is global; its API lives in us-east-1


class _RecordParams(StepParams):
    zone: str = Field(description="Hosted zone name (shop.example.) or id.")
    record: str = Field(description="Record name, e.g. api.shop.example.")
    type: Literal["A", "AAAA", "CNAME"] = "CNAME"
    insync_timeout: float = Field(default=300, gt=0, description="Seconds to wait for INSYNC.")

    @field_validator("record")
    @classmethod
    def _fqdn(cls, v: str) -> str:
        return v if v.endswith(".") else v + "."


class _Route53Step(StateStep):
    actions: ClassVar[tuple[str, ...]] = (
        "route53:ListHostedZonesByName",
        "route53:ListResourceRecordSets",
        "route53:ChangeResourceRecordSets",
        "route53:GetChange",
    )

    def _r53(self, ctx: StepContext) -> Any:
        return ctx.clients.aws("route53", GLOBAL)

    def _zone_id(self, ctx: StepContext, zone: str) -> str:
        if zone.startswith("Z") and "." not in zone:
            return zone
        name = zone if zone.endswith(".") else zone + "."
        zones = call(self._r53(ctx).list_hosted_zones_by_name, DNSName=name)["HostedZones"]
        match = [z for z in zones if z["Name"] == name]
        require(bool(match), "NotFound", f"hosted zone {name} not found")
        return str(match[0]["Id"]).rsplit("/", 1)[-1]

    def _records(self, ctx: StepContext, p: _RecordParams) -> list[dict[str, Any]]:
        out = call(
            self._r53(ctx).list_resource_record_sets,
            HostedZoneId=self._zone_id(ctx, p.zone),
            StartRecordName=p.record,
            StartRecordType=p.type,
            MaxItems="100",
        )
        return [
            r
            for r in out["ResourceRecordSets"]
            if r["Name"] == p.record and r["Type"] == p.type and "SetIdentifier" in r
        ]

    def _change(self, ctx: StepContext, p: _RecordParams, records: list[dict[str, Any]]) -> None:
        r53 = self._r53(ctx)
        change = call(
            r53.change_resource_record_sets,
            HostedZoneId=self._zone_id(ctx, p.zone),
            ChangeBatch={
                "Comment": f"failover-orchestrator {ctx.run_id} {ctx.step_id}",
                "Changes": [{"Action": "UPSERT", "ResourceRecordSet": r} for r in records],
            },
        )["ChangeInfo"]

        def insync() -> tuple[bool, str]:
            status = call(r53.get_change, Id=change["Id"])["ChangeInfo"]["Status"]
            return status == "INSYNC", f"change {change['Id']} {status}"

        wait_until(ctx, "route53 change", insync, p.insync_timeout)


class Route53WeightedParams(_RecordParams):
    weights: dict[str, int] = Field(
        description="Set identifier -> weight (0-255); keys may be templates like ${{ to_region }}."
    )
    increments: int = Field(
        default=1, ge=1, le=10, description="Reach the weights in this many INSYNC'd changes."
    )

    @field_validator("weights")
    @classmethod
    def _range(cls, v: dict[str, int]) -> dict[str, int]:
        if not v:
            raise ValueError("at least one weight")
        bad = {k: w for k, w in v.items() if not 0 <= w <= 255}
        if bad:
            raise ValueError(f"weights must be 0-255 (got {bad})")
        return v


class Route53Weighted(_Route53Step):
    """Sets Route 53 weighted-record weights (optionally in increments); waits for INSYNC."""

    name = "route53_weighted"
    traffic = True
    Params = Route53WeightedParams

    def _p(self, params: StepParams) -> Route53WeightedParams:
        assert isinstance(params, Route53WeightedParams)
        return params

    def describe(self, params: StepParams) -> str:
        p = self._p(params)
        weights = ", ".join(f"{k}={v}" for k, v in p.weights.items())
        return f"Route 53 weights of {p.record} -> {weights}"

    def resource(self, ctx: StepContext, params: StepParams) -> str:
        return f"route53:{self._p(params).record}"

    def preflight(self, ctx: StepContext, params: StepParams) -> None:
        p = self._p(params)
        found = {r["SetIdentifier"] for r in self._records(ctx, p) if "Weight" in r}
        missing = sorted(set(p.weights) - found)
        require(
            not missing,
            "PreflightFailed",
            f"{p.record} has no weighted {p.type} record for {', '.join(missing)}",
        )

    def observe(self, ctx: StepContext, params: StepParams) -> State:
        p = self._p(params)
        return {
            "weights": {
                r["SetIdentifier"]: r.get("Weight")
                for r in self._records(ctx, p)
                if r["SetIdentifier"] in p.weights
            }
        }

    def desired(self, ctx: StepContext, params: StepParams, current: State) -> State:
        return {"weights": dict(self._p(params).weights)}

    def write(self, ctx: StepContext, params: StepParams, state: State, current: State) -> None:
        p = self._p(params)
        start, goal = current.get("weights") or {}, state["weights"]
        for i in range(1, p.increments + 1):
            step = {
                sid: round(start.get(sid, w) + (w - start.get(sid, w)) * i / p.increments)
                for sid, w in goal.items()
            }
            records = [r | {"Weight": step[r["SetIdentifier"]]} for r in self._records(ctx, p)
                       if r["SetIdentifier"] in step]  # fmt: skip
            ctx.heartbeat("weights", step)
            self._change(ctx, p, records)


class Route53FailoverParams(_RecordParams):
    primary: str = Field(description="Set identifier that becomes PRIMARY (e.g. ${{ to_region }}).")


class Route53Failover(_Route53Step):
    """Makes one failover record PRIMARY and the current primary SECONDARY; waits for INSYNC."""

    name = "route53_failover"
    traffic = True
    Params = Route53FailoverParams

    def _p(self, params: StepParams) -> Route53FailoverParams:
        assert isinstance(params, Route53FailoverParams)
        return params

    def describe(self, params: StepParams) -> str:
        p = self._p(params)
        return f"Route 53 failover record {p.record}: PRIMARY -> {p.primary}"

    def resource(self, ctx: StepContext, params: StepParams) -> str:
        return f"route53:{self._p(params).record}"

    def preflight(self, ctx: StepContext, params: StepParams) -> None:
        p = self._p(params)
        sids = {r["SetIdentifier"] for r in self._records(ctx, p) if "Failover" in r}
        require(p.primary in sids, "PreflightFailed", f"{p.record}: no failover record {p.primary}")

    def observe(self, ctx: StepContext, params: StepParams) -> State:
        primary = [
            r["SetIdentifier"]
            for r in self._records(ctx, self._p(params))
            if r.get("Failover") == "PRIMARY"
        ]
        return {"primary": primary[0] if primary else None}

    def desired(self, ctx: StepContext, params: StepParams, current: State) -> State:
        return {"primary": self._p(params).primary}

    def write(self, ctx: StepContext, params: StepParams, state: State, current: State) -> None:
        p = self._p(params)
        records = [
            r | {"Failover": "PRIMARY" if r["SetIdentifier"] == state["primary"] else "SECONDARY"}
            for r in self._records(ctx, p)
            if "Failover" in r
        ]
        self._change(ctx, p, records)


class DnsViewParams(_RecordParams):
    expect: list[str] = Field(
        min_length=1, description="Set identifiers clients must get (e.g. [${{ to_region }}])."
    )


class DnsView(_Route53Step):
    """Read-only: the record sets Route 53 would answer for a name (weights > 0, failover PRIMARY
    unless its health check fails) are exactly `expect`."""

    name = "dns_view"
    Params = DnsViewParams
    mutating = False
    actions = (
        "route53:ListHostedZonesByName",
        "route53:ListResourceRecordSets",
        "route53:GetHealthCheckStatus",
    )

    def describe(self, params: StepParams) -> str:
        assert isinstance(params, DnsViewParams)
        return f"DNS view of {params.record}: answers from {', '.join(params.expect)}"

    def _healthy(self, ctx: StepContext, hc_id: str | None) -> bool:
        if not hc_id:
            return True
        obs = call(self._r53(ctx).get_health_check_status, HealthCheckId=hc_id)
        reports = [o["StatusReport"]["Status"] for o in obs["HealthCheckObservations"]]
        return sum(r.startswith("Success") for r in reports) * 2 > len(reports)

    def answer(self, ctx: StepContext, p: _RecordParams) -> list[str]:
        """Set identifiers a resolver would be answered from."""
        records = self._records(ctx, p)
        weighted = [r for r in records if "Weight" in r]
        if weighted:
            live = [r for r in weighted if r["Weight"] > 0 and
                    self._healthy(ctx, r.get("HealthCheckId"))]  # fmt: skip
            return sorted(r["SetIdentifier"] for r in live)
        primary = [r for r in records if r.get("Failover") == "PRIMARY"]
        secondary = [r for r in records if r.get("Failover") == "SECONDARY"]
        if primary and self._healthy(ctx, primary[0].get("HealthCheckId")):
            return [primary[0]["SetIdentifier"]]
        return [r["SetIdentifier"] for r in secondary[:1]]

    def apply(self, ctx: StepContext, params: StepParams, snapshot: State) -> None:
        """Read-only: nothing to apply (the check is verify)."""

    def dry_run(self, ctx: StepContext, params: StepParams) -> list[Change]:
        return []

    def verify(self, ctx: StepContext, params: StepParams, snapshot: State) -> Check:
        assert isinstance(params, DnsViewParams)
        got = self.answer(ctx, params)
        ok = got == sorted(params.expect)
        return Check(ok=ok, detail=f"{params.record} answers from {', '.join(got) or 'nothing'}")


def record_weights(ctx: StepContext, zone: str, record: str) -> dict[str, int]:
    """Set identifier -> weight of a weighted CNAME record (what users' resolvers follow)."""
    p = _RecordParams(zone=zone, record=record)
    return {
        str(r["SetIdentifier"]): int(r["Weight"])
        for r in Route53Weighted()._records(ctx, p)
        if "Weight" in r
    }
