"""`failover guard start|status|history|stop`: a long-running watch over a runbook's active
region that confirms an outage (anti-flap) and proposes the switch."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

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
from orchestrator.cli.output import fail, info, print_json, print_table
from orchestrator.cli.temporal import answered, call, need_worker, recent_pollers, ui_link
from orchestrator.guard import client as guard_client
from orchestrator.guard.models import Episode, GuardInput, GuardState
from orchestrator.guard.resolve import resolve_guard
from orchestrator.runbook.loader import RunbookError, load_file
from orchestrator.runbook.resolve import ResolveError

app = typer.Typer(
    help="Watch a runbook's active region; on a confirmed outage, propose the switch.",
    no_args_is_help=True,
)
NameArg = Annotated[str, typer.Argument(help="The runbook's name (or its YAML file).")]


def _name(ref: str) -> str:
    """A runbook name, from a name or a runbook file."""
    if ref.endswith((".yaml", ".yml")):
        try:
            return load_file(Path(ref)).name
        except RunbookError as exc:
            fail(str(exc.problems[0]) if exc.problems else str(exc))
    return ref


@app.command("start")
def start(
    runbook: RunbookArg,
    active: Annotated[
        str | None,
        typer.Option(help="The region serving now (default: the runbook's first region)."),
    ] = None,
    param: ParamOption = [],  # noqa: B006
    as_: AsOption = None,
    config: ConfigOption = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Start the runbook's guard (it runs on the worker until stopped)."""
    try:
        rb = load_file(runbook)
        inp = resolve_guard(rb, active or rb.regions[0], requester=identity(as_),
                            params=parse_params(param))  # fmt: skip
    except RunbookError as exc:
        from orchestrator.cli.output import problems

        problems(exc.problems)
    except ResolveError as exc:
        fail(str(exc))
    cfg = load_config(config)

    async def body(client: Client) -> dict[str, Any]:
        try:
            h = await guard_client.start(client, inp, cfg.temporal.task_queue)
        except guard_client.GuardError as exc:
            fail(str(exc))
        pollers = await recent_pollers(client, cfg.temporal.task_queue)
        desc = await h.describe()
        return {"workflow_id": h.id, "run_id": desc.run_id, "pollers": pollers}

    started = call(cfg, body)
    out = {
        **started,
        "runbook": inp.runbook,
        "active": inp.state.active,
        "interval_s": inp.interval.total_seconds(),
        "confirm": f"{inp.confirm_failures} of {inp.confirm_of} for "
        f"{inp.confirm_for.total_seconds():g}s",
        "mode": inp.kind,
        "auto_approve": inp.auto_approve,
        "ui": ui_link(cfg, started["workflow_id"], started["run_id"]),
    }
    if output == OutputFormat.json:
        print_json(out)
        return
    link = f"; {out['ui']}" if out["ui"] else ""
    info(f"guard of {inp.runbook} started ({out['workflow_id']}): watching {inp.state.active} "
         f"every {out['interval_s']:g}s, confirm {out['confirm']}, {inp.kind} switch "
         f"to {inp.target(inp.state.active)}{link}")  # fmt: skip
    if not started["pollers"]:
        info(f"no worker polls {cfg.temporal.task_queue!r}: the guard waits until one runs "
             "('failover worker')")  # fmt: skip


async def _need_worker(client: Client, runbook: str) -> str | None:
    """A running guard answers only through a worker: say so at once when none polls. Its task
    queue (None once it ended), for `answered`."""
    try:
        return await need_worker(guard_client.handle(client, runbook), "the guard")
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            fail(f"runbook {runbook!r} has no guard (failover guard start RUNBOOK-FILE)")
        raise


def _read(runbook: str, config: Path | None) -> tuple[GuardInput | None, GuardState, bool]:
    cfg = load_config(config)

    async def body(client: Client) -> tuple[GuardInput | None, GuardState, bool]:
        try:
            queue = await _need_worker(client, runbook)
            h = guard_client.handle(client, runbook)
            return await answered(h, guard_client.status(client, runbook), queue, "the guard")
        except guard_client.GuardError as exc:
            fail(str(exc))

    return call(cfg, body)


def _seconds(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}s"


