"""`failover gameday ...`: game days now (`run`) or on a Temporal Schedule (`schedule ...`), their
status, history, reports, approval and cancellation.

`run` follows the game day live and exits with its outcome's code (0 succeeded, 3 stopped /
cancelled / failed with everything cleaned up, 4 the fault could not be removed). On the sandbox it
hosts a worker in its own process while it follows, like `drill`.
"""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from temporalio.client import Client, ScheduleHandle
from temporalio.service import RPCError

from orchestrator import report_store
from orchestrator.cli.exit_codes import ExitCode
from orchestrator.cli.hosted import hosted_worker
from orchestrator.cli.options import (
    AsOption,
    ConfigOption,
    FromOption,
    OutOption,
    OutputFormat,
    OutputOption,
    ParamOption,
    ReportFormat,
    ReportFormatOption,
    ToOption,
    identity,
    load_config,
    parse_params,
)
from orchestrator.cli.output import (
    console,
    emit,
    err_console,
    fail,
    info,
    print_json,
    print_table,
    problems,
    render,
)
from orchestrator.cli.temporal import call, ui_link
from orchestrator.cli.views import gameday_table, seconds
from orchestrator.gameday import client as gameday
from orchestrator.gameday import report as gd_report
from orchestrator.gameday import schedules
from orchestrator.gameday.models import GameDayInput, GameDayProgress, Outcome
from orchestrator.gameday.resolve import resolve_gameday
from orchestrator.logs import configure
from orchestrator.runbook.durations import parse_duration
from orchestrator.runbook.loader import RunbookError, load_file
from orchestrator.runbook.models import ID_PATTERN
from orchestrator.runbook.resolve import ResolveError
from orchestrator.runs import Decision

app = typer.Typer(
    help="Game days: inject a fault, switch, verify SLOs, fail back, report. Now or on a schedule.",
    no_args_is_help=True,
)
schedule_app = typer.Typer(help="Game days on Temporal Schedules.", no_args_is_help=True)
app.add_typer(schedule_app, name="schedule")

OUTCOME_CODES = {
    Outcome.SUCCEEDED: ExitCode.OK,
    Outcome.STOPPED: ExitCode.ROLLED_BACK,
    Outcome.CANCELLED: ExitCode.ROLLED_BACK,
    Outcome.FAILED: ExitCode.ROLLED_BACK,
    Outcome.CLEANUP_FAILED: ExitCode.ROLLBACK_FAILED,
}
NameArg = Annotated[str, typer.Argument(help="The game day's name (its schedule's name).")]
RefArg = Annotated[
    str, typer.Argument(help="A game day's workflow id, or its name (the latest one).")
]
RunbookOption = Annotated[Path, typer.Option(help="Runbook YAML file (with a gameday section).")]


def _name(name: str) -> str:
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


