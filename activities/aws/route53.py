"""Route 53: weighted records (shift traffic by weight) and failover records (move PRIMARY).

Every change waits until Route 53 reports it INSYNC (propagated to its name servers), so the step
that follows sees the traffic where it was sent. An UPSERT is idempotent; when a change's answer
is lost although it took effect, the same records are upserted again and that change's INSYNC is
awaited: Route 53 applies a zone's changes in order, so it implies the first one's.

A change is polled the most where it is likely to end: how long the zone's recent changes took
is remembered (`PROPAGATION`, per worker process), and a change is polled sparsely until then.
Route 53's API takes 5 requests a second per account, shared by everything that uses it there;
polling every change every 0.2-0.5 s asked about 50 GetChange of a 15 s change (140 of a minute's),
which 25 switches at once turn into some 50 requests a second; now 6 (14). Steps that write to
one zone at the same time send one change and share its polls (`route53_changes`).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any, ClassVar, Literal, TypeVar, cast

from pydantic import Field, field_validator

from activities.arns import Arns, Grant, is_zone_id, record_name
from activities.aws.route53_changes import CHANGE_STATUSES, ZONE_CHANGES
from activities.base import (
    Change,
    Check,
    State,
    StateStep,
    StepContext,
    StepParams,
    StepType,
    require,
)

T = TypeVar("T")

GLOBAL = "us-east-1"  # Route 53 is global; its API lives in us-east-1
#: The first pause between two GetChange polls of a change (then longer: `poll_pause`).
INSYNC_FIRST_POLL = 0.2
#: Record sets asked for per ListResourceRecordSets page (a record has a set per region or two).
RECORD_SETS_PAGE = 10


class Propagation:
    """How long each hosted zone's recent changes took to be seen INSYNC, in this process.

    `expected` is the shortest of the last `keep`: a change that takes longer than that is
    polled closely from then on, one that takes much less is seen a sparse pause late at most
    (`activities.base.expected_pause`), and the estimate comes down by about one close pause a
    change until it is within one of the zone's propagation time.
    """

    def __init__(self, keep: int = 8) -> None:
        self._keep = keep
        self._took: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def expected(self, zone: str) -> float | None:
        """Seconds a change to `zone` has recently taken at least once (None: none seen)."""
        with self._lock:
            took = self._took.get(zone)
            return min(took) if took else None

    def record(self, zone: str, seconds: float) -> None:
        """One change to `zone` was seen INSYNC `seconds` after its first poll."""
        with self._lock:
            self._took.setdefault(zone, deque(maxlen=self._keep)).append(seconds)


#: The worker's memory of its hosted zones' propagation times (all its activities share it).
PROPAGATION = Propagation()


class RecordParams(StepParams):
    zone: str = Field(description="Hosted zone name (shop.example.) or id.")
    record: str = Field(description="Record name, e.g. api.shop.example.")
    type: Literal["A", "AAAA", "CNAME"] = "CNAME"
    insync_timeout: float = Field(default=300, gt=0, description="Seconds to wait for INSYNC.")

    @field_validator("record")
    @classmethod
    def _fqdn(cls, v: str) -> str:
        return v if v.endswith(".") else v + "."


def route53(ctx: StepContext) -> Any:
    """The Route 53 client (its API is served from us-east-1)."""
    return ctx.clients.aws("route53", GLOBAL)


def zone_id(ctx: StepContext, zone: str) -> str:
    """A hosted zone's id from its name (or its id): looked up once per worker and account
    (an id never changes while its zone exists; `in_zone` looks again if it is refused)."""
    if is_zone_id(zone):
        return zone
    name = _zone_name(zone)

    def lookup() -> str:
        zones = route53(ctx).list_hosted_zones_by_name(DNSName=name)["HostedZones"]
        match = [z for z in zones if z["Name"] == name]
        require(bool(match), "NotFound", f"hosted zone {name} not found")
        return str(match[0]["Id"]).rsplit("/", 1)[-1]

    return ctx.clients.recall(("route53:zone", name), lookup)


def _zone_name(zone: str) -> str:
    """A hosted zone's name, fully qualified (what its id is remembered under)."""
    return zone if zone.endswith(".") else zone + "."


