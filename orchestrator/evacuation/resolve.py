"""An evacuation plan resolved for one run: each service's runbook resolved from the region being
left to its target (and back, for the failbacks `rollback_all` and `abort` run), the evacuation's
gates, the leases it holds; and the checks that need runbooks resolved: two services that would
write the same resource, a service that cannot run in this direction.

`--to auto` chooses each service's target on its own, with `orchestrator.targets` (the runbook's
regions but the source, the first whose capacity and health checks are green, in the runbook's
order): the choice and its reasons are recorded in the service's switch (`target_choice`). A
service for which no region qualifies refuses the whole evacuation before anything starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from itertools import permutations
from typing import Literal

from activities.clients import Clients
from orchestrator import leases, targets
from orchestrator.evacuation.loader import LoadedPlan
from orchestrator.evacuation.rules import predecessors
from orchestrator.evacuation.runs import (
    EvacuationGate,
    EvacuationInput,
    ServicePlan,
    child_workflow_id,
)
from orchestrator.plan import critical_path as steps_critical_path
from orchestrator.runbook import graph
from orchestrator.runbook.loader import Problem
from orchestrator.runbook.resolve import ResolveError, resolve
from orchestrator.runs import GateSpec, Mode, SwitchInput

Kind = Literal["planned", "unplanned"]


class NoTargetError(ValueError):
    """`--to auto`: no region qualifies for one or more services (one line naming each such
    service and, for each of its regions, why)."""

    def __init__(self, refused: list[tuple[str, str, targets.NoTargetError]]) -> None:
        #: (service, runbook file, why no region of its runbook qualified)
        self.refused = refused
        super().__init__(
            "; ".join(f"service {name} ({runbook}): {exc}" for name, runbook, exc in refused)
        )


def is_auto(to_region: str | None) -> bool:
    """Whether `--to` asks for each service's target to be chosen (`--to auto`)."""
    return (to_region or "").strip().lower() == targets.AUTO


def target_of(loaded: LoadedPlan, service: str, from_region: str, to_region: str | None) -> str:
    """Where a service goes: `to_region`, else its runbook's other region (ResolveError if the
    runbook has more than one other)."""
    if to_region:
        return to_region
    regions = loaded.runbooks[service].regions
    others = [r for r in regions if r != from_region]
    if from_region not in regions:
        raise ResolveError(
            f"service {service}: --from: unknown region {from_region!r} (its runbook switches "
            f"between {', '.join(regions)})"
        )
    if len(others) != 1:
        raise ResolveError(
            f"service {service}: its runbook has regions {', '.join(regions)}: give --to"
        )
    return others[0]


def resolve_evacuation(
    loaded: LoadedPlan,
    from_region: str,
    to_region: str | None = None,
    *,
    mode: Mode = "drill",
    requester: str,
    kind: Kind | None = None,
    clients: Clients | None = None,
    patience: float = targets.PATIENCE,
) -> EvacuationInput:
    """The plan, ready to run away from `from_region` (ResolveError naming the service, one line,
    for a service that cannot run so). `kind` None: the plan's `mode`.

    `to_region` auto: each service's target chosen by `targets.choose` with `clients` (its
    readiness checks, read-only), the choice recorded in its switch; NoTargetError naming every
    service for which no region qualifies."""
    plan = loaded.plan
    run_kind: Kind = kind or plan.mode
    auto = is_auto(to_region)
    services = []
    refused: list[tuple[str, str, targets.NoTargetError]] = []
    for s in plan.services:
        rb = loaded.runbooks[s.name]
        params = dict(s.params)
        try:
            switch: SwitchInput
            if auto:
                if clients is None:
                    raise ValueError("--to auto: choosing needs clients to check the regions")
                switch = targets.choose(
                    rb,
                    from_region,
                    clients,
                    requester=requester,
                    mode=mode,
                    params=params,
                    kind=run_kind,
                    patience=patience,
                )
            else:
                switch = resolve(
                    rb,
                    from_region,
                    target_of(loaded, s.name, from_region, to_region),
                    mode=mode,
                    requester=requester,
                    params=params,
                    kind=run_kind,
                )
            target = switch.to_region
            failback = None
            if run_kind == "planned":
                failback = resolve(
                    rb,
                    target,
                    from_region,
                    mode=mode,
                    requester=requester,
                    params=params,
                    kind="planned",
                )
        except ResolveError as exc:
            raise ResolveError(f"service {s.name} ({s.runbook}): {exc}") from None
        except targets.NoTargetError as exc:
            refused.append((s.name, s.runbook, exc))
            continue
        services.append(
            ServicePlan(
                name=s.name,
                runbook=rb.name,
                tier=s.tier,
                depends_on=list(s.depends_on),
                switch=switch,
                failback=failback,
            )
        )
    if refused:
        raise NoTargetError(refused)
    gate = None
    if plan.approval is not None:
        a = plan.approval
        spec = GateSpec(
            approvers=list(a.approvers), approvals=a.approvals, expires=a.expires, message=a.message
        )
        gate = EvacuationGate(scope=a.scope, gate=spec)
    return EvacuationInput(
        plan=plan.name,
        from_region=from_region,
        to_region="" if auto else to_region or "",
        to_auto=auto,
        mode=mode,
        kind=run_kind,
        requester=requester,
        max_parallel=plan.max_parallel,
        failure_policy=plan.failure_policy,
        approval=gate,
        services=services,
        rto=plan.objectives.rto,
        notify=[r.model_copy(deep=True) for r in plan.notify],
    )