def _resolve(
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


def _schedule(client: Client, name: str) -> ScheduleHandle:
    return client.get_schedule_handle(schedules.schedule_id(name))


async def _exists(handle: ScheduleHandle, name: str) -> Any:
    try:
        return await handle.describe()
    except RPCError as exc:
        if "not found" in exc.message.lower():
            fail(f"no game day schedule named {name!r} (failover gameday schedule list)")
        raise


# ------------------------------------------------------------------------------ schedules
@schedule_app.command("create")
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
    _name(name)
    if (cron is None) == (every is None):
        fail("give exactly one of --cron or --every")
    timing = schedules.Timing(
        cron=cron,
        every=_duration("--every", every),
        jitter=_duration("--jitter", jitter),
        catchup_window=_duration("--catchup-window", catchup_window),
    )
    inp = _resolve(name, runbook, from_region, to_region, param, identity(as_))
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
        desc = await h.describe()
        return {
            "schedule_id": h.id,
            "paused": desc.schedule.state.paused,
            "next": [t.isoformat() for t in desc.info.next_action_times[:3]],
        }

    out = call(cfg, body)
    if output == OutputFormat.json:
        print_json(out)
    else:
        state = "paused" if out["paused"] else "next: " + (", ".join(out["next"]) or "-")
        info(f"created schedule {out['schedule_id']} ({state})")


@schedule_app.command("list")
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


@schedule_app.command("describe")
def schedule_describe(
    name: NameArg, config: ConfigOption = None, output: OutputOption = OutputFormat.table
) -> None:
    """A schedule: what it runs, when, its recent game days."""
    cfg = load_config(config)

    async def body(client: Client) -> dict[str, Any]:
        h = _schedule(client, name)
        desc = await _exists(h, name)
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


def _simple(name: str, config: Path | None, action: str, note: str = "") -> None:
    cfg = load_config(config)

    async def body(client: Client) -> str:
        h = _schedule(client, name)
        await _exists(h, name)
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
                return f"triggered {h.id}: started {wid}"
            if desc.info.num_actions_skipped_overlap:
                break
            await asyncio.sleep(0.25)
        return f"triggered {h.id} (skipped if a game day of it is still running: overlap skip)"

    info(call(cfg, body))


@schedule_app.command("pause")
def schedule_pause(
    name: NameArg, note: Annotated[str, typer.Option(help="Why.")] = "", config: ConfigOption = None
) -> None:
    """Pause a schedule (no game day starts until unpaused)."""
    _simple(name, config, "pause", note)


@schedule_app.command("unpause")
def schedule_unpause(
    name: NameArg, note: Annotated[str, typer.Option(help="Why.")] = "", config: ConfigOption = None
) -> None:
    """Unpause a schedule."""
    _simple(name, config, "unpause", note)


@schedule_app.command("trigger")
def schedule_trigger(name: NameArg, config: ConfigOption = None) -> None:
    """Start the schedule's game day now (through Temporal; skipped if one is running)."""
    _simple(name, config, "trigger")


@schedule_app.command("delete")
def schedule_delete(name: NameArg, config: ConfigOption = None) -> None:
    """Delete a schedule (game days already running are not stopped)."""
    _simple(name, config, "delete")


@schedule_app.command("backfill")
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
        h = _schedule(client, name)
        await _exists(h, name)
        await h.backfill(fill)
        return f"backfill of {h.id} from {_iso(start)} to {_iso(end)} requested"

    info(call(cfg, body))


# ----------------------------------------------------------------------------- game days
@app.command("run")
def run(
    name: NameArg,
    runbook: Annotated[
        Path | None, typer.Option(help="Run this runbook's game day (no schedule needed).")
    ] = None,
    from_region: Annotated[str | None, typer.Option("--from", help="With --runbook.")] = None,
    to_region: Annotated[str | None, typer.Option("--to", help="With --runbook.")] = None,
    param: ParamOption = [],  # noqa: B006
    as_: AsOption = None,
    detach: Annotated[bool, typer.Option(help="Return the workflow id at once.")] = False,
    config: ConfigOption = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Run one game day now: the schedule NAME's, or --runbook/--from/--to's. Follows it live."""
    _name(name)
    configure("console", level=logging.WARNING)
    inp: GameDayInput | None = None
    if runbook is not None:
        if not from_region or not to_region:
            fail("--runbook needs --from and --to")
        inp = _resolve(name, runbook, from_region, to_region, param, identity(as_))
    elif from_region or to_region or param:
        fail("--from, --to and --param go with --runbook (a schedule's game day is fixed)")
    cfg = load_config(config)
    suffix = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")

    async def body(client: Client) -> tuple[GameDayProgress, str, str | None] | None:
        chosen = inp
        if chosen is None:
            h = _schedule(client, name)
            await _exists(h, name)
            chosen = await schedules.game_day_input(client, h)
        async with hosted_worker(client, cfg, enabled=not detach):
            try:
                wf = await gameday.start_now(client, chosen, cfg.temporal.task_queue, suffix)
            except Exception as exc:  # already started: the id has the second in it
                fail(f"could not start the game day: {exc}")
            link = ui_link(cfg, wf.id, wf.result_run_id)
            if detach:
                if output == OutputFormat.json:
                    print_json({"workflow_id": wf.id, "run_id": wf.result_run_id, "ui": link})
                else:
                    info(f"started {wf.id}" + (f"\n  {link}" if link else ""))
                return None
            info(f"started {wf.id}" + (f": {link}" if link else ""))
            return await _follow(wf, output == OutputFormat.json), wf.id, wf.result_run_id

    result = call(cfg, body)
    if result is not None:
        _finish(*result, output)


async def _follow(h: gameday.Handle, quiet: bool) -> GameDayProgress:
    live = Live(console=err_console, refresh_per_second=4, transient=False)
    if not quiet:
        live.start()
    try:
        while True:
            p = await gameday.progress(h)
            if not quiet:
                live.update(gameday_table(p))
            if p.ended_at is not None:
                return p
            await asyncio.sleep(0.5)
    except (KeyboardInterrupt, asyncio.CancelledError):
        live.stop()
        info(f"detached: the game day goes on. Cancel it with: failover gameday cancel {h.id}")
        raise typer.Exit(int(ExitCode.OK)) from None
    finally:
        live.stop()


def _finish(p: GameDayProgress, wid: str, rid: str | None, output: OutputFormat) -> NoReturn:
    r = gd_report.build(p, wid, rid)
    written = report_store.write(r, gd_report.markdown(r), gd_report.html_page(r))
    if output == OutputFormat.json:
        print_json(r)
    else:
        _summary(r)
        info("report: " + ", ".join(str(x) for x in written))
    raise typer.Exit(int(OUTCOME_CODES.get(p.outcome, ExitCode.FAILED)))


def _summary(r: gd_report.GameDayReport) -> None:
    s = seconds
    style = "green" if r.outcome == "SUCCEEDED" else "bold red"
    err_console.print(f"[{style}]{r.outcome}[/] {escape(r.reason)}", highlight=False)
    parts = [f"MTTD {s(r.mttd_s)}", f"SLO breach {s(r.slo_breach_s)}"]
    for label, d in (("switch", r.switch), ("failback", r.failback)):
        if d is not None:
            parts.append(f"{label} {d.outcome} RTO {s(d.rto_traffic_s)} RPO {s(d.rpo_s)}")
    info("; ".join(parts))
    missed = [k for k, o in r.objectives.items() if o.met is False]
    if missed:
        err_console.print(f"[bold red]objectives missed:[/] {', '.join(missed)}", highlight=False)


async def _handle(client: Client, ref: str) -> gameday.Handle:
    """A game day by workflow id, or the latest one of a name (one-line error if none)."""
    try:
        return await gameday.handle(client, ref)
    except gameday.NoGameDayError as exc:
        fail(str(exc))


@app.command("status")
def status(
    ref: RefArg, config: ConfigOption = None, output: OutputOption = OutputFormat.table
) -> None:
    """Where a game day is: phase, fault, MTTD, both switches, what users see."""
    cfg = load_config(config)

    async def body(client: Client) -> GameDayProgress:
        return await gameday.progress(await _handle(client, ref))

    p = call(cfg, body)
    if output == OutputFormat.json:
        print_json(p)
    else:
        console.print(gameday_table(p))


@app.command("report")
def report_cmd(
    ref: RefArg,
    fmt: ReportFormatOption = ReportFormat.md,
    out: OutOption = None,
    config: ConfigOption = None,
) -> None:
    """A game day's report: MTTD, RTO/RPO both ways, SLO breach, stop condition, objectives."""
    cfg = load_config(config)

    async def body(client: Client) -> gd_report.GameDayReport:
        h = await _handle(client, ref)
        desc = await h.describe()
        return gd_report.build(await gameday.progress(h), desc.id, desc.run_id)

    r = call(cfg, body)
    emit(render(r, fmt.value, gd_report.markdown, gd_report.html_page), out)


@app.command("history")
def history(
    name: NameArg,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 20,
    config: ConfigOption = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Past game days of a name, newest first, with their outcome and measures."""
    cfg = load_config(config)

    async def body(client: Client) -> list[dict[str, Any]]:
        return [row async for row in gameday.history(client, name, limit)]

    rows = call(cfg, body)
    if output == OutputFormat.json:
        print_json(rows)
        return
    cols = ["workflow_id", "started_at", "status", "outcome", "mttd_s", "slo_breach_s",
            "switch_rto_s", "failback_rto_s"]  # fmt: skip
    print_table(f"game days {name}", cols, [[r[c] for c in cols] for r in rows])


@app.command("cancel")
def cancel(
    ref: RefArg,
    reason: Annotated[str, typer.Option(help="Why (recorded in the report).")] = "",
    as_: AsOption = None,
    config: ConfigOption = None,
) -> None:
    """Stop a game day: the fault is removed, a running switch rolls back, a done one fails back."""
    cfg = load_config(config)
    who = identity(as_)

    async def body(client: Client) -> str:
        h = await _handle(client, ref)
        await gameday.cancel(h, who, reason)
        return f"cancelling {h.id}: the fault will be removed and the switch undone"

    info(call(cfg, body))


def _decide(ref: str, approving: bool, comment: str, as_: str | None, config: Path | None) -> None:
    cfg = load_config(config)
    decision = Decision(approver=identity(as_), comment=comment)

    async def body(client: Client) -> str:
        return await gameday.decide(await _handle(client, ref), approving, decision)

    info(call(cfg, body))


@app.command("approve")
def approve(
    ref: RefArg,
    comment: Annotated[str, typer.Option(help="Comment.")] = "",
    as_: AsOption = None,
    config: ConfigOption = None,
) -> None:
    """Approve a game day waiting before its switch."""
    _decide(ref, True, comment, as_, config)


@app.command("reject")
def reject(
    ref: RefArg,
    comment: Annotated[str, typer.Option(help="Why.")] = "",
    as_: AsOption = None,
    config: ConfigOption = None,
) -> None:
    """Reject a game day waiting before its switch (nothing is injected)."""
    _decide(ref, False, comment, as_, config)
