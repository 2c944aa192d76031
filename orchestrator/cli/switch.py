"""`failover drill | run | status | watch | list | approve | reject | abort | resolve`: region
switches as the on-call engineer drives them.

`drill` and `run` start the workflow and follow it with a live table; Ctrl-C detaches (the switch
goes on in Temporal). On the sandbox, `drill`, `run` and `watch` also host a worker in their own
process while they follow the run, so one command is enough (more workers on one task queue share
the work; a detached run goes on when any worker polls).
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import logging
import os
import statistics
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.service import RPCError

from activities.clients import Clients
from orchestrator import config as configuration
from orchestrator import report, switch
from orchestrator.cli.exit_codes import ExitCode
from orchestrator.cli.output import (
    OutputFormat,
    OutputOption,
    console,
    err_console,
    fail,
    info,
    print_json,
    print_table,
)
from orchestrator.cli.worker import ConfigOption, load_config
from orchestrator.client import UnreachableError, connect
from orchestrator.logs import configure
from orchestrator.plan import make_plan, observe_state
from orchestrator.runbook.loader import RunbookError, load_file
from orchestrator.runbook.resolve import ResolveError, resolve
from orchestrator.runs import (
    Abort,
    Decision,
    Mode,
    OperatorAction,
    RunProgress,
    RunState,
    StepState,
    SwitchInput,
)
from orchestrator.worker import build_worker, executor

T = TypeVar("T")

FINAL_CODES = {
    RunState.SUCCEEDED: ExitCode.OK,
    RunState.ROLLED_BACK: ExitCode.ROLLED_BACK,
    RunState.ROLLBACK_FAILED: ExitCode.ROLLBACK_FAILED,
}
STATE_STYLE = {
    StepState.SUCCEEDED: "green",
    StepState.RUNNING: "cyan",
    StepState.WAITING_APPROVAL: "yellow",
    StepState.PAUSED: "yellow",
    StepState.FAILED: "red",
    StepState.UNDOING: "magenta",
    StepState.UNDONE: "magenta",
    StepState.UNDO_FAILED: "bold red",
    StepState.NOT_RUN: "dim",
    StepState.PENDING: "dim",
}

IdArg = Annotated[str, typer.Argument(help="Run id (switch-RUNBOOK) or the runbook's name.")]
AsOption = Annotated[
    str | None, typer.Option("--as", help="Who you are (default: $FAILOVER_USER or $USER).")
]


def identity(name: str | None) -> str:
    """The operator's name: --as, else $FAILOVER_USER, else the login name."""
    who = name or os.environ.get("FAILOVER_USER") or getpass.getuser()
    if not who.strip():
        fail("--as: who you are is required")
    return who.strip()


def run_id(ref: str) -> str:
    """Accept a workflow id or a runbook name."""
    return ref if ref.startswith(("switch-", "test-")) else switch.workflow_id(ref)


def _call(cfg: configuration.Config, body: Callable[[Client], Awaitable[T]]) -> T:
    """Connect and run body; Temporal unreachable or a refused request become one-line errors."""

    async def main() -> T:
        return await body(await connect(cfg.temporal))

    try:
        return asyncio.run(main())
    except UnreachableError as exc:
        fail(str(exc), ExitCode.UNREACHABLE)
    except switch.RefusedError as exc:
        fail(f"refused: {exc}")
    except switch.NoWorkerError as exc:
        fail(str(exc), ExitCode.UNREACHABLE)
    except RPCError as exc:
        if "not found" in exc.message.lower():
            fail(f"no such run: {exc.message}")
        fail(f"Temporal refused the request: {exc.message}", ExitCode.UNREACHABLE)


