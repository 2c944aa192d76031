"""The evacuation plan format (pydantic v2): which services leave a region, in what order, under
which rules.

An evacuation plan names its services, each a runbook (a path relative to the plan file) with its
parameters; dependencies between services (`depends_on`) and tiers (a service starts once every
service of a lower tier has ended); how many services switch at once (`max_parallel`); what
happens when one fails (`failure_policy`); its approval gates (one for the whole evacuation, or one
per tier), whose approval stands in for the services' own gates where those gates allow it; and
whether it is planned (both regions answer) or unplanned (the source region is down).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from orchestrator.notifications import NotifyRoute
from orchestrator.runbook.durations import Duration
from orchestrator.runbook.models import API_VERSION, ID_PATTERN

#: What happens to the rest of the evacuation when a service's switch fails (the failed service
#: has rolled itself back already):
#: continue: go on with the services that do not depend on it;
#: stop: start no new service; those running finish, those switched stay switched;
#: rollback_all: stop the running ones (they roll back) and fail back every service already
#: switched, dependents first (reverse dependency order).
FailurePolicy = Literal["continue", "stop", "rollback_all"]
POLICIES: tuple[FailurePolicy, ...] = ("continue", "stop", "rollback_all")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Service(_Strict):
    """One service of the evacuation: a runbook run as its own switch (a child workflow)."""

    name: str = Field(pattern=ID_PATTERN, description="Unique within the plan (a DNS label).")
    runbook: str = Field(description="The runbook file, relative to the plan file.")
    description: str = ""
    tier: int = Field(
        default=1,
        ge=1,
        le=100,
        description="Starts once every service of a lower tier has ended; tiers also scope "
        "approvals (`approval.scope: tier`).",
    )
    depends_on: list[str] = Field(
        default_factory=list, description="Services that must have switched before this one."
    )
    params: dict[str, Any] = Field(default_factory=dict, description="The runbook's parameters.")

    @field_validator("depends_on")
    @classmethod
    def _unique_deps(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("depends_on lists a service twice")
        return v


class Approval(_Strict):
    """The evacuation's approval gates: approving one pre-approves the gates of the services it
    covers, where a gate allows it (its approvers include whoever approved, enough of them; never
    a gate an irreversible step depends on)."""

    scope: Literal["evacuation", "tier"] = Field(
        default="evacuation",
        description="evacuation: one gate before anything starts; tier: one gate per tier, "
        "before the tier's first service starts.",
    )
    approvers: list[str] = Field(
        default_factory=list, description="Who may approve (empty: anyone but the requester)."
    )
    approvals: int = Field(default=1, ge=1, le=10, description="Distinct approvals needed.")
    expires: Duration = Field(default=timedelta(hours=1), description="Unanswered: rolls back.")
    message: str = ""


class Objectives(_Strict):
    rto: Duration | None = Field(
        default=None, description="First step to the last service's traffic on the target."
    )


class EvacuationPlan(_Strict):
    """An evacuation plan (`kind: Evacuation`)."""

    apiVersion: Literal["failover.dev/v1"] = Field(description=f"Always {API_VERSION}.")
    kind: Literal["Evacuation"]
    name: str = Field(pattern=ID_PATTERN)
    description: str = ""
    owners: list[str] = Field(default_factory=list)
    mode: Literal["planned", "unplanned"] = Field(
        default="planned",
        description="unplanned: the source region is down; every service runs its runbook's "
        "unplanned switch (`--unplanned` forces it).",
    )
    max_parallel: int = Field(default=4, ge=1, le=100, description="Services switching at once.")
    failure_policy: FailurePolicy = Field(
        default="stop",
        description="When a service fails: continue (with the services that do not depend on "
        "it), stop (start no new service), rollback_all (fail back every service switched, "
        "dependents first).",
    )
    approval: Approval | None = Field(
        default=None,
        description="The evacuation's gates (none: each service's own gates wait for people).",
    )
    objectives: Objectives = Field(default_factory=Objectives)
    notify: list[NotifyRoute] = Field(
        default_factory=list,
        description="Where the evacuation's own notices go (evacuation_started, gate_open, "
        "evacuation_result); none: every configured channel that takes the event. Each "
        "service's switch uses its runbook's routes.",
    )
    services: list[Service] = Field(min_length=1)

    def service(self, name: str) -> Service:
        return next(s for s in self.services if s.name == name)
