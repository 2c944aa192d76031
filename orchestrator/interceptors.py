"""Temporal interceptors of the worker: the orchestrator's run and step metrics, and tracing.

`MetricsInterceptor` is a client interceptor that is also a worker interceptor: pass it to
`orchestrator.client.connect(..., interceptors=[...])` and every worker built from that client
records

- for each step activity attempt (`step.*`): its duration by step type and outcome
  (`failover_step_duration_seconds`, through `activity.metric_meter()`);
- for each RegionSwitch run that ends: the run by outcome, its RTO (as its report measures it),
  its RPO and its undos, when the first attempt of its report activity (`report.switch`, or
  `report.switch_end` with its last notice: every run that ends runs one of them once, with its
  final progress) starts. Exactly once per run: a
  workflow's last task can run twice (a completion the server rejects because an event arrived
  meanwhile, a task that timed out on a loaded worker), and `workflow.metric_meter()` only
  skips replayed code, so a count made by the workflow itself would count that run twice;
- a RegionSwitch run that fails as a workflow (a bug, never a rollback: through the workflow
  interceptor, the only run that writes no report).

`tracing_from_env` builds Temporal's OpenTelemetry `TracingInterceptor` with an OTLP exporter
when the standard OTEL_* variables ask for traces.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

import structlog
import temporalio.client
import temporalio.common
import temporalio.exceptions
import temporalio.worker
from temporalio import activity, workflow
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    ExecuteWorkflowInput,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

from orchestrator import metrics
from orchestrator.runs import RunEnd, RunProgress, RunState, StepState

log = structlog.get_logger("failover.metrics")

#: The workflow type whose runs are measured.
RUN_WORKFLOW = "RegionSwitch"
#: The activities one of which every RegionSwitch run that ends runs once with its final
#: progress (activities/report.py: the report, or the last notice and the report): where the run
#: is counted.
RUN_REPORT_ACTIVITIES = frozenset({"report.switch", "report.switch_end"})
#: Activities whose attempts are timed (activities/steps.py).
STEP_ACTIVITY_PREFIX = "step."
_UNDO_STATES = frozenset(
    s.value for s in (StepState.UNDONE, StepState.UNDO_FAILED, StepState.UNDO_SKIPPED)
)


def rto_seconds(p: RunProgress, traffic_types: Collection[str]) -> float | None:
    """A run's RTO as its report measures it (`orchestrator.report.build`): start to the end of
    the last traffic step when the run succeeded and moved traffic, else start to the end."""
    if p.ended_at is None:
        return None
    total = round((p.ended_at - p.started_at).total_seconds(), 3)
    if p.state.value != RunState.SUCCEEDED.value:
        return total
    traffic = [
        s for s in p.steps if s.type in traffic_types and s.state.value == StepState.SUCCEEDED.value
    ]
    if not traffic:
        return total
    last = max(s.ended_at or p.started_at for s in traffic)
    return round((last - p.started_at).total_seconds(), 3)


def run_attributes(p: RunProgress, outcome: str | None = None) -> dict[str, str]:
    """The attributes of a run's metrics (bounded values: no ids, no free text)."""
    return {
        "runbook": p.runbook,
        "mode": str(p.mode),
        "kind": str(p.kind),
        "outcome": outcome or p.state.value,
    }


def record_run(
    meter: temporalio.common.MetricMeter, p: RunProgress, traffic: Collection[str]
) -> None:
    """Record an ended run: count, RTO, RPO and undos."""
    attrs = run_attributes(p)
    metrics.counter(meter, metrics.RUNS).add(1, attrs)
    rto = rto_seconds(p, traffic)
    if rto is not None:
        metrics.histogram(meter, metrics.RTO).record(max(rto, 0.0), attrs)
    if p.rpo_seconds is not None:
        metrics.histogram(meter, metrics.RPO).record(max(float(p.rpo_seconds), 0.0), attrs)
    undos: dict[str, int] = {}
    for s in p.steps:
        if s.state.value in _UNDO_STATES:
            undos[s.state.value] = undos.get(s.state.value, 0) + 1
    base = {k: v for k, v in attrs.items() if k != "outcome"}
    for state, n in sorted(undos.items()):
        metrics.counter(meter, metrics.UNDOS).add(n, {**base, "state": state})


class _RunMetricsInbound(WorkflowInboundInterceptor):
    """Counts a RegionSwitch run that fails as a workflow (inside the workflow sandbox)."""

    async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
        if workflow.info().workflow_type != RUN_WORKFLOW:
            return await super().execute_workflow(input)
        try:
            return await super().execute_workflow(input)
        except temporalio.exceptions.FailureError:
            # The workflow failed (not a task failure, which is retried): count it.
            self._record_failure(input)
            raise

    @staticmethod
    def _record_failure(input: ExecuteWorkflowInput) -> None:
        inp = input.args[0] if input.args else None
        attrs = {
            "runbook": str(getattr(inp, "runbook", "unknown")),
            "mode": str(getattr(inp, "mode", "unknown")),
            "kind": str(getattr(inp, "kind", "unknown")),
            "outcome": "FAILED",
        }
        metrics.counter(workflow.metric_meter(), metrics.RUNS).add(1, attrs)


