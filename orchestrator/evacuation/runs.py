"""The data of an evacuation run: the workflow's input and its progress (the `progress` query and
the workflow's result). Pydantic models, carried by Temporal's pydantic data converter.

Only pydantic and other pure models are imported here: the workflow sandbox loads this module.
Changing a field's meaning changes recorded histories: add fields with defaults, never rename.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.notifications import Delivery, NotifyRoute
from orchestrator.runs import (
    ApprovalRecord,
    GateSpec,
    Mode,
    RunProgress,
    SwitchInput,
    TargetChoice,
)

#: Every evacuation's workflow id starts so: one evacuation per plan at a time.
EVACUATION_PREFIX = "evacuation-"
Scope = Literal["evacuation", "tier"]
FailurePolicy = Literal["continue", "stop", "rollback_all"]


def evacuation_workflow_id(plan: str) -> str:
    """The workflow id of a plan's (single) running evacuation."""
    return f"{EVACUATION_PREFIX}{plan}"


def child_workflow_id(evacuation_id: str, service: str, failback: bool = False) -> str:
    """A service's switch in an evacuation (a dot never appears in a plan's or a service's
    name: the id cannot be another evacuation's)."""
    return f"{evacuation_id}.{service}" + (".failback" if failback else "")


def is_evacuation(ref: str) -> bool:
    """Whether a run reference names an evacuation (not one of its services' switches)."""
    return ref.startswith(EVACUATION_PREFIX) and "." not in ref


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ServicePlan(_Model):
    """One service, resolved: its switch and, when it can be failed back, the switch back."""

    name: str
    runbook: str
    tier: int = 1
    depends_on: list[str] = Field(default_factory=list)
    switch: SwitchInput
    #: The planned switch back (to -> from): how `rollback_all` and `abort` undo a service that
    #: had switched. None for an unplanned evacuation (its source region is down).
    failback: SwitchInput | None = None
    #: The lease keys each child holds too (so they stay held if the evacuation is terminated
    #: while a child still runs).
    switch_leases: list[str] = Field(default_factory=list)
    failback_leases: list[str] = Field(default_factory=list)
    #: Seconds its switch is expected to take: what its last successful switch the same way
    #: took (`client.with_estimates`); None: not known. Services ready at once start on the
    #: longest expected chain first (`rules.start_order`).
    expected_s: float | None = None


class EvacuationGate(_Model):
    """The evacuation's approval gates: one (`evacuation`) or one per tier (`tier-N`)."""

    scope: Scope = "evacuation"
    gate: GateSpec


class EvacuationInput(_Model):
    """Everything the Evacuation workflow needs: every service resolved, and the rules."""

    plan: str
    from_region: str
    #: The target region given (empty: each service's runbook's other region, or `to_auto`).
    to_region: str = ""
    #: `--to auto`: each service's target was chosen by its checks (its switch's
    #: `target_choice` says which and why).
    to_auto: bool = False
    mode: Mode = "drill"
    kind: Literal["planned", "unplanned"] = "planned"
    requester: str
    max_parallel: int = 4
    failure_policy: FailurePolicy = "stop"
    approval: EvacuationGate | None = None
    services: list[ServicePlan]
    rto: timedelta | None = None
    #: Lease keys past what the evacuation's own search attribute holds, each list held by a
    #: lease shard the workflow starts first (`orchestrator.lease_shards`); none in inputs from
    #: before shards (and up to `lease_shards.MAX_KEYS` keys).
    lease_shards: list[list[str]] = []
    #: Where the evacuation's own notices go (`evacuation_started`, `gate_open`,
    #: `evacuation_result`: the plan's `notify`); empty, every configured channel that takes
    #: the event.
    notify: list[NotifyRoute] = Field(default_factory=list)


class EvacState(StrEnum):
    RUNNING = "RUNNING"
    WAITING_APPROVAL = "WAITING_APPROVAL"
    ROLLING_BACK = "ROLLING_BACK"
    SUCCEEDED = "SUCCEEDED"
    #: Some services switched, others did not (failure policy continue or stop).
    PARTIAL = "PARTIAL"
    #: Nothing is left switched (every service rolled back, failed back or never started).
    ROLLED_BACK = "ROLLED_BACK"
    #: A service's rollback or failback failed: an operator is needed.
    ROLLBACK_FAILED = "ROLLBACK_FAILED"

    @property
    def final(self) -> bool:
        return self in (
            EvacState.SUCCEEDED,
            EvacState.PARTIAL,
            EvacState.ROLLED_BACK,
            EvacState.ROLLBACK_FAILED,
        )


