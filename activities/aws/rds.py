"""Aurora global databases: planned switchover (no data loss) of the writer to another region,
and the unplanned failover (data loss allowed) for a region that is down.

Both are slow operations with a transition (`Status` switching-over / failing-over, and a
`FailoverState` naming the target) and neither is idempotent: a second call while the first is in
flight is refused with InvalidGlobalClusterStateFault. So the call is sent by a client that does
not resend it on its own, and the decision to send it is taken by `StateStep.drive` from what is
observed: a switchover already heading to the target is left to finish, one heading elsewhere is
waited out, and an error after which the switchover is seen under way is no failure.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from activities.arns import Arns, Grant
from activities.aws.common import region_of_arn
from activities.base import Check, State, StateStep, StepContext, StepParams, require
from activities.errors import StepError, missing_ok


class AuroraSwitchoverParams(StepParams):
    global_cluster: str = Field(description="Global cluster identifier.")
    target_region: str = Field(description="Region whose cluster becomes the writer.")
    api_region: str | None = Field(
        default=None, description="Region to call the RDS API in (default: the target region)."
    )


class AuroraGlobalSwitchover(StateStep[AuroraSwitchoverParams]):
    """Switches an Aurora global database's writer to another region (planned: no data loss);
    waits for the new writer and verifies membership. Undo switches back."""

    name = "aurora_global_switchover"
    idempotent_write = False
    poll_interval = 0.5
    actions = ("rds:DescribeGlobalClusters", "rds:SwitchoverGlobalCluster")

    def _rds(self, ctx: StepContext, p: AuroraSwitchoverParams, retry: bool = True) -> Any:
        return ctx.clients.aws("rds", p.api_region or p.target_region, retry=retry)

    def _global(self, ctx: StepContext, p: AuroraSwitchoverParams) -> dict[str, Any]:
        found = self._rds(ctx, p).describe_global_clusters(
            GlobalClusterIdentifier=p.global_cluster
        )["GlobalClusters"]
        require(bool(found), "NotFound", f"global cluster {p.global_cluster} not found")
        return dict(found[0])

    def _member_arn(self, ctx: StepContext, p: AuroraSwitchoverParams, region: str) -> str:
        members = self._global(ctx, p).get("GlobalClusterMembers", [])
        arns = [m["DBClusterArn"] for m in members if region_of_arn(m["DBClusterArn"]) == region]
        require(bool(arns), "NotFound", f"{p.global_cluster} has no member in {region}")
        return str(arns[0])

    def describe(self, params: AuroraSwitchoverParams) -> str:
        return f"Aurora global {params.global_cluster}: switch the writer to {params.target_region}"

    def regions_used(self, params: AuroraSwitchoverParams, step_region: str | None) -> set[str]:
        return {params.api_region or params.target_region}

    def iam_resources(self, params: AuroraSwitchoverParams, region: str, arns: Arns) -> list[Grant]:
        # the global cluster, and the member cluster it promotes (in the target region; its
        # name comes from the global cluster's members)
        glob = arns.global_cluster(params.global_cluster)
        return [
            Grant(("rds:DescribeGlobalClusters",), (glob,)),
            Grant(self.actions[1:], (glob, arns.rds(params.target_region, "cluster", "*"))),
        ]

    def resource(self, ctx: StepContext, params: AuroraSwitchoverParams) -> str:
        return f"rds:global-cluster/{params.global_cluster}"

    def preflight(self, ctx: StepContext, params: AuroraSwitchoverParams) -> None:
        members = self._global(ctx, params).get("GlobalClusterMembers", [])
        regions = {region_of_arn(m["DBClusterArn"]) for m in members}
        require(
            params.target_region in regions,
            "PreflightFailed",
            f"{params.global_cluster} has no member in {params.target_region} (members: "
            f"{', '.join(sorted(regions))})",
        )

    def observe(self, ctx: StepContext, params: AuroraSwitchoverParams) -> State:
        gc = self._global(ctx, params)
        writer = [m for m in gc.get("GlobalClusterMembers", []) if m.get("IsWriter")]
        moving = gc.get("FailoverState") or {}
        in_flight = moving.get("Status") not in (None, "cancelled")
        return {
            "writer_region": region_of_arn(writer[0]["DBClusterArn"]) if writer else None,
            "status": gc.get("Status"),
            "moving_to": region_of_arn(moving.get("ToDbClusterArn") or "") or None
            if in_flight
            else None,
        }

    def desired(self, ctx: StepContext, params: AuroraSwitchoverParams, current: State) -> State:
        return {"writer_region": params.target_region}

    def matches(self, observed: State, wanted: State) -> bool:
        return observed.get("writer_region") == wanted.get("writer_region")

    def in_transition(self, observed: State) -> bool:
        return observed.get("status") != "available" or observed.get("moving_to") is not None

    def heading_to(self, observed: State, wanted: State) -> bool:
        return observed.get("moving_to") == wanted.get("writer_region")

    def transition(self, observed: State) -> str:
        return f"writer in {observed.get('writer_region')}, status {observed.get('status')}" + (
            f", moving to {observed['moving_to']}" if observed.get("moving_to") else ""
        )

    def write(
        self, ctx: StepContext, params: AuroraSwitchoverParams, state: State, current: State
    ) -> None:
        self._rds(ctx, params, retry=False).switchover_global_cluster(
            GlobalClusterIdentifier=params.global_cluster,
            TargetDbClusterIdentifier=self._member_arn(ctx, params, state["writer_region"]),
        )

    def holds(self, ctx: StepContext, params: AuroraSwitchoverParams, wanted: State) -> Check:
        check = super().holds(ctx, params, wanted)
        if check.ok:
            region = check.observed["writer_region"]
            return Check(ok=True, detail=f"writer in {region}", observed={"writer_region": region})
        return check

    def snapshot(self, ctx: StepContext, params: AuroraSwitchoverParams) -> State:
        return {"writer_region": self.settled(ctx, params)["writer_region"]}


class AuroraGlobalFailover(AuroraGlobalSwitchover):
    """UNPLANNED failover of an Aurora global database's writer (AllowDataLoss): for a region
    that is down. Writes not yet replicated are lost, so it cannot be undone: the runbook must
    mark it irreversible, behind an approval gate."""

    name = "aurora_global_failover"
    reversible = False
    actions = ("rds:DescribeGlobalClusters", "rds:FailoverGlobalCluster")

    def describe(self, params: AuroraSwitchoverParams) -> str:
        return (
            f"Aurora global {params.global_cluster}: FAIL OVER the writer to "
            f"{params.target_region} (data loss allowed, IRREVERSIBLE)"
        )

    def write(
        self, ctx: StepContext, params: AuroraSwitchoverParams, state: State, current: State
    ) -> None:
        if state["writer_region"] != params.target_region:
            raise StepError("Validation", "an unplanned failover cannot be undone", False)
        self._rds(ctx, params, retry=False).failover_global_cluster(
            GlobalClusterIdentifier=params.global_cluster,
            TargetDbClusterIdentifier=self._member_arn(ctx, params, state["writer_region"]),
            AllowDataLoss=True,
        )


#: Tags the secondary a rejoin creates with the run's id.
REJOIN_TAG = "failover.dev/rejoined-by"


class AuroraRejoinParams(StepParams):
    global_cluster: str = Field(description="Global cluster identifier.")
    cluster: str = Field(
        description="The old writer's cluster, e.g. shop-aurora-${{ from_region }}."
    )
    region: str = Field(description="Its region: the one that failed (${{ from_region }}).")
    engine: str = Field(default="aurora-postgresql", description="Engine of the global cluster.")
    engine_version: str | None = Field(default=None, description="Default: the global cluster's.")


class AuroraGlobalRejoin(StateStep[AuroraRejoinParams]):
    """Recovery after an unplanned failover: the old writer cluster was left out of the global
    cluster (with the writes it never replicated). It is kept in a snapshot, then replaced by a
    secondary of the same name that replicates from the new writer. IRREVERSIBLE: what the old
    writer held beyond the new writer survives only in that snapshot."""

    name = "aurora_global_rejoin"
    reversible = False
    idempotent_write = False
    poll_interval = 0.5
    actions = (
        "rds:DescribeGlobalClusters",
        "rds:DescribeDBClusters",
        "rds:CreateDBClusterSnapshot",
        "rds:DeleteDBCluster",
        "rds:CreateDBCluster",
        "rds:AddTagsToResource",  # the new secondary is tagged with the run (tag on create)
        "rds:DescribeDBClusterSnapshots",  # the old writer's snapshot, taken once
    )

    def _rds(self, ctx: StepContext, p: AuroraRejoinParams, retry: bool = True) -> Any:
        return ctx.clients.aws("rds", p.region, retry=retry)

    def describe(self, params: AuroraRejoinParams) -> str:
        return (
            f"Aurora {params.cluster}: snapshot it, then rejoin {params.global_cluster} as a "
            f"secondary in {params.region} (IRREVERSIBLE)"
        )

    def iam_resources(self, params: AuroraRejoinParams, region: str, arns: Arns) -> list[Grant]:
        where = params.region
        cluster = arns.rds(where, "cluster", params.cluster)
        snapshots = arns.rds(where, "cluster-snapshot", f"{params.cluster}-before-rejoin-*")
        glob = arns.global_cluster(params.global_cluster)
        # created with the engine's default parameter group, option group and subnet group
        defaults = tuple(arns.rds(where, kind, "*") for kind in ("cluster-pg", "og", "subgrp"))
        return [
            Grant(("rds:DescribeGlobalClusters",), (glob,)),
            Grant(("rds:DescribeDBClusters", "rds:AddTagsToResource"), (cluster,)),
            Grant(("rds:CreateDBClusterSnapshot", "rds:DeleteDBCluster",
                   "rds:DescribeDBClusterSnapshots"), (cluster, snapshots)),
            Grant(("rds:CreateDBCluster",), (cluster, glob, *defaults)),
        ]  # fmt: skip

    def resource(self, ctx: StepContext, params: AuroraRejoinParams) -> str:
        return f"rds:{params.region}:cluster/{params.cluster}"

    def regions_used(self, params: AuroraRejoinParams, step_region: str | None) -> set[str]:
        return {params.region}

    def _global(self, ctx: StepContext, p: AuroraRejoinParams) -> dict[str, Any]:
        found = self._rds(ctx, p).describe_global_clusters(GlobalClusterIdentifier=p.global_cluster)
        require(bool(found["GlobalClusters"]), "NotFound", f"{p.global_cluster} not found")
        return dict(found["GlobalClusters"][0])

    def observe(self, ctx: StepContext, params: AuroraRejoinParams) -> State:
        members = self._global(ctx, params).get("GlobalClusterMembers", [])
        member = [m for m in members if m["DBClusterArn"].endswith(f":cluster:{params.cluster}")]
        clusters = missing_ok(lambda: self._rds(ctx, params).describe_db_clusters(
            DBClusterIdentifier=params.cluster)["DBClusters"]) or []  # fmt: skip
        tag_list = (clusters[0].get("TagList") or []) if clusters else []
        tags = {t["Key"]: t["Value"] for t in tag_list}
        return {
            "member": bool(member),
            "writer": bool(member and member[0].get("IsWriter")),
            "exists": bool(clusters),
            # the secondary this run created (tagged): never taken for the old writer
            "ours": tags.get(REJOIN_TAG) == ctx.run_id,
            "status": clusters[0].get("Status") if clusters else None,
        }

    def snapshot(self, ctx: StepContext, params: AuroraRejoinParams) -> State:
        return {"member": self.settled(ctx, params)["member"]}

    def desired(self, ctx: StepContext, params: AuroraRejoinParams, current: State) -> State:
        return {"member": True}

    def in_transition(self, observed: State) -> bool:
        if observed.get("ours") and not observed.get("member"):
            return True  # created, joining the global cluster
        return observed.get("exists", False) and observed.get("status") not in (None, "available")

    def heading_to(self, observed: State, wanted: State) -> bool:
        return bool(observed.get("status") == "creating" and wanted.get("member"))

    def write(
        self, ctx: StepContext, params: AuroraRejoinParams, state: State, current: State
    ) -> None:
        if not state.get("member"):
            raise StepError("Validation", "a rejoined cluster is not taken out again", False)
        rds = self._rds(ctx, params, retry=False)
        if current.get("ours"):
            return  # created by this run already: joining
        if current.get("exists"):  # the old writer, standalone: kept in a snapshot, replaced
            stamp = ctx.run_id.rsplit("/", 1)[-1][:12].lower().replace("_", "-")
            ident = f"{params.cluster}-before-rejoin-{stamp}"
            taken = missing_ok(lambda: self._rds(ctx, params).describe_db_cluster_snapshots(
                DBClusterSnapshotIdentifier=ident)["DBClusterSnapshots"])  # fmt: skip
            if not taken:
                rds.create_db_cluster_snapshot(
                    DBClusterSnapshotIdentifier=ident, DBClusterIdentifier=params.cluster
                )
            rds.delete_db_cluster(DBClusterIdentifier=params.cluster, SkipFinalSnapshot=True)

            def gone() -> tuple[bool, str]:
                return not self.observe(ctx, params)["exists"], f"{params.cluster} deleting"

            ctx.wait("old writer deleted", gone, self.poll_interval)
        version = params.engine_version or self._global(ctx, params).get("EngineVersion")
        rds.create_db_cluster(
            DBClusterIdentifier=params.cluster,
            Engine=params.engine,
            EngineVersion=version,
            GlobalClusterIdentifier=params.global_cluster,
            Tags=[{"Key": REJOIN_TAG, "Value": ctx.run_id}],
        )

    def holds(self, ctx: StepContext, params: AuroraRejoinParams, wanted: State) -> Check:
        check = super().holds(ctx, params, wanted)
        seen = self.observe(ctx, params)
        if check.ok and seen["writer"]:
            return Check(ok=False, detail=f"{params.cluster} is the writer, not a secondary")
        return check
