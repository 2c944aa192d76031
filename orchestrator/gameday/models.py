"""The data of a game day: the workflow's input, its activities' inputs and outputs, its result.

Plain pydantic models, importable by workflow code (no I/O here).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.notifications import Delivery, NotifyRoute
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
    approval: GateSpec | None = None
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
    """The switch with every gate already approved by `by` (a game day's approval stands in)."""
    steps = [
        s.model_copy(update={"gate": s.gate.model_copy(update={"preapproved_by": by})})
        if s.gate is not None
        else s
        for s in inp.steps
    ]
    return inp.model_copy(update={"steps": steps})