# --------------------------------------------------------------------------------- tables
def progress_table(p: RunProgress) -> Group:
    """The step table and, when a gate or the operator is awaited, what to do."""
    elapsed = ((p.ended_at or _now(p)) - p.started_at).total_seconds()
    title = (
        f"{p.mode} {p.runbook}: {p.from_region} -> {p.to_region}  ·  {p.state.value}  ·  "
        f"{elapsed:.1f}s"
    )
    table = Table(title=title, header_style="bold", title_justify="left")
    for col in ("step", "type", "state", "attempts", "elapsed", "detail"):
        table.add_column(col, overflow="fold")
    for s in p.steps:
        took = ""
        if s.started_at is not None:
            end = (
                s.undo_ended_at or s.ended_at or (_now(p) if s.state != StepState.PENDING else None)
            )
            took = f"{(end - s.started_at).total_seconds():.1f}s" if end else ""
        err = s.undo_error or s.error
        detail = f"{err.kind}: {err.message}" if err else (s.undo_note or s.detail or s.phase)
        style = STATE_STYLE.get(s.state, "")
        table.add_row(s.id, s.type, Text(s.state.value, style=style), str(s.attempts), took, detail)
    parts: list[Any] = [table]
    if p.reason:
        parts.append(Text(f"rolling back because: {p.reason}", style="red"))
    for gate in p.open_gates:
        parts.append(
            Text(
                f"gate '{gate}' is open: failover approve {p.runbook} --gate {gate} --as NAME "
                "(or approve it in the Temporal UI: Update 'approve' with "
                '{"approver": "NAME", "comment": "..."})',
                style="yellow",
            )
        )
    if p.state in (RunState.PAUSED, RunState.ROLLBACK_FAILED):
        parts.append(
            Text(
                f"waiting for the operator: failover resolve {p.runbook} --action "
                "retry|skip|end|rollback --as NAME --reason '...'",
                style="bold yellow",
            )
        )
    return Group(*parts)


def _now(p: RunProgress) -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


# ------------------------------------------------------------------------------ start
async def _recent_pollers(client: Client, queue: str) -> int:
    """Workers seen polling the queue lately (the server remembers dead ones for a while)."""
    resp = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
    )
    return len(resp.pollers)


@contextlib.asynccontextmanager
async def _hosted_worker(client: Client, cfg: configuration.Config) -> AsyncIterator[None]:
    """On the sandbox, a worker in this process while it follows a run."""
    if not cfg.sandbox:
        yield
        return
    with executor() as pool:
        async with build_worker(client, cfg, pool):
            yield


def _resolved(
    runbook: Path, from_region: str, to_region: str, params: list[str], mode: Mode, requester: str
) -> SwitchInput:
    """The runbook loaded and resolved, or one-line errors and exit 2 (nothing started)."""
    try:
        return resolve(
            load_file(runbook), from_region, to_region, mode=mode, requester=requester,
            params=_parse_params(params),
        )  # fmt: skip
    except RunbookError as exc:
        for problem in exc.problems:
            err_console.print(f"[bold red]error:[/] {problem}", highlight=False, soft_wrap=True)
        raise typer.Exit(int(ExitCode.INVALID_INPUT)) from None
    except ResolveError as exc:
        fail(str(exc))


def plan(
    runbook: RunbookArg,
    from_region: FromOption,
    to_region: ToOption,
    param: ParamOption = [],  # noqa: B006
    config: ConfigOption = None,
    output: OutputFormat = OutputOption,
) -> None:
    """What a switch would do: parallel groups, critical path, gates, irreversible steps, and
    every step's preflight and diff. Mutates nothing; exit 6 if a preflight fails."""
    inp = _resolved(runbook, from_region, to_region, param, "dry-run", identity(None))
    cfg = load_config(config)
    result = make_plan(inp, Clients(cfg))
    result.past_runs, result.past_median_s = _past_durations(cfg, inp.runbook)
    if output == OutputFormat.json:
        print_json(result)
    else:
        table = Table(title=f"plan: {inp.runbook} {inp.from_region} -> {inp.to_region}",
                      header_style="bold", title_justify="left")  # fmt: skip
        for col in ("group", "step", "type", "preflight", "would change"):
            table.add_column(col, overflow="fold")
        for row in result.steps:
            changes = "; ".join(
                f"{c['resource']}: {c['before']} -> {c['after']}" for c in row.changes
            ) or ("(nothing)" if row.preflight == "ok" else "")
            flag = " IRREVERSIBLE" if row.irreversible else ""
            style = "red" if row.error_kind else ""
            table.add_row(str(row.level), row.id + flag, row.type,
                          Text(row.preflight, style=style), changes)  # fmt: skip
        console.print(table)
        minutes = result.critical_path_timeout_s / 60
        info(f"critical path ({minutes:.0f} min at most, by step timeouts and gate expiry): "
             + " -> ".join(result.critical_path))  # fmt: skip
        past = (
            f"median of the last {result.past_runs} successful runs: {result.past_median_s:.1f}s"
            if result.past_median_s is not None
            else "no successful past run to compare with"
        )
        info(f"expected RTO: {past}")
        info(f"gates: {', '.join(result.gates) or 'none'}; irreversible: "
             f"{', '.join(result.irreversible) or 'none'}")  # fmt: skip
    if not result.ok:
        raise typer.Exit(int(ExitCode.NOT_HEALTHY))


