"""Step types that need no cloud client: `noop`, `wait` and the `approval` gate."""

from __future__ import annotations

import time
from datetime import timedelta

from pydantic import Field, field_validator

from activities.base import State, StepContext, StepParams, StepType
from orchestrator.runbook.durations import Duration, format_duration
from orchestrator.runs import GateSpec


class NoopParams(StepParams):
    duration: Duration = Field(default=timedelta(0), description="How long the step takes.")
    message: str = ""


class Noop(StepType[NoopParams]):
    """Does nothing for a configurable time (tests and benchmarks)."""

    name = "noop"
    summary = "no-op"

    def describe(self, params: NoopParams) -> str:
        return f"no-op for {format_duration(params.duration)}" + (
            f": {params.message}" if params.message else ""
        )

    def apply(self, ctx: StepContext, params: NoopParams, snapshot: State) -> None:
        deadline = time.monotonic() + params.duration.total_seconds()
        while (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, 1.0))
            ctx.heartbeat("noop")


class WaitParams(StepParams):
    duration: Duration = Field(description="How long to wait (a durable timer).")


class Wait(StepType[WaitParams]):
    """A durable timer: survives worker and server restarts."""

    name = "wait"
    engine_only = True

    def describe(self, params: WaitParams) -> str:
        return f"wait {format_duration(params.duration)}"

    def timer(self, params: WaitParams) -> timedelta:
        return params.duration

    def regions_used(self, params: WaitParams, step_region: str | None) -> set[str]:
        return set()


class ApprovalParams(StepParams):
    approvers: list[str] = Field(
        default_factory=list,
        description="Who may approve (names, or group:NAME); empty = the runbook's approvers.",
    )
    approvals: int = Field(default=1, ge=1, description="Distinct approvals needed.")
    expires: Duration = Field(
        default=timedelta(hours=1), description="How long the gate stays open."
    )
    on_expiry: str = Field(default="reject", description="reject (roll back) is the only choice.")
    message: str = ""

    @field_validator("on_expiry")
    @classmethod
    def _expiry(cls, v: str) -> str:
        if v != "reject":
            raise ValueError("on_expiry must be 'reject': an unanswered gate never approves")
        return v


class Approval(StepType[ApprovalParams]):
    """A manual gate: the run waits until enough distinct people approve (never the requester)."""

    name = "approval"
    gate = True
    engine_only = True

    def describe(self, params: ApprovalParams) -> str:
        who = ", ".join(params.approvers) or "the runbook's approvers"
        expires = format_duration(params.expires)
        return f"approval by {params.approvals} of {who} (expires in {expires})"

    def regions_used(self, params: ApprovalParams, step_region: str | None) -> set[str]:
        return set()

    def gate_spec(self, params: ApprovalParams, approvers: list[str]) -> GateSpec:
        return GateSpec(
            approvers=params.approvers or approvers,
            approvals=params.approvals,
            expires=params.expires,
            message=params.message,
        )
