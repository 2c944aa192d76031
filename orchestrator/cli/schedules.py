"""`failover gameday schedule ...`: game days on Temporal Schedules (create, list, describe,
pause, unpause, trigger, delete, backfill), and what the game-day commands share: names, resolving
a runbook's game day, finding a schedule."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from temporalio.client import Client, ScheduleHandle
from temporalio.service import RPCError

from orchestrator.cli.options import (
    AsOption,
    ConfigOption,
    FromOption,
    OutputFormat,
    OutputOption,
    ParamOption,
    ToOption,
    identity,
    load_config,
    parse_params,
)
from orchestrator.cli.output import console, fail, info, print_json, print_table, problems
from orchestrator.cli.temporal import call, recent_pollers
from orchestrator.gameday import schedules
from orchestrator.gameday.models import GameDayInput
from orchestrator.gameday.resolve import resolve_gameday
from orchestrator.runbook.durations import parse_duration
from orchestrator.runbook.loader import RunbookError, load_file
from orchestrator.runbook.models import ID_PATTERN
from orchestrator.runbook.resolve import ResolveError

app = typer.Typer(help="Game days on Temporal Schedules.", no_args_is_help=True)

NameArg = Annotated[str, typer.Argument(help="The game day's name (its schedule's name).")]
RunbookOption = Annotated[Path, typer.Option(help="Runbook YAML file (with a gameday section).")]


def valid_name(name: str) -> str:
    if not re.fullmatch(ID_PATTERN, name):
        fail(f"NAME {name!r}: lowercase letters, digits and dashes (a DNS label)")
    return name


def _duration(flag: str, value: str | None) -> Any:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        fail(f"{flag}: {exc}")


def resolved(
    name: str, runbook: Path, from_region: str, to_region: str, params: list[str], who: str
) -> GameDayInput:
    try:
        return resolve_gameday(
            load_file(runbook), name, from_region, to_region, requester=who,
            params=parse_params(params),
        )  # fmt: skip
    except RunbookError as exc:
        problems(exc.problems)
    except ResolveError as exc:
        fail(str(exc))


def schedule_handle(client: Client, name: str) -> ScheduleHandle:
    return client.get_schedule_handle(schedules.schedule_id(name))


async def existing(handle: ScheduleHandle, name: str) -> Any:
    try:
        return await handle.describe()
    except RPCError as exc:
        if "not found" in exc.message.lower():
            fail(f"no game day schedule named {name!r} (failover gameday schedule list)")
        raise


@app.command("create")
def schedule_create(
    name: NameArg,
    runbook: RunbookOption,
    from_region: FromOption,
    to_region: ToOption,
    cron: Annotated[str | None, typer.Option(help='Cron expression, e.g. "0 10 * * TUE".')] = None,
    every: Annotated[str | None, typer.Option(help="Interval, e.g. 7d.")] = None,
    jitter: Annotated[str | None, typer.Option(help="Random delay up to this, e.g. 30m.")] = None,
    catchup_window: Annotated[
        str, typer.Option(help="Run a missed game day only if this late at most.")
    ] = "10m",
    paused: Annotated[bool, typer.Option(help="Create it paused.")] = False,
    note: Annotated[str, typer.Option(help="Why (shown with the schedule).")] = "",
    param: ParamOption = [],  # noqa: B006 - Typer's way to spell a repeatable option
    as_: AsOption = None,
    config: ConfigOption = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Schedule a game day (Temporal Schedule; overlap: skip)."""
    valid_name(name)
    if (cron is None) == (every is None):
        fail("give exactly one of --cron or --every")
    timing = schedules.Timing(
        cron=cron,
        every=_duration("--every", every),
        jitter=_duration("--jitter", jitter),
        catchup_window=_duration("--catchup-window", catchup_window),
    )
    inp = resolved(name, runbook, from_region, to_region, param, identity(as_))
    cfg = load_config(config)

    async def body(client: Client) -> dict[str, Any]:
        try:
            h = await schedules.create(
                client, inp, cfg.temporal.task_queue, timing, paused=paused, note=note
            )
        except schedules.ScheduleError as exc:
            fail(str(exc))
        except RPCError as exc:
            fail(f"Temporal refused the schedule: {exc.message}")
        return await created_view(h)

    show_created(call(cfg, body), output)


