"""Resolve a validated runbook for one run: regions checked, parameters bound, templates rendered,
every step's params validated by its type once rendered, and each step's kind decided.

The result (`SwitchInput`) is what the workflow runs: plain data, no registry lookups needed.
"""

from __future__ import annotations

from typing import Any

from activities import registry
from activities.base import ParamsError, StepType
from orchestrator.runbook.models import Action, Runbook, Step
from orchestrator.runbook.modes import Kind, select
from orchestrator.runbook.templates import EACH, TemplateError, region_lists, render
from orchestrator.runs import (
    ApprovalAuth,
    GuardSpec,
    Mode,
    Objectives,
    OwedStep,
    PlannedStep,
    ReachCall,
    RetrySpec,
    Signer,
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
    kind: Kind = "planned",
    approval_auth: ApprovalAuth = "none",
    signers: list[Signer] | None = None,
) -> SwitchInput:
    """The runbook, ready to run from `from_region` to `to_region` (a recovery: `from_region` is
    the region that failed and answers again, `to_region` the one that took over).

    `approval_auth`: how the run's requester and deciders prove who they are (the caller applies
    the runbook's choice and its default: `failover drill` and `run` do); signed: the runbook's
    allowed_signers, then `signers` (from the configuration), are the run's."""
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
    chosen = select(rb, kind)
    if kind == "recovery" and not chosen.steps:
        raise ResolveError(f"runbook {rb.name!r} defers nothing to a failed region: no recovery")
    steps = plan_steps(chosen.steps, rb, context)
    if kind == "unplanned":
        _static_stability(steps, from_region)
    owed = [
        OwedStep(id=p.id, type=p.type, description=p.description)
        for p in plan_steps(chosen.deferred, rb, context)
    ]
    reach = _reach(steps, from_region) if kind == "planned" else None
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
        kind=kind,
        owed=owed,
        reach=reach,
        notify=[r.model_copy(deep=True) for r in rb.notify],
        approval_auth=approval_auth,
        signers=_signers(rb, signers or []) if approval_auth == "signed" else [],
    )


def plan_steps(steps: list[Step], rb: Runbook, context: dict[str, Any]) -> list[PlannedStep]:
    """Steps resolved in order, a `for_each` step as one copy per region of its list (id
    `ID-REGION`, `${{ each }}` bound): a step depending on it depends on every copy, or, when
    the list is empty, on what it depended on."""
    copies: dict[str, list[tuple[str, str]]] = {}  # step id -> [(copy id, region)]
    for s in steps:
        if s.for_each is None:
            continue
        try:
            items = s.for_each if isinstance(s.for_each, list) else render(s.for_each, context)
        except TemplateError as exc:
            raise ResolveError(f"{_where(rb, s)}.for_each: {exc}") from None
        if not isinstance(items, list):
            raise ResolveError(f"{_where(rb, s)}.for_each: {items!r} is not a list of regions")
        copies[s.id] = [(f"{s.id}-{r}", str(r)) for r in items]
    deps = {s.id: s.depends_on for s in steps}

    def through(dep: str, seen: set[str]) -> list[str]:
        if dep not in copies:
            return [dep]
        if copies[dep]:
            return [cid for cid, _ in copies[dep]]
        out: list[str] = []
        for d in deps.get(dep, []):
            if d not in seen:
                seen.add(d)
                out += through(d, seen)
        return out

    planned: list[PlannedStep] = []
    for s in steps:
        where = _where(rb, s)
        depends = list(dict.fromkeys(d for dep in s.depends_on for d in through(dep, set())))
        for cid, region in copies.get(s.id, [(s.id, "")]):
            step = s.model_copy(update={"id": cid, "depends_on": depends})
            ctx = {**context, EACH: region} if s.id in copies else context
            planned.append(plan_step(step, where, rb, ctx))
    ids = [p.id for p in planned]
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        raise ResolveError(f"step id {twice[0]!r} twice once for_each steps are repeated")
    return planned


def _signers(rb: Runbook, extra: list[Signer]) -> list[Signer]:
    """The runbook's allowed signers, then the others, each (name, key) once."""
    out: list[Signer] = []
    for s in [*(Signer(name=n, key=k) for n, k in rb.signer_keys()), *extra]:
        if s not in out:
            out.append(s)
    return out


def _where(rb: Runbook, step: Step) -> str:
    """A step's place in the runbook, for errors: steps[3] (id) or recovery[0] (id)."""
    for section in ("steps", "recovery"):
        for i, s in enumerate(getattr(rb, section)):
            if s.id == step.id:
                return f"{section}[{i}] ({step.id})"
    return step.id


def _uses(steps: list[PlannedStep], region: str) -> list[tuple[PlannedStep, StepType[Any]]]:
    """The steps (and the types: the step's own, or a guard's) that call endpoints of a region;
    a step's guards run with it, in every kind of run."""
    out = []
    for step in steps:
        for type_name, params in [(step.type, step.params),
                                  *((g.type, g.params) for g in step.guards)]:  # fmt: skip
            stype = registry.get(type_name)
            if stype is not None and region in stype.regions_used(stype.parse(params),
                                                                  step.region):  # fmt: skip
                out.append((step, stype))
    return out


def _reach(steps: list[PlannedStep], source: str) -> ReachCall | None:
    """What a planned run asks of its source region before it starts: the endpoints its steps
    use there (Kubernetes, AWS)."""
    used = _uses(steps, source)
    kubernetes = any(t.verbs for _, t in used)
    aws = any(t.actions for _, t in used)
    return ReachCall(region=source, kubernetes=kubernetes, aws=aws) if kubernetes or aws else None


def _static_stability(steps: list[PlannedStep], failed: str) -> None:
    """An unplanned run depends on nothing in the region it leaves: no step may act there or
    need a control plane served from there (Route 53's API lives in us-east-1)."""
    for step, stype in _uses(steps, failed):
        what = step.type if stype.name == step.type else f"its guard {stype.name}"
        raise ResolveError(
            f"step {step.id} ({what}) depends on {failed}, the region an unplanned run "
            "leaves: skip it, defer it, or replace it in unplanned runs (`unplanned:`)"
        )


def context_for(rb: Runbook, from_region: str, to_region: str, given: dict[str, Any]) -> dict:
    unknown = sorted(set(given) - set(rb.parameters))
    if unknown:
        known = ", ".join(sorted(rb.parameters)) or "none"
        raise ResolveError(f"--param {unknown[0]}: unknown parameter (runbook has: {known})")
    context: dict[str, Any] = {"from_region": from_region, "to_region": to_region}
    context |= region_lists(rb.regions, from_region, to_region)
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
        account=step.account,
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
        # a step marked irreversible is not undone, whatever its type could do (a promotion
        # without a demotion token: demoting it again would not bring the lost writes back)
        reversible=stype.reversible and not step.irreversible,
        gate=gate,
        wait=wait,
    )


def plan_actions(
    actions: list[Action], prefix: str, where: str, rb: Runbook, context: dict[str, Any]
) -> list[PlannedStep]:
    """Detectors (or any list of actions) as planned steps `{prefix}-{i}`, located `where[i]`."""
    return [
        plan_step(
            Step(
                id=f"{prefix}-{i}",
                type=a.type,
                params=a.params,
                region=a.region,
                account=a.account,
                timeout=a.timeout,
                description=a.description,
            ),
            f"{where}[{i}]",
            rb,
            context,
        )
        for i, a in enumerate(actions)
    ]
