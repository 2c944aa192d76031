"""The rules of an evacuation, as plain functions over plain data: the workflow, the views and the
report share them, and they are unit-tested on their own (no I/O, no clock: times are passed in).

- `predecessors`: what a service waits for (its dependencies, and every service of a lower tier);
- `start_order`: which of the services ready at once starts first (the longest expected chain);
- `gate_for`: the evacuation gate that covers a service (one for all, or its tier's);
- `preapprove`: the service's own gates approved by whoever approved the evacuation's gate, where
  each gate allows it;
- `outcome`: the evacuation's final state from its services';
- `path_taken`: the critical path actually taken (what each service waited for last).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from orchestrator.evacuation.runs import (
    EvacState,
    GateWait,
    Scope,
    ServicePlan,
    ServiceRecord,
    ServiceState,
)
from orchestrator.runbook.graph import ancestors, levels
from orchestrator.runs import SwitchInput


class _Service(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def tier(self) -> int: ...
    @property
    def depends_on(self) -> list[str]: ...


def predecessors(services: Sequence[_Service]) -> dict[str, list[str]]:
    """Every service a service waits for: its `depends_on` and every service of a lower tier
    (in plan order, without repeats)."""
    out: dict[str, list[str]] = {}
    for s in services:
        lower = [o.name for o in services if o.tier < s.tier]
        out[s.name] = list(dict.fromkeys([*s.depends_on, *lower]))
    return out


def start_order(services: Sequence[ServicePlan]) -> list[str]:
    """The order in which services that are ready at once take the free places: lower tiers
    first; within a tier, when durations are expected (`ServicePlan.expected_s`, from past
    runs), the longest chain first: the service's own expected duration plus the longest chain
    of what waits for it (a service without an estimate counts the mean of the others'); else,
    and between equals, plan order. With no estimate at all this is exactly plan order by tier
    (as evacuations started before estimates existed ran)."""
    known = [s.expected_s for s in services if s.expected_s is not None]
    index = {s.name: i for i, s in enumerate(services)}
    tier = {s.name: s.tier for s in services}
    if not known:
        return sorted(index, key=lambda n: tier[n])  # (stable: plan order within a tier)
    mean = sum(known) / len(known)
    own = {s.name: mean if s.expected_s is None else s.expected_s for s in services}
    preds = predecessors(services)
    after: dict[str, list[str]] = {n: [] for n in index}
    for name, before in preds.items():
        for b in before:
            after[b].append(name)
    chain: dict[str, float] = {}
    for level in reversed(levels(preds)):  # what waits for a service is on a later level
        for name in level:
            chain[name] = own[name] + max((chain[a] for a in after[name]), default=0.0)
    return sorted(index, key=lambda n: (tier[n], -chain[n], index[n]))


def gate_for(scope: Scope, tier: int) -> str:
    """The evacuation gate covering a service of `tier`."""
    return "evacuation" if scope == "evacuation" else f"tier-{tier}"


def preapprove(
    inp: SwitchInput, approvers: Sequence[str]
) -> tuple[SwitchInput, list[str], list[str]]:
    """The switch with its gates approved by `approvers` (who approved the evacuation's gate)
    where the gate allows it: enough of them are among its approvers (the gate's own, else the
    runbook's; none listed: anyone but the requester), and no irreversible step depends on it
    (a person approves those, on the service's own switch). Returns the switch, the gates
    pre-approved and the gates left to people."""
    deps = {s.id: s.depends_on for s in inp.steps}
    guarding = {g for s in inp.steps if s.irreversible for g in ancestors(deps, s.id)}
    steps, done, left = [], [], []
    for s in inp.steps:
        if s.gate is None:
            steps.append(s)
            continue
        allowed = s.gate.approvers or inp.approvers
        eligible = [a for a in approvers if a != inp.requester and (not allowed or a in allowed)]
        if s.id not in guarding and len(eligible) >= s.gate.approvals:
            by = ", ".join(eligible)
            s = s.model_copy(update={"gate": s.gate.model_copy(update={"preapproved_by": by})})
            done.append(s.id)
        else:
            left.append(s.id)
        steps.append(s)
    return inp.model_copy(update={"steps": steps}), done, left


#: A service whose switch ended with its world in doubt: an operator is needed.
STUCK = (ServiceState.ROLLBACK_FAILED, ServiceState.FAILBACK_FAILED)


def outcome(records: Sequence[ServiceRecord]) -> EvacState:
    """The final state: ROLLBACK_FAILED when a service's rollback or failback failed; SUCCEEDED
    when every service switched; ROLLED_BACK when none is left switched; else PARTIAL."""
    states = [r.state for r in records]
    if any(s in STUCK for s in states):
        return EvacState.ROLLBACK_FAILED
    if all(s == ServiceState.SUCCEEDED for s in states):
        return EvacState.SUCCEEDED
    if not any(s == ServiceState.SUCCEEDED for s in states):
        return EvacState.ROLLED_BACK
    return EvacState.PARTIAL


def path_taken(
    records: Sequence[ServiceRecord], gates: Mapping[str, GateWait], last: str
) -> list[str]:
    """The critical path actually taken to service `last`: what it waited for last (a service, a
    gate `gate:GATE`, or a service whose end freed a place under max_parallel), what that waited
    for, and so on; first to last."""
    by_name = {r.name: r for r in records}
    path: list[str] = []
    node = last
    while node and node not in path:
        path.append(node)
        if node.startswith("gate:"):
            wait = gates.get(node.removeprefix("gate:"))
            node = wait.after if wait is not None else ""
        else:
            rec = by_name.get(node)
            node = rec.after.removeprefix("slot:") if rec is not None else ""
    return list(reversed(path))


def last_done(records: Sequence[ServiceRecord]) -> str | None:
    """The service that ended last among those that switched (None if none did)."""
    done = [r for r in records if r.state == ServiceState.SUCCEEDED and r.ended_at]
    if not done:
        return None
    return max(done, key=lambda r: r.ended_at).name  # type: ignore[arg-type,return-value]