def _episode_row(e: Episode) -> list[Any]:
    sw = e.switch
    return [
        f"{e.first_failure_at:%Y-%m-%d %H:%M:%S}",
        e.region,
        f"{e.failures}/{e.evaluations}",
        _seconds(e.mttd_s),
        _seconds(e.decision_s),
        _seconds(sw.rto_s if sw else None),
        e.outcome or "open",
        e.decision,
    ]


EPISODE_COLUMNS = ["first failure", "region", "failed", "MTTD", "decision", "RTO", "outcome",
                   "why"]  # fmt: skip


def _episode_json(e: Episode) -> dict[str, Any]:
    return {**e.model_dump(mode="json"), "mttd_s": e.mttd_s, "decision_s": e.decision_s}


@app.command("status")
def status(runbook: NameArg, config: ConfigOption = None,
           output: OutputOption = OutputFormat.table) -> None:  # fmt: skip
    """Where the guard stands: each detector, the anti-flap counters, the last decision."""
    name = _name(runbook)
    view, s, running = _read(name, config)
    data: dict[str, Any] = {
        "runbook": name,
        "running": running,
        "status": s.status.value,
        "active": s.active,
        "evaluations": s.evaluations,
        "window": s.window,
        "last_evaluated_at": s.last_evaluated_at.isoformat() if s.last_evaluated_at else None,
        "detectors": [d.model_dump() for d in (s.last.detectors if s.last else [])],
        "episode": _episode_json(s.episode) if s.episode else None,
        "last_episode": _episode_json(s.history[-1]) if s.history else None,
        "stopped_by": s.stopped_by,
    }
    if view is not None:
        data["confirm"] = {"failures": view.confirm_failures, "of": view.confirm_of,
                           "for_s": view.confirm_for.total_seconds()}  # fmt: skip
        data["interval_s"] = view.interval.total_seconds()
        data["cooldown_s"] = view.cooldown.total_seconds()
    if output == OutputFormat.json:
        print_json(data)
        return
    ago = ""
    if s.last_evaluated_at is not None:
        ago = f", last {(datetime.now(UTC) - s.last_evaluated_at).total_seconds():.0f}s ago"
    marks = "".join("x" if f else "." for f in s.window)
    confirm = ""
    if view is not None:
        confirm = f" (confirm: {view.confirm_failures} of {view.confirm_of})"
    info(f"guard of {name}: {s.status.value}, active {s.active}, {s.evaluations} evaluations"
         f"{ago}; last: {marks or '-'}{confirm}")  # fmt: skip
    if s.last is not None:
        rows = [[d.name, "yes" if d.ok else "NO", d.detail] for d in s.last.detectors]
        print_table(None, ["detector", "ok", "detail"], rows)
    ep = s.episode or (s.history[-1] if s.history else None)
    if ep is not None:
        print_table("episode" if s.episode else "last episode", EPISODE_COLUMNS, [_episode_row(ep)])


@app.command("history")
def history(runbook: NameArg, config: ConfigOption = None,
            output: OutputOption = OutputFormat.table) -> None:  # fmt: skip
    """The guard's episodes: outages (and blips), what it decided, MTTD, time to decision, RTO."""
    name = _name(runbook)
    _, s, _ = _read(name, config)
    episodes = [*s.history, *([s.episode] if s.episode else [])]
    if output == OutputFormat.json:
        print_json([_episode_json(e) for e in episodes])
        return
    print_table(f"{name}: {len(episodes)} episode(s)", EPISODE_COLUMNS,
                [_episode_row(e) for e in episodes])  # fmt: skip


@app.command("stop")
def stop(
    runbook: NameArg,
    reason: Annotated[str, typer.Option(help="Why (recorded).")],
    as_: AsOption = None,
    config: ConfigOption = None,
) -> None:
    """Stop the guard after its current evaluation (a switch it started runs on)."""
    name = _name(runbook)
    cfg = load_config(config)

    async def body(client: Client) -> str:
        try:
            queue = await _need_worker(client, name)
            h = guard_client.handle(client, name)
            stopping = guard_client.stop(client, name, identity(as_), reason)
            return await answered(h, stopping, queue, "the guard")
        except guard_client.GuardError as exc:
            fail(str(exc))

    info(call(cfg, body))