def in_zone(ctx: StepContext, zone: str, call: Callable[[str], T]) -> T:
    """`call(the zone's id)`. An id the worker remembered that Route 53 refuses as unknown
    (NoSuchHostedZone: the zone was deleted and made again under its name) is forgotten, and
    the call made once more with the id looked up again: a refused call changed nothing."""
    zid = zone_id(ctx, zone)
    try:
        return call(zid)
    except route53(ctx).exceptions.NoSuchHostedZone:
        if is_zone_id(zone):
            raise
        ctx.clients.forget(("route53:zone", _zone_name(zone)))
        return call(zone_id(ctx, zone))


def record_sets(ctx: StepContext, p: RecordParams) -> list[dict[str, Any]]:
    """The record's sets that have a set identifier (weighted, failover, ...): listed from the
    record's name and type, a few at a time, page after page while the next page still starts
    inside them (a page of 100 sent the zone's next hundred records for the two or three of
    this one's)."""
    r53, page = route53(ctx), {"StartRecordName": p.record, "StartRecordType": p.type}
    found: list[dict[str, Any]] = []
    while True:

        def listing(zid: str, at: dict[str, str] = page) -> dict[str, Any]:
            return r53.list_resource_record_sets(
                HostedZoneId=zid, MaxItems=str(RECORD_SETS_PAGE), **at
            )

        out = in_zone(ctx, p.zone, listing)
        found += [
            r
            for r in out["ResourceRecordSets"]
            if r["Name"] == p.record and r["Type"] == p.type and "SetIdentifier" in r
        ]
        if not (
            out.get("IsTruncated")
            and out.get("NextRecordName") == p.record
            and out.get("NextRecordType") == p.type
            and out.get("NextRecordIdentifier")
        ):
            return found
        following = {
            "StartRecordName": p.record,
            "StartRecordType": p.type,
            "StartRecordIdentifier": out["NextRecordIdentifier"],
        }
        require(following != page, "InvalidPagination", "the record's sets' listing repeats")
        page = following


def _preflight_sets(ctx: StepContext, p: RecordParams) -> list[dict[str, Any]]:
    """The record's sets for preflight, passed on to the snapshot that follows it."""
    sets = record_sets(ctx, p)
    ctx.pass_on(("route53:preflight", p.record, p.type), sets)
    return sets


def _observed_sets(ctx: StepContext, p: RecordParams) -> list[dict[str, Any]]:
    """The record's sets to observe: preflight's if it just listed them (prepare's snapshot),
    else listed now; passed on to a write that would follow (the decision's own reading)."""
    key = (p.record, p.type)
    sets = ctx.take(("route53:preflight", *key))
    if sets is None:
        sets = record_sets(ctx, p)
    ctx.pass_on(("route53:decided", *key), sets)
    return cast(list[dict[str, Any]], sets)


def _decided_sets(ctx: StepContext, p: RecordParams) -> list[dict[str, Any]]:
    """The record's sets to write from: those the decision observed, else listed now."""
    sets = ctx.take(("route53:decided", p.record, p.type))
    return cast(list[dict[str, Any]], sets) if sets is not None else record_sets(ctx, p)


def upsert(ctx: StepContext, p: RecordParams, records: list[dict[str, Any]]) -> None:
    """UPSERT record sets and wait until the change is INSYNC. The writes of other steps to the
    zone meanwhile may go in the same change, and their waits share its polls
    (`activities.aws.route53_changes`)."""
    require(bool(records), "NotFound", f"{p.record}: none of its {p.type} record sets to write")
    r53 = route53(ctx)
    comment = f"failover-orchestrator {ctx.run_id} {ctx.step_id}"

    def queued() -> None:
        ctx.heartbeat("route53 change", "queued behind the zone's change in flight")

    change = in_zone(ctx, p.zone, lambda zid: ZONE_CHANGES.upsert(r53, zid, records, comment,
                                                                   beat=queued))  # fmt: skip
    zone = zone_id(ctx, p.zone)

    def insync() -> tuple[bool, str]:
        status = CHANGE_STATUSES.status(r53, change["Id"])
        return status == "INSYNC", f"change {change['Id']} {status}"

    # Polled every 0.2 s at most, sparsely until the zone's changes have recently ended: Route
    # 53's API takes 5 requests a second per account, and a change takes tens of seconds on AWS.
    took = ctx.wait("route53 change", insync, 0.5, timeout=p.insync_timeout,
                    first=INSYNC_FIRST_POLL, expected=PROPAGATION.expected(zone))  # fmt: skip
    PROPAGATION.record(zone, took)


