"""`failover gameday ...`: game days now (`run`) or on a Temporal Schedule (`schedule ...`), their
status, history, reports, approval and cancellation.

`run` follows the game day live and exits with its outcome's code (0 succeeded, 3 stopped /
cancelled / failed with everything cleaned up, 4 the fault could not be removed). On the sandbox it
hosts a worker in its own process while it follows, like `drill`.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.live import Live
from rich.markup import escape
from temporalio.client import Client

from orchestrator.cli import schedules as schedules_cli
from orchestrator.cli.exit_codes import ExitCode
from orchestrator.cli.hosted import hosted_worker
from orchestrator.cli.options import (
    AsOption,
    ConfigOption,
    OutOption,
    OutputFormat,
    OutputOption,
    ParamOption,
    ReportFormat,
    ReportFormatOption,
    identity,
    load_config,
)
from orchestrator.cli.output import (
    console,
    emit,
    err_console,
    fail,
    info,
    print_json,
    print_table,
    render,
)
from orchestrator.cli.schedules import (
    NameArg,
    existing,
    resolved,
    schedule_handle,
    valid_name,
)
from orchestrator.cli.temporal import answered, ask, call, need_worker, recent_pollers, ui_link
from orchestrator.cli.views import gameday_changes, gameday_table, seconds
from orchestrator.gameday import client as gameday
from orchestrator.gameday import report as gd_report
from orchestrator.gameday import schedules
from orchestrator.gameday.models import GameDayInput, GameDayProgress, Outcome
from orchestrator.logs import configure
from orchestrator.runs import Decision

app = typer.Typer(
    help="Game days: inject a fault, switch, verify SLOs, fail back, report. Now or on a schedule.",
    no_args_is_help=True,
)
app.add_typer(schedules_cli.app, name="schedule")

OUTCOME_CODES = {
    Outcome.SUCCEEDED: ExitCode.OK,
    Outcome.STOPPED: ExitCode.ROLLED_BACK,
    Outcome.CANCELLED: ExitCode.ROLLED_BACK,
    Outcome.FAILED: ExitCode.ROLLED_BACK,
    Outcome.CLEANUP_FAILED: ExitCode.ROLLBACK_FAILED,
}
GAME_DAY = "game day"  # what the one-line errors call a game day run
RefArg = Annotated[
    str, typer.Argument(help="A game day's workflow id, or its name (the latest one).")
]


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
    valid_name(name)
    configure("console", level=logging.WARNING)
    inp: GameDayInput | None = None
    if runbook is not None:
        if not from_region or not to_region:
            fail("--runbook needs --from and --to")
        inp = resolved(name, runbook, from_region, to_region, param, identity(as_))
    elif from_region or to_region or param:
        fail("--from, --to and --param go with --runbook (a schedule's game day is fixed)")
    cfg = load_config(config)
    suffix = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")

    async def body(client: Client) -> tuple[GameDayProgress, str, str | None] | None:
        chosen = inp
        if chosen is None:
            h = schedule_handle(client, name)
            await existing(h, name)
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
    """Refresh the game day's row until it ends (on a terminal; piped: a plain line per change).
    At once one line, exit 5, when no worker polls its task queue."""
    live = Live(console=err_console, refresh_per_second=4, transient=False)
    redraw = not quiet and err_console.is_terminal
    seen: dict[str, str] = {}
    try:
        queue = await need_worker(h, GAME_DAY)
        if redraw:
            live.start()
        while True:
            p = await answered(h, gameday.progress(h), queue, GAME_DAY)
            if redraw:
                live.update(gameday_table(p, err_console.width))
            elif not quiet:
                for line in gameday_changes(seen, p):
                    info(line)
            if p.ended_at is not None:  # the result, once its report is written
                done: GameDayProgress = await h.result()
                return done
            await asyncio.sleep(0.5)
    except (KeyboardInterrupt, asyncio.CancelledError):
        live.stop()
        info(f"detached: the game day goes on. Cancel it with: failover gameday cancel {h.id}")
        raise typer.Exit(int(ExitCode.OK)) from None
    finally:
        live.stop()


def _finish(p: GameDayProgress, wid: str, rid: str | None, output: OutputFormat) -> NoReturn:
    r = gd_report.build(p, wid, rid)
    if output == OutputFormat.json:
        print_json(r)
    else:
        _summary(r)
        # written by the worker when the game day ended (to the configured store)
        info("report: " + (", ".join(p.report_files) or "not written (see the worker's log)"))
    raise typer.Exit(int(OUTCOME_CODES.get(p.outcome, ExitCode.FAILED)))


def _summary(r: gd_report.GameDayReport) -> None:
    s = seconds
    style = "green" if r.outcome == "SUCCEEDED" else "bold red"
    err_console.print(f"[{style}]{r.outcome}[/] {escape(r.reason)}", highlight=False)
    parts = [f"MTTD {s(r.mttd_s)}", f"SLO breach {s(r.slo_breach_s)}"]
    for label, d in (("switch", r.switch), ("recovery", r.recovery), ("failback", r.failback)):
        if d is None:
            continue
        if label == "recovery":
            parts.append(f"recovery {d.outcome} in {s(d.rto_total_s)}, writes lost "
                         f"{'-' if d.lost_writes is None else d.lost_writes}")  # fmt: skip
        else:
            kind = " (unplanned)" if d.kind == "unplanned" else ""
            parts.append(f"{label}{kind} {d.outcome} RTO {s(d.rto_traffic_s)} RPO {s(d.rpo_s)}")
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
        return await ask(await _handle(client, ref), gameday.progress, GAME_DAY)

    p = call(cfg, body)
    if output == OutputFormat.json:
        print_json(p)
    else:
        console.print(gameday_table(p, console.width))


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
        return gd_report.build(await ask(h, gameday.progress, GAME_DAY), desc.id, desc.run_id)

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
        await gameday.cancel(h, who, reason)  # a signal: the server keeps it for the worker
        said = f"cancelling {h.id}: the fault will be removed and the switch undone"
        queue = (await h.describe()).task_queue
        if not await recent_pollers(client, queue):
            said += (
                f" once a worker polls its task queue {queue!r} (none does now: start one, "
                "'failover worker', or 'failover sandbox up': the sandbox runs its own)"
            )
        return said

    info(call(cfg, body))


def _decide(ref: str, approving: bool, comment: str, as_: str | None, config: Path | None) -> None:
    cfg = load_config(config)
    decision = Decision(approver=identity(as_), comment=comment)

    async def body(client: Client) -> str:
        return await ask(await _handle(client, ref),
                         lambda h: gameday.decide(h, approving, decision), GAME_DAY)  # fmt: skip

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
