"""Resolve a validated runbook for one run: regions checked, parameters bound, templates rendered,
every step's params validated by its type once rendered, and each step's kind decided.

The result (`SwitchInput`) is what the workflow runs: plain data, no registry lookups needed.
"""

from __future__ import annotations

from typing import Any

from activities import registry
from activities.base import ParamsError
from orchestrator.runbook.models import Runbook, Step
from orchestrator.runbook.templates import TemplateError, render
from orchestrator.runs import (
    GuardSpec,
    Mode,
    Objectives,
    PlannedStep,
    RetrySpec,
    StepKind,
    SwitchInput,
)


class ResolveError(ValueError):
    """The runbook cannot run with these regions or parameters (one line, for the user)."""


def resolve(
    rb: Runbook,
    from_region: str,
    to_region: str,
    *,
    mode: Mode = "drill",
    requester: str,
    params: dict[str, Any] | None = None,
) -> SwitchInput:
    """The runbook, ready to run from `from_region` to `to_region`."""
    regions = ", ".join(rb.regions)
    for flag, region in (("--from", from_region), ("--to", to_region)):
        if region not in rb.regions:
            raise ResolveError(
                f"{flag}: unknown region {region!r} "
                f"(runbook {rb.name!r} switches between {regions})"
            )
    if from_region == to_region:
        raise ResolveError(f"--from and --to are both {from_region!r}: nothing to switch")
    context = context_for(rb, from_region, to_region, params or {})
    steps = [_step(rb, i, context) for i in range(len(rb.steps))]
    return SwitchInput(
        runbook=rb.name,
        from_region=from_region,
        to_region=to_region,
        mode=mode,
        requester=requester,
        approvers=list(rb.approvers),
        objectives=Objectives(rto=rb.objectives.rto, rpo=rb.objectives.rpo),
        steps=steps,
        max_parallel=rb.max_parallel,
    )


def context_for(rb: Runbook, from_region: str, to_region: str, given: dict[str, Any]) -> dict:
    unknown = sorted(set(given) - set(rb.parameters))
    if unknown:
        known = ", ".join(sorted(rb.parameters)) or "none"
        raise ResolveError(f"--param {unknown[0]}: unknown parameter (runbook has: {known})")
    context: dict[str, Any] = {"from_region": from_region, "to_region": to_region}
    for name, spec in rb.parameters.items():
        if name in given:
            context[f"params.{name}"] = given[name]
        elif spec.default is not None:
            context[f"params.{name}"] = spec.default
        elif spec.required:
            raise ResolveError(f"--param {name}: required parameter has no value")
        else:
            context[f"params.{name}"] = None
    return context


def _step(rb: Runbook, i: int, context: dict[str, Any]) -> PlannedStep:
    step = rb.steps[i]
    return plan_step(step, f"steps[{i}] ({step.id})", rb, context)


def plan_step(step: Step, where: str, rb: Runbook, context: dict[str, Any]) -> PlannedStep:
    """One step resolved: templates rendered, params validated by its type, kind decided."""
    stype = registry.get(step.type)
    if stype is None:  # the loader refuses these; a hand-built Runbook may not have been loaded
        raise ResolveError(f"{where}: unknown step type {step.type!r}")
    try:
        rendered = render(step.params, context)
        region = render(step.region, context) if step.region else None
        guards = [
            GuardSpec(type=g.type, params=render(g.params, context), description=g.description)
            for g in step.guards
        ]
    except TemplateError as exc:
        raise ResolveError(f"{where}: {exc}") from None
    if region is not None and region not in rb.regions:
        raise ResolveError(f"{where}.region: {region!r} is not one of the runbook's regions")
    try:
        params = stype.parse(rendered)
    except ParamsError as exc:
        raise ResolveError(f"{where}.{exc} (after templates)") from None
    for i, g in enumerate(guards):
        gtype = registry.get(g.type)
        try:
            if gtype is not None:
                gtype.parse(g.params)
        except ParamsError as exc:
            raise ResolveError(f"{where}.guards[{i}].{exc} (after templates)") from None
    kind = (
        StepKind.GATE
        if stype.gate
        else StepKind.WAIT
        if stype.engine_only
        else StepKind.MUTATE
        if stype.mutating
        else StepKind.CHECK
    )
    gate = stype.gate_spec(params, list(rb.approvers))
    wait = stype.timer(params)
    return PlannedStep(
        id=step.id,
        type=step.type,
        kind=kind,
        description=step.description or stype.describe(params),
        params=params.model_dump(mode="json"),
        depends_on=list(step.depends_on),
        region=region,
        timeout=step.timeout,
        retry=RetrySpec(
            attempts=step.retry.attempts,
            backoff=step.retry.backoff,
            backoff_coefficient=step.retry.backoff_coefficient,
            max_backoff=step.retry.max_backoff,
            non_retryable=list(step.retry.non_retryable),
        ),
        on_failure=step.on_failure,
        guards=guards,
        irreversible=step.irreversible,
        reversible=stype.reversible,
        gate=gate,
        wait=wait,
    )