class ServiceState(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    #: Its switch failed and rolled itself back.
    ROLLED_BACK = "ROLLED_BACK"
    #: Its switch (or its failback) failed and could not roll back: its operator is needed.
    ROLLBACK_FAILED = "ROLLBACK_FAILED"
    #: Its switch could not start, or ended without a result (terminated, a bug).
    FAILED = "FAILED"
    #: Never started: a dependency failed, the evacuation stopped or was aborted.
    SKIPPED = "SKIPPED"
    FAILING_BACK = "FAILING_BACK"
    #: It had switched; the switch back succeeded (rollback_all, abort).
    FAILED_BACK = "FAILED_BACK"
    #: It had switched; the switch back did not succeed (it is still on the target).
    FAILBACK_FAILED = "FAILBACK_FAILED"

    @property
    def ended(self) -> bool:
        return self not in (ServiceState.PENDING, ServiceState.RUNNING, ServiceState.FAILING_BACK)


class ServiceRecord(_Model):
    """One row of the evacuation's service table."""

    name: str
    runbook: str
    tier: int = 1
    depends_on: list[str] = Field(default_factory=list)
    from_region: str = ""
    to_region: str = ""
    #: `--to auto`: how its target was chosen (every candidate region and why).
    target_choice: TargetChoice | None = None
    state: ServiceState = ServiceState.PENDING
    reason: str = ""
    workflow_id: str = ""
    run_id: str | None = None
    #: When it could have started (dependencies, lower tiers and its gate done).
    ready_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    #: What it waited for last before it started: a service, `gate:GATE`, or `slot:SERVICE`
    #: (max_parallel was reached and that service's end freed a place). The critical path
    #: taken follows these links back from the last service done.
    after: str = ""
    #: The switch's own gates approved by the evacuation's approval, and those left to people.
    preapproved: list[str] = Field(default_factory=list)
    gates_left: list[str] = Field(default_factory=list)
    #: The switch's final progress (its steps, approvals, RTO), as `RunProgress.summary()`: the
    #: steps' details, changes and observations are in the switch's own history and report.
    result: RunProgress | None = None
    failback_workflow_id: str = ""
    failback_run_id: str | None = None
    failback_started_at: datetime | None = None
    failback_ended_at: datetime | None = None
    failback_result: RunProgress | None = None


class GateWait(_Model):
    """One of the evacuation's gates: when it opened, what it waited for, how it ended."""

    opened_at: datetime | None = None
    decided_at: datetime | None = None
    #: approved | rejected | expired (empty: not decided).
    outcome: str = ""
    #: The service whose end let it open (its tier's last predecessor), if any.
    after: str = ""
    #: Who approved it (their approval stands in for the services' own gates).
    approved_by: list[str] = Field(default_factory=list)


class EvacuationProgress(_Model):
    """The whole evacuation at a glance: the `progress` query and the workflow's result."""

    plan: str
    from_region: str
    to_region: str = ""
    #: `--to auto`: each service's target chosen by its checks (see each service's record).
    to_auto: bool = False
    mode: Mode
    kind: Literal["planned", "unplanned"] = "planned"
    requester: str
    failure_policy: FailurePolicy
    max_parallel: int
    state: EvacState
    started_at: datetime
    ended_at: datetime | None = None
    #: Why it stopped going forward (a failure, an abort, a rejection), if it did.
    reason: str = ""
    services: list[ServiceRecord]
    approvals: list[ApprovalRecord] = Field(default_factory=list)
    open_gates: list[str] = Field(default_factory=list)
    #: The gates of the evacuation (`evacuation`, or `tier-N`) opened so far.
    gates: dict[str, GateWait] = Field(default_factory=dict)
    rto: timedelta | None = None
    report_files: list[str] = Field(default_factory=list)
    #: What became of the evacuation's own notices (its services' are in their own runs).
    notifications: list[Delivery] = Field(default_factory=list)

    def service(self, name: str) -> ServiceRecord:
        return next(s for s in self.services if s.name == name)
