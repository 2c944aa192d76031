"""The data of a region-switch run: the workflow's input, its activities' inputs and results, the
operator's Update payloads, and the progress table. Pydantic models, carried by Temporal's pydantic
data converter.

Only pydantic, the standard library and other pure models (`orchestrator.notifications`) are
imported here: the workflow sandbox loads this module. Changing a field's meaning changes
recorded histories: add fields with defaults, never rename.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.notifications import Delivery, NotifyCall, NotifyRoute

Mode = Literal["failover", "drill", "dry-run", "gameday"]
#: What kind of run: a planned switch (both regions answer), an unplanned one (the source region
#: does not: only the target is touched, work on the source is owed to it), or the recovery of a
#: region that failed (`failover recover`: the owed work, once it answers again).
Kind = Literal["planned", "unplanned", "recovery"]
#: How a run's requester and deciders prove who they are: `signed` (SSH ed25519 signatures over
#: the run, its plan and the decision: `orchestrator.approval_auth`) or `none` (the name given;
#: access to the Temporal namespace is the control).
ApprovalAuth = Literal["none", "signed"]

#: Every switch's workflow id starts so: one switch per runbook runs at a time.
SWITCH_PREFIX = "switch-"


def switch_workflow_id(runbook: str) -> str:
    """The workflow id of a runbook's (single) running switch."""
    return f"{SWITCH_PREFIX}{runbook}"


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


# --------------------------------------------------------------------------------- the plan
class StepKind(StrEnum):
    """How the engine runs a step."""

    CHECK = "check"  # read-only activity: preflight, guards, apply (a check), verify
    MUTATE = (
        "mutate"  # prepare (preflight, guards, snapshot), then apply + verify; undo on rollback
    )
    WAIT = "wait"  # a durable timer in the workflow
    GATE = "gate"  # an approval gate: waits for people (Updates)


class RetrySpec(_Model):
    attempts: int = 3
    backoff: timedelta = timedelta(seconds=1)
    backoff_coefficient: float = 2.0
    max_backoff: timedelta = timedelta(minutes=1)
    non_retryable: list[str] = Field(default_factory=list)


class GuardSpec(_Model):
    type: str
    params: dict[str, Any] = Field(default_factory=dict)
    description: str = ""


class GateSpec(_Model):
    approvers: list[str] = Field(default_factory=list)
    approvals: int = 1
    expires: timedelta = timedelta(hours=1)
    message: str = ""
    #: Who approved this gate before the run started (a game day's own approval or its
    #: schedule): the gate is recorded as approved by them and does not wait.
    preapproved_by: str | None = None
    #: The distinct people whose approval covers this gate (a game day approved by several):
    #: each is recorded as one of its approvals. Empty: `preapproved_by` is the one record.
    preapprovers: list[str] = Field(default_factory=list)


class PlannedStep(_Model):
    """One step, resolved: templates rendered, params validated, kind decided."""

    id: str
    type: str
    kind: StepKind
    description: str = ""
    params: dict[str, Any] = Field(default_factory=dict)
    depends_on: list[str] = Field(default_factory=list)
    region: str | None = None
    #: The AWS account its calls act in (`aws.accounts`; None: `aws.default_account`, else
    #: the worker's own credentials).
    account: str | None = None
    timeout: timedelta = timedelta(minutes=10)
    retry: RetrySpec = Field(default_factory=RetrySpec)
    on_failure: Literal["rollback", "pause"] = "rollback"
    guards: list[GuardSpec] = Field(default_factory=list)
    irreversible: bool = False
    reversible: bool = True
    gate: GateSpec | None = None
    wait: timedelta | None = None


class Objectives(_Model):
    rto: timedelta | None = None
    rpo: timedelta | None = None


class OwedStep(_Model):
    """A step an unplanned run did not attempt: work on the failed region, owed to it."""

    id: str
    type: str
    description: str = ""


class ReachCall(_Model):
    """`switch.reach`: which endpoints of a region to ask."""

    region: str
    kubernetes: bool = False
    aws: bool = False


class GuardTrigger(_Model):
    """Why a guard started this switch: the outage it confirmed (MTTD and time to decision in
    the run's report and in `failover trends`)."""

    #: The guard's workflow id.
    guard: str
    region: str
    first_failure_at: datetime
    confirmed_at: datetime
    failures: int = 0
    evaluations: int = 0


class TargetCandidate(_Model):
    """One region `--to auto` considered, and what its checks said."""

    region: str
    #: It qualified: every check green (healthy, with the capacity the service needs).
    ok: bool
    #: One line per check (red ones first), or why the region could not be checked at all.
    reasons: list[str] = Field(default_factory=list)


