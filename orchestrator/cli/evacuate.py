"""`failover evacuate PLAN --from REGION`: every service of a region moved by one durable run,
followed live; and what the switch commands do with an evacuation's id (`failover status|watch|
approve|reject|abort|report evacuation-PLAN`), `failover plan` and `failover validate` with a plan
file (they call the functions here when the file or the id is an evacuation's).

On the sandbox, `evacuate` and `watch` host a worker in their own process while they follow the
evacuation, as `drill` does. Ctrl-C detaches; the evacuation goes on.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from pydantic import BaseModel
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from activities.clients import Clients
from orchestrator import accounts, leases, report_store
from orchestrator.cli.exit_codes import ExitCode
from orchestrator.cli.hosted import hosted_worker
from orchestrator.cli.options import (
    AsOption,
    AutoApproveOption,
    ConfigOption,
    DetachOption,
    FromOption,
    OutputFormat,
    OutputOption,
    ReportFormat,
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
    problems,
    render,
)
from orchestrator.cli.temporal import answered, ask, call, need_worker, recent_pollers, ui_link
from orchestrator.cli.views import evacuation_changes, evacuation_table, seconds
from orchestrator.config import Config
from orchestrator.evacuation import client as evacuation
from orchestrator.evacuation import estimates
from orchestrator.evacuation import report as evac_report
from orchestrator.evacuation.loader import LoadedPlan, load_file
from orchestrator.evacuation.resolve import (
    NoTargetError,
    check,
    critical_path,
    is_auto,
    overlap_problems,
    resolve_evacuation,
    resources,
    service_resources,
)
from orchestrator.evacuation.runs import (
    EvacState,
    EvacuationInput,
    EvacuationProgress,
    evacuation_workflow_id,
)
from orchestrator.logs import configure
from orchestrator.plan import make_plan
from orchestrator.runbook.loader import RunbookError
from orchestrator.runbook.resolve import ResolveError
from orchestrator.runs import Abort, Decision, Mode, RunState, TargetChoice

FINAL_CODES = {
    EvacState.SUCCEEDED: ExitCode.OK,
    EvacState.PARTIAL: ExitCode.ROLLED_BACK,
    EvacState.ROLLED_BACK: ExitCode.ROLLED_BACK,
    EvacState.ROLLBACK_FAILED: ExitCode.ROLLBACK_FAILED,
}
WHAT = "evacuation"  # what the one-line errors call an evacuation run

PlanArg = Annotated[Path, typer.Argument(help="Evacuation plan YAML file (kind: Evacuation).")]
ToOptional = Annotated[
    str | None,
    typer.Option(
        "--to",
        help="Region to move to (default: each runbook's other region), or auto: for each "
        "service, the first of its runbook's other regions whose capacity and health checks "
        "are green.",
    ),
]


def loaded(path: Path) -> LoadedPlan:
    """The plan and its runbooks, or every problem (file:line:col) and exit 2."""
    try:
        return load_file(path)
    except RunbookError as exc:
        problems(exc.problems)


def resolved(
    plan: LoadedPlan, from_region: str, to_region: str | None, mode: Mode, requester: str,
    unplanned: bool, cfg: Config | None = None, quiet: bool = False,
) -> EvacuationInput:  # fmt: skip
    """The plan resolved for this run, or one line and exit 2 (nothing started); two services
    that would write the same resource are every problem listed, exit 2. `--to auto`: each
    service's target chosen by its checks (with `cfg`), one line per service saying which and
    why (unless quiet); a service for which no region qualifies: one line naming it and each
    region's reason, exit 6 (nothing started)."""
    clients = Clients(cfg) if cfg is not None and is_auto(to_region) else None
    try:
        inp = resolve_evacuation(plan, from_region, to_region, mode=mode, requester=requester,
                                 kind="unplanned" if unplanned else None,
                                 clients=clients)  # fmt: skip
    except ResolveError as exc:
        fail(str(exc))
    except NoTargetError as exc:
        fail(str(exc), ExitCode.NOT_HEALTHY)
    if inp.to_auto and not quiet:
        for s in inp.services:
            if s.switch.target_choice is not None:
                info(f"{s.name}: {s.switch.target_choice.summary()}")
    found = overlap_problems(plan, inp)
    if found:
        problems(found)
    return inp


