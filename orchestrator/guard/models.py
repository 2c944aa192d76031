"""What the guard workflow runs on and what it tells: its input, its state (carried across
continue-as-new), one evaluation of its detectors, and the episodes it went through.

Pure data (pydantic): the workflow, its activity and the CLI share these.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.notifications import Delivery
from orchestrator.runbook.graph import ancestors
from orchestrator.runbook.models import NotifyRoute
from orchestrator.runs import Kind, PlannedStep, SwitchInput


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GuardStatus(StrEnum):
    """Where the guard stands (`failover_guard_state` numbers them: orchestrator.metrics)."""

    HEALTHY = "HEALTHY"  # the active region passes its checks
    SUSPECT = "SUSPECT"  # some evaluations failed, not enough (or not long enough) to confirm
    CONFIRMED = "CONFIRMED"  # an outage is confirmed; deciding
    SWITCHING = "SWITCHING"  # the switch it started runs (and may wait for a person)
    COOLDOWN = "COOLDOWN"  # a switch ended recently: no new one before the cooldown
    FLAPPING = "FLAPPING"  # the region failed again soon after recovering: a page, no switch
    STOPPED = "STOPPED"


class DetectorResult(_Model):
    """One detector's answer in one evaluation."""

    name: str
    ok: bool
    detail: str = ""


class Evaluation(_Model):
    """One evaluation of every detector against the active region."""

    region: str
    failed: bool
    detectors: list[DetectorResult] = Field(default_factory=list)
    elapsed_s: float = 0.0


class EvaluateCall(_Model):
    """The `guard.evaluate` activity's input."""

    runbook: str
    region: str
    checks: list[PlannedStep]
    #: The other region, for templates that name it (`${{ to_region }}`).
    other: str


class LeaseCall(_Model):
    """The `guard.leases` activity's input: the switch the guard is about to start."""

    switch: SwitchInput
    #: The switch's workflow id (what some resources are named after, such as a smoke-test Job).
    workflow_id: str


class LeaseCheck(_Model):
    """What the guard's switch would hold, and who holds some of it now."""

    #: The switch's lease keys (its `FailoverResources` search attribute).
    keys: list[str] = Field(default_factory=list)
    #: Running runs holding some of them, one line each (the holder's details); empty: none.
    held_by: list[str] = Field(default_factory=list)


class SwitchRecord(_Model):
    """A switch the guard started, and how it went."""

    workflow_id: str
    run_id: str | None = None
    from_region: str
    to_region: str
    kind: Kind
    state: str = "RUNNING"
    started_at: datetime
    ended_at: datetime | None = None
    #: When the last gate was approved (None: no gate waited for a person).
    approved_at: datetime | None = None
    approved_by: list[str] = Field(default_factory=list)
    rto_s: float | None = None
    reason: str = ""


Outcome = Literal[
    "recovered",  # the region passed again before an outage was confirmed or decided
    "switched",  # a switch moved the service; the target is the active region now
    "switch failed",  # the switch rolled back (or could not start): still on the region
    "cooldown",  # confirmed, but a switch ended less than the cooldown ago: no switch, a page
    "flapping",  # confirmed soon after the region recovered: no switch, a page
]


class Episode(_Model):
    """From the first failing evaluation after a green stretch to the region's recovery or the
    guard's decision."""

    region: str
    first_failure_at: datetime
    confirmed_at: datetime | None = None
    ended_at: datetime | None = None
    outcome: Outcome | None = None
    #: What the guard decided and why, in one line.
    decision: str = ""
    switch: SwitchRecord | None = None
    failures: int = 0
    evaluations: int = 0

    @property
    def mttd_s(self) -> float | None:
        """First failing evaluation to confirmation."""
        if self.confirmed_at is None:
            return None
        return (self.confirmed_at - self.first_failure_at).total_seconds()

    @property
    def decision_s(self) -> float | None:
        """Confirmation to the switch's approval (or its start when nothing waited)."""
        if self.confirmed_at is None or self.switch is None:
            return None
        at = self.switch.approved_at or self.switch.started_at
        return max(0.0, (at - self.confirmed_at).total_seconds())


class GuardState(_Model):
    """Everything the guard knows; carried over continue-as-new."""

    active: str
    status: GuardStatus = GuardStatus.HEALTHY
    #: The last M evaluations of the active region, oldest first: True = failed.
    window: list[bool] = Field(default_factory=list)
    episode: Episode | None = None
    #: Ended episodes, newest last (the last 50).
    history: list[Episode] = Field(default_factory=list)
    last_recovery_at: datetime | None = None
    last_switch_at: datetime | None = None
    evaluations: int = 0
    last: Evaluation | None = None
    last_evaluated_at: datetime | None = None
    started_at: datetime | None = None
    stopped_by: str | None = None
    #: What the guard's notifications delivered (the last ones).
    notifications: list[Delivery] = Field(default_factory=list)


class GuardInput(_Model):
    """A guard over one runbook, resolved up front (every direction it may switch)."""

    runbook: str
    requester: str
    regions: list[str]
    interval: timedelta
    confirm_failures: int
    confirm_of: int
    confirm_for: timedelta
    cooldown: timedelta
    flap_window: timedelta
    kind: Kind
    auto_approve: bool = False
    #: The detectors, resolved for each region as the active one.
    detectors: dict[str, list[PlannedStep]]
    #: The switch out of each region (key: the failed region), to `target(region)`.
    switches: dict[str, SwitchInput]
    notify: list[NotifyRoute] = Field(default_factory=list)
    state: GuardState
    #: Evaluations per workflow run before continuing as new (keeps the history short).
    evaluations_per_run: int = 500

    def target(self, region: str) -> str:
        """Where a switch out of `region` goes."""
        return self.switches[region].to_region


def preapprove_reversible(inp: SwitchInput, by: str) -> tuple[SwitchInput, list[str]]:
    """The switch with its gates approved by `by`, except those an irreversible step depends
    on (directly or not): a person must approve those. Returns the gates left to a person."""
    deps = {s.id: s.depends_on for s in inp.steps}
    guarding = {g for s in inp.steps if s.irreversible for g in ancestors(deps, s.id)}
    steps, left = [], []
    for s in inp.steps:
        if s.gate is not None and s.id not in guarding:
            s = s.model_copy(update={"gate": s.gate.model_copy(update={"preapproved_by": by})})
        elif s.gate is not None:
            left.append(s.id)
        steps.append(s)
    return inp.model_copy(update={"steps": steps}), left