class TargetChoice(_Model):
    """How `--to auto` chose the target: every region of the runbook but the source, in the
    runbook's order, checked (readiness' capacity and health checks in that direction); the
    first that qualified won (the runbook's order breaks ties)."""

    chosen: str
    candidates: list[TargetCandidate]
    rule: str = "first region, in the runbook's order, whose capacity and health checks are green"

    def summary(self) -> str:
        """One line: the choice and why each other region was not chosen."""
        others = [
            f"{c.region}: {'also qualified (later in the runbook)' if c.ok else _first(c)}"
            for c in self.candidates
            if c.region != self.chosen
        ]
        chosen = next((c for c in self.candidates if c.region == self.chosen), None)
        why = ""
        if chosen is not None:
            checks = [r for r in chosen.reasons if r.startswith(("capacity ", "health "))]
            # (a region with no check to run says so instead of counting it)
            why = f" ({len(checks)} check(s) green)" if checks else f" ({_first(chosen)})"
        return f"--to auto chose {self.chosen}{why}" + (f"; {'; '.join(others)}" if others else "")


def _first(c: TargetCandidate) -> str:
    return c.reasons[0] if c.reasons else "not qualified"


class Signer(_Model):
    """Someone who may sign a run's request or decisions: a name and an ssh-ed25519 public key
    (`ssh-ed25519 AAAA...`, as in `id_ed25519.pub` and git's allowed_signers). A name may have
    several keys, a key several names (the two-person rule compares keys, not names)."""

    name: str
    key: str


class SignedRequest(_Model):
    """The requester's signature over the run's plan (`approval_auth: signed`)."""

    nonce: str
    #: When it was signed (the workflow refuses a request signed long before it started).
    signed_at: datetime
    #: The SSH signature (PROTOCOL.sshsig), base64 of its bytes.
    signature: str


class SwitchInput(_Model):
    """Everything the workflow needs: the resolved runbook and who asked for what."""

    runbook: str
    from_region: str
    to_region: str
    mode: Mode = "drill"
    requester: str
    approvers: list[str] = Field(default_factory=list)
    objectives: Objectives = Field(default_factory=Objectives)
    steps: list[PlannedStep]
    max_parallel: int = 10
    heartbeat_timeout: timedelta = timedelta(seconds=30)
    kind: Kind = "planned"
    #: An unplanned run's work owed to the failed region (`failover recover` runs it).
    owed: list[OwedStep] = Field(default_factory=list)
    #: A planned run first asks whether its source region answers (what its steps use there).
    reach: ReachCall | None = None
    #: Attempts of an undo before the run stops in ROLLBACK_FAILED for the operator.
    undo_attempts: int = 5
    #: The runbook's notification routes (channel names and events; addresses and secrets stay
    #: in the worker's configuration); empty: every configured channel that takes the event.
    notify: list[NotifyRoute] = Field(default_factory=list)
    #: Set when a guard started the run (None: a person did).
    trigger: GuardTrigger | None = None
    #: How `--to auto` chose to_region (None: the operator named it).
    target_choice: TargetChoice | None = None
    #: How the requester and deciders prove who they are (histories before this field: none).
    approval_auth: ApprovalAuth = "none"
    #: Who may sign (approval_auth: signed): the runbook's allowed_signers and the configured
    #: allowed_signers file. Public keys: not secrets.
    signers: list[Signer] = Field(default_factory=list)
    #: The requester's signature over everything above (approval_auth: signed).
    request: SignedRequest | None = None
    #: One service of an evacuation that tells people itself (set by the evacuation): the
    #: switch sends only what needs a person (see RegionSwitchWorkflow).
    quiet: bool = False


# ---------------------------------------------------------------------------- activities
class StepCall(_Model):
    """The input of every step activity."""

    run_id: str
    step: PlannedStep
    from_region: str
    to_region: str
    mode: Mode
    snapshot: dict[str, Any] | None = None


class StepOutcome(_Model):
    """What a step activity reports back."""

    snapshot: dict[str, Any] | None = None
    detail: str = ""
    changes: list[dict[str, Any]] = Field(default_factory=list)
    attempt: int = 1
    #: What the step (or its guards) measured, e.g. {"lag_seconds": 0.4}.
    observed: dict[str, Any] = Field(default_factory=dict)


# -------------------------------------------------------------------------- operator input
class Decision(_Model):
    """An approval or a rejection of a gate (the Temporal UI sends exactly this as JSON)."""

    approver: str = Field(description="Who decides (never the requester, for an approval).")
    comment: str = ""
    gate: str | None = Field(default=None, description="Gate step id; optional if one is open.")
    signature: str | None = Field(
        default=None,
        description="Runs with approval_auth: signed: the token that 'failover approve RUN "
        "--print-token' (or 'failover reject ... --print-token') prints.",
    )


