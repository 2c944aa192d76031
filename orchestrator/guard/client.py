"""Starting, reading and stopping a runbook's guard (what the CLI and tests use)."""

from __future__ import annotations

from typing import Any

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
)
from temporalio.service import RPCError, RPCStatusCode

from orchestrator import search_attributes as sa
from orchestrator.guard.models import GuardInput, GuardState
from orchestrator.runs import Abort
from orchestrator.switch import update
from workflows.guard import GuardWorkflow, guard_workflow_id

Handle = WorkflowHandle[Any, GuardState]


class GuardError(RuntimeError):
    """A guard that is not there, or already there (one line saying which and what to do)."""


async def start(client: Client, inp: GuardInput, task_queue: str) -> Handle:
    """Start the runbook's guard; refused if one runs already."""
    wid = guard_workflow_id(inp.runbook)
    try:
        return await client.start_workflow(
            GuardWorkflow.run,
            inp,
            id=wid,
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(sa.RUNBOOK, inp.runbook),
                    SearchAttributePair(sa.STATE, inp.state.status.value),
                    SearchAttributePair(sa.REQUESTER, inp.requester),
                ]
            ),
            static_summary=f"guard of {inp.runbook} (started by {inp.requester})",
        )
    except RPCError as exc:
        if exc.status == RPCStatusCode.ALREADY_EXISTS or "already" in exc.message.lower():
            raise GuardError(
                f"the guard of {inp.runbook} is already running ({wid}): "
                f"failover guard status {inp.runbook}"
            ) from None
        raise
    except Exception as exc:  # WorkflowAlreadyStartedError
        if "already" in str(exc).lower():
            raise GuardError(
                f"the guard of {inp.runbook} is already running ({wid}): "
                f"failover guard status {inp.runbook}"
            ) from None
        raise


def handle(client: Client, runbook: str) -> Handle:
    """The runbook's guard (its latest run)."""
    return client.get_workflow_handle(guard_workflow_id(runbook), result_type=GuardState)


async def status(client: Client, runbook: str) -> tuple[GuardInput | None, GuardState, bool]:
    """The guard's settings (None once it ended), its state, and whether it runs."""
    h = handle(client, runbook)
    try:
        desc = await h.describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise GuardError(
                f"runbook {runbook!r} has no guard (failover guard start RUNBOOK-FILE)"
            ) from None
        raise
    if desc.status == WorkflowExecutionStatus.RUNNING:
        view = await h.query(GuardWorkflow.status)
        return view, view.state, True
    if desc.status == WorkflowExecutionStatus.COMPLETED:
        state = await h.result()
        return None, state, False
    raise GuardError(
        f"the guard of {runbook} ended {desc.status.name if desc.status else 'unknown'} "
        f"({h.id}): start it again (failover guard start)"
    )


async def stop(client: Client, runbook: str, by: str, reason: str) -> str:
    """Stop the guard after its current evaluation."""
    _, _, running = await status(client, runbook)
    if not running:
        raise GuardError(f"the guard of {runbook} is not running")
    return await update(handle(client, runbook), "stop", Abort(by=by, reason=reason))