@app.command("list")
def schedule_list(config: ConfigOption = None, output: OutputOption = OutputFormat.table) -> None:
    """Every game day schedule: spec, paused or not, next and last run."""
    cfg = load_config(config)

    async def body(client: Client) -> list[dict[str, Any]]:
        rows = []
        async for s in await client.list_schedules():
            if not s.id.startswith(schedules.PREFIX):
                continue
            spec = s.schedule.spec if s.schedule else None
            nxt = s.info.next_action_times if s.info else []
            recent = s.info.recent_actions if s.info else []
            rows.append(
                {
                    "name": s.id.removeprefix(schedules.PREFIX),
                    "spec": _spec(spec),
                    "paused": bool(s.schedule and s.schedule.state.paused),
                    "note": s.schedule.state.note if s.schedule else "",
                    "next": _iso(nxt[0] if nxt else None),
                    "last": _iso(recent[-1].started_at) if recent else None,
                }
            )
        return sorted(rows, key=lambda r: r["name"])

    rows = call(cfg, body)
    if output == OutputFormat.json:
        print_json(rows)
    else:
        print_table(
            "game day schedules",
            ["name", "spec", "paused", "next", "last", "note"],
            [[r["name"], r["spec"], r["paused"], r["next"], r["last"], r["note"]] for r in rows],
        )


def _spec(spec: Any) -> str:
    if spec is None:
        return ""
    parts = list(spec.cron_expressions or [])
    parts += [f"every {i.every}" for i in spec.intervals or []]
    if spec.jitter:
        parts.append(f"jitter {spec.jitter}")
    return ", ".join(parts)


def _iso(t: datetime | None) -> str | None:
    return t.isoformat(timespec="seconds") if t else None


@app.command("describe")
def schedule_describe(
    name: NameArg, config: ConfigOption = None, output: OutputOption = OutputFormat.table
) -> None:
    """A schedule: what it runs, when, its recent game days."""
    cfg = load_config(config)

    async def body(client: Client) -> dict[str, Any]:
        h = schedule_handle(client, name)
        desc = await existing(h, name)
        inp = await schedules.game_day_input(client, h)
        return {
            "name": name,
            "schedule_id": h.id,
            "runbook": inp.runbook,
            "from": inp.from_region,
            "to": inp.to_region,
            "fault": inp.fault.description,
            "created_by": inp.requester,
            "spec": _spec(desc.schedule.spec),
            "paused": desc.schedule.state.paused,
            "note": desc.schedule.state.note,
            "overlap": desc.schedule.policy.overlap.name,
            "catchup_window": str(desc.schedule.policy.catchup_window),
            "next": [_iso(t) for t in desc.info.next_action_times[:5]],
            "runs": desc.info.num_actions,
            "skipped_overlap": desc.info.num_actions_skipped_overlap,
            "missed_catchup": desc.info.num_actions_missed_catchup_window,
            "recent": [
                {
                    "workflow_id": getattr(a.action, "workflow_id", None),
                    "started_at": _iso(a.started_at),
                }
                for a in desc.info.recent_actions
            ],
        }

    out = call(cfg, body)
    if output == OutputFormat.json:
        print_json(out)
        return
    table = Table(show_header=False, title=f"game day {name}")
    for k, v in out.items():
        table.add_row(k, str(v))
    console.print(table)


async def _unpolled(client: Client, desc: Any) -> str:
    """What to add when no worker polls the task queue the schedule starts game days on."""
    queue = getattr(desc.schedule.action, "task_queue", None)
    if not queue or await recent_pollers(client, queue):
        return ""
    return (
        f"; no worker polls its task queue {queue!r}: it waits for one (start one: 'failover "
        "worker', or 'failover sandbox up': the sandbox runs its own)"
    )


