"""Starting a game day and talking to a running or ended one (what the CLI and tests use), beside
`orchestrator.switch` for switches. Schedules are in `orchestrator.gameday.schedules`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy

from orchestrator.gameday import report as gd_report
from orchestrator.gameday.models import GameDayInput, GameDayProgress
from orchestrator.gameday.schedules import PREFIX, attributes, schedule_id, summary
from orchestrator.runs import Abort, Decision
from orchestrator.switch import RefusedError, update
from workflows.gameday import GameDayWorkflow

Handle = WorkflowHandle[Any, GameDayProgress]


class NoGameDayError(LookupError):
    """No game day of that name has run (the message says how to list them)."""


async def start_now(client: Client, inp: GameDayInput, task_queue: str, suffix: str) -> Handle:
    """Start one game day now, outside its schedule (`failover gameday run`)."""
    return await client.start_workflow(
        GameDayWorkflow.run,
        inp,
        id=f"{schedule_id(inp.name)}-{suffix}",
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
        execution_timeout=timedelta(days=2),
        search_attributes=attributes(inp),
        static_summary=summary(inp),
    )


def history_query(name: str) -> str:
    """The visibility query of a name's game days (scheduled or run now)."""
    return f"WorkflowType = 'GameDay' AND FailoverGameDay = '{name}'"


async def handle(client: Client, ref: str) -> Handle:
    """A game day by workflow id, or the latest one of a name."""
    if ref.startswith(PREFIX):
        return client.get_workflow_handle(ref, result_type=GameDayProgress)
    async for wf in client.list_workflows(history_query(ref), limit=1):
        return client.get_workflow_handle(wf.id, run_id=wf.run_id, result_type=GameDayProgress)
    raise NoGameDayError(f"no game day named {ref!r} has run (failover gameday history {ref})")


async def progress(h: Handle) -> GameDayProgress:
    """Where a game day is: its query while it runs, its recorded result once it completed (so
    an ended game day is read with no worker up)."""
    desc = await h.describe()
    if desc.status == WorkflowExecutionStatus.COMPLETED:
        return await h.result()
    if desc.status not in (None, WorkflowExecutionStatus.RUNNING):
        raise RefusedError(f"game day {h.id} ended as {desc.status.name}: it left no result")
    return await h.query(GameDayWorkflow.progress)


async def cancel(h: Handle, by: str, reason: str) -> None:
    """Stop a game day: a reason is recorded by the `stop` signal; none, a plain cancellation.
    Either way the fault is removed and the switch rolled back or failed back."""
    if reason:
        await h.signal(GameDayWorkflow.stop, Abort(by=by, reason=reason))
    else:
        await h.cancel()


async def decide(h: Handle, approving: bool, decision: Decision) -> str:
    """Approve or reject a game day waiting before its switch (RefusedError with the reason)."""
    return await update(h, "approve" if approving else "reject", decision)


async def history(client: Client, name: str, limit: int) -> AsyncIterator[dict[str, Any]]:
    """A name's game days, newest first, with the measures of those that completed."""
    async for wf in client.list_workflows(history_query(name), limit=limit):
        row: dict[str, Any] = {
            "workflow_id": wf.id,
            "run_id": wf.run_id,
            "started_at": wf.start_time.isoformat(timespec="seconds"),
            "status": wf.status.name if wf.status else "",
            "outcome": None,
            "mttd_s": None,
            "slo_breach_s": None,
            "switch_rto_s": None,
            "failback_rto_s": None,
        }
        if wf.status == WorkflowExecutionStatus.COMPLETED:
            h = client.get_workflow_handle(wf.id, run_id=wf.run_id, result_type=GameDayProgress)
            r = gd_report.build(await h.result(), wf.id, wf.run_id)
            row |= {
                "outcome": r.outcome,
                "mttd_s": r.mttd_s,
                "slo_breach_s": r.slo_breach_s,
                "switch_rto_s": r.switch.rto_traffic_s if r.switch else None,
                "failback_rto_s": r.failback.rto_traffic_s if r.failback else None,
            }
        yield row
