"""Reports write themselves: a run that ended asks a worker to write its report to the configured
store (`activities/report.py`). Deterministic; never raises: a report that cannot be written is
logged and the run ends as it would have."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from orchestrator.notifications import Delivery
    from orchestrator.runs import RunEnd, RunEnded


async def write_report(activity_name: str, progress: Any) -> list[str]:
    """Run the report activity for this run's final progress; where it was written (nothing if
    it could not be)."""
    try:
        where: list[str] = await workflow.execute_activity(
            activity_name,
            progress,
            result_type=list[str],
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(maximum_attempts=3, maximum_interval=timedelta(seconds=5)),
            summary="write the report",
        )
    except ActivityError as exc:
        workflow.logger.warning("the report could not be written: %s", exc.cause or exc)
        return []
    return where


async def end_run(end: RunEnd) -> RunEnded:
    """A switch's last notice and report (`report.switch_end`); never raises. An activity that
    failed every attempt is one failed Delivery (the notice is not known to be sent) and no
    report."""
    try:
        out: RunEnded = await workflow.execute_activity(
            "report.switch_end",
            end,
            result_type=RunEnded,
            # the notice (each channel within its deadline, at most 25 s), then the report
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=RetryPolicy(maximum_attempts=3, maximum_interval=timedelta(seconds=5)),
            summary=f"notify {end.notice.notice.event}, write the report",
        )
    except ActivityError as exc:
        cause = exc.cause or exc
        workflow.logger.warning("the run's end could not be written: %s", cause)
        return RunEnded(
            deliveries=[
                Delivery(
                    channel="*",
                    event=end.notice.notice.event,
                    ok=False,
                    detail=f"not known to be sent: {type(cause).__name__}: {cause}",
                    at=workflow.now(),
                )
            ]
        )
    return out
