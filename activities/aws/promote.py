"""RDS: promote a cross-region read replica to a standalone writer. Irreversible."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from activities.aws.common import call
from activities.base import Change, Check, RegionalParams, StepContext, StepParams, StepType


class PromoteReplicaParams(RegionalParams):
    db_instance: str = Field(description="The read replica to promote.")


class RdsPromoteReplica(StepType):
    """Promotes an RDS read replica to a standalone instance. IRREVERSIBLE: replication from the
    old primary ends for good; the runbook must mark the step irreversible behind a gate."""

    name = "rds_promote_replica"
    Params = PromoteReplicaParams
    mutating = True
    reversible = False
    poll_interval = 0.5
    actions = ("rds:DescribeDBInstances", "rds:PromoteReadReplica")

    def _p(self, params: StepParams) -> PromoteReplicaParams:
        assert isinstance(params, PromoteReplicaParams)
        return params

    def _db(self, ctx: StepContext, p: PromoteReplicaParams) -> dict[str, Any]:
        rds = ctx.clients.aws("rds", ctx.region_for(p))
        dbs = call(rds.describe_db_instances, DBInstanceIdentifier=p.db_instance)["DBInstances"]
        return dict(dbs[0])

    def describe(self, params: StepParams) -> str:
        return f"promote RDS replica {self._p(params).db_instance} (IRREVERSIBLE)"

    @staticmethod
    def _promoted(db: dict[str, Any]) -> bool:
        return not db.get("ReadReplicaSourceDBInstanceIdentifier")

    def snapshot(self, ctx: StepContext, params: StepParams) -> dict[str, Any]:
        db = self._db(ctx, self._p(params))
        return {"source": db.get("ReadReplicaSourceDBInstanceIdentifier")}

    def apply(self, ctx: StepContext, params: StepParams, snapshot: dict[str, Any]) -> None:
        p = self._p(params)
        if self._promoted(self._db(ctx, p)):
            return  # already promoted (a retried apply)
        rds = ctx.clients.aws("rds", ctx.region_for(p))
        call(rds.promote_read_replica, DBInstanceIdentifier=p.db_instance)

    def verify(self, ctx: StepContext, params: StepParams, snapshot: dict[str, Any]) -> Check:
        db = self._db(ctx, self._p(params))
        ok = self._promoted(db) and db.get("DBInstanceStatus") == "available"
        source = db.get("ReadReplicaSourceDBInstanceIdentifier")
        detail = f"status {db.get('DBInstanceStatus')}, replicating from {source}"
        return Check(ok=ok, detail=detail, observed={"source": None} if ok else {})

    def dry_run(self, ctx: StepContext, params: StepParams) -> list[Change]:
        p = self._p(params)
        db = self._db(ctx, p)
        if self._promoted(db):
            return []
        source = db.get("ReadReplicaSourceDBInstanceIdentifier")
        return [Change(resource=f"rds:{p.db_instance}", before={"source": source},
                       after={"source": None})]  # fmt: skip
