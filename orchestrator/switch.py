"""Starting a region switch and talking to a running one (what the CLI and tests use).

One switch per runbook at a time: the workflow id is `switch-<runbook>`, started with the
FAIL conflict policy, so a second start while one runs is refused by Temporal itself (no race),
and the message names the running one. A switch that changes something also holds leases on the
resources it writes (`orchestrator.leases`): a start while another run (a switch of another
runbook, an evacuation, a game day) holds one of them is refused with the holder's details.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from pydantic import BaseModel
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.common import (
    SearchAttributePair,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from orchestrator import leases
from orchestrator import search_attributes as sa
from orchestrator.runs import (
    Abort,
    Decision,
    OperatorAction,
    OwedStep,
    RunProgress,
    SwitchInput,
    switch_workflow_id,
)
from workflows.region_switch import RegionSwitchWorkflow

Handle = WorkflowHandle[RegionSwitchWorkflow, RunProgress]


class AlreadyRunningError(RuntimeError):
    """A switch of this runbook is already running (the message names it); `finishing`: it has
    ended and only writes its report and last notifications."""

    def __init__(self, message: str, finishing: bool = False) -> None:
        super().__init__(message)
        self.finishing = finishing


class RefusedError(RuntimeError):
    """The workflow refused an Update (the validator's message, one line)."""


class NoWorkerError(RuntimeError):
    """The run needs a worker to answer and none polls its task queue."""


class NoAnswerError(NoWorkerError):
    """A worker polls the run's task queue but the run did not answer in time."""


def summary(inp: SwitchInput) -> str:
    """The one-line summary shown in the Temporal UI's run list and header."""
    kind = "" if inp.kind == "planned" else f"{inp.kind} "
    return (
        f"{kind}{inp.mode} {inp.runbook}: {inp.from_region} -> {inp.to_region} "
        f"(requested by {inp.requester})"
    )


async def start(
    client: Client,
    inp: SwitchInput,
    task_queue: str,
    workflow_id_override: str | None = None,
) -> Handle:
    """Start a switch; refused with AlreadyRunningError while another one of the runbook runs,
    and a planned switch to a region that still owes work (RefusedError with the command)."""
    if inp.kind == "planned" and inp.mode != "dry-run":
        debt = await _owed(client, inp.runbook, inp.to_region)
        if isinstance(debt, Debt):
            raise RefusedError(
                f"{inp.to_region} still owes the work an unplanned switch deferred to it "
                f"({debt.workflow_id}: {', '.join(o.id for o in debt.owed)}): run "
                f"'failover recover {inp.runbook} --region {inp.to_region}' first"
            )
    if inp.kind == "recovery" and await _owed(client, inp.runbook, inp.from_region) is None:
        raise RefusedError(
            f"{inp.from_region} owes nothing to runbook {inp.runbook!r}: no unplanned switch "
            "away from it deferred any work"
        )
    wid = workflow_id_override or switch_workflow_id(inp.runbook)
    # A dry run changes nothing: it holds no lease.
    held = [] if inp.mode == "dry-run" else leases.resources(inp, wid)
    for _ in range(FINISHING_CHECKS):
        try:
            return await _start(client, inp, task_queue, wid, held)
        except AlreadyRunningError as exc:
            if not exc.finishing:
                raise
            # The switch before it has ended and only writes its report and sends its last
            # notifications (seconds, on any worker: this command's own, if it hosts one).
            await asyncio.sleep(0.25)
    return await _start(client, inp, task_queue, wid, held)


FINISHING_CHECKS = 60  # x 0.25 s: how long a new switch waits for the previous one to close


async def _start(
    client: Client, inp: SwitchInput, task_queue: str, wid: str, held: list[str]
) -> Handle:
    async def start(*extra: SearchAttributePair[Any]) -> Handle:
        return await client.start_workflow(
            RegionSwitchWorkflow.run,
            inp,
            id=wid,
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            search_attributes=sa.of_switch(inp, *extra),
            static_summary=summary(inp),
            static_details=_static_details(inp),
            execution_timeout=timedelta(days=30),
        )

    try:
        if not held:
            return await start()
        return await leases.start_holding(
            client, held, wid, start, f"the {inp.mode} of runbook {inp.runbook!r}"
        )
    except WorkflowAlreadyStartedError:
        running: Handle = client.get_workflow_handle_for(RegionSwitchWorkflow.run, wid)
        who, finishing = "", False
        try:
            progress = await running.query(
                RegionSwitchWorkflow.progress, rpc_timeout=timedelta(seconds=3)
            )
            finishing = progress.state.final
            who = (
                f", {progress.mode} {progress.from_region} -> {progress.to_region} "
                f"requested by {progress.requester} at {progress.started_at:%Y-%m-%d %H:%M:%S}Z, "
                f"now {progress.state.value}"
            )
        except Exception:  # the message is still right without the details
            pass
        desc = await running.describe()
        raise AlreadyRunningError(
            f"a switch of runbook {inp.runbook!r} is already running: workflow {wid} "
            f"run {desc.run_id}{who}",
            finishing=finishing,
        ) from None


class Debt(BaseModel):
    """Work an unplanned switch deferred to a failed region, not recovered yet."""

    workflow_id: str
    run_id: str
    owed: list[OwedStep]


async def owed_by(client: Client, runbook: str, region: str) -> Debt | None:
    """The work a region owes the runbook: what the last unplanned switch away from it
    deferred, unless a recovery of it succeeded since (None: it owes nothing)."""
    query = (
        f"WorkflowType = 'RegionSwitch' AND FailoverRunbook = '{runbook}' "
        f"AND FailoverFromRegion = '{region}' AND FailoverState = 'SUCCEEDED' "
        "AND FailoverKind IN ('unplanned', 'recovery') AND FailoverMode != 'dry-run'"
    )
    async for wf in client.list_workflows(query, limit=1):  # the newest
        if wf.typed_search_attributes.get(sa.KIND) != "unplanned":
            return None  # recovered since
        result = await handle(client, wf.id, wf.run_id).result()
        return Debt(workflow_id=wf.id, run_id=wf.run_id, owed=result.owed) if result.owed else None
    return None


async def _owed(client: Client, runbook: str, region: str) -> Debt | str | None:
    """`owed_by`, or "unknown" where the server has no visibility (Temporal's time-skipping
    test server): the checks that depend on it are then skipped, not failed."""
    try:
        return await owed_by(client, runbook, region)
    except RPCError as exc:
        if exc.status == RPCStatusCode.UNIMPLEMENTED:
            return "unknown"
        raise


def _static_details(inp: SwitchInput) -> str:
    kind = "" if inp.kind == "planned" else f"{inp.kind} "
    lines = [
        f"**{kind}{inp.mode}** of runbook `{inp.runbook}`: **{inp.from_region} → {inp.to_region}**",
        f"requested by {inp.requester}; {len(inp.steps)} steps",
    ]
    if inp.objectives.rto is not None or inp.objectives.rpo is not None:
        lines.append(f"objectives: RTO {inp.objectives.rto}, RPO {inp.objectives.rpo}")
    return "\n\n".join(lines)


def handle(client: Client, wid: str, run_id: str | None = None) -> Handle:
    """A handle on a switch by workflow id (latest run unless run_id is given)."""
    return client.get_workflow_handle_for(RegionSwitchWorkflow.run, wid, run_id=run_id)


async def pollers(client: Client, queue: str) -> int:
    """Workers seen polling a task queue's workflow tasks lately (DescribeTaskQueue)."""
    resp = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
    )
    return len(resp.pollers)


