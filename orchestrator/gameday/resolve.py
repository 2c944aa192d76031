"""Resolve a runbook's `gameday:` section (or one of its `gamedays:`) into what GameDayWorkflow
runs.

Both directions are resolved up front (the switch, and the failback with regions swapped), and
for an unplanned game day the recovery of the failed region too, so a runbook that cannot fail
back is refused before anything is injected.
"""

from __future__ import annotations

from typing import Any

from orchestrator.gameday.models import GameDayInput, GameDayObjectives, SloTarget, StopRule
from orchestrator.runbook.models import Runbook, Step
from orchestrator.runbook.resolve import (
    ResolveError,
    context_for,
    plan_actions,
    plan_step,
    resolve,
)
from orchestrator.runbook.templates import TemplateError, render
from orchestrator.runs import GateSpec, RetrySpec


def resolve_gameday(
    rb: Runbook,
    name: str,
    from_region: str,
    to_region: str,
    *,
    requester: str,
    params: dict[str, Any] | None = None,
) -> GameDayInput:
    """The game day of `rb` from `from_region` to `to_region` and back."""
    gd = rb.game_day(name)
    if gd is None:
        raise ResolveError(f"runbook {rb.name!r} has no gameday section: nothing to inject")
    given = {**gd.params, **(params or {})}
    switch = resolve(rb, from_region, to_region, mode="gameday", requester=requester,
                     params=given, kind=gd.mode)  # fmt: skip
    recovery = None
    if gd.mode == "unplanned":  # the failed region's owed work, once the fault is removed
        recovery = resolve(rb, from_region, to_region, mode="gameday", requester=requester,
                           params=given, kind="recovery")  # fmt: skip
    failback = resolve(
        rb, to_region, from_region, mode="gameday", requester=requester, params=given
    )
    context = context_for(rb, from_region, to_region, given)
    fault = plan_step(
        Step(
            id="fault",
            type=gd.fault.type,
            params=gd.fault.params,
            region=gd.fault.region,
            account=gd.fault.account,
            timeout=gd.fault.timeout,
            description=gd.fault.description,
        ),
        "gameday.fault",
        rb,
        context,
    )
    # Removing the fault is retried far longer than a step: leaving it behind is the worst case.
    fault.retry = RetrySpec(attempts=20, max_backoff=fault.retry.max_backoff)
    detect = plan_actions(gd.detect, "detect", "gameday.detect", rb, context)
    rules = []
    for i, cond in enumerate(gd.stop_conditions):
        rendered: dict[str, str | None] = {}
        for field in ("region", "alarm_region"):
            value = getattr(cond, field)
            try:
                rendered[field] = render(value, context) if value else None
            except TemplateError as exc:
                raise ResolveError(f"gameday.stop_conditions[{i}].{field}: {exc}") from None
            if rendered[field] is not None and rendered[field] not in rb.regions:
                raise ResolveError(
                    f"gameday.stop_conditions[{i}].{field}: {rendered[field]!r} is not one of "
                    "the runbook's regions"
                )
        region = rendered["region"]
        rules.append(
            StopRule(
                name=cond.name,
                region=region,
                max_error_rate=cond.max_error_rate,
                max_latency_ms=cond.max_latency_ms,
                alarm=cond.alarm,
                alarm_region=rendered["alarm_region"],
                hold=cond.for_,
            )
        )
    approval = None
    if gd.approval:
        approval = GateSpec(
            approvers=list(rb.approvers),
            approvals=gd.approvals,
            expires=gd.approval_expires,
            message=f"Game day {name}: approve to switch {from_region} -> {to_region}.",
        )
    slo = SloTarget(
        endpoint=gd.slo.endpoint,
        path=gd.slo.path,
        url=gd.slo.url,
        dns_zone=gd.slo.dns.zone if gd.slo.dns else None,
        dns_record=gd.slo.dns.record if gd.slo.dns else None,
        min_success_rate=gd.slo.min_success_rate,
        max_latency_ms=gd.slo.max_latency_ms,
    )
    return GameDayInput(
        name=name,
        runbook=rb.name,
        from_region=from_region,
        to_region=to_region,
        requester=requester,
        switch=switch,
        recovery=recovery,
        failback=failback,
        fault=fault,
        detect=detect,
        detect_timeout=gd.detect_timeout,
        approval=approval,
        unattended=gd.unattended,
        slo=slo,
        probe_interval=gd.probe_interval,
        probe_requests=gd.probe_requests,
        settle=gd.settle,
        settle_timeout=gd.settle_timeout,
        stop_conditions=rules,
        objectives=GameDayObjectives(mttd=gd.objectives.mttd, slo_breach=gd.objectives.slo_breach),
        regions=list(rb.regions),
        notify=[r.model_copy(deep=True) for r in rb.notify],
    )
