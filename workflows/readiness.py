"""ReadinessWorkflow: is the runbook still right? One readiness run, as a schedule starts it.

It runs every check in an activity (`readiness.check`: both directions' preflights, replication
lag, capacity, health checks, Kubernetes permissions), reads the result of the runbook's previous
completed run (`readiness.previous`), and when a check has turned red (or, on the first run, when
any is red) sends a `readiness_regression` notification to the runbook's routes; when every check
that was red is green again, a resolving one (PagerDuty closes its incident: one dedup key per
runbook). The result is the workflow's result (Temporal keeps it: `failover readiness history`);
FailoverState says READY or NOT_READY; the gauge `failover_readiness_ok` says 1 or 0.

Deterministic, no I/O: the checks and the lookup are activities.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

from workflows.notify import notify

with workflow.unsafe.imports_passed_through():
    from orchestrator import metrics
    from orchestrator import search_attributes as sa
    from orchestrator.notifications import Notice
    from orchestrator.readiness import (
        GREEN,
        READINESS_PREFIX,
        RED,
        WORKFLOW_TYPE,
        PreviousCall,
        PreviousResult,
        ReadinessInput,
        ReadinessResult,
        details,
        notice_text,
        recoveries,
        regressions,
    )

#: One attempt of the checks: every direction's preflights (each bounded by the plan's wait),
#: lag and health polled for `patience_s`, access reviews.
CHECK_TIMEOUT = timedelta(minutes=5)
RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=3,
)


@workflow.defn(name=WORKFLOW_TYPE)
class ReadinessWorkflow:
    """Check a runbook against the world; notify what turned red; keep the result."""

    @workflow.run
    async def run(self, inp: ReadinessInput) -> ReadinessResult:
        info = workflow.info()
        result: ReadinessResult = await workflow.execute_activity(
            "readiness.check",
            inp,
            result_type=ReadinessResult,
            start_to_close_timeout=CHECK_TIMEOUT,
            heartbeat_timeout=timedelta(seconds=30),
            retry_policy=RETRY,
            summary=f"check {inp.runbook}",
        )
        previous = await self._previous(inp.runbook)
        before = previous.result
        result.workflow_id, result.run_id = info.workflow_id, info.run_id
        result.previous = previous.workflow_id
        result.regressions = regressions(before, result)
        result.recovered = recoveries(before, result)
        metrics.gauge(workflow.metric_meter(), metrics.READINESS).set(
            1.0 if result.ok else 0.0, {"runbook": inp.runbook}
        )
        workflow.upsert_search_attributes(
            [sa.RUNBOOK.value_set(inp.runbook), sa.STATE.value_set(GREEN if result.ok else RED)]
        )
        workflow.set_current_details(details(result))
        notice = self._notice(inp, result, before)
        if notice is not None:
            result.deliveries = await notify(notice, inp.notify)
        return result

    async def _previous(self, runbook: str) -> PreviousResult:
        """The previous run's result; none when it cannot be read (every red check is then
        new: a notification too many rather than one missed)."""
        try:
            out: PreviousResult = await workflow.execute_activity(
                "readiness.previous",
                PreviousCall(runbook=runbook),
                result_type=PreviousResult,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=RETRY,
                summary="previous result",
            )
        except ActivityError as exc:
            workflow.logger.warning(f"previous readiness result not read: {exc.cause or exc}")
            return PreviousResult()
        return out

    @staticmethod
    def _notice(
        inp: ReadinessInput, result: ReadinessResult, before: ReadinessResult | None
    ) -> Notice | None:
        """A regression (trigger), all green again after red (resolve), or nothing."""
        info = workflow.info()
        base = Notice(
            event="readiness_regression",
            runbook=inp.runbook,
            summary="",
            dedup_key=f"{READINESS_PREFIX}{inp.runbook}",
            workflow_id=info.workflow_id,
            run_id=info.run_id,
            commands=[
                f"failover readiness history {inp.runbook}",
                "failover readiness check RUNBOOK-FILE",
            ],
        )
        if result.regressions:
            n = len(result.regressions)
            listed = ", ".join(result.regressions[:3]) + (", ..." if n > 3 else "")
            return base.model_copy(
                update={
                    "summary": f"readiness of {inp.runbook}: {n} check(s) turned red ({listed})",
                    "detail": notice_text(result),
                    "severity": "warning",
                }
            )
        if result.ok and before is not None and not before.ok:
            return base.model_copy(
                update={
                    "summary": f"readiness of {inp.runbook}: all {len(result.checks)} checks "
                    "green again",
                    "detail": "\n".join(f"- {r}" for r in result.recovered),
                    "resolve": True,
                }
            )
        return None
