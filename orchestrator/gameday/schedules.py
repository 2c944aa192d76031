"""Game days on Temporal Schedules: create, list, describe, pause, trigger, backfill, delete.

A schedule's action starts GameDayWorkflow with the game day resolved when the schedule was
created (what runs is what was reviewed; re-create the schedule to pick up runbook changes). The
overlap policy is SKIP (never two game days of one schedule at once) and the catch-up window is
short by default: a game day missed while Temporal was down is not run hours later, at a time
nobody expects it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleBackfill,
    ScheduleHandle,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
)
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from orchestrator import leases
from orchestrator import search_attributes as sa
from orchestrator.gameday.models import GameDayInput
from workflows.gameday import GameDayWorkflow

PREFIX = "gameday-"


class ScheduleError(ValueError):
    """A schedule request that cannot be done (one line, for the user)."""


def schedule_id(name: str) -> str:
    return f"{PREFIX}{name}"


def attributes(inp: GameDayInput) -> TypedSearchAttributes:
    """The search attributes of a game day's workflow (history and trends query them), with the
    leases it holds while it runs: what its switches and its fault write (its preflight refuses
    to start while another run holds one of them)."""
    return TypedSearchAttributes(
        [
            SearchAttributePair(sa.RUNBOOK, inp.runbook),
            SearchAttributePair(sa.FROM_REGION, inp.from_region),
            SearchAttributePair(sa.TO_REGION, inp.to_region),
            SearchAttributePair(sa.MODE, "gameday"),
            SearchAttributePair(sa.STATE, "RUNNING"),
            SearchAttributePair(sa.REQUESTER, inp.requester),
            SearchAttributePair(sa.GAMEDAY, inp.name),
            leases.attribute(leases.keyed(resources(inp))),
        ]
    )


def resources(inp: GameDayInput) -> list[str]:
    """What a game day writes: its switches' resources and its fault's."""
    holder = schedule_id(inp.name)
    runs = [r for r in (inp.switch, inp.recovery, inp.failback) if r is not None]
    names = [n for r in runs for n in leases.resources(r, holder)]
    names.append(leases.step_resource(inp.fault, inp.from_region, inp.to_region, "gameday", holder))
    return list(dict.fromkeys(names))


def summary(inp: GameDayInput) -> str:
    return (
        f"game day {inp.name}: {inp.runbook} {inp.from_region} -> {inp.to_region} and back, "
        f"fault: {inp.fault.description}"
    )


@dataclass
class Timing:
    cron: str | None = None
    every: timedelta | None = None
    jitter: timedelta | None = None
    catchup_window: timedelta = timedelta(minutes=10)


async def create(
    client: Client,
    inp: GameDayInput,
    task_queue: str,
    timing: Timing,
    paused: bool = False,
    note: str = "",
) -> ScheduleHandle:
    """Create the schedule `gameday-NAME`; refused if it exists."""
    if (timing.cron is None) == (timing.every is None):
        raise ScheduleError("give exactly one of --cron or --every")
    spec = ScheduleSpec(
        cron_expressions=[timing.cron] if timing.cron else [],
        intervals=[ScheduleIntervalSpec(every=timing.every)] if timing.every else [],
        jitter=timing.jitter,
    )
    try:
        return await client.create_schedule(
            schedule_id(inp.name),
            Schedule(
                action=ScheduleActionStartWorkflow(
                    GameDayWorkflow.run,
                    inp,
                    id=schedule_id(inp.name),
                    task_queue=task_queue,
                    execution_timeout=timedelta(days=2),
                    typed_search_attributes=attributes(inp),
                    static_summary=summary(inp),
                ),
                spec=spec,
                policy=SchedulePolicy(
                    overlap=ScheduleOverlapPolicy.SKIP, catchup_window=timing.catchup_window
                ),
                state=ScheduleState(paused=paused, note=note or f"created by {inp.requester}"),
            ),
            memo={
                "runbook": inp.runbook,
                "from": inp.from_region,
                "to": inp.to_region,
                "created_by": inp.requester,
            },
        )
    except ScheduleAlreadyRunningError:
        raise ScheduleError(
            f"a game day schedule named {inp.name!r} exists (delete it first, or pick a name)"
        ) from None


async def game_day_input(client: Client, handle: ScheduleHandle) -> GameDayInput:
    """The game day a schedule starts (decoded from its action)."""
    desc = await handle.describe()
    action = desc.schedule.action
    if not isinstance(action, ScheduleActionStartWorkflow) or not action.args:
        raise ScheduleError(f"schedule {handle.id} does not start a game day")
    arg = action.args[0]
    if isinstance(arg, GameDayInput):
        return arg
    decoded = await client.data_converter.decode([arg], [GameDayInput])
    return GameDayInput.model_validate(decoded[0])


def backfill(start: datetime, end: datetime) -> ScheduleBackfill:
    if end <= start:
        raise ScheduleError("--end must be after --start")
    return ScheduleBackfill(start_at=start, end_at=end, overlap=ScheduleOverlapPolicy.SKIP)