def config_for(to_region: str | None, config: Path | None) -> Config | None:
    """The configuration when resolving needs it (`--to auto` checks the candidate regions)."""
    return load_config(config) if is_auto(to_region) else None


# ------------------------------------------------------------------------------- evacuate
def configured(inp: EvacuationInput, config: Path | None, cfg: Config | None = None) -> Config:
    """The configuration (`cfg`, else loaded), with every AWS account the services' steps name
    defined in it; else a one-line error naming the service, the step and the account (nothing
    started)."""
    cfg = cfg or load_config(config)
    for s in inp.services:
        for sw in (s.switch, s.failback):
            try:
                accounts.check(sw.steps if sw else [], cfg.aws, cfg.source)
            except accounts.AccountError as exc:
                fail(f"service {s.name}: {exc}")
    return cfg


def evacuate(
    plan: PlanArg,
    from_region: FromOption,
    to_region: ToOptional = None,
    unplanned: Annotated[
        bool,
        typer.Option("--unplanned", help="The region is down: every service runs unplanned."),
    ] = False,
    dry_run: Annotated[bool, typer.Option(help="Preflight and dry-run every service.")] = False,
    as_: AsOption = None,
    auto_approve: AutoApproveOption = None,
    detach: DetachOption = False,
    config: ConfigOption = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Evacuate a region: every service of the plan switched by its own durable run, in order
    (dependencies, tiers, max_parallel), under the plan's failure policy and gates; followed
    live. Exit 0 succeeded, 3 partial or rolled back, 4 a rollback failed."""
    configure("console", level=logging.WARNING)
    requester = identity(as_)
    mode: Mode = "dry-run" if dry_run else "failover"
    lp = loaded(plan)
    early = config_for(to_region, config)
    inp = resolved(lp, from_region, to_region, mode, requester, unplanned, early,
                   output == OutputFormat.json)  # fmt: skip
    cfg = configured(inp, config, early)
    if auto_approve is not None:
        if not cfg.sandbox:
            fail("--auto-approve is for sandbox demos only: approvals need a second person")
        if auto_approve.strip() == requester:
            fail(f"--auto-approve {auto_approve}: the requester cannot approve (two-person rule)")

    async def body(client: Client) -> tuple[EvacuationProgress, str, str | None] | None:
        async with hosted_worker(client, cfg, enabled=not detach):
            planned = await estimated(client, inp, output == OutputFormat.json)
            queue = cfg.temporal.task_queue
            if detach and evacuation.sharded(planned) and not await recent_pollers(client, queue):
                fail(f"evacuation {inp.plan!r} holds more leases than one search attribute takes: "
                     f"a worker starts its lease shards before it changes anything, and no "
                     f"worker polls '{queue}': start one (failover worker), or leave out "
                     "--detach")  # fmt: skip
            try:
                h = await evacuation.start(client, planned, cfg.temporal.task_queue)
            except evacuation.switch.AlreadyRunningError as exc:
                fail(str(exc))
            desc = await h.describe()
            link = ui_link(cfg, h.id, desc.run_id)
            if detach:
                if not await recent_pollers(client, cfg.temporal.task_queue):
                    info(f"no worker polls '{cfg.temporal.task_queue}' now: the evacuation "
                         "starts when one does")  # fmt: skip
                if output == OutputFormat.json:
                    print_json({"workflow_id": h.id, "run_id": desc.run_id, "ui": link})
                else:
                    info(f"started {h.id} (run {desc.run_id})" + (f"\n  {link}" if link else ""))
                return None
            info(f"started {h.id}" + (f": {link}" if link else ""))
            quiet = output == OutputFormat.json
            return await follow(client, h, auto_approve, quiet), h.id, desc.run_id

    result = call(cfg, body)
    if result is not None:
        finish(*result, output)


async def estimated(client: Client, inp: EvacuationInput, quiet: bool) -> EvacuationInput:
    """The input with each service's expected duration from its past switches (services ready
    at once start on the longest expected chain first); one line saying how many have one. A
    server without visibility: plan order, said in one line."""
    try:
        out = await estimates.with_estimates(client, inp)
    except RPCError as exc:
        info(f"start order: plan order (past runs unreadable: {exc.message})")
        return inp
    known = sum(s.expected_s is not None for s in out.services)
    if not quiet:
        info(
            f"start order: longest expected chain first ({known} of {len(out.services)} "
            "services have a past switch this way)"
            if known
            else "start order: plan order (no service has a past switch this way)"
        )
    return out


async def follow(
    client: Client, h: evacuation.Handle, auto_approve: str | None, quiet: bool = False
) -> EvacuationProgress:
    """Refresh the service table until the evacuation ends (on a terminal; piped: a plain line
    per change); approve as `auto_approve` the evacuation's gates and the services' gates left
    to people. At once one line, exit 5, when no worker polls."""
    live_view = Live(console=err_console, refresh_per_second=4, transient=False)
    redraw = not quiet and err_console.is_terminal
    seen: dict[str, str] = {}
    approved: set[str] = set()
    try:
        queue = await need_worker(h, WHAT)
        if redraw:
            live_view.start()
        while True:
            p = await answered(h, evacuation.progress(h), queue, WHAT)
            children = await evacuation.live(client, p) if not p.state.final else {}
            if redraw:
                live_view.update(evacuation_table(p, children, h.id, err_console.width))
            elif not quiet:
                for line in evacuation_changes(seen, p, children, h.id):
                    info(line)
            if p.state.final:
                done: EvacuationProgress = await h.result()
                return done
            if auto_approve:
                await _auto_approve(client, h, p, children, auto_approve, approved, queue)
            await asyncio.sleep(0.5)
    except (KeyboardInterrupt, asyncio.CancelledError):
        live_view.stop()
        info(f"detached: the evacuation goes on. Follow it with: failover watch {h.id}")
        raise typer.Exit(int(ExitCode.OK)) from None
    finally:
        live_view.stop()


async def _auto_approve(
    client: Client,
    h: evacuation.Handle,
    p: EvacuationProgress,
    children: dict[str, Any],
    who: str,
    approved: set[str],
    queue: str | None,
) -> None:
    for gate in p.open_gates:
        if gate not in approved:
            approved.add(gate)
            vote = Decision(approver=who, gate=gate, comment="--auto-approve")
            info(f"{who}: {await answered(h, evacuation.approve(h, vote), queue, WHAT)}")
    for name, child in children.items():
        for gate in child.open_gates:
            key = f"{name}/{child.started_at}/{gate}"
            if key not in approved and child.state == RunState.WAITING_APPROVAL:
                approved.add(key)
                vote = Decision(approver=who, gate=gate, comment="--auto-approve")
                try:
                    msg = await evacuation.service_decision(client, h, name, vote)
                except evacuation.switch.RefusedError as exc:
                    msg = f"refused: {exc}"
                info(f"{who} ({name}): {msg}")


def finish(p: EvacuationProgress, wid: str, rid: str | None, output: OutputFormat) -> NoReturn:
    """The outcome, the evacuation's RTO and critical path, where the report is; exit code."""
    r = evac_report.build(p, wid, rid)
    if output == OutputFormat.json:
        print_json(r)
    else:
        style = "green" if p.state == EvacState.SUCCEEDED else "bold red"
        err_console.print(f"[{style}]{p.state.value}[/] {escape(p.reason)}", highlight=False)
        counts: dict[str, int] = {}
        for s in r.services:
            counts[s.outcome] = counts.get(s.outcome, 0) + 1
        info(
            f"RTO: the last service's traffic on the target after {seconds(r.rto_s)} "
            f"(evacuation {seconds(r.rto_total_s)}); services: "
            + ", ".join(f"{k} {v}" for k, v in counts.items())
        )
        if r.critical_path:
            info("critical path taken: " + " -> ".join(n.name for n in r.critical_path))
        info("report: " + (", ".join(p.report_files) or "not written (see the worker's log)"))
    raise typer.Exit(int(FINAL_CODES.get(p.state, ExitCode.OK)))


