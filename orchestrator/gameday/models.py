"""The data of a game day: the workflow's input, its activities' inputs and outputs, its result.

Plain pydantic models, importable by workflow code (no I/O here).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.notifications import Delivery, NotifyRoute
from orchestrator.runbook.graph import ancestors
from orchestrator.runs import GateSpec, PlannedStep, RunProgress, SwitchInput


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SloTarget(_Model):
    """What the probe measures and what counts as meeting the SLO."""

    endpoint: str = "app"
    path: str = "/"
    url: str | None = None
    dns_zone: str | None = None
    dns_record: str | None = None
    min_success_rate: float = 0.99
    max_latency_ms: float | None = None


class StopRule(_Model):
    name: str
    region: str | None = None  # None: the service as users reach it
    max_error_rate: float | None = None
    max_latency_ms: float | None = None
    alarm: str | None = None
    alarm_region: str | None = None
    hold: timedelta = timedelta(0)

    def describe(self) -> str:
        target = f"region {self.region}" if self.region else "the service"
        parts = []
        if self.max_error_rate is not None:
            parts.append(f"error rate > {self.max_error_rate:.0%} on {target}")
        if self.max_latency_ms is not None:
            parts.append(f"p95 > {self.max_latency_ms:g} ms on {target}")
        if self.alarm is not None:
            parts.append(f"alarm {self.alarm} ({self.alarm_region}) in ALARM")
        return f"{' or '.join(parts)} for {self.hold.total_seconds():g}s"


class GameDayObjectives(_Model):
    mttd: timedelta | None = None
    slo_breach: timedelta | None = None


class GameDayInput(_Model):
    """Everything a game day runs: both switches resolved, the fault, detectors, SLO, rules."""

    name: str
    runbook: str
    from_region: str
    to_region: str
    requester: str
    switch: SwitchInput
    failback: SwitchInput
    #: Unplanned game days: the recovery of the failed region, between the switch and the
    #: failback (None: a planned game day).
    recovery: SwitchInput | None = None
    fault: PlannedStep
    detect: list[PlannedStep] = Field(default_factory=list)
    detect_timeout: timedelta = timedelta(minutes=5)
    #: A person approves the game day (its gate): that approval covers the switches' gates
    #: (`cover_by_approval`). None: nobody does (`unattended`, or an input from before either).
    approval: GateSpec | None = None
    #: Nobody approves the game day: the switches' gates are approved by its requester, except
    #: those a person must approve (`cover_unattended`). False with no approval: an input
    #: resolved before game days had to say which (treated as unattended from then on).
    unattended: bool = False
    slo: SloTarget
    probe_interval: timedelta = timedelta(seconds=5)
    probe_requests: int = 10
    settle: timedelta = timedelta(seconds=30)
    settle_timeout: timedelta = timedelta(minutes=5)
    stop_conditions: list[StopRule] = Field(default_factory=list)
    objectives: GameDayObjectives = Field(default_factory=GameDayObjectives)
    regions: list[str] = Field(default_factory=list)
    heartbeat_timeout: timedelta = timedelta(seconds=30)
    #: The runbook's notification routes (the game day's result is sent there).
    notify: list[NotifyRoute] = Field(default_factory=list)


# ----------------------------------------------------------------------------- activities
class AlarmRef(_Model):
    name: str
    region: str


class ProbeCall(_Model):
    slo: SloTarget
    regions: list[str]  # probed directly too (stop conditions scoped to a region)
    requests: int
    window_s: float
    alarms: list[AlarmRef] = Field(default_factory=list)  # states read once per window


class ProbeStats(_Model):
    requests: int = 0
    errors: int = 0
    p95_ms: float | None = None

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


class ProbeSample(_Model):
    """One probe window: the service as users reach it, and each region directly."""

    at: datetime | None = None  # set by the workflow when the window ended
    window_s: float
    service: ProbeStats
    regions: dict[str, ProbeStats] = Field(default_factory=dict)
    weights: dict[str, int] = Field(default_factory=dict)  # DNS weights users followed
    alarms: dict[str, str] = Field(default_factory=dict)  # alarm name -> state
    error: str = ""


class DetectCall(_Model):
    run_id: str
    checks: list[PlannedStep]
    from_region: str
    to_region: str
    timeout_s: float
    interval_s: float = 1.0


class BusyCall(_Model):
    runbook: str


class Detection(_Model):
    detected: bool
    by: str | None = None
    detail: str = ""
    elapsed_s: float


# --------------------------------------------------------------------------------- result
class Phase(StrEnum):
    PREFLIGHT = "PREFLIGHT"
    WAITING_APPROVAL = "WAITING_APPROVAL"
    INJECTING = "INJECTING"
    DETECTING = "DETECTING"
    SWITCHING = "SWITCHING"
    VERIFYING = "VERIFYING"
    REMOVING_FAULT = "REMOVING_FAULT"
    RECOVERING = "RECOVERING"  # unplanned game days: the failed region's owed work
    FAILING_BACK = "FAILING_BACK"
    VERIFYING_FAILBACK = "VERIFYING_FAILBACK"
    DONE = "DONE"


class Outcome(StrEnum):
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"  # every phase ran (objectives may still be missed: see the report)
    STOPPED = "STOPPED"  # a stop condition tripped: fault removed, switch rolled back
    CANCELLED = "CANCELLED"  # cancelled or rejected: fault removed, switch rolled back
    FAILED = "FAILED"  # preflight failed, or a switch rolled back by itself
    CLEANUP_FAILED = "CLEANUP_FAILED"  # the fault could not be removed: act now


class StopTrip(_Model):
    condition: str
    rule: str
    detail: str
    at: datetime


class FaultRecord(_Model):
    state: str = "pending"  # pending | injected | removed | failed | not injected
    injected_at: datetime | None = None
    removed_at: datetime | None = None
    detail: str = ""
    snapshot: dict[str, Any] | None = None


class ChildRun(_Model):
    workflow_id: str
    run_id: str | None = None
    progress: RunProgress | None = None
    #: The switch's gates the game day approved before it started, and those left to people
    #: (they open in the switch and wait, like any gate: `failover approve WORKFLOW_ID`).
    preapproved: list[str] = Field(default_factory=list)
    gates_left: list[str] = Field(default_factory=list)


class GameDayProgress(_Model):
    """The `progress` query and the workflow's result."""

    name: str
    runbook: str
    from_region: str
    to_region: str
    requester: str
    phase: Phase
    outcome: Outcome
    reason: str = ""
    started_at: datetime
    ended_at: datetime | None = None
    preflight: list[str] = Field(default_factory=list)  # problems found (empty: all good)
    fault: FaultRecord = Field(default_factory=FaultRecord)
    fault_description: str = ""
    detected_at: datetime | None = None
    detected_by: str | None = None
    mttd_s: float | None = None
    approved_by: str | None = None
    switch: ChildRun | None = None
    recovery: ChildRun | None = None
    failback: ChildRun | None = None
    recovered_s: dict[str, float | None] = Field(
        default_factory=dict, description="Per direction: switch end to the SLO holding again."
    )
    stop: StopTrip | None = None
    samples: list[ProbeSample] = Field(default_factory=list)
    slo: SloTarget
    stop_conditions: list[StopRule] = Field(default_factory=list)
    objectives: GameDayObjectives = Field(default_factory=GameDayObjectives)
    #: What the game day itself sent (its result); its switches' are in their progress.
    notifications: list[Delivery] = Field(default_factory=list)
    #: Where the worker wrote the game day's report when it ended.
    report_files: list[str] = Field(default_factory=list)