def service_runs(s: ServicePlan, evacuation_id: str) -> list[tuple[SwitchInput, str]]:
    """A service's switch and its switch back (if any), each with its child workflow id."""
    runs = [(s.switch, child_workflow_id(evacuation_id, s.name))]
    if s.failback is not None:
        runs.append((s.failback, child_workflow_id(evacuation_id, s.name, failback=True)))
    return runs


def service_resources(inp: EvacuationInput, evacuation_id: str) -> dict[str, list[str]]:
    """What each service writes, its switch and its failback (with its runbook's lease)."""
    out: dict[str, list[str]] = {}
    for s in inp.services:
        runs = service_runs(s, evacuation_id)
        out[s.name] = list(dict.fromkeys(n for r, wid in runs for n in leases.resources(r, wid)))
    return out


def resources(inp: EvacuationInput, evacuation_id: str) -> list[str]:
    """Every resource the evacuation writes: the leases it holds while it runs."""
    return list(
        dict.fromkeys(n for ns in service_resources(inp, evacuation_id).values() for n in ns)
    )


@dataclass(frozen=True)
class Overlap:
    """Two services of one plan that write the same resource."""

    first: str
    second: str
    resource: str


def overlaps(inp: EvacuationInput, evacuation_id: str) -> list[Overlap]:
    """Resources two services write (runbook leases aside: a plan may run one runbook twice,
    with parameters that make it write different things)."""
    by_service = service_resources(inp, evacuation_id)
    owner: dict[str, str] = {}
    out = []
    for s in inp.services:
        for name in by_service[s.name]:
            if name.startswith("runbook:"):
                continue
            if name in owner and owner[name] != s.name:
                out.append(Overlap(owner[name], s.name, name))
            owner.setdefault(name, s.name)
    return out


def overlap_problems(loaded: LoadedPlan, inp: EvacuationInput) -> list[Problem]:
    """Overlaps as problems located at the second service."""
    return [
        loaded.problem(
            o.second,
            f"service {o.second!r} writes {o.resource}, as service {o.first!r} does "
            f"({inp.from_region} -> {_to(inp)}): two services of one "
            "evacuation must not write the same resource",
        )
        for o in overlaps(inp, "evacuation-" + loaded.plan.name)
    ]


def _to(inp: EvacuationInput) -> str:
    if inp.to_auto:
        return "the regions --to auto chose"
    return inp.to_region or "the other region"


def lease_problems(loaded: LoadedPlan, inp: EvacuationInput) -> list[Problem]:
    """Services whose switch (or switch back) writes more than one run can hold (the evacuation
    itself holds any number, on lease shards; each service's switch holds its own)."""
    problems = []
    for s in inp.services:
        for run, wid in service_runs(s, "evacuation-" + loaded.plan.name):
            try:
                leases.keyed(leases.resources(run, wid))
            except ValueError as exc:
                problems.append(loaded.problem(s.name, f"service {s.name}: {exc}"))
                break
    return problems


def check(loaded: LoadedPlan) -> list[Problem]:
    """What `failover validate` checks once the runbooks are loaded: every direction between the
    regions the services share resolves (planned, and unplanned for an unplanned plan), no two
    services write the same resource, and each service's leases fit its switch."""
    shared = set.intersection(*(set(rb.regions) for rb in loaded.runbooks.values()))
    first = loaded.plan.services[0].name
    if len(shared) < 2:
        return [
            loaded.problem(
                first,
                "the services' runbooks have fewer than two "
                "regions in common: there is nowhere to evacuate to",
            )
        ]
    kinds: list[Kind] = ["planned"] if loaded.plan.mode == "planned" else ["planned", "unplanned"]
    problems: list[Problem] = []
    seen: set[str] = set()
    for frm, to in permutations(sorted(shared), 2):
        for kind in kinds:
            try:
                inp = resolve_evacuation(loaded, frm, to, requester="validate", kind=kind)
            except ResolveError as exc:
                text = str(exc)
                name = text.split(" ", 2)[1].rstrip(":") if text.startswith("service ") else first
                found = [loaded.problem(name, f"{kind} {frm} -> {to}: {text}")]
            else:
                found = overlap_problems(loaded, inp) + lease_problems(loaded, inp)
            for p in found:
                text = p.message.split(" (", 1)[0]
                if text not in seen:
                    seen.add(text)
                    problems.append(p)
    return problems


def critical_path(inp: EvacuationInput) -> tuple[list[str], timedelta]:
    """The chain of services (dependencies and tiers) with the longest sum of the services'
    own critical paths (by step timeouts and gate expiry: an upper bound)."""
    cost = {s.name: steps_critical_path(s.switch.steps)[1].total_seconds() for s in inp.services}
    path, total = graph.critical_path(predecessors(inp.services), cost)
    return path, timedelta(seconds=total)
