"""Aurora global databases: planned switchover (no data loss) of the writer to another region."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from activities.aws.common import call, region_of_arn
from activities.base import Check, State, StateStep, StepContext, StepParams, require
from activities.errors import StepError


class AuroraSwitchoverParams(StepParams):
    global_cluster: str = Field(description="Global cluster identifier.")
    target_region: str = Field(description="Region whose cluster becomes the writer.")
    api_region: str | None = Field(
        default=None, description="Region to call the RDS API in (default: the target region)."
    )


class AuroraGlobalSwitchover(StateStep):
    """Switches an Aurora global database's writer to another region (planned: no data loss);
    waits for the new writer and verifies membership. Undo switches back."""

    name = "aurora_global_switchover"
    Params = AuroraSwitchoverParams
    actions = ("rds:DescribeGlobalClusters", "rds:SwitchoverGlobalCluster")

    def _p(self, params: StepParams) -> AuroraSwitchoverParams:
        assert isinstance(params, AuroraSwitchoverParams)
        return params

    def _rds(self, ctx: StepContext, p: AuroraSwitchoverParams) -> Any:
        return ctx.clients.aws("rds", p.api_region or p.target_region)

    def _global(self, ctx: StepContext, p: AuroraSwitchoverParams) -> dict[str, Any]:
        found = call(
            self._rds(ctx, p).describe_global_clusters, GlobalClusterIdentifier=p.global_cluster
        )["GlobalClusters"]
        require(bool(found), "NotFound", f"global cluster {p.global_cluster} not found")
        return dict(found[0])

    def describe(self, params: StepParams) -> str:
        p = self._p(params)
        return f"Aurora global {p.global_cluster}: switch the writer to {p.target_region}"

    def resource(self, ctx: StepContext, params: StepParams) -> str:
        return f"rds:global-cluster/{self._p(params).global_cluster}"

    def preflight(self, ctx: StepContext, params: StepParams) -> None:
        p = self._p(params)
        members = self._global(ctx, p).get("GlobalClusterMembers", [])
        regions = {region_of_arn(m["DBClusterArn"]) for m in members}
        require(
            p.target_region in regions,
            "PreflightFailed",
            f"{p.global_cluster} has no member in {p.target_region} (members: "
            f"{', '.join(sorted(regions))})",
        )

    def observe(self, ctx: StepContext, params: StepParams) -> State:
        gc = self._global(ctx, self._p(params))
        writer = [m for m in gc.get("GlobalClusterMembers", []) if m.get("IsWriter")]
        moving = gc.get("FailoverState") or {}
        return {
            "writer_region": region_of_arn(writer[0]["DBClusterArn"]) if writer else None,
            "status": gc.get("Status"),
            "moving_to": region_of_arn(moving.get("ToDbClusterArn") or "") or None
            if moving.get("Status") not in (None, "cancelled")
            else None,
        }

    def desired(self, ctx: StepContext, params: StepParams, current: State) -> State:
        return {"writer_region": self._p(params).target_region}

    def write(self, ctx: StepContext, params: StepParams, state: State, current: State) -> None:
        if current.get("moving_to") == state["writer_region"]:
            return  # a switchover there is already under way (an apply retried after a crash)
        if current.get("status") != "available":
            raise StepError(
                "Conflict", f"global cluster is {current.get('status')}: retrying when available"
            )
        p = self._p(params)
        members = self._global(ctx, p).get("GlobalClusterMembers", [])
        target = [
            m["DBClusterArn"]
            for m in members
            if region_of_arn(m["DBClusterArn"]) == state["writer_region"]
        ]
        require(bool(target), "NotFound", f"no member in {state['writer_region']}")
        call(
            self._rds(ctx, p).switchover_global_cluster,
            GlobalClusterIdentifier=p.global_cluster,
            TargetDbClusterIdentifier=target[0],
        )

    def matches(self, observed: State, wanted: State) -> bool:
        return observed.get("writer_region") == wanted.get("writer_region")

    def _check(self, ctx: StepContext, params: StepParams, wanted: State) -> Check:
        observed = self.observe(ctx, params)
        if self.matches(observed, wanted) and observed.get("status") == "available":
            return Check(ok=True, detail=f"writer in {observed['writer_region']}", observed={
                "writer_region": observed["writer_region"]})  # fmt: skip
        return Check(
            ok=False,
            detail=f"writer in {observed.get('writer_region')}, status {observed.get('status')}",
        )

    def snapshot(self, ctx: StepContext, params: StepParams) -> State:
        return {"writer_region": self.observe(ctx, params)["writer_region"]}


class AuroraGlobalFailover(AuroraGlobalSwitchover):
    """UNPLANNED failover of an Aurora global database's writer (AllowDataLoss): for a region
    that is down. Writes not yet replicated are lost, so it cannot be undone: the runbook must
    mark it irreversible, behind an approval gate."""

    name = "aurora_global_failover"
    reversible = False
    actions = ("rds:DescribeGlobalClusters", "rds:FailoverGlobalCluster")

    def describe(self, params: StepParams) -> str:
        p = self._p(params)
        return (
            f"Aurora global {p.global_cluster}: FAIL OVER the writer to {p.target_region} "
            "(data loss allowed, IRREVERSIBLE)"
        )

    def write(self, ctx: StepContext, params: StepParams, state: State, current: State) -> None:
        if current.get("moving_to") == state["writer_region"]:
            return
        p = self._p(params)
        members = self._global(ctx, p).get("GlobalClusterMembers", [])
        target = [m["DBClusterArn"] for m in members
                  if region_of_arn(m["DBClusterArn"]) == state["writer_region"]]  # fmt: skip
        require(bool(target), "NotFound", f"no member in {state['writer_region']}")
        call(
            self._rds(ctx, p).failover_global_cluster,
            GlobalClusterIdentifier=p.global_cluster,
            TargetDbClusterIdentifier=target[0],
            AllowDataLoss=True,
        )
