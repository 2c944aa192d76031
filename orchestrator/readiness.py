"""Readiness: is the runbook still right? The data of a readiness run and the rules that compare
two of them. Pure pydantic models and functions, no I/O: workflow code imports this module.

A readiness run checks, for each direction a switch could take (both, by default), what the
switch would need of the world now (`activities.readiness` does the checks):

- `preflight`: every step's preflight and dry run, as `failover plan` runs them (each step checks
  its own resources: a resource the runbook names that no longer exists is red here);
- `lag`: the runbook's `replica_lag` steps and guards (read-only), where the replica is one now;
- `capacity`: each Auto Scaling group the runbook sizes can take the capacity it would set;
- `health`: the runbook's read-only health checks (GET/HEAD `http_check` steps that expect a
  success, CloudWatch alarms, Route 53 health checks);
- `permissions`: Kubernetes SelfSubjectAccessReview for every verb and resource the runbook's
  Kubernetes steps use, in the namespace and cluster they act on.

A check that is red now and was not red in the previous run of the same runbook is a regression
(on the first run, every red check is one): the workflow notifies it (`readiness_regression`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field

from orchestrator.notifications import Delivery, NotifyRoute
from orchestrator.runs import SwitchInput

#: Every readiness workflow's id starts so (a schedule appends the time of each run).
READINESS_PREFIX = "readiness-"
#: The workflow type (visibility queries name it).
WORKFLOW_TYPE = "Readiness"
#: FailoverState of a readiness run once it has ended.
GREEN, RED = "READY", "NOT_READY"

CheckKind = Literal["preflight", "lag", "capacity", "health", "permissions"]
CHECK_KINDS: tuple[CheckKind, ...] = ("preflight", "lag", "capacity", "health", "permissions")


def readiness_id(runbook: str) -> str:
    """The workflow id (and schedule id) of a runbook's readiness runs."""
    return f"{READINESS_PREFIX}{runbook}"


def direction(from_region: str, to_region: str) -> str:
    """How a direction is written in checks and tables."""
    return f"{from_region} -> {to_region}"


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ReadinessInput(_Model):
    """What a readiness run checks: the runbook resolved for each direction (when the schedule
    was created, like a game day: what runs is what was reviewed), and where regressions go."""

    runbook: str
    #: One resolved (dry-run) switch per direction.
    directions: list[SwitchInput]
    #: The runbook's notification routes (empty: every configured channel that takes the event).
    notify: list[NotifyRoute] = Field(default_factory=list)
    requester: str = ""
    #: Seconds the lag and health checks may poll before they are red.
    patience_s: float = 10.0


class ReadinessCheck(_Model):
    """One check in one direction."""

    name: str
    kind: CheckKind
    direction: str
    ok: bool
    detail: str = ""
    #: The runbook step it checks ("" for none).
    step: str = ""
    #: What it looked at (a resource, a URL, a Kubernetes verb and resource).
    resource: str = ""

    @property
    def key(self) -> tuple[str, str]:
        """What identifies the same check in another run."""
        return (self.direction, self.name)


class ReadinessResult(_Model):
    """The outcome of a readiness run (a workflow's result: kept by Temporal, listed by
    `failover readiness history`)."""

    runbook: str
    directions: list[str]
    checks: list[ReadinessCheck]
    checked_at: datetime
    duration_s: float = 0.0
    #: The checks that turned red since the previous run (their `direction: name`).
    regressions: list[str] = Field(default_factory=list)
    #: The checks that turned green since the previous run.
    recovered: list[str] = Field(default_factory=list)
    #: The previous run compared with ("" for none).
    previous: str = ""
    #: What became of the notifications sent.
    deliveries: list[Delivery] = Field(default_factory=list)
    workflow_id: str = ""
    run_id: str = ""

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        """All green."""
        return all(c.ok for c in self.checks)

    @property
    def red(self) -> list[ReadinessCheck]:
        return [c for c in self.checks if not c.ok]

    def counts(self) -> dict[str, int]:
        """Checks by kind and colour, for summaries."""
        out: dict[str, int] = {"green": 0, "red": 0}
        for c in self.checks:
            out["green" if c.ok else "red"] += 1
        return out


class PreviousCall(_Model):
    """The input of `readiness.previous`."""

    runbook: str


class PreviousResult(_Model):
    """The result of the last completed readiness run of a runbook (None: there is none)."""

    workflow_id: str = ""
    run_id: str = ""
    result: ReadinessResult | None = None


def label(check: ReadinessCheck) -> str:
    """`direction: name`, as regressions are listed."""
    return f"{check.direction}: {check.name}"


def regressions(previous: ReadinessResult | None, current: ReadinessResult) -> list[str]:
    """The checks red now that were not red before: green in the previous run, or absent from it
    (a runbook that changed); every red check when there is no previous run."""
    before = {c.key: c.ok for c in previous.checks} if previous is not None else {}
    return [label(c) for c in current.checks if not c.ok and before.get(c.key, True)]


def recoveries(previous: ReadinessResult | None, current: ReadinessResult) -> list[str]:
    """The checks green now that were red in the previous run."""
    if previous is None:
        return []
    now = {c.key: c.ok for c in current.checks}
    return [label(c) for c in previous.checks if not c.ok and now.get(c.key, False)]


def notice_text(result: ReadinessResult, limit: int = 20) -> str:
    """The red checks, one line each (for notifications and the UI)."""
    lines = [f"- {label(c)}: {c.detail}" for c in result.red[:limit]]
    if len(result.red) > limit:
        lines.append(f"- ... and {len(result.red) - limit} more")
    return "\n".join(lines)


def details(result: ReadinessResult) -> str:
    """Markdown for the Temporal UI's current details."""
    state = "**green**" if result.ok else f"**red**: {len(result.red)} check(s)"
    lines = [
        f"readiness of `{result.runbook}`: {state} ({', '.join(result.directions)})",
        "",
        "| direction | check | ok | detail |",
        "|---|---|---|---|",
    ]
    for c in result.checks:
        detail = c.detail.replace("|", "\\|").replace("\n", " ")[:160]
        lines.append(f"| {c.direction} | {c.name} | {'yes' if c.ok else 'NO'} | {detail} |")
    return "\n".join(lines)