# ------------------------------------------------------------------- plan and validate
class PlanRow(BaseModel):
    """One service of `failover plan PLAN.yaml`."""

    service: str
    runbook: str
    tier: int
    depends_on: list[str]
    from_region: str
    to_region: str
    #: `--to auto`: how its target was chosen (every candidate region and why).
    target_choice: TargetChoice | None = None
    steps: int
    gates: list[str]
    irreversible: list[str]
    preflight: str
    changes: int
    resources: list[str]


def plan(
    path: Path,
    from_region: str,
    to_region: str | None,
    unplanned: bool,
    config: Path | None,
    output: OutputFormat,
) -> None:
    """`failover plan PLAN.yaml`: each service's preflights and diff (as `failover plan` of its
    runbook), its leases, tiers and dependencies, two services writing one resource, and the
    critical path by step timeouts. Mutates nothing; exit 6 if a preflight fails."""
    lp = loaded(path)
    early = config_for(to_region, config)
    inp = resolved(lp, from_region, to_region, "dry-run", identity(None), unplanned, early,
                   output == OutputFormat.json)  # fmt: skip
    clients = Clients(configured(inp, config, early))
    wid = evacuation_workflow_id(inp.plan)
    held = service_resources(inp, wid)
    rows: list[PlanRow] = []
    for s in inp.services:
        sp = make_plan(s.switch, clients)
        failed = [r for r in sp.steps if r.error_kind is not None]
        rows.append(
            PlanRow(
                service=s.name,
                runbook=s.runbook,
                tier=s.tier,
                depends_on=s.depends_on,
                from_region=s.switch.from_region,
                to_region=s.switch.to_region,
                target_choice=s.switch.target_choice,
                steps=len(s.switch.steps),
                gates=sp.gates,
                irreversible=sp.irreversible,
                preflight="ok" if not failed else f"{failed[0].id}: {failed[0].preflight}",
                changes=sum(len(r.changes) for r in sp.steps),
                resources=[n for n in held[s.name] if not n.startswith("runbook:")],
            )
        )
    ok = all(r.preflight == "ok" for r in rows)
    path_, bound = critical_path(inp)
    writes = resources(inp, wid)
    count, shards = len(writes), len(leases.shards(writes))
    if output == OutputFormat.json:
        print_json(
            {
                "plan": inp.plan,
                "from_region": inp.from_region,
                "to_auto": inp.to_auto,
                "services": rows,
                "critical_path": path_,
                "critical_path_timeout_s": bound.total_seconds(),
                "leases": count,
                "lease_shards": shards,
                "ok": ok,
            }
        )
    else:
        target = to_region or "each runbook's other region"
        if inp.to_auto:
            target = "auto (each service's target chosen by its checks)"
        table = Table(title=f"evacuation {inp.plan}: {from_region} -> {target}",
                      title_justify="left", header_style="bold")  # fmt: skip
        for col in ("tier", "service", "runbook", "to", "after", "steps", "preflight", "writes"):
            table.add_column(col, overflow="fold")
        for r in rows:
            style = "" if r.preflight == "ok" else "red"
            after = ", ".join(r.depends_on) or "-"
            preflight = Text(r.preflight, style=style)
            table.add_row(str(r.tier), r.service, r.runbook, r.to_region, after, str(r.steps),
                          preflight, str(len(r.resources)))  # fmt: skip
        console.print(table)
        a = lp.plan.approval
        gates = f"{a.scope} ({', '.join(a.approvers) or 'anyone'})" if a else "the services' own"
        info(f"policy {lp.plan.failure_policy}, {inp.max_parallel} at once; gates: {gates}; no "
             f"two services write the same resource; leases: {count}"
             + (f" ({shards} lease shards)" if shards else ""))  # fmt: skip
        info(f"critical path ({bound.total_seconds() / 60:.0f} min at most, by step timeouts "
             "and gate expiry): " + " -> ".join(path_))  # fmt: skip
    if not ok:
        raise typer.Exit(int(ExitCode.NOT_HEALTHY))


