"""`--to auto`: choose the region a switch goes to, before the workflow starts.

Every region of the runbook but the source is a candidate, in the runbook's order. Each is
resolved as the target (a runbook that cannot run toward it is out, with the reason) and checked
with the readiness checks of that direction that say whether it can take the service
(`activities.readiness`): capacity (each Auto Scaling group the runbook sizes there can take the
capacity it would set) and health (the runbook's read-only health checks, such as a GET of the
target's app). The first candidate whose checks are all green is chosen: the runbook's order is
the tie-break, so the same world always gives the same choice. A candidate with no such checks
qualifies (nothing says it cannot take the service), and says so. The choice and every
candidate's reasons go into the run's input (`SwitchInput.target_choice`): `failover plan`,
the first line of `drill`/`run` and the run's report show them.
"""

from __future__ import annotations

from typing import Any

from activities import registry
from activities.clients import Clients
from activities.readiness import capacity_checks, health_checks
from orchestrator.runbook.models import Runbook
from orchestrator.runbook.modes import Kind
from orchestrator.runbook.resolve import ResolveError, resolve
from orchestrator.runs import Mode, SwitchInput, TargetCandidate, TargetChoice

#: What `--to` takes to choose the target itself.
AUTO = "auto"
#: Seconds a red health check is polled before the candidate is out (it answers within that).
PATIENCE = 3.0


class NoTargetError(ValueError):
    """No region qualifies (one line, naming each region and why)."""

    def __init__(self, from_region: str, candidates: list[TargetCandidate]) -> None:
        self.candidates = candidates
        why = "; ".join(
            f"{c.region}: {c.reasons[0] if c.reasons else 'not qualified'}" for c in candidates
        )
        why = why or "the runbook names no other region"
        super().__init__(f"--to auto: no region can take the service from {from_region} ({why})")


def _in_target(sw: SwitchInput) -> SwitchInput:
    """The run with only the steps that act in its target region (what says whether the target
    can take the service: not the source's scale-down)."""
    kept = []
    for step in sw.steps:
        stype = registry.get(step.type)
        if stype is not None and sw.to_region in stype.regions_used(
            stype.parse(step.params), step.region
        ):
            kept.append(step)
    return sw.model_copy(update={"steps": kept})


def candidate(sw: SwitchInput, clients: Clients, patience: float = PATIENCE) -> TargetCandidate:
    """One target checked: capacity and health in the direction of `sw`, of the steps that act
    in the target."""
    target = _in_target(sw)
    checks = [*capacity_checks(target, clients), *health_checks(target, clients, patience)]
    checks.sort(key=lambda c: c.ok)  # the red ones first: they are the reasons it is out
    reasons = [f"{c.kind} {c.step}: {c.detail}" for c in checks]
    if not checks:
        reasons = ["no capacity or health check in the runbook for this direction"]
    return TargetCandidate(region=sw.to_region, ok=all(c.ok for c in checks), reasons=reasons)


def choose(
    rb: Runbook,
    from_region: str,
    clients: Clients,
    *,
    requester: str,
    mode: Mode = "drill",
    params: dict[str, Any] | None = None,
    kind: Kind = "planned",
    patience: float = PATIENCE,
    **resolving: Any,
) -> SwitchInput:
    """The run resolved toward the region `--to auto` chooses, with the choice recorded in it;
    NoTargetError when none qualifies; ResolveError when the source is not the runbook's.
    `resolving`: more of `resolve`'s arguments (how approvals are authenticated)."""
    if from_region not in rb.regions:
        raise ResolveError(
            f"--from: unknown region {from_region!r} "
            f"(runbook {rb.name!r} switches between {', '.join(rb.regions)})"
        )
    candidates: list[TargetCandidate] = []
    runs: dict[str, SwitchInput] = {}
    for region in (r for r in rb.regions if r != from_region):
        try:
            sw = resolve(rb, from_region, region, mode=mode, requester=requester,
                         params=params, kind=kind, **resolving)  # fmt: skip
        except ResolveError as exc:
            candidates.append(TargetCandidate(region=region, ok=False, reasons=[str(exc)]))
            continue
        runs[region] = sw
        candidates.append(candidate(sw, clients, patience))
    chosen = next((c.region for c in candidates if c.ok), None)
    if chosen is None:
        raise NoTargetError(from_region, candidates)
    choice = TargetChoice(chosen=chosen, candidates=candidates)
    return runs[chosen].model_copy(update={"target_choice": choice})
