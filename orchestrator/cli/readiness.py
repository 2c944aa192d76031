"""`failover readiness check | schedule | list | trigger | delete | history`: is the runbook still
right?

`check` runs every readiness check now, in this process (no worker, like `failover plan`): both
directions by default, or the one `--from/--to` name; exit 0 all green, 6 a check is red.
`schedule` creates a Temporal Schedule (`readiness-<runbook>`) that runs ReadinessWorkflow every
`--every` on a worker: it notifies what turned red and keeps each result; `history` lists them.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from itertools import permutations
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleHandle,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    WorkflowExecutionStatus,
)
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError

from activities.clients import Clients
from activities.readiness import run_checks
from orchestrator import search_attributes as sa
from orchestrator.cli.exit_codes import ExitCode
from orchestrator.cli.options import (
    AsOption,
    ConfigOption,
    OutputFormat,
    OutputOption,
    ParamOption,
    RunbookArg,
    identity,
    load_config,
    parse_params,
)
from orchestrator.cli.output import console, fail, info, print_json, print_table, problems
from orchestrator.cli.schedules import created_view, show_created
from orchestrator.cli.temporal import call, recent_pollers
from orchestrator.readiness import (
    READINESS_PREFIX,
    WORKFLOW_TYPE,
    ReadinessInput,
    ReadinessResult,
    readiness_id,
)
from orchestrator.runbook.durations import parse_duration
from orchestrator.runbook.loader import RunbookError, load_file
from orchestrator.runbook.models import ID_PATTERN
from orchestrator.runbook.resolve import ResolveError, resolve
from workflows.readiness import ReadinessWorkflow

app = typer.Typer(help="Readiness: is the runbook still right? (checks, schedules, history)",
                  no_args_is_help=True)  # fmt: skip

FromOpt = Annotated[
    str | None, typer.Option("--from", help="Only this direction: from this region.")
]
ToOpt = Annotated[str | None, typer.Option("--to", help="Only this direction: to this region.")]
RunbookRef = Annotated[
    str, typer.Argument(help="The runbook's name (or its YAML file).", show_default=False)
]
#: A scheduled run that takes longer than this is ended by Temporal (its checks take seconds).
EXECUTION_TIMEOUT = timedelta(minutes=30)


# ------------------------------------------------------------------------------ resolving
def readiness_input(
    runbook: Path,
    from_region: str | None,
    to_region: str | None,
    params: list[str],
    requester: str,
) -> ReadinessInput:
    """The runbook resolved for each direction to check, or one-line errors and exit 2."""
    try:
        rb = load_file(runbook)
    except RunbookError as exc:
        problems(exc.problems)
    except OSError as exc:
        fail(f"{runbook}: {exc.strerror or exc}")
    if (from_region is None) != (to_region is None):
        given, flag = (from_region, "--to") if to_region is None else (to_region, "--from")
        others = [r for r in rb.regions if r != given]
        if given in rb.regions and len(others) == 1:
            from_region, to_region = (given, others[0]) if to_region is None else (others[0], given)
        elif given in rb.regions:
            fail(f"{flag} is needed: runbook {rb.name!r} has {len(rb.regions)} regions")
    pairs = (
        [(from_region, to_region)]
        if from_region is not None and to_region is not None
        else list(permutations(rb.regions, 2))
    )
    try:
        directions = [
            resolve(rb, frm, to, mode="dry-run", requester=requester, params=parse_params(params))
            for frm, to in pairs
        ]
    except ResolveError as exc:
        fail(str(exc))
    return ReadinessInput(
        runbook=rb.name,
        directions=directions,
        notify=[r.model_copy(deep=True) for r in rb.notify],
        requester=requester,
    )


def runbook_name(ref: str) -> str:
    """A runbook's name, given as its name or its file."""
    path = Path(ref)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        try:
            return load_file(path).name
        except RunbookError as exc:
            problems(exc.problems)
        except OSError as exc:
            fail(f"{ref}: {exc.strerror or exc}")
    import re

    if not re.fullmatch(ID_PATTERN, ref):
        fail(f"RUNBOOK {ref!r}: a runbook's name (lowercase letters, digits, dashes) or its file")
    return ref


# ---------------------------------------------------------------------------------- check
def show(result: ReadinessResult) -> None:
    """The checks as a table (red ones in red) and a summary line on stderr."""
    table = Table(title=f"readiness: {result.runbook}", header_style="bold", title_justify="left")
    for col in ("direction", "check", "ok", "detail"):
        table.add_column(col, overflow="fold")
    for c in result.checks:
        style = "" if c.ok else "red"
        table.add_row(c.direction, c.name, Text("yes" if c.ok else "NO", style=style or "green"),
                      Text(c.detail, style=style))  # fmt: skip
    console.print(table)
    counts = result.counts()
    state = "green" if result.ok else "RED"
    info(f"{result.runbook}: {state}: {counts['green']} green, {counts['red']} red "
         f"({', '.join(result.directions)}; {result.duration_s:.1f}s)")  # fmt: skip