def validate(path: Path, output: OutputFormat) -> None:
    """`failover validate PLAN.yaml`: structure, dependencies, runbooks, and (every direction
    between the regions the services share) two services writing the same resource."""
    try:
        lp = load_file(path)
        found = check(lp)
        if found:
            raise RunbookError(found)
    except RunbookError as exc:
        if output == OutputFormat.json:
            print_json({"valid": False, "problems": [p.__dict__ for p in exc.problems]})
            raise typer.Exit(int(ExitCode.INVALID_INPUT)) from None
        problems(exc.problems)
    tiers = sorted({s.tier for s in lp.plan.services})
    if output == OutputFormat.json:
        print_json({"valid": True, "name": lp.plan.name, "kind": "Evacuation",
                    "services": len(lp.plan.services), "tiers": tiers})  # fmt: skip
        return
    info(f"{path}: valid evacuation plan {lp.plan.name!r}: {len(lp.plan.services)} services in "
         f"{len(tiers)} tier(s); no two services write the same resource")  # fmt: skip


# ------------------------------------------------------------ what the switch commands do
def status(ref: str, config: Path | None, output: OutputFormat) -> None:
    """The service table of an evacuation (running or ended)."""
    cfg = load_config(config)

    async def body(client: Client) -> tuple[EvacuationProgress, dict[str, Any]]:
        h = evacuation.handle(client, ref)
        p = await ask(h, evacuation.progress, WHAT)
        return p, (await evacuation.live(client, p) if not p.state.final else {})

    p, children = call(cfg, body)
    if output == OutputFormat.json:
        live = {k: v.model_dump(mode="json") for k, v in children.items()}
        print_json({**p.model_dump(mode="json"), "live": live})
    else:
        console.print(evacuation_table(p, children, ref, console.width))


