"""The plan of a switch: what would run, in which order, and what it would change. Read-only.

Every activity step's preflight and dry run are called in this process with the real clients
(no Temporal, no worker): a preflight that fails now would fail the switch too.
"""

from __future__ import annotations

import time
from datetime import timedelta

from pydantic import BaseModel, Field

from activities import registry
from activities.base import StepContext
from activities.clients import Clients
from activities.errors import classify
from orchestrator.runbook import graph
from orchestrator.runbook.graph import levels
from orchestrator.runs import PlannedStep, StepKind, SwitchInput, TargetChoice


class PlannedRow(BaseModel):
    """One step of the plan."""

    id: str
    type: str
    kind: StepKind
    level: int
    description: str
    irreversible: bool = False
    timeout_s: float
    changes: list[dict[str, object]] = Field(default_factory=list)
    preflight: str = "ok"  # "ok", "skipped" (gates, timers) or the failure
    error_kind: str | None = None


class Plan(BaseModel):
    """The whole plan (`failover plan -o json`)."""

    runbook: str
    from_region: str
    to_region: str
    levels: list[list[str]]
    critical_path: list[str]
    critical_path_timeout_s: float
    gates: list[str]
    irreversible: list[str]
    steps: list[PlannedRow]
    #: Successful past runs of this runbook (from Temporal visibility) and their median duration.
    past_runs: int = 0
    past_median_s: float | None = None
    kind: str = "planned"
    #: What the other kind of run (planned / unplanned) does with each step.
    other: dict[str, str] = Field(default_factory=dict)
    #: An unplanned run's steps deferred to the failed region.
    owed: list[str] = Field(default_factory=list)
    #: How `--to auto` chose to_region (None: it was named).
    target_choice: TargetChoice | None = None

    @property
    def ok(self) -> bool:
        return all(r.error_kind is None for r in self.steps)


def critical_path(steps: list[PlannedStep]) -> tuple[list[str], timedelta]:
    """The chain of dependencies with the longest sum of step timeouts (an upper bound of RTO;
    gates and timers count their expiry and duration)."""

    def cost(s: PlannedStep) -> timedelta:
        if s.gate is not None:
            return s.gate.expires
        return s.wait if s.wait is not None else s.timeout

    deps = {s.id: s.depends_on for s in steps}
    path, total = graph.critical_path(deps, {s.id: cost(s).total_seconds() for s in steps})
    return path, timedelta(seconds=total)


def make_plan(inp: SwitchInput, clients: Clients) -> Plan:
    """Preflight and dry-run every step of a resolved runbook; mutates nothing."""
    groups = levels({s.id: s.depends_on for s in inp.steps})
    level_of = {sid: i for i, group in enumerate(groups) for sid in group}
    rows = []
    for step in inp.steps:
        row = PlannedRow(
            id=step.id,
            type=step.type,
            kind=step.kind,
            level=level_of[step.id],
            description=step.description,
            irreversible=step.irreversible,
            timeout_s=step.timeout.total_seconds(),
        )
        if step.kind in (StepKind.GATE, StepKind.WAIT):
            row.preflight = "skipped"
        else:
            try:
                stype, params = registry.bind(step.type, step.params)
                ctx = _context(inp, step, "plan", clients)
                stype.preflight(ctx, params)
                row.changes = [c.model_dump(mode="json") for c in stype.dry_run(ctx, params)]
            except Exception as exc:
                err = classify(exc)
                row.preflight, row.error_kind = err.message, err.kind
        rows.append(row)
    path, total = critical_path(inp.steps)
    return Plan(
        runbook=inp.runbook,
        from_region=inp.from_region,
        to_region=inp.to_region,
        levels=groups,
        critical_path=path,
        critical_path_timeout_s=total.total_seconds(),
        gates=[s.id for s in inp.steps if s.kind == StepKind.GATE],
        irreversible=[s.id for s in inp.steps if s.irreversible],
        steps=rows,
        kind=inp.kind,
        owed=[o.id for o in inp.owed],
    )


class ObservedRow(BaseModel):
    """One resource a runbook touches, as it is now."""

    step: str
    type: str
    resource: str
    state: dict[str, object] = Field(default_factory=dict)
    error: str | None = None


def observe_state(inp: SwitchInput, clients: Clients) -> list[ObservedRow]:
    """What each mutating step's snapshot would read now (read-only)."""
    rows = []
    for step in inp.steps:
        if step.kind != StepKind.MUTATE:
            continue
        stype, params = registry.bind(step.type, step.params)
        ctx = _context(inp, step, "state", clients)
        resource = stype.resource(ctx, params)
        try:
            rows.append(ObservedRow(step=step.id, type=step.type, resource=resource,
                                    state=stype.snapshot(ctx, params)))  # fmt: skip
        except Exception as exc:
            err = classify(exc)
            rows.append(ObservedRow(step=step.id, type=step.type, resource=resource,
                                    error=f"{err.kind}: {err.message}"))  # fmt: skip
    return rows


#: How long a plan waits for a resource in transition to settle before it reports it.
PLAN_WAIT = 30.0


def _context(inp: SwitchInput, step: PlannedStep, run_id: str, clients: Clients) -> StepContext:
    return StepContext(
        run_id=run_id,
        step_id=step.id,
        from_region=inp.from_region,
        to_region=inp.to_region,
        region=step.region,
        mode="dry-run",
        clients=clients,
        deadline=time.monotonic() + PLAN_WAIT,
        account=step.account,
    )