@app.command("check")
def check(
    runbook: RunbookArg,
    from_region: FromOpt = None,
    to_region: ToOpt = None,
    param: ParamOption = [],  # noqa: B006 - Typer's way to spell a repeatable option
    config: ConfigOption = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Check now, in both directions (or the one --from/--to name): preflights, replication lag,
    capacity, health checks, Kubernetes permissions. Mutates nothing; exit 6 if a check is red."""
    inp = readiness_input(runbook, from_region, to_region, param, identity(None))
    result = run_checks(inp, Clients(load_config(config)))
    if output == OutputFormat.json:
        print_json(result)
    else:
        show(result)
    if not result.ok:
        raise typer.Exit(int(ExitCode.NOT_READY))


# ------------------------------------------------------------------------------ schedules
async def create_schedule(
    client: Client,
    inp: ReadinessInput,
    task_queue: str,
    every: timedelta,
    paused: bool = False,
    note: str = "",
) -> ScheduleHandle:
    """The schedule `readiness-<runbook>`: ReadinessWorkflow every `every` (overlap: skip; a run
    missed while Temporal was down is not made up later than a minute)."""
    sid = readiness_id(inp.runbook)
    dirs = ", ".join(f"{d.from_region} -> {d.to_region}" for d in inp.directions)
    try:
        return await client.create_schedule(
            sid,
            Schedule(
                action=ScheduleActionStartWorkflow(
                    ReadinessWorkflow.run,
                    inp,
                    id=sid,
                    task_queue=task_queue,
                    execution_timeout=EXECUTION_TIMEOUT,
                    typed_search_attributes=TypedSearchAttributes(
                        [
                            SearchAttributePair(sa.RUNBOOK, inp.runbook),
                            SearchAttributePair(sa.STATE, "RUNNING"),
                        ]
                    ),
                    static_summary=f"readiness of {inp.runbook} ({dirs})",
                ),
                spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)]),
                policy=SchedulePolicy(
                    overlap=ScheduleOverlapPolicy.SKIP, catchup_window=timedelta(minutes=1)
                ),
                state=ScheduleState(
                    paused=paused, note=note or f"created by {inp.requester or 'failover'}"
                ),
            ),
            memo={"runbook": inp.runbook, "directions": dirs, "created_by": inp.requester},
        )
    except ScheduleAlreadyRunningError:
        fail(
            f"runbook {inp.runbook!r} already has a readiness schedule ({sid}): "
            f"'failover readiness delete {inp.runbook}' first"
        )


@app.command("schedule")
def schedule(
    runbook: RunbookArg,
    every: Annotated[str, typer.Option(help="How often, e.g. 30m (ARC evaluates every 30m).")],
    from_region: FromOpt = None,
    to_region: ToOpt = None,
    paused: Annotated[bool, typer.Option(help="Create it paused.")] = False,
    note: Annotated[str, typer.Option(help="Why (shown with the schedule).")] = "",
    param: ParamOption = [],  # noqa: B006
    as_: AsOption = None,
    config: ConfigOption = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Check the runbook every --every on a worker (a Temporal Schedule); a check that turns red
    notifies (readiness_regression); results are kept ('failover readiness history')."""
    try:
        interval = parse_duration(every)
    except ValueError as exc:
        fail(f"--every: {exc}")
    if interval < timedelta(seconds=10):
        fail(f"--every {every}: at least 10s")
    inp = readiness_input(runbook, from_region, to_region, param, identity(as_))
    cfg = load_config(config)

    async def body(client: Client) -> dict[str, Any]:
        try:
            h = await create_schedule(client, inp, cfg.temporal.task_queue, interval, paused, note)
        except RPCError as exc:
            fail(f"Temporal refused the schedule: {exc.message}")
        return await created_view(h, runbook=inp.runbook, every=str(interval))

    out = call(cfg, body)
    show_created(out, output, f": every {out['every']}")


async def _existing(client: Client, name: str) -> ScheduleHandle:
    h = client.get_schedule_handle(readiness_id(name))
    try:
        await h.describe()
    except RPCError as exc:
        if "not found" in exc.message.lower():
            fail(f"runbook {name!r} has no readiness schedule (failover readiness list)")
        raise
    return h


def _iso(t: datetime | None) -> str | None:
    return t.isoformat(timespec="seconds") if t else None


@app.command("list")
def list_schedules(config: ConfigOption = None, output: OutputOption = OutputFormat.table) -> None:
    """Every readiness schedule: its interval, paused or not, next and last run."""
    cfg = load_config(config)

    async def body(client: Client) -> list[dict[str, Any]]:
        rows = []
        async for s in await client.list_schedules():
            if not s.id.startswith(READINESS_PREFIX):
                continue
            spec = s.schedule.spec if s.schedule else None
            nxt = s.info.next_action_times if s.info else []
            recent = s.info.recent_actions if s.info else []
            rows.append(
                {
                    "runbook": s.id.removeprefix(READINESS_PREFIX),
                    "every": ", ".join(str(i.every) for i in (spec.intervals if spec else [])),
                    "paused": bool(s.schedule and s.schedule.state.paused),
                    "next": _iso(nxt[0] if nxt else None),
                    "last": _iso(recent[-1].started_at) if recent else None,
                }
            )
        return sorted(rows, key=lambda r: r["runbook"])

    rows = call(cfg, body)
    if output == OutputFormat.json:
        print_json(rows)
    else:
        print_table("readiness schedules", ["runbook", "every", "paused", "next", "last"],
                    [[r["runbook"], r["every"], r["paused"], r["next"], r["last"]]
                     for r in rows])  # fmt: skip


@app.command("delete")
def delete(runbook: RunbookRef, config: ConfigOption = None) -> None:
    """Delete a runbook's readiness schedule (its results are kept)."""
    name = runbook_name(runbook)
    cfg = load_config(config)

    async def body(client: Client) -> str:
        h = await _existing(client, name)
        await h.delete()
        return f"deleted {h.id}"

    info(call(cfg, body))


@app.command("trigger")
def trigger(runbook: RunbookRef, config: ConfigOption = None) -> None:
    """Run the schedule's readiness check now, on a worker (kept like a scheduled one)."""
    name = runbook_name(runbook)
    cfg = load_config(config)

    async def body(client: Client) -> str:
        h = await _existing(client, name)
        before = (await h.describe()).info.num_actions
        await h.trigger()
        for _ in range(20):
            desc = await h.describe()
            if desc.info.num_actions > before and desc.info.recent_actions:
                wid = getattr(desc.info.recent_actions[-1].action, "workflow_id", "")
                queue = getattr(desc.schedule.action, "task_queue", "")
                hint = (
                    ""
                    if not queue or await recent_pollers(client, queue)
                    else f"; no worker polls its task queue {queue!r}: it waits for one"
                )
                return f"triggered {h.id}: started {wid}{hint}"
            await asyncio.sleep(0.25)
        return f"triggered {h.id} (skipped if one of its runs is still going: overlap skip)"

    info(call(cfg, body))


# -------------------------------------------------------------------------------- history
async def history_of(client: Client, name: str, limit: int) -> list[dict[str, Any]]:
    """The runbook's last readiness runs, newest first, with their results."""
    query = f"WorkflowType = '{WORKFLOW_TYPE}' AND FailoverRunbook = '{name}'"
    rows: list[dict[str, Any]] = []
    async for wf in client.list_workflows(query, limit=limit):
        row: dict[str, Any] = {
            "workflow_id": wf.id,
            "run_id": wf.run_id,
            "started_at": _iso(wf.start_time),
            "status": wf.status.name if wf.status else "UNKNOWN",
            "ok": None,
            "red": [],
            "regressions": [],
            "result": None,
        }
        if wf.status == WorkflowExecutionStatus.COMPLETED:
            handle = client.get_workflow_handle(
                wf.id, run_id=wf.run_id, result_type=ReadinessResult
            )
            result: ReadinessResult = await handle.result()
            row |= {
                "ok": result.ok,
                "red": [f"{c.direction}: {c.name}" for c in result.red],
                "regressions": result.regressions,
                "result": result.model_dump(mode="json"),
            }
        rows.append(row)
    rows.sort(key=lambda r: r["started_at"] or "", reverse=True)
    return rows


@app.command("history")
def history(
    runbook: RunbookRef,
    limit: Annotated[int, typer.Option(min=1, max=200, help="How many runs.")] = 10,
    config: ConfigOption = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """The last readiness runs of a runbook: green or red, what was red, what turned red."""
    name = runbook_name(runbook)
    cfg = load_config(config)
    rows = call(cfg, lambda client: history_of(client, name, limit))
    if output == OutputFormat.json:
        print_json(rows)
        return
    if not rows:
        info(f"no readiness run of {name!r} yet ('failover readiness schedule' or 'trigger')")
        return

    def state(r: dict[str, Any]) -> Text:
        if r["ok"] is None:
            return Text(r["status"].lower())
        return Text("green", style="green") if r["ok"] else Text("RED", style="red")

    table = Table(title=f"readiness history: {name}", header_style="bold", title_justify="left")
    for col in ("started", "result", "red checks", "turned red", "run"):
        table.add_column(col, overflow="fold")
    for r in rows:
        red = "; ".join(r["red"][:5]) + (f" (+{len(r['red']) - 5})" if len(r["red"]) > 5 else "")
        table.add_row(r["started_at"], state(r), red, "; ".join(r["regressions"]),
                      r["workflow_id"])  # fmt: skip
    console.print(table)
