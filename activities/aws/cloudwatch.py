"""CloudWatch: replication-lag guard (Aurora global lag, RDS ReplicaLag) against an RPO."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import Field

from activities.arns import Arns, Grant
from activities.base import Check, RegionalParams, State, StepContext, StepType
from activities.errors import StepError
from orchestrator.runbook.durations import Duration, format_duration

METRICS = {
    # kind: (metric, dimension, unit -> seconds)
    "aurora_global": ("AuroraGlobalDBReplicationLag", "DBClusterIdentifier", 0.001),
    "rds_replica": ("ReplicaLag", "DBInstanceIdentifier", 1.0),
}


def metric_values(
    ctx: StepContext,
    region: str,
    namespace: str,
    metric: str,
    dimensions: dict[str, str],
    stat: str,
    window: timedelta,
) -> list[float]:
    """One metric's 1-minute statistics over the window, newest first."""
    now = datetime.now(UTC)
    data = ctx.clients.aws("cloudwatch", region).get_metric_data(
        MetricDataQueries=[
            {
                "Id": "m",
                "MetricStat": {
                    "Metric": {
                        "Namespace": namespace,
                        "MetricName": metric,
                        "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()],
                    },
                    "Period": 60,
                    "Stat": stat,
                },
                "ReturnData": True,
            }
        ],
        StartTime=now - window,
        EndTime=now + timedelta(minutes=1),
        ScanBy="TimestampDescending",
    )["MetricDataResults"][0]
    return [float(v) for v in data.get("Values", [])]


class ReplicaLagParams(RegionalParams):
    kind: Literal["aurora_global", "rds_replica"] = "aurora_global"
    identifier: str = Field(description="The secondary cluster (Aurora) or the read replica (RDS).")
    max_lag: Duration = Field(description="Highest acceptable lag, usually the runbook's RPO.")
    window: Duration = Field(default=timedelta(minutes=2), description="Look back this long.")
    enforce: bool = Field(
        default=True,
        description="false: measure and report only (an unplanned run records the RPO at risk "
        "and lets a person decide at the gate).",
    )


class ReplicaLag(StepType[ReplicaLagParams]):
    """Read-only: the replica's latest replication lag (CloudWatch) is at most max_lag. Its
    measured lag is reported (the run's RPO when checked right before a promotion)."""

    name = "replica_lag"
    poll_interval = 1.0
    actions = ("cloudwatch:GetMetricData",)

    def describe(self, params: ReplicaLagParams) -> str:
        return f"replication lag of {params.identifier} <= {format_duration(params.max_lag)}"

    def verify(self, ctx: StepContext, params: ReplicaLagParams, snapshot: State) -> Check:
        metric, dimension, to_seconds = METRICS[params.kind]
        values = metric_values(
            ctx, ctx.region_for(params), "AWS/RDS", metric, {dimension: params.identifier},
            "Maximum", params.window,
        )  # fmt: skip
        if not values and not params.enforce:
            return Check(ok=True, detail=f"no {metric} datapoint for {params.identifier} in "
                         f"{format_duration(params.window)}: the lag is unknown")  # fmt: skip
        if not values:
            return Check(ok=False, detail=f"no {metric} datapoint for {params.identifier} yet")
        lag = values[0] * to_seconds  # the latest
        limit = params.max_lag.total_seconds()
        detail = f"{params.identifier} lag {lag:.3g}s (max {limit:g}s)"
        if not params.enforce:
            over = " (over the RPO)" if lag > limit else ""
            return Check(ok=True, detail=f"{params.identifier} lag {lag:.3g}s measured{over}",
                         observed={"lag_seconds": lag})  # fmt: skip
        return Check(ok=lag <= limit, detail=detail, observed={"lag_seconds": lag})


class MetricParams(RegionalParams):
    namespace: str = Field(description="e.g. AWS/ApplicationELB")
    metric: str
    dimensions: dict[str, str] = Field(default_factory=dict)
    stat: Literal["Average", "Maximum", "Minimum", "Sum", "SampleCount"] = "Maximum"
    max: float = Field(description="Highest acceptable value over the window.")
    window: Duration = Field(default=timedelta(minutes=5))


class MetricBelow(StepType[MetricParams]):
    """Read-only: a CloudWatch metric stayed at or under a threshold over a window."""

    name = "cloudwatch_metric"
    poll_interval = 2.0
    actions = ("cloudwatch:GetMetricData",)

    def describe(self, params: MetricParams) -> str:
        return f"{params.namespace} {params.metric} {params.stat} <= {params.max:g}"

    def verify(self, ctx: StepContext, params: MetricParams, snapshot: State) -> Check:
        values = metric_values(
            ctx, ctx.region_for(params), params.namespace, params.metric, params.dimensions,
            params.stat, params.window,
        )  # fmt: skip
        if not values:
            return Check(ok=False, detail=f"no {params.metric} datapoint in the window")
        worst = max(values)
        return Check(
            ok=worst <= params.max,
            detail=f"{params.metric} {params.stat} {worst:g} (max {params.max:g})",
            observed={"value": worst},
        )


class AlarmParams(RegionalParams):
    alarms: list[str] = Field(min_length=1, description="Alarm names.")
    state: Literal["OK", "ALARM", "INSUFFICIENT_DATA"] = "OK"
    steady_for: Duration = Field(
        default=timedelta(0), description="Each alarm has been in that state at least this long."
    )


class AlarmState(StepType[AlarmParams]):
    """Read-only: CloudWatch alarms are in a state (OK by default), and have been for a while."""

    name = "cloudwatch_alarm"
    poll_interval = 2.0
    actions = ("cloudwatch:DescribeAlarms",)

    def iam_resources(self, params: AlarmParams, region: str, arns: Arns) -> list[Grant]:
        alarms = tuple(arns.regional("cloudwatch", region, f"alarm:{a}") for a in params.alarms)
        return [Grant(self.actions, alarms)]

    def describe(self, params: AlarmParams) -> str:
        steady = format_duration(params.steady_for)
        return f"alarms {', '.join(params.alarms)} {params.state} for {steady}"

    def verify(self, ctx: StepContext, params: AlarmParams, snapshot: State) -> Check:
        cw = ctx.clients.aws("cloudwatch", ctx.region_for(params))
        found = cw.describe_alarms(AlarmNames=params.alarms)["MetricAlarms"]
        by_name = {a["AlarmName"]: a for a in found}
        missing = sorted(set(params.alarms) - set(by_name))
        if missing:
            raise StepError("NotFound", f"no alarm {', '.join(missing)}")
        now = datetime.now(UTC)
        waiting = []
        for name in params.alarms:
            alarm = by_name[name]
            since = alarm.get("StateUpdatedTimestamp") or now
            if since.tzinfo is None:
                since = since.replace(tzinfo=UTC)
            if alarm["StateValue"] != params.state:
                waiting.append(f"{name} is {alarm['StateValue']}")
            elif now - since < params.steady_for:
                waiting.append(f"{name} {params.state} for {(now - since).total_seconds():.0f}s")
        if waiting:
            return Check(ok=False, detail="; ".join(waiting))
        return Check(ok=True, detail=f"{len(params.alarms)} alarm(s) {params.state}")