def preapprove(inp: SwitchInput, by: str) -> SwitchInput:
    """The switch with every gate already approved by `by`: what game days did before they had
    to say who approves them (histories recorded then replay with it)."""
    steps = [
        s.model_copy(update={"gate": s.gate.model_copy(update={"preapproved_by": by})})
        if s.gate is not None
        else s
        for s in inp.steps
    ]
    return inp.model_copy(update={"steps": steps})


def _covered(step: PlannedStep, by: str, people: list[str]) -> PlannedStep:
    assert step.gate is not None
    gate = step.gate.model_copy(update={"preapproved_by": by, "preapprovers": people})
    return step.model_copy(update={"gate": gate})


def cover_by_approval(
    inp: SwitchInput, approvers: Sequence[str]
) -> tuple[SwitchInput, list[str], list[str]]:
    """The switch with the gates the game day's approvers cover already approved by them: a
    gate is covered when at least as many of them as it needs approvals may decide it (its own
    approvers, else the runbook's; never the switch's requester), irreversible or not. Each of
    them is recorded as one of the gate's approvals. Returns the switch, the gates covered and
    the gates left to people."""
    people = list(dict.fromkeys(a for a in approvers if a and a != inp.requester))
    steps, done, left = [], [], []
    for s in inp.steps:
        if s.gate is not None:
            allowed = s.gate.approvers or inp.approvers
            eligible = [a for a in people if not allowed or a in allowed]
            if eligible and len(eligible) >= s.gate.approvals:
                s = _covered(s, ", ".join(eligible), eligible)
                done.append(s.id)
            else:
                left.append(s.id)
        steps.append(s)
    return inp.model_copy(update={"steps": steps}), done, left


def cover_unattended(inp: SwitchInput, by: str) -> tuple[SwitchInput, list[str], list[str]]:
    """The switch with its gates approved by `by` (an unattended game day: its requester, the
    schedule) except those a person must approve: a gate an irreversible step depends on
    (directly or not), or one that needs several approvers. Returns the switch, the gates
    covered and the gates left to people."""
    deps = {s.id: s.depends_on for s in inp.steps}
    guarding = {g for s in inp.steps if s.irreversible for g in ancestors(deps, s.id)}
    steps, done, left = [], [], []
    for s in inp.steps:
        if s.gate is not None:
            if s.id not in guarding and s.gate.approvals <= 1:
                s = _covered(s, by, [])
                done.append(s.id)
            else:
                left.append(s.id)
        steps.append(s)
    return inp.model_copy(update={"steps": steps}), done, left
