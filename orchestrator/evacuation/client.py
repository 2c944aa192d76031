"""Starting an evacuation and talking to a running one (what the CLI and tests use), beside
`orchestrator.switch` for switches.

One evacuation per plan at a time: the workflow id is `evacuation-<plan>`, started with the FAIL
conflict policy. An evacuation that changes something holds leases on every resource its services
write (`orchestrator.leases`), and each service's switch holds its own: a switch, a game day or
another evacuation that would write one of them is refused with the holder's details while it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from typing import Any

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from orchestrator import leases, switch
from orchestrator import search_attributes as sa
from orchestrator.evacuation.resolve import resources
from orchestrator.evacuation.runs import (
    EvacuationInput,
    EvacuationProgress,
    ServiceState,
    child_workflow_id,
    evacuation_workflow_id,
)
from orchestrator.runs import Abort, Decision, RunProgress
from workflows.evacuation import EvacuationWorkflow

Handle = WorkflowHandle[EvacuationWorkflow, EvacuationProgress]
FINISHING_CHECKS = 60  # x 0.25 s: how long a new evacuation waits for the previous one to close


def summary(inp: EvacuationInput) -> str:
    """The one-line summary shown in the Temporal UI's run list and header."""
    kind = "" if inp.kind == "planned" else f"{inp.kind} "
    to = f" -> {inp.to_region}" if inp.to_region else ""
    names = ", ".join(s.name for s in inp.services)
    if inp.to_auto:  # each service's own target
        to = " -> auto"
        names = ", ".join(f"{s.name} -> {s.switch.to_region}" for s in inp.services)
    return (
        f"{kind}{inp.mode} evacuation {inp.plan}: {inp.from_region}{to} ({names}; requested by "
        f"{inp.requester})"
    )


def attributes(inp: EvacuationInput, *extra: SearchAttributePair[Any]) -> TypedSearchAttributes:
    """An evacuation's search attributes when it starts (state RUNNING), and any extra ones."""
    pairs: list[SearchAttributePair[Any]] = [
        SearchAttributePair(sa.EVACUATION, inp.plan),
        SearchAttributePair(sa.FROM_REGION, inp.from_region),
        SearchAttributePair(sa.MODE, inp.mode),
        SearchAttributePair(sa.STATE, "RUNNING"),
        SearchAttributePair(sa.REQUESTER, inp.requester),
        SearchAttributePair(sa.KIND, inp.kind),
    ]
    if inp.to_region:
        pairs.append(SearchAttributePair(sa.TO_REGION, inp.to_region))
    return TypedSearchAttributes([*pairs, *extra])


def with_leases(inp: EvacuationInput, workflow_id: str) -> EvacuationInput:
    """The input with the lease keys each service's switch (and switch back) holds."""
    if inp.mode == "dry-run":
        return inp
    services = []
    for s in inp.services:
        own = leases.resources(s.switch, child_workflow_id(workflow_id, s.name))
        back = []
        if s.failback is not None:
            fid = child_workflow_id(workflow_id, s.name, failback=True)
            back = leases.resources(s.failback, fid)
        services.append(
            s.model_copy(
                update={
                    "switch_leases": sorted(leases.keyed(own)),
                    "failback_leases": sorted(leases.keyed(back)),
                }
            )
        )
    return inp.model_copy(update={"services": services})


def sharded(inp: EvacuationInput) -> bool:
    """Whether the evacuation holds some of its leases on lease shards: its worker starts them
    before it changes anything, and its start waits for that (it needs a worker polling)."""
    held = [] if inp.mode == "dry-run" else resources(inp, evacuation_workflow_id(inp.plan))
    return bool(leases.shards(held))


async def start(
    client: Client,
    inp: EvacuationInput,
    task_queue: str,
    workflow_id_override: str | None = None,
) -> Handle:
    """Start an evacuation; refused (switch.AlreadyRunningError) while another one of the plan
    runs, and (leases.LeaseConflictError) while another run holds what it would write."""
    wid = workflow_id_override or evacuation_workflow_id(inp.plan)
    inp = with_leases(inp, wid)
    held = [] if inp.mode == "dry-run" else resources(inp, wid)
    inp = inp.model_copy(update={"lease_shards": leases.shards(held)})
    for _ in range(FINISHING_CHECKS):
        try:
            return await _start(client, inp, task_queue, wid, held)
        except switch.AlreadyRunningError as exc:
            if not exc.finishing:
                raise
            await asyncio.sleep(0.25)  # the one before only writes its report
    return await _start(client, inp, task_queue, wid, held)


