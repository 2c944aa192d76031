"""The runbook format (pydantic v2): what a region switch is made of.

A runbook names the regions it can switch between, its objectives (RTO, RPO), who may approve,
its parameters, and its steps. Steps form a DAG through `depends_on`; independent steps run in
parallel. Each step's `params` are validated by its type's own model (see `activities.registry`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from orchestrator.runbook.durations import Duration

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
    timeout: Duration = Field(default=timedelta(minutes=10), description="Per attempt.")
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    on_failure: Literal["rollback", "pause"] = "rollback"
    guards: list[Guard] = Field(default_factory=list)
    irreversible: bool = Field(
        default=False, description="Cannot be undone; must be preceded by an approval gate."
    )

    @field_validator("depends_on")
    @classmethod
    def _unique_deps(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("depends_on lists a step twice")
        return v


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
    parameters: dict[str, Parameter] = Field(default_factory=dict)
    max_parallel: int = Field(default=10, ge=1, le=1000, description="Steps running at once.")
    steps: list[Step] = Field(min_length=1)

    @field_validator("regions")
    @classmethod
    def _unique_regions(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("a region is listed twice")
        return v

    def step(self, step_id: str) -> Step:
        return next(s for s in self.steps if s.id == step_id)
