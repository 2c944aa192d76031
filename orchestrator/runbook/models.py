"""The runbook format (pydantic v2): what a region switch is made of.

A runbook names the regions it can switch between, its objectives (RTO, RPO), who may approve,
its parameters, and its steps. Steps form a DAG through `depends_on`; independent steps run in
parallel. Each step's `params` are validated by its type's own model (see `activities.registry`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from orchestrator.notifications import NotifyRoute
from orchestrator.runbook.durations import Duration
from orchestrator.sshsig import PublicKey, SshSigError

API_VERSION = "failover.dev/v1"
ID_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Objectives(_Strict):
    """Recovery objectives the report checks the run against."""

    rto: Duration | None = Field(default=None, description="Recovery time objective.")
    rpo: Duration | None = Field(default=None, description="Recovery point objective.")


class Parameter(_Strict):
    """A runbook parameter, referenced in step params as `${{ params.NAME }}`."""

    default: str | int | float | bool | None = None
    description: str = ""
    required: bool = False


class RetryPolicy(_Strict):
    """How a step's activities are retried (classified non-retryable errors stop at once)."""

    attempts: int = Field(default=3, ge=1, le=100)
    backoff: Duration = Field(default=timedelta(seconds=1), description="First retry interval.")
    backoff_coefficient: float = Field(default=2.0, ge=1.0, le=10.0)
    max_backoff: Duration = Field(default=timedelta(minutes=1))
    non_retryable: list[str] = Field(
        default_factory=list, description="Extra error kinds that must not be retried."
    )


class Guard(_Strict):
    """A precondition checked before the step mutates anything (a read-only step type)."""

    type: str = Field(description="A registered read-only step type, e.g. a lag or health check.")
    params: dict[str, Any] = Field(default_factory=dict)
    description: str = ""


class Replacement(_Strict):
    """What an unplanned run does in place of a step: another type (or other params), with the
    step's id and dependencies (an Aurora switchover becomes a failover with data loss)."""

    type: str = Field(description="A registered step type (`failover steps`).")
    params: dict[str, Any] = Field(default_factory=dict)
    description: str = ""
    region: str | None = Field(default=None, description="Region scope (default: the step's).")
    account: str | None = Field(
        default=None, pattern=ID_PATTERN, description="AWS account (default: the step's)."
    )
    timeout: Duration | None = Field(default=None, description="Per attempt (default: the step's).")
    guards: list[Guard] = Field(default_factory=list)
    irreversible: bool = Field(
        default=False, description="Cannot be undone; must be preceded by an approval gate."
    )


class Unplanned(_Strict):
    """`unplanned: {replace: ...}`: the step is replaced in an unplanned run."""

    replace: Replacement


#: What a step does in an unplanned run (the source region does not answer):
#: run as in a planned run; skip it; defer it (work that needs the failed region, or a control
#: plane served from it, such as Route 53's API: owed to that region and run by
#: `failover recover` once it answers); or {replace: ...} another step in its place.
UnplannedChoice = Annotated[
    Annotated[Literal["run", "skip", "defer"], Tag("~word")]
    | Annotated[Unplanned, Tag("~mapping")],
    Discriminator(lambda v: "~mapping" if isinstance(v, dict | Unplanned) else "~word"),
]
#: The tags of the union above: validation errors name the branch taken in their location (a
#: YAML mapping, or a word); they are left out of the locations shown to runbook authors.
UNION_TAGS = frozenset({"~word", "~mapping"})


