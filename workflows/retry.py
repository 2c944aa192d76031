"""The options of a step's activities, from its runbook `timeout:` and `retry:` (both workflows
use them)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from orchestrator.runs import PlannedStep


def retry_policy(step: PlannedStep, attempts: int | None = None) -> RetryPolicy:
    """Backoff, cap and attempts as the step says (`attempts` overrides, e.g. for undo)."""
    return RetryPolicy(
        initial_interval=step.retry.backoff,
        backoff_coefficient=step.retry.backoff_coefficient,
        maximum_interval=max(step.retry.max_backoff, step.retry.backoff),
        maximum_attempts=attempts or step.retry.attempts,
        non_retryable_error_types=step.retry.non_retryable or None,
    )


def step_options(
    step: PlannedStep,
    heartbeat_timeout: timedelta,
    attempts: int | None = None,
    bounded: bool = False,
) -> dict[str, Any]:
    """`execute_activity` options for one phase of a step: each attempt within the step's
    timeout; `bounded`: all attempts together too (an undo, a fault's removal: they end, with
    their reason, within the step's timeout instead of retrying for as long as attempts last)."""
    return {
        "start_to_close_timeout": step.timeout,
        "schedule_to_close_timeout": step.timeout if bounded else None,
        "heartbeat_timeout": min(heartbeat_timeout, step.timeout),
        "retry_policy": retry_policy(step, attempts),
    }