async def worker_queue(h: WorkflowHandle[Any, Any], what: str = "run") -> str | None:
    """The task queue of a running workflow, once a worker is seen polling it; None when the
    workflow has ended (its result answers with no worker up).

    NoWorkerError at once, naming the run and its task queue, when it runs and no worker polls
    that queue (a query or an Update would wait for one until it timed out). A worker that has
    just started polls within moments: asked six times over 2.5 s before concluding."""
    desc = await h.describe()
    if desc.status not in (None, WorkflowExecutionStatus.RUNNING):
        return None
    for attempt in range(6):
        try:
            if await pollers(h._client, desc.task_queue):
                return desc.task_queue
        except RPCError as exc:  # a server that cannot tell (the time-skipping test server)
            if exc.status == RPCStatusCode.UNIMPLEMENTED:
                return desc.task_queue
            raise
        if attempt < 5:
            await asyncio.sleep(0.5)
    raise NoWorkerError(
        f"{what} {h.id} is running but no worker polls its task queue {desc.task_queue!r}: "
        "start one ('failover worker', or 'failover sandbox up': the sandbox runs its own)"
    )


async def require_worker(h: WorkflowHandle[Any, Any], what: str = "run") -> bool:
    """Whether the workflow runs (False: it ended, its result answers); NoWorkerError at once
    when it runs and no worker polls its task queue (`worker_queue`)."""
    return await worker_queue(h, what) is not None


