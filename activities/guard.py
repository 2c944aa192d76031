"""The guard's activities: one evaluation of a runbook's detectors against the active region,
the leases of the switch it is about to start (and who holds them now), and the numbers of a
switch it started (RTO as the report computes it).

An evaluation never raises for what it finds: a detector that fails, or that cannot reach what
it checks (the region may be down: that is the point), is a failed check with its reason. Only a
broken runbook (a detector refused as misconfigured) fails the activity.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import structlog
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from activities import registry
from activities.base import StepContext
from activities.clients import Clients
from activities.errors import classify
from activities.heartbeat import Heartbeater
from orchestrator import leases, report
from orchestrator.guard.models import (
    DetectorResult,
    EvaluateCall,
    Evaluation,
    LeaseCall,
    LeaseCheck,
)
from orchestrator.runs import RunProgress

log = structlog.get_logger()


class GuardActivities:
    """The guard's activities, bound to the worker's clients."""

    def __init__(self, clients: Clients, temporal: Client | None = None) -> None:
        self.clients = clients
        self.temporal = temporal

    def all(self) -> list[Callable[..., Any]]:
        return [self.evaluate, self.lease_check, self.rto]

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

    @activity.defn(name="guard.leases")
    async def lease_check(self, call: LeaseCall) -> LeaseCheck:
        """The lease keys of the switch the guard is about to start (every resource its steps
        write, and its runbook's lease), and the running runs holding any of them (the guard
        itself aside). Holders that have ended and only write their reports are waited for (up
        to `leases.FINISHING_WAIT_S`), as a start by hand waits for them."""
        if self.temporal is None:
            raise ApplicationError("this worker has no Temporal client", non_retryable=True)
        try:
            keys = leases.keyed(leases.resources(call.switch, call.workflow_id))
        except ValueError as exc:  # more resources than a run can hold
            raise ApplicationError(str(exc), non_retryable=True) from None
        me = activity.info().workflow_id or ""
        deadline = time.monotonic() + leases.FINISHING_WAIT_S
        while True:
            found = await leases.holders(self.temporal, keys, exclude=[me]) or []
            if not found or any(not h.finishing for h in found) or time.monotonic() > deadline:
                break
            activity.heartbeat("holders finishing")
            await asyncio.sleep(0.25)
        return LeaseCheck(keys=sorted(keys), held_by=[h.describe() for h in found])

    @activity.defn(name="guard.rto")
    def rto(self, progress: RunProgress) -> float | None:
        """The switch's RTO (to traffic on the target, else to its end), as its report says."""
        r = report.build(progress, workflow_id=activity.info().workflow_id or "switch")
        return r.rto_traffic_s if r.rto_traffic_s is not None else r.rto_total_s
