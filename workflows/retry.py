"""The retry policy of a step's activities, from its runbook `retry:` (both workflows use it)."""

from __future__ import annotations

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