class Abort(_Model):
    """Stop the switch and roll back what was done."""

    by: str
    reason: str


class OperatorAction(_Model):
    """What the operator decides for a paused step or a failed undo."""

    action: Literal["retry", "skip", "rollback", "end"]
    by: str
    reason: str = ""
    step: str | None = None


# ------------------------------------------------------------------------------ progress
class StepState(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    WAITING_APPROVAL = "WAITING_APPROVAL"
    PAUSED = "PAUSED"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"
    NOT_RUN = "NOT_RUN"
    UNDOING = "UNDOING"
    UNDONE = "UNDONE"
    UNDO_FAILED = "UNDO_FAILED"
    UNDO_SKIPPED = "UNDO_SKIPPED"


class RunState(StrEnum):
    RUNNING = "RUNNING"
    WAITING_APPROVAL = "WAITING_APPROVAL"
    PAUSED = "PAUSED"
    ROLLING_BACK = "ROLLING_BACK"
    SUCCEEDED = "SUCCEEDED"
    ROLLED_BACK = "ROLLED_BACK"
    ROLLBACK_FAILED = "ROLLBACK_FAILED"

    @property
    def final(self) -> bool:
        return self in (RunState.SUCCEEDED, RunState.ROLLED_BACK, RunState.ROLLBACK_FAILED)


class ErrorInfo(_Model):
    kind: str
    message: str
    retryable: bool = False


class ApprovalRecord(_Model):
    gate: str
    approver: str
    decision: Literal["approve", "reject", "expired", "skipped"]
    comment: str = ""
    at: datetime
    #: The fingerprint of the key that signed the decision (approval_auth: signed).
    key: str = ""


class StepRecord(_Model):
    """One row of the progress table."""

    id: str
    type: str
    kind: StepKind
    description: str = ""
    depends_on: list[str] = Field(default_factory=list)
    state: StepState = StepState.PENDING
    phase: str = ""
    attempts: int = 0
    started_at: datetime | None = None
    ended_at: datetime | None = None
    detail: str = ""
    error: ErrorInfo | None = None
    changes: list[dict[str, Any]] = Field(default_factory=list)
    observed: dict[str, Any] = Field(default_factory=dict)
    irreversible: bool = False
    #: apply was started: the step is undone on rollback (even if apply then failed).
    applied: bool = False
    undo_started_at: datetime | None = None
    undo_ended_at: datetime | None = None
    undo_attempts: int = 0
    undo_error: ErrorInfo | None = None
    undo_note: str = ""


class RunProgress(_Model):
    """The whole run at a glance: the `progress` query and the workflow's result."""

    runbook: str
    from_region: str
    to_region: str
    mode: Mode
    requester: str
    state: RunState
    started_at: datetime
    ended_at: datetime | None = None
    reason: str = ""
    steps: list[StepRecord]
    approvals: list[ApprovalRecord] = Field(default_factory=list)
    open_gates: list[str] = Field(default_factory=list)
    objectives: Objectives = Field(default_factory=Objectives)
    #: Replication lag measured last before a promotion (a lag check or guard): the run's RPO.
    rpo_seconds: float | None = None
    kind: Kind = "planned"
    owed: list[OwedStep] = Field(default_factory=list)
    #: What was sent (one Delivery per channel and notice), as far as it is known.
    notifications: list[Delivery] = Field(default_factory=list)
    #: Where the worker wrote the run's report when it ended (paths or s3:// URLs).
    report_files: list[str] = Field(default_factory=list)
    #: The outage a guard confirmed before starting the run (None: a person started it).
    trigger: GuardTrigger | None = None
    #: How `--to auto` chose the target (None: the operator named it).
    target_choice: TargetChoice | None = None
    approval_auth: ApprovalAuth = "none"
    #: The fingerprint of the key the requester proved themselves with (approval_auth: signed).
    requester_key: str = ""

    def step(self, step_id: str) -> StepRecord:
        return next(s for s in self.steps if s.id == step_id)

    def summary(self) -> RunProgress:
        """This run without its steps' details, changes and observations, nor its deliveries:
        what an evacuation keeps of each switch (states, times, errors, approvals; the rest is
        in the switch's own history and report)."""
        return self.model_copy(
            update={
                "steps": [
                    s.model_copy(update={"description": "", "detail": "", "changes": [],
                                         "observed": {}})
                    for s in self.steps
                ],
                "notifications": [],
            }
        )  # fmt: skip


class RunEnd(_Model):
    """The input of `report.switch_end`: a switch's last notice and its final progress."""

    notice: NotifyCall
    progress: RunProgress


class RunEnded(_Model):
    """What `report.switch_end` did: the last notice's deliveries, where the report went."""

    deliveries: list[Delivery] = Field(default_factory=list)
    report_files: list[str] = Field(default_factory=list)