class _ActivityMetricsInbound(ActivityInboundInterceptor):
    """Times every attempt of a step activity, by step type and outcome; counts a run that
    ended when its report activity first starts."""

    def __init__(self, next: ActivityInboundInterceptor, traffic: frozenset[str]) -> None:
        super().__init__(next)
        self.traffic = traffic

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        if info.activity_type in RUN_REPORT_ACTIVITIES:
            if info.attempt == 1:  # a retry of the report is the same run
                self._record_run(input, info.workflow_type or RUN_WORKFLOW)
            return await super().execute_activity(input)
        if not info.activity_type.startswith(STEP_ACTIVITY_PREFIX):
            return await super().execute_activity(input)
        call = input.args[0] if input.args else None
        step_type = str(getattr(getattr(call, "step", None), "type", None) or "unknown")
        started = time.monotonic()
        outcome = "failed"
        try:
            result = await super().execute_activity(input)
            outcome = "succeeded"
            return result
        except (asyncio.CancelledError, temporalio.exceptions.CancelledError):
            outcome = "cancelled"
            raise
        finally:
            _record_step(step_type, outcome, time.monotonic() - started)

    def _record_run(self, input: ExecuteActivityInput, workflow_type: str) -> None:
        progress = input.args[0] if input.args else None
        if isinstance(progress, RunEnd):
            progress = progress.progress
        if not isinstance(progress, RunProgress):
            return
        meter = activity.metric_meter().with_additional_attributes({"workflow_type": workflow_type})
        try:
            record_run(meter, progress, self.traffic)
        except Exception as exc:  # a metric must never fail a report
            log.warning("run metrics not recorded", runbook=progress.runbook, error=str(exc))


def _record_step(step_type: str, outcome: str, seconds: float) -> None:
    try:
        metrics.histogram(activity.metric_meter(), metrics.STEP_DURATION).record(
            seconds, {"step_type": step_type, "outcome": outcome}
        )
    except Exception as exc:  # a metric must never fail a step
        log.warning("step metric not recorded", step_type=step_type, error=str(exc))


def traffic_step_types() -> frozenset[str]:
    """The step types that move user traffic (their end is the run's RTO)."""
    from activities import registry

    return frozenset(name for name, t in registry.STEP_TYPES.items() if t.traffic)


class MetricsInterceptor(temporalio.client.Interceptor, temporalio.worker.Interceptor):
    """Run and step metrics for the workers built from a client connected with it."""

    def __init__(self, traffic_types: Collection[str] | None = None) -> None:
        """Build the interceptor.

        Args:
            traffic_types: Step types that move traffic (default: those of the step registry).
        """
        self.traffic_types = frozenset(
            traffic_types if traffic_types is not None else traffic_step_types()
        )

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        """Time the step activities; count the runs that ended (at their report)."""
        return _ActivityMetricsInbound(next, self.traffic_types)

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor] | None:
        """Count RegionSwitch runs that fail as workflows."""
        return _RunMetricsInbound


# ------------------------------------------------------------------------------- tracing
class TracingUnavailableError(RuntimeError):
    """Traces were asked for (OTEL_*) but cannot be exported: one line saying why."""


@dataclass
class Tracing:
    """Temporal's tracing interceptor and what to flush at the end."""

    interceptor: temporalio.client.Interceptor
    shutdown: Callable[[], None]
    exporters: list[str]


def tracing_wanted(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the standard OTEL_* variables ask for traces."""
    env = os.environ if environ is None else environ
    names = [n.strip() for n in env.get("OTEL_TRACES_EXPORTER", "").split(",") if n.strip()]
    if names:
        return names != ["none"]
    return bool(
        env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def tracing_from_env(environ: Mapping[str, str] | None = None) -> Tracing | None:
    """Temporal's OpenTelemetry TracingInterceptor, exporting as the OTEL_* variables say.

    Traces are on when OTEL_EXPORTER_OTLP_ENDPOINT (or ..._TRACES_ENDPOINT) or
    OTEL_TRACES_EXPORTER is set (not "none"). Exporters: "otlp" (OTLP over HTTP/protobuf; its
    endpoint, headers, timeout and compression from the standard variables) and "console".
    The service is OTEL_SERVICE_NAME, else "failover-orchestrator".

    Raises:
        TracingUnavailableError: the tracing packages are not installed, or an exporter or
            protocol is not supported.
    """
    env = os.environ if environ is None else environ
    if not tracing_wanted(env):
        return None
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
        from temporalio.contrib.opentelemetry import TracingInterceptor
    except ImportError as exc:
        raise TracingUnavailableError(
            f"OTEL_* asks for traces but OpenTelemetry is not installed ({exc.name}): "
            "pip install 'failover-orchestrator[tracing]'"
        ) from None
    names = [n.strip() for n in env.get("OTEL_TRACES_EXPORTER", "otlp").split(",") if n.strip()]
    protocol = env.get(
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "")
    )
    if "otlp" in names and protocol not in ("", "http/protobuf"):
        raise TracingUnavailableError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol} is not supported: use http/protobuf"
        )
    unknown = sorted(set(names) - {"otlp", "console", "none"})
    if unknown:
        raise TracingUnavailableError(
            f"OTEL_TRACES_EXPORTER={','.join(unknown)} is not supported: use otlp or console"
        )
    resource = Resource.create()
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": "failover-orchestrator"}))
    provider = TracerProvider(resource=resource)
    for name in names:
        if name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        elif name == "console":
            provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    interceptor = TracingInterceptor(
        provider.get_tracer("failover-orchestrator"), always_create_workflow_spans=True
    )
    return Tracing(
        interceptor=interceptor,
        shutdown=provider.shutdown,
        exporters=[n for n in names if n != "none"],
    )
