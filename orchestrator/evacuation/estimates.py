"""How long each service's switch is expected to take, from its past runs: what puts the
longest chains of an evacuation first (`rules.start_order`).

A service's estimate is the duration (start to close, as Temporal's visibility has it) of the
newest switch of its runbook that succeeded the same way (same source and target region, same
kind: planned or unplanned), drills and real failovers alike, dry runs not. The weekly drills
and game days give every service one. Services of one plan that share a runbook share its
estimate; a service whose runbook never switched that way has none (counted as the mean of the
others'). A switch that waited at a gate counts its wait: an estimate orders the starts, it
promises nothing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from temporalio.client import Client

from orchestrator import search_attributes as sa
from orchestrator.evacuation.runs import EvacuationInput
from orchestrator.runs import RunState

#: The most past switches read per (source, target) pair: the newest first.
SCAN_LIMIT = 5000


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def query(from_region: str, to_region: str, kind: str = "planned") -> str:
    """The visibility query of the successful switches of one kind, one way (not dry runs)."""
    return (
        f"WorkflowType = 'RegionSwitch' AND {sa.STATE.name} = {_quote(RunState.SUCCEEDED.value)}"
        f" AND {sa.FROM_REGION.name} = {_quote(from_region)}"
        f" AND {sa.TO_REGION.name} = {_quote(to_region)}"
        f" AND {sa.KIND.name} = {_quote(kind)} AND {sa.MODE.name} != 'dry-run'"
    )


async def past_durations(
    client: Client,
    ways: Iterable[tuple[str, str, str]],
    kind: str = "planned",
    limit: int = SCAN_LIMIT,
) -> dict[tuple[str, str, str], float]:
    """Seconds the newest successful switch of `kind` of each (runbook, source, target)
    took."""
    wanted: dict[tuple[str, str], set[str]] = defaultdict(set)
    for name, frm, to in ways:
        wanted[(frm, to)].add(name)
    found: dict[tuple[str, str, str], tuple[float, float]] = {}  # -> (closed at, took)
    for (frm, to), runbooks in wanted.items():
        async for wf in client.list_workflows(query(frm, to, kind), limit=limit):
            runbook = wf.typed_search_attributes.get(sa.RUNBOOK)
            if runbook is None or runbook not in runbooks:
                continue
            if wf.close_time is None or wf.start_time is None:  # (still writing its report)
                continue
            closed, took = wf.close_time.timestamp(), (wf.close_time - wf.start_time)
            key = (runbook, frm, to)
            if key not in found or closed > found[key][0]:
                found[key] = (closed, took.total_seconds())
    return {k: took for k, (_, took) in found.items()}


async def with_estimates(client: Client, inp: EvacuationInput) -> EvacuationInput:
    """The evacuation's input with each service's `expected_s` from its past switches."""
    ways = {(s.switch.runbook, s.switch.from_region, s.switch.to_region) for s in inp.services}
    took = await past_durations(client, ways, inp.kind)
    services = [
        s.model_copy(
            update={
                "expected_s": took.get((s.switch.runbook, s.switch.from_region, s.switch.to_region))
            }
        )
        for s in inp.services
    ]
    return inp.model_copy(update={"services": services})
