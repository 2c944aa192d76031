"""Resolve a runbook's `guard:` section into what GuardWorkflow runs: the detectors for each
region as the active one, and the switch out of each region, all resolved up front (a runbook
that cannot switch out of a region is refused before the guard starts)."""

from __future__ import annotations

from typing import Any

from orchestrator.guard.models import GuardInput, GuardState
from orchestrator.runbook.models import Runbook
from orchestrator.runbook.resolve import (
    ResolveError,
    context_for,
    plan_actions,
    resolve,
)


def target_of(rb: Runbook, region: str) -> str:
    """Where the guard switches a region's service: the next region in the runbook's list."""
    i = rb.regions.index(region)
    return rb.regions[(i + 1) % len(rb.regions)]


def resolve_guard(
    rb: Runbook, active: str, *, requester: str, params: dict[str, Any] | None = None
) -> GuardInput:
    """The guard of `rb`, watching `active` first."""
    spec = rb.guard
    if spec is None:
        raise ResolveError(f"runbook {rb.name!r} has no guard section: nothing to watch with")
    if active not in rb.regions:
        raise ResolveError(
            f"--active: unknown region {active!r} (runbook {rb.name!r} switches between "
            f"{', '.join(rb.regions)})"
        )
    given = {**spec.params, **(params or {})}
    detectors, switches = {}, {}
    for region in rb.regions:
        to = target_of(rb, region)
        switches[region] = resolve(rb, region, to, mode="failover", requester=requester,
                                   params=given, kind=spec.mode)  # fmt: skip
        context = context_for(rb, region, to, given)
        detectors[region] = plan_actions(spec.detect, "detect", "guard.detect", rb, context)
    return GuardInput(
        runbook=rb.name,
        requester=requester,
        regions=list(rb.regions),
        interval=spec.interval,
        confirm_failures=spec.confirm.failures,
        confirm_of=spec.confirm.of,
        confirm_for=spec.confirm.for_,
        cooldown=spec.cooldown,
        flap_window=spec.flap_window,
        kind=spec.mode,
        auto_approve=spec.auto_approve,
        detectors=detectors,
        switches=switches,
        notify=list(rb.notify),
        state=GuardState(active=active),
    )
