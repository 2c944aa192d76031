"""CloudWatch: replication-lag guard (Aurora global lag, RDS ReplicaLag) against an RPO."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import Field

from activities.aws.common import call
from activities.base import Check, StepContext, StepParams, StepType
from orchestrator.runbook.durations import Duration, format_duration

METRICS = {
    # kind: (metric, dimension, unit -> seconds)
    "aurora_global": ("AuroraGlobalDBReplicationLag", "DBClusterIdentifier", 0.001),
    "rds_replica": ("ReplicaLag", "DBInstanceIdentifier", 1.0),
}


class ReplicaLagParams(StepParams):
    kind: Literal["aurora_global", "rds_replica"] = "aurora_global"
    identifier: str = Field(description="The secondary cluster (Aurora) or the read replica (RDS).")
    region: str | None = Field(default=None, description="Its region (default: the step's).")
    max_lag: Duration = Field(description="Highest acceptable lag, usually the runbook's RPO.")
    window: Duration = Field(default=timedelta(minutes=2), description="Look back this long.")


class ReplicaLag(StepType):
    """Read-only: the replica's latest replication lag (CloudWatch) is at most max_lag. Its
    measured lag is reported (the run's RPO when checked right before a promotion)."""

    name = "replica_lag"
    Params = ReplicaLagParams
    poll_interval = 1.0
    actions = ("cloudwatch:GetMetricData",)

    def describe(self, params: StepParams) -> str:
        assert isinstance(params, ReplicaLagParams)
        return f"replication lag of {params.identifier} <= {format_duration(params.max_lag)}"

    def verify(self, ctx: StepContext, params: StepParams, snapshot: dict[str, object]) -> Check:
        assert isinstance(params, ReplicaLagParams)
        metric, dimension, to_seconds = METRICS[params.kind]
        now = datetime.now(UTC)
        cw = ctx.clients.aws("cloudwatch", params.region or ctx.scope)
        data = call(
            cw.get_metric_data,
            MetricDataQueries=[
                {
                    "Id": "lag",
                    "MetricStat": {
                        "Metric": {
                            "Namespace": "AWS/RDS",
                            "MetricName": metric,
                            "Dimensions": [{"Name": dimension, "Value": params.identifier}],
                        },
                        "Period": 60,
                        "Stat": "Maximum",
                    },
                    "ReturnData": True,
                }
            ],
            StartTime=now - params.window,
            EndTime=now + timedelta(minutes=1),
            ScanBy="TimestampDescending",
        )["MetricDataResults"][0]
        if not data.get("Values"):
            return Check(ok=False, detail=f"no {metric} datapoint for {params.identifier} yet")
        lag = float(data["Values"][0]) * to_seconds
        limit = params.max_lag.total_seconds()
        detail = f"{params.identifier} lag {lag:.3g}s (max {limit:g}s)"
        return Check(ok=lag <= limit, detail=detail, observed={"lag_seconds": lag})