def state(
    runbook: RunbookArg,
    region: Annotated[str, typer.Option(help="The region a switch would start from.")],
    param: ParamOption = [],  # noqa: B006
    config: ConfigOption = None,
    output: OutputFormat = OutputOption,
) -> None:
    """The observed state of every resource the runbook touches (what its snapshots read)."""
    inp = _resolved(runbook, region, _other(runbook, region), param, "dry-run", "state")
    rows = observe_state(inp, Clients(load_config(config)))
    if output == OutputFormat.json:
        print_json(rows)
    else:
        print_table(
            f"{inp.runbook}: state seen from {region}",
            ["step", "resource", "state"],
            [[r.step, r.resource, r.error or r.state] for r in rows],
        )
    if any(r.error for r in rows):
        raise typer.Exit(int(ExitCode.NOT_HEALTHY))


def _other(runbook: Path, region: str) -> str:
    try:
        regions = load_file(runbook).regions
    except RunbookError:
        return region  # _resolved reports the runbook's problems
    others = [r for r in regions if r != region]
    return others[0] if others else region


def _past_durations(cfg: configuration.Config, runbook: str) -> tuple[int, float | None]:
    """How many recent successful runs of the runbook there are, and their median duration
    (0, None when Temporal cannot be reached: the plan itself needs no Temporal)."""

    async def body() -> list[float]:
        client = await asyncio.wait_for(connect(cfg.temporal), 5)
        query = (
            f"WorkflowType = 'RegionSwitch' AND FailoverRunbook = '{runbook}' "
            "AND FailoverState = 'SUCCEEDED' AND FailoverMode != 'dry-run'"
        )
        out = []
        async for wf in client.list_workflows(query, limit=20):
            if wf.close_time is not None:
                out.append((wf.close_time - wf.start_time).total_seconds())
        return out

    try:
        durations = asyncio.run(body())
    except (UnreachableError, TimeoutError, RPCError):
        return 0, None
    return len(durations), (statistics.median(durations) if durations else None)