async def update(h: WorkflowHandle[Any, Any], name: str, arg: BaseModel) -> str:
    """Run an Update on a run; its refusal (a validator's reason) is a RefusedError."""
    try:
        result = await h.execute_update(name, arg, result_type=str)
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        message = cause.message if isinstance(cause, ApplicationError) else str(cause or exc)
        raise RefusedError(message) from None
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND and "completed" in exc.message:
            raise RefusedError(f"the run {h.id} has already ended") from None
        raise
    return str(result)


async def approve(h: Handle, decision: Decision) -> str:
    """Approve an open gate (refused: RefusedError with the workflow's reason)."""
    return await update(h, "approve", decision)


async def reject(h: Handle, decision: Decision) -> str:
    """Reject an open gate: the switch rolls back."""
    return await update(h, "reject", decision)


async def abort(h: Handle, req: Abort) -> str:
    """Abort the switch: it rolls back what it did."""
    return await update(h, "abort", req)


async def operator(h: Handle, action: OperatorAction) -> str:
    """Retry / skip / roll back / end, for a paused step or a failed undo."""
    return await update(h, "operator", action)


async def started_with(h: Handle) -> tuple[SwitchInput, str]:
    """The input a run started with, as its workflow received it (decoded by the client's data
    converter, payload codec included), and its first run id: what a signed decision is about.
    Read from the first event of its history: no worker needed."""
    async for event in h.fetch_history_events(page_size=1):
        attrs = event.workflow_execution_started_event_attributes
        try:
            [inp] = await h._client.data_converter.decode(attrs.input.payloads, [SwitchInput])
        except (ValueError, TypeError):
            inp = None
        if not isinstance(inp, SwitchInput):
            raise RefusedError(f"{h.id} is not a region switch")
        return inp, attrs.first_execution_run_id or h.run_id or ""
    raise RefusedError(f"run {h.id} has no history")


async def progress(h: Handle) -> RunProgress:
    """The run's step table: a query while it runs, its recorded result once it ended (so an
    ended run can be read with no worker up)."""
    desc = await h.describe()
    if desc.status is not None and desc.status != WorkflowExecutionStatus.RUNNING:
        try:
            return await h.result()
        except WorkflowFailureError as exc:
            raise RefusedError(
                f"run {h.id} ended as {desc.status.name} with no result: {exc.cause}"
            ) from None
    try:
        return await h.query(RegionSwitchWorkflow.progress)
    except RPCError as exc:
        if "no poller" in exc.message:
            raise NoWorkerError(
                f"run {h.id} is running but no worker polls its task queue "
                f"{desc.task_queue!r}: start one ('failover worker', or 'failover sandbox up': "
                "the sandbox runs its own)"
            ) from None
        raise
