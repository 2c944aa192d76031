"""RDS: promote a cross-region read replica to a standalone writer. Irreversible.

A promotion takes time (the instance is `modifying`, then `available` with no source) and a second
PromoteReadReplica while it runs is refused (InvalidDBInstanceState), so it is sent once, by a
client that does not resend it, and decided again from what is observed after any error.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from activities.arns import Arns, Grant
from activities.base import Change, RegionalParams, State, StateStep, StepContext
from activities.errors import StepError

#: Instance statuses of an operation in flight (a promotion shows `modifying`, then `rebooting`).
BUSY = ("modifying", "rebooting", "backing-up", "upgrading", "renaming", "configuring-log-exports")


class PromoteReplicaParams(RegionalParams):
    db_instance: str = Field(description="The read replica to promote.")


class RdsPromoteReplica(StateStep[PromoteReplicaParams]):
    """Promotes an RDS read replica to a standalone instance. IRREVERSIBLE: replication from the
    old primary ends for good; the runbook must mark the step irreversible behind a gate."""

    name = "rds_promote_replica"
    reversible = False
    idempotent_write = False
    poll_interval = 0.5
    actions = ("rds:DescribeDBInstances", "rds:PromoteReadReplica")

    def _rds(self, ctx: StepContext, p: PromoteReplicaParams, retry: bool = True) -> Any:
        return ctx.clients.aws("rds", ctx.region_for(p), retry=retry)

    def describe(self, params: PromoteReplicaParams) -> str:
        return f"promote RDS replica {params.db_instance} (IRREVERSIBLE)"

    def iam_resources(self, params: PromoteReplicaParams, region: str, arns: Arns) -> list[Grant]:
        return [Grant(self.actions, (arns.rds(region, "db", params.db_instance),))]

    def resource(self, ctx: StepContext, params: PromoteReplicaParams) -> str:
        return f"rds:{ctx.region_for(params)}:db/{params.db_instance}"

    def observe(self, ctx: StepContext, params: PromoteReplicaParams) -> State:
        dbs = self._rds(ctx, params).describe_db_instances(DBInstanceIdentifier=params.db_instance)
        db = dbs["DBInstances"][0]
        return {
            "source": db.get("ReadReplicaSourceDBInstanceIdentifier"),
            "status": db.get("DBInstanceStatus"),
        }

    def desired(self, ctx: StepContext, params: PromoteReplicaParams, current: State) -> State:
        return {"source": None}

    def matches(self, observed: State, wanted: State) -> bool:
        return observed.get("source") == wanted.get("source")

    def in_transition(self, observed: State) -> bool:
        return observed.get("status") in BUSY

    def heading_to(self, observed: State, wanted: State) -> bool:
        # Before the write the replica was settled and replicating: the operation now in
        # flight on it is the promotion.
        return wanted.get("source") is None

    def write(
        self, ctx: StepContext, params: PromoteReplicaParams, state: State, current: State
    ) -> None:
        if state.get("source") is not None:
            raise StepError("Validation", "a promoted replica cannot be re-attached", False)
        self._rds(ctx, params, retry=False).promote_read_replica(
            DBInstanceIdentifier=params.db_instance
        )

    def snapshot(self, ctx: StepContext, params: PromoteReplicaParams) -> State:
        return {"source": self.settled(ctx, params)["source"]}

    def dry_run(self, ctx: StepContext, params: PromoteReplicaParams) -> list[Change]:
        source = self.observe(ctx, params)["source"]
        if source is None:
            return []
        return [Change(resource=f"rds:{params.db_instance}", before={"source": source},
                       after={"source": None})]  # fmt: skip