def _parse_params(values: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for v in values:
        key, sep, val = v.partition("=")
        if not sep or not key:
            fail(f"--param {v!r}: expected NAME=VALUE")
        out[key] = val
    return out


def _start(
    mode: Mode,
    runbook: Path,
    from_region: str,
    to_region: str,
    params: list[str],
    as_: str | None,
    auto_approve: str | None,
    detach: bool,
    config: Path | None,
    output: OutputFormat,
) -> None:
    # The live table is the progress; a worker hosted here only reports problems.
    configure("console", level=logging.WARNING)
    requester = identity(as_)
    inp = _resolved(runbook, from_region, to_region, params, mode, requester)
    cfg = load_config(config)
    if auto_approve is not None:
        if not cfg.sandbox:
            fail("--auto-approve is for sandbox demos only: approvals need a second person")
        if auto_approve.strip() == requester:
            fail(f"--auto-approve {auto_approve}: the requester cannot approve (two-person rule)")

    async def body(client: Client) -> tuple[RunProgress, str, str | None] | None:
        async with _hosted_worker(client, cfg) if not detach else contextlib.nullcontext():
            try:
                h = await switch.start(client, inp, cfg.temporal.task_queue)
            except switch.AlreadyRunningError as exc:
                fail(str(exc))
            desc = await h.describe()
            link = _ui_link(cfg, h.id, desc.run_id)
            if detach:
                if not await _recent_pollers(client, cfg.temporal.task_queue):
                    info(
                        f"no worker polls '{cfg.temporal.task_queue}' now: the run starts when "
                        "one does (failover worker, or failover watch on the sandbox)"
                    )
                if output == OutputFormat.json:
                    print_json({"workflow_id": h.id, "run_id": desc.run_id, "ui": link})
                else:
                    info(f"started {h.id} (run {desc.run_id})" + (f"\n  {link}" if link else ""))
                return None
            info(f"started {h.id}" + (f": {link}" if link else ""))
            return await _follow(h, auto_approve, output == OutputFormat.json), h.id, desc.run_id

    result = _call(cfg, body)
    if result is not None:
        progress, wid, rid = result
        written = write_reports(report.build(progress, wid, rid))
        if output != OutputFormat.json:
            _summary(report.build(progress, wid, rid), written)
        _finish(progress, output)


REPORTS = Path(os.environ.get("FAILOVER_REPORTS", ".failover/reports"))


def write_reports(r: report.Report, directory: Path | None = None) -> list[Path]:
    """The run's report as Markdown, JSON and HTML files; returns their paths."""
    return write_files(r, report.markdown(r), report.html_page(r), directory)


def write_files(r: Any, md: str, page: str, directory: Path | None = None) -> list[Path]:
    """A report (a model with workflow_id and run_id) as .md, .json and .html files."""
    out = directory or REPORTS
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"{r.workflow_id}-{(r.run_id or 'run')[:13]}"
    paths = [stem.with_suffix(".md"), stem.with_suffix(".json"), stem.with_suffix(".html")]
    paths[0].write_text(md)
    paths[1].write_text(r.model_dump_json(indent=2))
    paths[2].write_text(page)
    return paths


def _summary(r: report.Report, written: list[Path]) -> None:
    def s(v: float | None) -> str:
        return "-" if v is None else f"{v:.1f}s"

    info(
        f"RTO: traffic on {r.to_region} after {s(r.rto_traffic_s)}, run {s(r.rto_total_s)}; "
        f"RPO: {s(r.rpo_s)}"
    )
    info("report: " + ", ".join(str(p) for p in written))


def _ui_link(cfg: configuration.Config, wid: str, rid: str | None) -> str:
    if not cfg.temporal.ui_url:
        return ""
    return f"{cfg.temporal.ui_url}/namespaces/{cfg.temporal.namespace}/workflows/{wid}/{rid}"


async def _follow(h: switch.Handle, auto_approve: str | None, quiet: bool = False) -> RunProgress:
    """Refresh the live table until the run ends; approve gates as `auto_approve` if given."""
    approved: set[str] = set()
    live = Live(console=err_console, refresh_per_second=4, transient=False)
    if not quiet:
        live.start()
    try:
        while True:
            p = await switch.progress(h)
            if not quiet:
                live.update(progress_table(p))
            if p.state.final:
                return p
            for gate in p.open_gates:
                if auto_approve and gate not in approved:
                    approved.add(gate)
                    msg = await switch.approve(
                        h, Decision(approver=auto_approve, gate=gate, comment="--auto-approve")
                    )
                    info(f"{auto_approve}: {msg}")
            await asyncio.sleep(0.5)
    except (KeyboardInterrupt, asyncio.CancelledError):
        live.stop()
        info(f"detached: the switch goes on. Follow it with: failover watch {h.id}")
        raise typer.Exit(int(ExitCode.OK)) from None
    finally:
        live.stop()


def _finish(p: RunProgress, output: OutputFormat) -> NoReturn:
    if output == OutputFormat.json:
        print_json(p)
    else:
        took = ((p.ended_at or _now(p)) - p.started_at).total_seconds()
        style = "green" if p.state == RunState.SUCCEEDED else "bold red"
        err_console.print()
        err_console.print(f"[{style}]{p.state.value}[/] in {took:.1f}s", highlight=False)
    raise typer.Exit(int(FINAL_CODES.get(p.state, ExitCode.OK)))


FromOption = Annotated[str, typer.Option("--from", help="Region to switch away from.")]
ToOption = Annotated[str, typer.Option("--to", help="Region to switch to.")]
ParamOption = Annotated[list[str], typer.Option("--param", "-p", help="NAME=VALUE (repeatable).")]
AutoApproveOption = Annotated[
    str | None, typer.Option(help="Approve every gate as this person (sandbox demos only).")
]
DetachOption = Annotated[bool, typer.Option(help="Return the run id at once.")]
RunbookArg = Annotated[Path, typer.Argument(help="Runbook YAML file.")]


def drill(
    runbook: RunbookArg,
    from_region: FromOption,
    to_region: ToOption,
    param: ParamOption = [],  # noqa: B006 - Typer's way to spell a repeatable option
    as_: AsOption = None,
    auto_approve: AutoApproveOption = None,
    detach: DetachOption = False,
    config: ConfigOption = None,
    output: OutputFormat = OutputOption,
) -> None:
    """Practise a switch (mode drill) and follow it live; exit 0/3/4 = succeeded/rolled back/
    rollback failed."""
    _start("drill", runbook, from_region, to_region, param, as_, auto_approve, detach, config,
           output)  # fmt: skip


def run(
    runbook: RunbookArg,
    from_region: FromOption,
    to_region: ToOption,
    param: ParamOption = [],  # noqa: B006
    as_: AsOption = None,
    auto_approve: AutoApproveOption = None,
    detach: DetachOption = False,
    dry_run: Annotated[bool, typer.Option(help="Preflight and dry-run every step.")] = False,
    config: ConfigOption = None,
    output: OutputFormat = OutputOption,
) -> None:
    """Switch for real (mode failover), or --dry-run to see what would change."""
    mode: Mode = "dry-run" if dry_run else "failover"
    _start(mode, runbook, from_region, to_region, param, as_, auto_approve, detach, config, output)


# ------------------------------------------------------------------------------ inspect
def status(ref: IdArg, config: ConfigOption = None, output: OutputFormat = OutputOption) -> None:
    """The step table of a run (running or ended)."""
    cfg = load_config(config)
    p = _call(cfg, lambda c: switch.progress(switch.handle(c, run_id(ref))))
    if output == OutputFormat.json:
        print_json(p)
    else:
        console.print(progress_table(p))


def watch(ref: IdArg, config: ConfigOption = None, output: OutputFormat = OutputOption) -> None:
    """Follow a run live until it ends; exits with its outcome's code."""
    cfg = load_config(config)
    configure("console", level=logging.WARNING)

    async def body(client: Client) -> RunProgress:
        async with _hosted_worker(client, cfg):
            h = switch.handle(client, run_id(ref))
            return await _follow(h, None, output == OutputFormat.json)

    _finish(_call(cfg, body), output)


def report_cmd(
    ref: IdArg,
    fmt: Annotated[str, typer.Option("--format", "-f", help="md, json or html")] = "md",
    out: Annotated[Path | None, typer.Option(help="Write to this file (default: stdout).")] = None,
    config: ConfigOption = None,
) -> None:
    """The report of a run: outcome, RTO, RPO, objectives, steps (before -> after), approvals,
    rollback, errors."""
    if fmt not in ("md", "json", "html"):
        fail(f"--format: expected md, json or html, got {fmt!r}")
    cfg = load_config(config)

    async def body(client: Client) -> report.Report:
        h = switch.handle(client, run_id(ref))
        desc = await h.describe()
        return report.build(await switch.progress(h), h.id, desc.run_id)

    r = _call(cfg, body)
    emit(render(r, fmt, report.markdown, report.html_page), out)


def render(r: Any, fmt: str, markdown: Callable[[Any], str], page: Callable[[Any], str]) -> str:
    """A report (a pydantic model) as json, md or html text."""
    if fmt == "json":
        return str(r.model_dump_json(indent=2)) + "\n"
    return markdown(r) if fmt == "md" else page(r)


def emit(text: str, out: Path | None) -> None:
    """Text to stdout, or to a file (then say so on stderr)."""
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text)
        info(f"wrote {out}")


