"""The AWS accounts a run's steps name, checked against the configuration before anything runs.

A runbook names accounts (`account:` on a step, a replacement, a game day's action); the
configuration defines them (`aws.accounts`). The loader has no configuration, so the check is
made where a run is planned or started: an account the configuration lacks is a one-line error
naming the step and the account, and nothing starts.
"""

from __future__ import annotations

from collections.abc import Iterable

from orchestrator.config import AWSConfig
from orchestrator.runs import PlannedStep


class AccountError(ValueError):
    """A step names an account the configuration does not define (one line, for the user)."""


def named(steps: Iterable[PlannedStep]) -> list[tuple[str, str]]:
    """(step id, account) for each step that names an account, in order."""
    return [(s.id, s.account) for s in steps if s.account is not None]


def check(steps: Iterable[PlannedStep], aws: AWSConfig, source: str = "") -> None:
    """Raise AccountError for the first step naming an account `aws.accounts` lacks."""
    for step_id, account in named(steps):
        if account not in aws.accounts:
            known = ", ".join(sorted(aws.accounts)) or "none"
            where = f" of {source}" if source else ""
            raise AccountError(
                f"step {step_id}: account {account!r} is not defined in aws.accounts{where} "
                f"(defined: {known})"
            )