R = TypeVar("R", bound=RecordParams)


class _RecordStep(StateStep[R]):
    actions: ClassVar[tuple[str, ...]] = (
        "route53:ListHostedZonesByName",
        "route53:ListResourceRecordSets",
        "route53:ChangeResourceRecordSets",
        "route53:GetChange",
    )
    traffic = True

    def resource(self, ctx: StepContext, params: R) -> str:
        return f"route53:{params.record}"

    def iam_resources(self, params: R, region: str, arns: Arns) -> list[Grant]:
        zone = arns.hosted_zone(params.zone)
        only = {"ForAllValues:StringEquals": {
            "route53:ChangeResourceRecordSetsNormalizedRecordNames": (record_name(params.record),)
        }}  # fmt: skip
        return [
            Grant(("route53:ListResourceRecordSets",), (zone,)),
            Grant(("route53:ChangeResourceRecordSets",), (zone,), only),
            Grant(("route53:GetChange",), (arns.route53("change"),)),
        ]

    def regions_used(self, params: R, step_region: str | None) -> set[str]:
        return {GLOBAL}  # Route 53's API (its control plane) is served from us-east-1

    def confirm(self, ctx: StepContext, params: R, wanted: State) -> None:
        upsert(ctx, params, record_sets(ctx, params))


class Route53WeightedParams(RecordParams):
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


class Route53Weighted(_RecordStep[Route53WeightedParams]):
    """Sets Route 53 weighted-record weights (optionally in increments); waits for INSYNC."""

    name = "route53_weighted"

    def describe(self, params: Route53WeightedParams) -> str:
        weights = ", ".join(f"{k}={v}" for k, v in params.weights.items())
        return f"Route 53 weights of {params.record} -> {weights}"

    def preflight(self, ctx: StepContext, params: Route53WeightedParams) -> None:
        found = {r["SetIdentifier"] for r in _preflight_sets(ctx, params) if "Weight" in r}
        missing = sorted(set(params.weights) - found)
        require(
            not missing,
            "PreflightFailed",
            f"{params.record} has no weighted {params.type} record for {', '.join(missing)}",
        )

    def observe(self, ctx: StepContext, params: Route53WeightedParams) -> State:
        return {
            "weights": {
                r["SetIdentifier"]: r.get("Weight")
                for r in _observed_sets(ctx, params)
                if r["SetIdentifier"] in params.weights
            }
        }

    def desired(self, ctx: StepContext, params: Route53WeightedParams, current: State) -> State:
        return {"weights": dict(params.weights)}

    def write(
        self, ctx: StepContext, params: Route53WeightedParams, state: State, current: State
    ) -> None:
        start, goal = current.get("weights") or {}, state["weights"]
        for i in range(1, params.increments + 1):
            step = {
                sid: round(start.get(sid, w) + (w - start.get(sid, w)) * i / params.increments)
                for sid, w in goal.items()
            }
            records = [r | {"Weight": step[r["SetIdentifier"]]} for r in _decided_sets(ctx, params)
                       if r["SetIdentifier"] in step]  # fmt: skip
            ctx.heartbeat("weights", step)
            upsert(ctx, params, records)


class Route53FailoverParams(RecordParams):
    primary: str = Field(description="Set identifier that becomes PRIMARY (e.g. ${{ to_region }}).")


class Route53Failover(_RecordStep[Route53FailoverParams]):
    """Makes one failover record PRIMARY and the current primary SECONDARY; waits for INSYNC."""

    name = "route53_failover"

    def describe(self, params: Route53FailoverParams) -> str:
        return f"Route 53 failover record {params.record}: PRIMARY -> {params.primary}"

    def preflight(self, ctx: StepContext, params: Route53FailoverParams) -> None:
        sids = {r["SetIdentifier"] for r in _preflight_sets(ctx, params) if "Failover" in r}
        require(
            params.primary in sids,
            "PreflightFailed",
            f"{params.record}: no failover record {params.primary}",
        )

    def observe(self, ctx: StepContext, params: Route53FailoverParams) -> State:
        primary = [
            r["SetIdentifier"]
            for r in _observed_sets(ctx, params)
            if r.get("Failover") == "PRIMARY"
        ]
        return {"primary": primary[0] if primary else None}

    def desired(self, ctx: StepContext, params: Route53FailoverParams, current: State) -> State:
        return {"primary": params.primary}

    def write(
        self, ctx: StepContext, params: Route53FailoverParams, state: State, current: State
    ) -> None:
        records = [
            r | {"Failover": "PRIMARY" if r["SetIdentifier"] == state["primary"] else "SECONDARY"}
            for r in _decided_sets(ctx, params)
            if "Failover" in r
        ]
        upsert(ctx, params, records)