def list_runs(
    state: Annotated[str | None, typer.Option(help="Only runs in this state.")] = None,
    runbook: Annotated[str | None, typer.Option(help="Only runs of this runbook.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 20,
    config: ConfigOption = None,
    output: OutputFormat = OutputOption,
) -> None:
    """Recent runs, newest first (from the search attributes)."""
    if state is not None and state.upper() not in RunState.__members__:
        fail(f"--state: expected one of {', '.join(RunState.__members__)}")
    query = ["WorkflowType = 'RegionSwitch'"]
    if state:
        query.append(f"FailoverState = '{state.upper()}'")
    if runbook:
        query.append(f"FailoverRunbook = '{runbook.replace(chr(39), '')}'")
    cfg = load_config(config)

    async def body(client: Client) -> list[dict[str, Any]]:
        rows = []
        async for wf in client.list_workflows(" AND ".join(query), limit=limit):
            attrs = wf.typed_search_attributes
            from orchestrator import search_attributes as sa

            rows.append(
                {
                    "workflow_id": wf.id,
                    "run_id": wf.run_id,
                    "runbook": attrs.get(sa.RUNBOOK),
                    "from": attrs.get(sa.FROM_REGION),
                    "to": attrs.get(sa.TO_REGION),
                    "mode": attrs.get(sa.MODE),
                    "state": attrs.get(sa.STATE),
                    "requester": attrs.get(sa.REQUESTER),
                    "started": wf.start_time.isoformat(),
                }
            )
        return rows

    rows = _call(cfg, body)
    if output == OutputFormat.json:
        print_json(rows)
        return
    print_table(
        f"{len(rows)} run(s)",
        ["workflow", "runbook", "from -> to", "mode", "state", "requester", "started"],
        [
            [r["workflow_id"], r["runbook"], f"{r['from']} -> {r['to']}", r["mode"], r["state"],
             r["requester"], r["started"][:19]]
            for r in rows
        ],
    )  # fmt: skip


# ------------------------------------------------------------------------------ decide
def approve(
    ref: IdArg,
    as_: AsOption = None,
    gate: Annotated[str | None, typer.Option(help="Gate step id (if several are open).")] = None,
    comment: Annotated[str, typer.Option(help="Why.")] = "",
    config: ConfigOption = None,
) -> None:
    """Approve an open gate (never your own switch: two-person rule)."""
    decision = Decision(approver=identity(as_), gate=gate, comment=comment)
    cfg = load_config(config)
    info(_call(cfg, lambda c: switch.approve(switch.handle(c, run_id(ref)), decision)))


def reject(
    ref: IdArg,
    reason: Annotated[str, typer.Option(help="Why (recorded in the report).")],
    as_: AsOption = None,
    gate: Annotated[str | None, typer.Option(help="Gate step id (if several are open).")] = None,
    config: ConfigOption = None,
) -> None:
    """Reject an open gate: the switch rolls back."""
    decision = Decision(approver=identity(as_), gate=gate, comment=reason)
    cfg = load_config(config)
    info(_call(cfg, lambda c: switch.reject(switch.handle(c, run_id(ref)), decision)))


def abort(
    ref: IdArg,
    reason: Annotated[str, typer.Option(help="Why (recorded in the report).")],
    as_: AsOption = None,
    config: ConfigOption = None,
) -> None:
    """Stop the switch and undo every step it applied."""
    req = Abort(by=identity(as_), reason=reason)
    cfg = load_config(config)
    info(_call(cfg, lambda c: switch.abort(switch.handle(c, run_id(ref)), req)))


def resolve_cmd(
    ref: IdArg,
    action: Annotated[str, typer.Option(help="retry | skip | rollback (paused) | end (undo)")],
    reason: Annotated[str, typer.Option(help="Why (required to skip).")] = "",
    step: Annotated[str | None, typer.Option(help="Step id (if several wait).")] = None,
    as_: AsOption = None,
    config: ConfigOption = None,
) -> None:
    """Decide for a paused step or a failed undo (ROLLBACK_FAILED)."""
    if action not in ("retry", "skip", "rollback", "end"):
        fail(f"--action: expected retry, skip, rollback or end, got {action!r}")
    req = OperatorAction(action=action, by=identity(as_), reason=reason, step=step)  # type: ignore[arg-type]
    cfg = load_config(config)
    info(_call(cfg, lambda c: switch.operator(switch.handle(c, run_id(ref)), req)))


def register(app: typer.Typer) -> None:
    """Add these commands to the top-level app."""
    for fn in (plan, state, drill, run, status, watch, approve, reject, abort):
        app.command()(fn)
    app.command("list")(list_runs)
    app.command("report")(report_cmd)
    app.command("resolve")(resolve_cmd)