class Step(_Strict):
    """One step of the switch."""

    id: str = Field(pattern=ID_PATTERN, description="Unique within the runbook (a DNS label).")
    type: str = Field(description="A registered step type (`failover steps`).")
    description: str = ""
    params: dict[str, Any] = Field(default_factory=dict)
    depends_on: list[str] = Field(default_factory=list)
    region: str | None = Field(
        default=None, description="Region scope; may be a template such as ${{ to_region }}."
    )
    for_each: str | list[str] | None = Field(
        default=None,
        description="Repeat the step for each region of a list (`${{ others }}`, "
        "`${{ survivors }}`, `${{ regions }}` or the regions written out): one copy per region, "
        "id `ID-REGION`, the region as `${{ each }}`; none when the list is empty. A step "
        "depending on this one depends on every copy.",
    )
    account: str | None = Field(
        default=None,
        pattern=ID_PATTERN,
        description="AWS account its calls act in: a name under aws.accounts in the "
        "configuration (default: aws.default_account, else the worker's own credentials).",
    )
    timeout: Duration = Field(default=timedelta(minutes=10), description="Per attempt.")
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    on_failure: Literal["rollback", "pause"] = "rollback"
    guards: list[Guard] = Field(default_factory=list)
    irreversible: bool = Field(
        default=False, description="Cannot be undone; must be preceded by an approval gate."
    )
    planned: Literal["run", "skip"] = Field(
        default="run", description="skip: only in unplanned runs (e.g. a data-plane traffic move)."
    )
    unplanned: UnplannedChoice = Field(
        default="run",
        description="In an unplanned run (the source region does not answer): run, skip, defer "
        "(owed to the failed region: `failover recover` runs it) or {replace: STEP}.",
    )

    @field_validator("depends_on")
    @classmethod
    def _unique_deps(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("depends_on lists a step twice")
        return v


class Action(_Strict):
    """A step used by a game day outside the switch's DAG: the fault, a detector."""

    type: str = Field(description="A registered step type (`failover steps`).")
    params: dict[str, Any] = Field(default_factory=dict)
    region: str | None = Field(default=None, description="Region scope; may be a template.")
    account: str | None = Field(
        default=None,
        pattern=ID_PATTERN,
        description="AWS account its calls act in: a name under aws.accounts in the "
        "configuration (default: aws.default_account, else the worker's own credentials).",
    )
    timeout: Duration = Field(default=timedelta(minutes=5), description="Per attempt.")
    description: str = ""


class DnsRoute(_Strict):
    """A weighted Route 53 record users reach the service by (set identifier = region)."""

    zone: str
    record: str


class Slo(_Strict):
    """What users must see: measured during the whole game day by a probe."""

    endpoint: str = Field(default="app", description="Named endpoint of the configuration.")
    path: str = "/"
    url: str | None = Field(default=None, description="One URL for the service (instead of dns).")
    dns: DnsRoute | None = Field(
        default=None, description="Requests follow this record's weights to each region's endpoint."
    )
    min_success_rate: float = Field(default=0.99, ge=0, le=1)
    max_latency_ms: float | None = Field(default=None, gt=0, description="Bound on p95.")

    @model_validator(mode="after")
    def _one_target(self) -> Slo:
        if (self.url is None) == (self.dns is None):
            raise ValueError("give exactly one of url or dns")
        return self


class StopCondition(_Strict):
    """When it holds for `for`, the game day stops injecting, rolls back and says why."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field(pattern=ID_PATTERN)
    region: str | None = Field(
        default=None,
        description="Probe this region's endpoint directly (a template such as ${{ to_region }});"
        " default: the service as users reach it.",
    )
    max_error_rate: float | None = Field(default=None, ge=0, le=1)
    max_latency_ms: float | None = Field(default=None, gt=0, description="Bound on p95.")
    alarm: str | None = Field(default=None, description="A CloudWatch alarm in ALARM trips it.")
    alarm_region: str | None = Field(default=None, description="The alarm's region (template).")
    for_: Duration = Field(default=timedelta(0), alias="for", description="How long it must hold.")

    @model_validator(mode="after")
    def _something(self) -> StopCondition:
        if self.max_error_rate is None and self.max_latency_ms is None and self.alarm is None:
            raise ValueError("set max_error_rate, max_latency_ms and/or alarm")
        if self.alarm is not None and self.alarm_region is None:
            raise ValueError("alarm needs alarm_region")
        return self


class GameDayObjectives(_Strict):
    mttd: Duration | None = Field(default=None, description="Time to detect the fault.")
    slo_breach: Duration | None = Field(default=None, description="Total time the SLO is missed.")


class GameDay(_Strict):
    """How to practise this runbook: a fault, its detection, SLOs, stop conditions."""

    mode: Literal["planned", "unplanned"] = Field(
        default="planned",
        description="unplanned: practise the disaster: the switch runs as an unplanned one (the "
        "fault takes the source region down), then the recovery of that region once the fault "
        "is removed, then the planned failback.",
    )
    fault: Action = Field(description="A reversible step type that injects a fault.")
    detect: list[Action] = Field(
        default_factory=list, description="Read-only checks; the first to fail detects the fault."
    )
    detect_timeout: Duration = Field(default=timedelta(minutes=5))
    approval: bool = Field(
        default=False,
        description="A person approves the game day before its fault is injected (never its "
        "requester); that approval covers its switches' gates, a gate that needs several "
        "approvers only if as many approved the game day. Set this or `unattended`.",
    )
    approvals: int = Field(
        default=1, ge=1, description="How many people must approve the game day (with approval)."
    )
    approval_expires: Duration = Field(default=timedelta(hours=1))
    unattended: bool = Field(
        default=False,
        description="Nobody approves the game day: its switches' gates are approved by its "
        "requester (the schedule), except a gate an irreversible step depends on or one that "
        "needs several approvers: those wait for people. `failover validate` warns about it. "
        "Set this or `approval`.",
    )
    slo: Slo
    probe_interval: Duration = Field(default=timedelta(seconds=5))
    probe_requests: int = Field(default=10, ge=1, le=1000, description="Requests per interval.")
    settle: Duration = Field(
        default=timedelta(seconds=30), description="The SLO must hold this long after a switch."
    )
    settle_timeout: Duration = Field(default=timedelta(minutes=5))
    stop_conditions: list[StopCondition] = Field(default_factory=list)
    objectives: GameDayObjectives = Field(default_factory=GameDayObjectives)
    params: dict[str, Any] = Field(default_factory=dict, description="Runbook parameters.")


class Confirm(_Strict):
    """Anti-flap: when failing evaluations make an outage."""

    failures: int = Field(default=3, ge=1, le=100, description="N failing evaluations ...")
    of: int = Field(default=5, ge=1, le=100, description="... of the last M.")
    for_: Duration = Field(
        default=timedelta(0), alias="for", description="The failure has lasted at least this."
    )

    @model_validator(mode="after")
    def _n_of_m(self) -> Confirm:
        if self.failures > self.of:
            raise ValueError(f"failures ({self.failures}) cannot exceed of ({self.of})")
        return self


class GuardSpec(_Strict):
    """How `failover guard` watches the active region and when it proposes a switch."""

    interval: Duration = Field(default=timedelta(seconds=30), description="Between evaluations.")
    detect: list[Action] = Field(
        min_length=1,
        description="Read-only checks of the active region (`${{ from_region }}`); an "
        "evaluation fails when any of them fails.",
    )
    confirm: Confirm = Field(default_factory=Confirm)
    cooldown: Duration = Field(
        default=timedelta(hours=1), description="After a switch, no new one for this long."
    )
    flap_window: Duration = Field(
        default=timedelta(minutes=30),
        description="A region that recovered and is confirmed down again within this window is "
        "flapping: no switch, a page.",
    )
    mode: Literal["planned", "unplanned"] = Field(
        default="unplanned", description="How the switch it starts runs."
    )
    auto_approve: bool = Field(
        default=False,
        description="Approve the switch's gates itself (never a gate before an irreversible "
        "step); otherwise the guard proposes and a person approves.",
    )
    params: dict[str, Any] = Field(default_factory=dict, description="Runbook parameters.")


def _ssh_key(value: str) -> str:
    """An OpenSSH ed25519 public key line, kept as `ssh-ed25519 AAAA...` (comment dropped)."""
    try:
        return PublicKey.parse(value).openssh()
    except SshSigError as exc:
        raise ValueError(str(exc)) from None


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


SshKey = Annotated[str, AfterValidator(_ssh_key)]
#: One key, or a list of them.
SshKeys = Annotated[list[SshKey], BeforeValidator(_one_or_many)]


class Runbook(_Strict):
    """A region-switch runbook."""

    apiVersion: Literal["failover.dev/v1"] = Field(description=f"Always {API_VERSION}.")
    kind: Literal["Runbook"]
    name: str = Field(pattern=ID_PATTERN)
    description: str = ""
    owners: list[str] = Field(default_factory=list)
    regions: list[str] = Field(min_length=2, description="Regions this runbook switches between.")
    objectives: Objectives = Field(default_factory=Objectives)
    approvers: list[str] = Field(default_factory=list)
    approval_auth: Literal["signed", "none"] | None = Field(
        default=None,
        description="How the requester and approvers prove who they are: signed (SSH ed25519 "
        "signatures of the run, its plan and each decision) or none (the name given; access to "
        "the Temporal namespace is the control). Default: signed, none on the sandbox.",
    )
    allowed_signers: dict[str, SshKeys] = Field(
        default_factory=dict,
        description="Public keys by name (`ssh-ed25519 AAAA...`, as in id_ed25519.pub): who may "
        "sign a request or a decision (with the configured approvals.allowed_signers file).",
    )
    parameters: dict[str, Parameter] = Field(default_factory=dict)
    max_parallel: int = Field(
        default=10, ge=1, le=1000, description="Steps running at once (the engine runs 40 at most)."
    )
    steps: list[Step] = Field(min_length=1)
    recovery: list[Step] = Field(
        default_factory=list,
        description="What `failover recover` runs once a failed region answers again, after the "
        "steps deferred to it (they may depend on those).",
    )
    gameday: GameDay | None = Field(default=None, description="How game days practise it.")
    gamedays: dict[str, GameDay] = Field(
        default_factory=dict,
        description="More ways to practise it, by name: `failover gameday run NAME` uses "
        "gamedays.NAME when there is one, else `gameday`.",
    )
    guard: GuardSpec | None = Field(
        default=None, description="How `failover guard` watches the active region."
    )
    notify: list[NotifyRoute] = Field(
        default_factory=list, description="Where this runbook's events are sent."
    )

    @field_validator("regions")
    @classmethod
    def _unique_regions(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("a region is listed twice")
        return v

    def signer_keys(self) -> list[tuple[str, str]]:
        """(name, key) for every key of allowed_signers."""
        return [(name, key) for name, keys in self.allowed_signers.items() for key in keys]

    def game_day(self, name: str) -> GameDay | None:
        """The game day called `name` (gamedays.NAME), else the default one (`gameday`)."""
        return self.gamedays.get(name) or self.gameday

    def step(self, step_id: str) -> Step:
        return next(s for s in [*self.steps, *self.recovery] if s.id == step_id)

    @property
    def has_unplanned(self) -> bool:
        """Whether the runbook says anything of unplanned runs (else they run as planned)."""
        return any(s.unplanned != "run" or s.planned != "run" for s in self.steps)