class DnsViewParams(RecordParams):
    expect: list[str] = Field(
        min_length=1, description="Set identifiers clients must get (e.g. [${{ to_region }}])."
    )


class DnsView(StepType[DnsViewParams]):
    """Read-only: the record sets Route 53 would answer for a name, worked out from its API
    (weighted: the healthy ones with a weight, else the healthy ones, else all; failover: the
    PRIMARY unless its health check fails) are exactly `expect`."""

    name = "dns_view"
    actions = (
        "route53:ListHostedZonesByName",
        "route53:ListResourceRecordSets",
        "route53:GetHealthCheckStatus",
    )

    def describe(self, params: DnsViewParams) -> str:
        return f"DNS view of {params.record}: answers from {', '.join(params.expect)}"

    def iam_resources(self, params: DnsViewParams, region: str, arns: Arns) -> list[Grant]:
        return [
            Grant(("route53:ListResourceRecordSets",), (arns.hosted_zone(params.zone),)),
            # the records' health checks, known by id only once the records are read
            Grant(("route53:GetHealthCheckStatus",), (arns.route53("healthcheck"),)),
        ]

    def regions_used(self, params: DnsViewParams, step_region: str | None) -> set[str]:
        return {GLOBAL}  # it reads Route 53's API, not DNS (see dns_answer for the data plane)

    def _healthy(self, ctx: StepContext, hc_id: str | None) -> bool:
        if not hc_id:
            return True
        obs = route53(ctx).get_health_check_status(HealthCheckId=hc_id)
        reports = [o["StatusReport"]["Status"] for o in obs["HealthCheckObservations"]]
        return sum(r.startswith("Success") for r in reports) * 2 > len(reports)

    def answer(self, ctx: StepContext, p: RecordParams) -> list[str]:
        """Set identifiers a resolver would be answered from."""
        records = record_sets(ctx, p)
        weighted = [r for r in records if "Weight" in r]
        if weighted:  # Route 53: healthy ones by weight, else healthy zero-weight ones, else
            # (none healthy) it fails open: all of them by weight
            healthy = [r for r in weighted if self._healthy(ctx, r.get("HealthCheckId"))]
            live = [r for r in healthy if r["Weight"] > 0] or healthy
            if not healthy:
                live = [r for r in weighted if r["Weight"] > 0] or weighted
            return sorted(r["SetIdentifier"] for r in live)
        primary = [r for r in records if r.get("Failover") == "PRIMARY"]
        secondary = [r for r in records if r.get("Failover") == "SECONDARY"]
        if primary and self._healthy(ctx, primary[0].get("HealthCheckId")):
            return [primary[0]["SetIdentifier"]]
        if secondary and self._healthy(ctx, secondary[0].get("HealthCheckId")):
            return [secondary[0]["SetIdentifier"]]
        return [r["SetIdentifier"] for r in (primary or secondary)[:1]]  # fails open

    def verify(self, ctx: StepContext, params: DnsViewParams, snapshot: State) -> Check:
        got = self.answer(ctx, params)
        ok = got == sorted(params.expect)
        return Check(ok=ok, detail=f"{params.record} answers from {', '.join(got) or 'nothing'}")

    def dry_run(self, ctx: StepContext, params: DnsViewParams) -> list[Change]:
        return []


def record_weights(ctx: StepContext, zone: str, record: str) -> dict[str, int]:
    """Set identifier -> weight of a weighted CNAME record (what users' resolvers follow)."""
    p = RecordParams(zone=zone, record=record)
    return {str(r["SetIdentifier"]): int(r["Weight"]) for r in record_sets(ctx, p) if "Weight" in r}
