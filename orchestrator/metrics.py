"""The orchestrator's own metrics: every name, unit and attribute, in one place.

All of them go through Temporal's metric meters, so they leave by the exporter of the worker's
Temporal runtime (`failover worker --metrics-port N`: Prometheus, on the same endpoint as the
SDK's own `temporal_*` metrics):

- from workflow code: `temporalio.workflow.metric_meter()` (replay-safe: the SDK drops what a
  replaying workflow records); it adds the attributes `namespace`, `task_queue`, `workflow_type`;
- from activities: `temporalio.activity.metric_meter()`; it adds `namespace`, `task_queue`,
  `activity_type`;
- from the worker process: the runtime's meter (`Runtime.metric_meter`).

Attribute values are bounded (runbook names, step types, states), never secrets, never free text.
Only the standard library and `temporalio.common` are imported at module level: workflow code may
import this module.

Emit a metric with the helpers, e.g. from a workflow::

    counter(workflow.metric_meter(), RUNS).add(1, {"runbook": ..., "outcome": ...})
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from temporalio.common import MetricCounter, MetricGaugeFloat, MetricHistogramFloat, MetricMeter

if TYPE_CHECKING:
    from temporalio.runtime import Runtime

Kind = Literal["counter", "histogram", "gauge"]


@dataclass(frozen=True)
class Metric:
    """One metric: what it is called, what it measures and which attributes it carries.

    Attributes:
        name: The Prometheus name (`failover_*`; counters end in `_total`).
        kind: counter, histogram or gauge.
        unit: "s" (seconds) or "1" (a count or a state).
        description: The HELP text.
        attributes: The attributes the emitter sets (the SDK's meters add their own).
        emitter: Where it is recorded.
        buckets: Histogram bucket boundaries (in the unit), or None.
    """

    name: str
    kind: Kind
    unit: str
    description: str
    attributes: tuple[str, ...]
    emitter: str
    buckets: tuple[float, ...] | None = None


#: Seconds, for whole runs and detection: from seconds (the sandbox) to hours.
_LONG = (1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0)
#: Seconds, for one step activity: from a quick check to a slow database switchover.
_STEP = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
#: Seconds of replication lag (RPO): zero for a planned switch, minutes when things go badly.
_RPO = (0.0, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)

RUN_ATTRIBUTES = ("runbook", "mode", "kind", "outcome")

RUNS = Metric(
    "failover_runs_total",
    "counter",
    "1",
    "Region-switch runs that ended, by runbook, mode (drill, failover, dry-run, gameday), kind "
    "(planned, unplanned, recovery) and outcome (SUCCEEDED, ROLLED_BACK, ROLLBACK_FAILED, FAILED).",
    RUN_ATTRIBUTES,
    "worker interceptor, RegionSwitch workflow (workflow.metric_meter)",
)
RTO = Metric(
    "failover_run_rto_seconds",
    "histogram",
    "s",
    "A run's recovery time as its report measures it: start to traffic on the target (the last "
    "traffic step) when there is one, else start to the end of the run.",
    RUN_ATTRIBUTES,
    "worker interceptor, RegionSwitch workflow (workflow.metric_meter)",
    _LONG,
)
RPO = Metric(
    "failover_run_rpo_seconds",
    "histogram",
    "s",
    "A run's recovery point: the replication lag measured last before the promotion (runs "
    "that measured one).",
    RUN_ATTRIBUTES,
    "worker interceptor, RegionSwitch workflow (workflow.metric_meter)",
    _RPO,
)
UNDOS = Metric(
    "failover_undos_total",
    "counter",
    "1",
    "Steps a run undid (or tried to), by the step's final state: UNDONE, UNDO_FAILED, "
    "UNDO_SKIPPED.",
    ("runbook", "mode", "kind", "state"),
    "worker interceptor, RegionSwitch workflow (workflow.metric_meter)",
)
STEP_DURATION = Metric(
    "failover_step_duration_seconds",
    "histogram",
    "s",
    "One attempt of a step activity (activity_type step.prepare, step.apply, step.check, "
    "step.undo, step.plan), by step type and outcome (succeeded, failed, cancelled).",
    ("step_type", "outcome"),
    "worker interceptor, step activities (activity.metric_meter)",
    _STEP,
)
OPEN_GATES = Metric(
    "failover_open_gates",
    "gauge",
    "1",
    "Approval gates open now in running switches, by runbook (0 once they closed).",
    ("runbook",),
    "failover worker, every 15 s (runtime meter)",
)
GATE_AGE = Metric(
    "failover_open_gate_age_seconds",
    "gauge",
    "s",
    "How long the oldest open gate of a runbook's running switches has waited (0: none open).",
    ("runbook",),
    "failover worker, every 15 s (runtime meter)",
)
GUARD_STATE = Metric(
    "failover_guard_state",
    "gauge",
    "1",
    "A runbook's guard: 0 healthy, 1 suspect, 2 confirmed, 3 switching, 4 cooldown, 5 flapping, "
    "6 stopped.",
    ("runbook",),
    "guard workflow (workflow.metric_meter)",
)
MTTD = Metric(
    "failover_guard_mttd_seconds",
    "histogram",
    "s",
    "Time to detect: the first failing evaluation to the confirmed outage.",
    ("runbook",),
    "guard workflow (workflow.metric_meter)",
    _LONG,
)
READINESS = Metric(
    "failover_readiness_ok",
    "gauge",
    "1",
    "The last readiness result of a runbook: 1 all checks green, 0 a check is red.",
    ("runbook",),
    "readiness (workflow or activity meter)",
)
NOTIFICATIONS = Metric(
    "failover_notifications_total",
    "counter",
    "1",
    "Notifications by channel (its name in the notify: section), event and outcome (sent, failed).",
    ("channel", "event", "outcome"),
    "notification activities (activity.metric_meter)",
)

#: Every metric of the orchestrator (the dashboard and the README are checked against it).
ALL: tuple[Metric, ...] = (
    RUNS,
    RTO,
    RPO,
    UNDOS,
    STEP_DURATION,
    OPEN_GATES,
    GATE_AGE,
    GUARD_STATE,
    MTTD,
    READINESS,
    NOTIFICATIONS,
)

#: `failover_guard_state`'s values.
GUARD_STATES: Mapping[str, int] = {
    "healthy": 0,
    "suspect": 1,
    "confirmed": 2,
    "switching": 3,
    "cooldown": 4,
    "flapping": 5,
    "stopped": 6,
}


def _check(metric: Metric, kind: Kind) -> None:
    if metric.kind != kind:
        raise TypeError(f"{metric.name} is a {metric.kind}, not a {kind}")


def counter(meter: MetricMeter, metric: Metric) -> MetricCounter:
    """The counter of `metric` on `meter` (an integer counter)."""
    _check(metric, "counter")
    return meter.create_counter(metric.name, metric.description, metric.unit)


def histogram(meter: MetricMeter, metric: Metric) -> MetricHistogramFloat:
    """The histogram of `metric` on `meter` (float values, in its unit)."""
    _check(metric, "histogram")
    return meter.create_histogram_float(metric.name, metric.description, metric.unit)


def gauge(meter: MetricMeter, metric: Metric) -> MetricGaugeFloat:
    """The gauge of `metric` on `meter` (float values, in its unit)."""
    _check(metric, "gauge")
    return meter.create_gauge_float(metric.name, metric.description, metric.unit)


def bucket_overrides() -> dict[str, Sequence[float]]:
    """Histogram buckets of the orchestrator's histograms, for the Prometheus exporter."""
    return {m.name: m.buckets for m in ALL if m.buckets is not None}


def prometheus_runtime(bind_address: str) -> Runtime:
    """A Temporal runtime that serves Prometheus metrics on `bind_address` ("host:port").

    Durations are in seconds (the SDK's `temporal_*_latency` histograms too); the orchestrator's
    histograms get their own buckets. Clients connected with this runtime, and workers built from
    them, record there.
    """
    from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

    return Runtime(
        telemetry=TelemetryConfig(
            metrics=PrometheusConfig(
                bind_address=bind_address,
                durations_as_seconds=True,
                histogram_bucket_overrides=bucket_overrides(),
            )
        )
    )