async def _start(
    client: Client, inp: EvacuationInput, task_queue: str, wid: str, held: list[str]
) -> Handle:
    async def start(*extra: SearchAttributePair[Any]) -> Handle:
        return await client.start_workflow(
            EvacuationWorkflow.run,
            inp,
            id=wid,
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            search_attributes=attributes(inp, *extra),
            static_summary=summary(inp),
            execution_timeout=timedelta(days=30),
        )

    try:
        if not held:
            return await start()
        return await leases.start_holding(
            client, held, wid, start, f"evacuation {inp.plan!r}", sharded=True
        )
    except WorkflowAlreadyStartedError:
        running = handle(client, wid)
        who, finishing = "", False
        with contextlib.suppress(Exception):  # the message is right without the details
            p = await running.query(EvacuationWorkflow.progress, rpc_timeout=timedelta(seconds=3))
            finishing = p.state.final
            who = (
                f", {p.mode} from {p.from_region} requested by {p.requester} at "
                f"{p.started_at:%Y-%m-%d %H:%M:%S}Z, now {p.state.value}"
            )
        desc = await running.describe()
        raise switch.AlreadyRunningError(
            f"an evacuation of plan {inp.plan!r} is already running: workflow {wid} run "
            f"{desc.run_id}{who}",
            finishing=finishing,
        ) from None


def handle(client: Client, wid: str, run_id: str | None = None) -> Handle:
    """A handle on an evacuation by workflow id (latest run unless run_id is given)."""
    return client.get_workflow_handle_for(EvacuationWorkflow.run, wid, run_id=run_id)


async def progress(h: Handle) -> EvacuationProgress:
    """The service table: a query while it runs, its recorded result once it ended."""
    desc = await h.describe()
    if desc.status is not None and desc.status != WorkflowExecutionStatus.RUNNING:
        try:
            return await h.result()
        except WorkflowFailureError as exc:
            raise switch.RefusedError(
                f"evacuation {h.id} ended as {desc.status.name} with no result: {exc.cause}"
            ) from None
    return await h.query(EvacuationWorkflow.progress)


def running_switch(p: EvacuationProgress, service: str) -> tuple[str, str | None] | None:
    """The switch of a service that runs now (its switch, or its switch back), if any."""
    rec = p.service(service)
    if rec.state == ServiceState.RUNNING and rec.workflow_id:
        return rec.workflow_id, rec.run_id
    if rec.state == ServiceState.FAILING_BACK and rec.failback_workflow_id:
        return rec.failback_workflow_id, rec.failback_run_id
    return None


async def live(client: Client, p: EvacuationProgress) -> dict[str, RunProgress]:
    """The progress of every service's switch that runs now (asked of each, in parallel; a
    switch that does not answer in time is left out): their current steps and open gates."""
    refs = {s.name: ref for s in p.services if (ref := running_switch(p, s.name)) is not None}

    async def one(wid: str, rid: str | None) -> RunProgress | None:
        try:
            return await asyncio.wait_for(switch.progress(switch.handle(client, wid, rid)), 5)
        except (RPCError, TimeoutError, switch.RefusedError, switch.NoWorkerError):
            return None

    got = await asyncio.gather(*(one(*ref) for ref in refs.values()))
    return {name: r for name, r in zip(refs, got, strict=True) if r is not None}


async def approve(h: Handle, decision: Decision) -> str:
    """Approve the evacuation's open gate (refused: RefusedError with the workflow's reason)."""
    return await switch.update(h, "approve", decision)


async def reject(h: Handle, decision: Decision) -> str:
    """Reject the evacuation's open gate: everything switched is switched back."""
    return await switch.update(h, "reject", decision)


async def abort(h: Handle, req: Abort) -> str:
    """Abort the evacuation: running switches roll back, switched services are switched back."""
    return await switch.update(h, "abort", req)


async def service_decision(
    client: Client, h: Handle, service: str, decision: Decision, approving: bool = True
) -> str:
    """Approve (or reject) an open gate of one service's own switch (one its evacuation's
    approval could not stand in for)."""
    p = await progress(h)
    try:
        ref = running_switch(p, service)
    except StopIteration:
        names = ", ".join(s.name for s in p.services)
        raise switch.RefusedError(f"no service {service!r} in {h.id} (services: {names})") from None
    if ref is None:
        state = p.service(service).state.value
        raise switch.RefusedError(f"service {service}'s switch is not running ({state})")
    child = switch.handle(client, *ref)
    if approving:
        return await switch.approve(child, decision)
    return await switch.reject(child, decision)