def _simple(name: str, config: Path | None, action: str, note: str = "") -> None:
    cfg = load_config(config)

    async def body(client: Client) -> str:
        h = schedule_handle(client, name)
        await existing(h, name)
        if action == "pause":
            await h.pause(note=note or "paused")
            return f"paused {h.id}"
        if action == "unpause":
            await h.unpause(note=note or "unpaused")
            return f"unpaused {h.id}"
        if action == "delete":
            await h.delete()
            return f"deleted {h.id} (running game days go on)"
        before = (await h.describe()).info.num_actions
        await h.trigger()
        for _ in range(20):
            desc = await h.describe()
            if desc.info.num_actions > before and desc.info.recent_actions:
                wid = getattr(desc.info.recent_actions[-1].action, "workflow_id", "")
                return f"triggered {h.id}: started {wid}" + await _unpolled(client, desc)
            if desc.info.num_actions_skipped_overlap:
                break
            await asyncio.sleep(0.25)
        return f"triggered {h.id} (skipped if a game day of it is still running: overlap skip)"

    info(call(cfg, body))


@app.command("pause")
def schedule_pause(
    name: NameArg, note: Annotated[str, typer.Option(help="Why.")] = "", config: ConfigOption = None
) -> None:
    """Pause a schedule (no game day starts until unpaused)."""
    _simple(name, config, "pause", note)


@app.command("unpause")
def schedule_unpause(
    name: NameArg, note: Annotated[str, typer.Option(help="Why.")] = "", config: ConfigOption = None
) -> None:
    """Unpause a schedule."""
    _simple(name, config, "unpause", note)


@app.command("trigger")
def schedule_trigger(name: NameArg, config: ConfigOption = None) -> None:
    """Start the schedule's game day now (through Temporal; skipped if one is running)."""
    _simple(name, config, "trigger")


@app.command("delete")
def schedule_delete(name: NameArg, config: ConfigOption = None) -> None:
    """Delete a schedule (game days already running are not stopped)."""
    _simple(name, config, "delete")


@app.command("backfill")
def schedule_backfill(
    name: NameArg,
    start: Annotated[datetime, typer.Option(help="From (UTC, ISO 8601).")],
    end: Annotated[datetime, typer.Option(help="To (UTC, ISO 8601).")],
    config: ConfigOption = None,
) -> None:
    """Run the game days the schedule would have run between two times (overlap: skip)."""
    start, end = (t if t.tzinfo else t.replace(tzinfo=UTC) for t in (start, end))
    try:
        fill = schedules.backfill(start, end)
    except schedules.ScheduleError as exc:
        fail(f"{exc}")
    cfg = load_config(config)

    async def body(client: Client) -> str:
        h = schedule_handle(client, name)
        await existing(h, name)
        await h.backfill(fill)
        return f"backfill of {h.id} from {_iso(start)} to {_iso(end)} requested"

    info(call(cfg, body))


# ----------------------------------------------------------------------------- game days


async def created_view(h: ScheduleHandle, **extra: Any) -> dict[str, Any]:
    """What a newly created schedule says of itself: id, paused, its next three times."""
    desc = await h.describe()
    return {
        "schedule_id": h.id,
        **extra,
        "paused": desc.schedule.state.paused,
        "next": [t.isoformat() for t in desc.info.next_action_times[:3]],
    }


def show_created(out: dict[str, Any], output: OutputFormat, what: str = "") -> None:
    """`-o json`, or one line: the schedule created and when it fires next."""
    if output == OutputFormat.json:
        print_json(out)
        return
    state = "paused" if out["paused"] else "next: " + (", ".join(out["next"]) or "-")
    info(f"created schedule {out['schedule_id']}{what} ({state})")
