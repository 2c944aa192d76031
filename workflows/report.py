"""Reports write themselves: a run that ended asks a worker to write its report to the configured
store (`activities/report.py`). Deterministic; never raises: a report that cannot be written is
logged and the run ends as it would have."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError


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
