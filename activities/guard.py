"""The guard's activities: one evaluation of a runbook's detectors against the active region,
and the numbers of a switch it started (RTO as the report computes it).

An evaluation never raises for what it finds: a detector that fails, or that cannot reach what
it checks (the region may be down: that is the point), is a failed check with its reason. Only a
broken runbook (a detector refused as misconfigured) fails the activity.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import structlog
from temporalio import activity

from activities import registry
from activities.base import StepContext
from activities.clients import Clients
from activities.errors import classify
from activities.heartbeat import Heartbeater
from orchestrator import report
from orchestrator.guard.models import DetectorResult, EvaluateCall, Evaluation
from orchestrator.runs import RunProgress

log = structlog.get_logger()


class GuardActivities:
    """The guard's activities, bound to the worker's clients."""

    def __init__(self, clients: Clients) -> None:
        self.clients = clients

    def all(self) -> list[Callable[..., Any]]:
        return [self.evaluate, self.rto]

    @activity.defn(name="guard.evaluate")
    def evaluate(self, call: EvaluateCall) -> Evaluation:
        """Run every detector once against `call.region`; failed if any fails."""
        started = time.monotonic()
        results = []
        with Heartbeater() as heart:
            for step in call.checks:
                name = step.description or step.id
                stype, params = registry.bind(step.type, step.params)
                ctx = StepContext(
                    run_id=activity.info().workflow_id or "guard",
                    step_id=step.id,
                    from_region=call.region,
                    to_region=call.other,
                    region=step.region,
                    mode="failover",
                    clients=self.clients,
                    heartbeat=heart.beat,
                    account=step.account,
                )
                try:
                    result = stype.verify(ctx, params, {})
                    results.append(DetectorResult(name=name, ok=result.ok, detail=result.detail))
                except Exception as exc:  # not answering is an answer here
                    err = classify(exc)
                    results.append(DetectorResult(name=name, ok=False, detail=err.message))
        failed = any(not r.ok for r in results)
        elapsed = round(time.monotonic() - started, 3)
        if failed:
            log.info("guard evaluation failed", runbook=call.runbook, region=call.region,
                     failing=[r.name for r in results if not r.ok], elapsed_s=elapsed)  # fmt: skip
        return Evaluation(region=call.region, failed=failed, detectors=results, elapsed_s=elapsed)

    @activity.defn(name="guard.rto")
    def rto(self, progress: RunProgress) -> float | None:
        """The switch's RTO (to traffic on the target, else to its end), as its report says."""
        r = report.build(progress, workflow_id=activity.info().workflow_id or "switch")
        return r.rto_traffic_s if r.rto_traffic_s is not None else r.rto_total_s