def watch(ref: str, config: Path | None, output: OutputFormat) -> None:
    """Follow an evacuation live until it ends; exits with its outcome's code."""
    cfg = load_config(config)
    configure("console", level=logging.WARNING)

    async def body(client: Client) -> tuple[EvacuationProgress, str, str | None]:
        async with hosted_worker(client, cfg):
            h = evacuation.handle(client, ref)
            p = await follow(client, h, None, output == OutputFormat.json)
            return p, h.id, (await h.describe()).run_id

    finish(*call(cfg, body), output)


def decide(
    ref: str, decision: Decision, service: str | None, approving: bool, config: Path | None
) -> None:
    """Approve or reject the evacuation's open gate, or (`service`) that service's own gate."""
    cfg = load_config(config)

    async def body(client: Client) -> str:
        h = evacuation.handle(client, ref)
        if service is not None:
            await need_worker(h, WHAT)
            return await evacuation.service_decision(client, h, service, decision, approving)
        request = evacuation.approve if approving else evacuation.reject
        return await ask(h, lambda x: request(x, decision), WHAT)

    info(call(cfg, body))


def abort(ref: str, req: Abort, config: Path | None) -> None:
    """Abort an evacuation: running switches roll back, switched services are switched back."""
    cfg = load_config(config)
    info(call(cfg, lambda c: ask(evacuation.handle(c, ref), lambda h: evacuation.abort(h, req),
                                 WHAT)))  # fmt: skip


def report(ref: str, fmt: ReportFormat, out: Path | None, config: Path | None) -> None:
    """The report of an evacuation: every service's outcome and RTO, the evacuation's RTO and
    critical path, what was rolled back (from Temporal, else from the report store)."""
    cfg = load_config(config)

    async def body(client: Client) -> evac_report.EvacuationReport:
        h = evacuation.handle(client, ref)
        try:
            desc = await h.describe()
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            stored = _stored(cfg, ref)
            if stored is None:
                fail(f"no evacuation {ref} in Temporal, and no report of it in "
                     f"{cfg.reports.where()}")  # fmt: skip
            return stored
        return evac_report.build(await ask(h, evacuation.progress, WHAT), h.id, desc.run_id)

    r = call(cfg, body)
    emit(render(r, fmt.value, evac_report.markdown, evac_report.html_page), out)


def _stored(cfg: Config, wid: str) -> evac_report.EvacuationReport | None:
    data = report_store.read_configured(cfg.reports, wid, stored_s3(cfg))
    return evac_report.EvacuationReport.model_validate(data) if data is not None else None


def stored_s3(cfg: Config) -> Any:
    """A client of the report bucket's region (None when reports are not in S3)."""
    store = cfg.reports
    return Clients(cfg).aws("s3", store.s3_region or "us-east-1") if store.s3_bucket else None


def register(app: typer.Typer) -> None:
    """Add `failover evacuate` to the top-level app (the other commands dispatch here)."""
    app.command("evacuate")(evacuate)
