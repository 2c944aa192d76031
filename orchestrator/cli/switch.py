"""`failover plan | state | drill | run | status | watch | list | approve | reject | abort |
resolve | report`: region switches as the on-call engineer drives them.

`drill` and `run` start the workflow and follow it with a live table; Ctrl-C detaches (the switch
goes on in Temporal). On the sandbox, `drill`, `run` and `watch` also host a worker in their own
process while they follow the run (`orchestrator.cli.hosted`).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import secrets
import statistics
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.live import Live
from rich.table import Table
from rich.text import Text
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from activities.clients import Clients
from orchestrator import accounts, report, report_store, switch, targets
from orchestrator import config as configuration
from orchestrator import search_attributes as sa
from orchestrator.approval_auth import (
    NAMESPACE,
    DecisionAction,
    RunContext,
    Signers,
    make_token,
    plan_digest,
    request_message,
    unapprovable,
)
from orchestrator.cli import evacuate as evacuation_cli
from orchestrator.cli.exit_codes import ExitCode
from orchestrator.cli.hosted import hosted_worker
from orchestrator.cli.options import (
    AsOption,
    AutoApproveOption,
    ConfigOption,
    DetachOption,
    FromOption,
    OutOption,
    OutputFormat,
    OutputOption,
    ParamOption,
    ReportFormat,
    ReportFormatOption,
    RunbookArg,
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
from orchestrator.cli.temporal import answered, ask, call, need_worker, recent_pollers, ui_link
from orchestrator.cli.views import changes, progress_table, seconds
from orchestrator.client import UnreachableError, connect
from orchestrator.evacuation.loader import kind_of
from orchestrator.evacuation.runs import EVACUATION_PREFIX, is_evacuation
from orchestrator.logs import configure
from orchestrator.plan import make_plan, observe_state
from orchestrator.runbook.loader import RunbookError, load_file
from orchestrator.runbook.resolve import ResolveError, resolve
from orchestrator.runs import (
    SWITCH_PREFIX,
    Abort,
    ApprovalAuth,
    Decision,
    Kind,
    Mode,
    OperatorAction,
    RunProgress,
    RunState,
    SignedRequest,
    Signer,
    StepKind,
    SwitchInput,
    switch_workflow_id,
)
from orchestrator.sshsig import SshSigError, parse_allowed_signers

T = TypeVar("T")

FINAL_CODES = {
    RunState.SUCCEEDED: ExitCode.OK,
    RunState.ROLLED_BACK: ExitCode.ROLLED_BACK,
    RunState.ROLLBACK_FAILED: ExitCode.ROLLBACK_FAILED,
}

IdArg = Annotated[
    str,
    typer.Argument(help="Run id (switch-RUNBOOK, evacuation-PLAN) or the runbook's name."),
]


class Action(StrEnum):
    """What the operator decides for a paused step or a failed undo."""

    retry = "retry"
    skip = "skip"
    rollback = "rollback"
    end = "end"


KeyOption = Annotated[
    Path | None,
    typer.Option(
        "--key",
        envvar="FAILOVER_SIGNING_KEY",
        help="Runs with approval_auth: signed: your ed25519 private key file (a .pub file: its "
        "key in ssh-agent). Default: approvals.key of the configuration, else ssh-agent.",
    ),
]

RunStateOption = Annotated[
    RunState | None, typer.Option("--state", help="Only runs in this state.", case_sensitive=False)
]


def run_id(ref: str) -> str:
    """Accept a workflow id (a switch's, or an evacuation's service's) or a runbook name."""
    prefixes = (SWITCH_PREFIX, "test-", EVACUATION_PREFIX)
    return ref if ref.startswith(prefixes) else switch_workflow_id(ref)


UnplannedOption = Annotated[
    bool,
    typer.Option(
        "--unplanned",
        help="The source region does not answer: touch only the target (the runbook's "
        "`unplanned:` choices); work on the source is owed to it (`failover recover`).",
    ),
]


def resolved(
    runbook: Path,
    from_region: str,
    to_region: str,
    params: list[str],
    mode: Mode,
    requester: str,
    kind: Kind = "planned",
    cfg: configuration.Config | None = None,
    config: Path | None = None,
    quiet: bool = False,
) -> SwitchInput:
    """The runbook loaded and resolved, or one-line errors and exit 2 (nothing started). With
    `cfg` (a run to start): how its requester and deciders prove who they are, the runbook's
    choice or the default (signed; none on the sandbox), and then who may sign. `--to auto`:
    the target chosen by its checks (`orchestrator.targets`, with `cfg` or the configuration
    `config` names), the choice said in one line (unless quiet) and recorded in the input; none
    qualifies: one line naming each region and why, exit 6."""
    try:
        rb = load_file(runbook)
        auth: ApprovalAuth = "none"
        if cfg is not None:
            auth = rb.approval_auth or ("none" if cfg.sandbox else "signed")
        signers = _configured_signers(cfg) if auth == "signed" and cfg is not None else []
        if to_region.strip().lower() == targets.AUTO:
            if kind == "recovery":
                fail("--to auto: a recovery goes back to the region that took over: name it")
            clients = Clients(cfg if cfg is not None else load_config(config))
            inp = targets.choose(rb, from_region, clients, requester=requester, mode=mode,
                                 params=parse_params(params), kind=kind, approval_auth=auth,
                                 signers=signers)  # fmt: skip
            if not quiet and inp.target_choice is not None:
                info(inp.target_choice.summary())
            return inp
        return resolve(
            rb, from_region, to_region, mode=mode, requester=requester,
            params=parse_params(params), kind=kind, approval_auth=auth, signers=signers,
        )  # fmt: skip
    except RunbookError as exc:
        problems(exc.problems)
    except ResolveError as exc:
        fail(str(exc))
    except targets.NoTargetError as exc:
        fail(str(exc), ExitCode.NOT_HEALTHY)


def configured(inp: SwitchInput, config: Path | None) -> configuration.Config:
    """The configuration, with every AWS account the run's steps name defined in it; else a
    one-line error naming the step and the account, and exit 2 (nothing started)."""
    cfg = load_config(config)
    accounts_defined(inp, cfg)
    return cfg


def accounts_defined(inp: SwitchInput, cfg: configuration.Config) -> None:
    """A one-line error naming the step and the account, and exit 2, for an AWS account the
    run's steps name that the configuration does not define."""
    try:
        accounts.check(inp.steps, cfg.aws, cfg.source)
    except accounts.AccountError as exc:
        fail(str(exc))


def _configured_signers(cfg: configuration.Config) -> list[Signer]:
    """The signers of the configured allowed_signers file (none configured: none)."""
    path = cfg.approvals.allowed_signers
    if not path:
        return []
    try:
        text = Path(path).expanduser().read_text()
    except OSError as exc:
        fail(f"approvals.allowed_signers: cannot read {path}: {exc.strerror}")
    try:
        found = parse_allowed_signers(text, NAMESPACE, source=path)
    except SshSigError as exc:
        fail(f"approvals.allowed_signers: {exc}")
    return [Signer(name=s.name, key=s.key.openssh()) for s in found]


def _sign_request(inp: SwitchInput, key: Path | None, cfg: configuration.Config) -> None:
    """The requester signs the run's plan (approval_auth: signed); one-line errors: no usable
    key, a key not listed for the requester, a gate nobody listed could approve."""
    from orchestrator import signing  # (cryptography: loaded only to sign)

    for problem in unapprovable(inp, ""):
        fail(f"approval_auth: signed: {problem}")
    nonce = secrets.token_hex(16)
    at = datetime.now(UTC).replace(microsecond=0)
    message = request_message(inp.requester, plan_digest(inp), nonce, at)
    try:
        sign = signing.signer_for(key or cfg.approvals.key, inp.requester, inp.signers)
        sig = sign(message)
    except signing.SigningError as exc:
        fail(str(exc))
    fp = sig.key.fingerprint
    if inp.requester not in Signers(inp.signers).holders(fp):
        fail(
            f"your key {fp} is not listed for {inp.requester} (the runbook's allowed_signers, "
            "the configuration's approvals.allowed_signers): the run would refuse to start"
        )
    for problem in unapprovable(inp, fp):
        fail(f"approval_auth: signed: {problem}")
    inp.request = SignedRequest(
        nonce=nonce, signed_at=at, signature=base64.b64encode(sig.blob).decode()
    )


# ------------------------------------------------------------------------------ plan, state
def plan(
    runbook: Annotated[Path, typer.Argument(help="Runbook or evacuation plan YAML file.")],
    from_region: FromOption,
    to_region: Annotated[
        str | None,
        typer.Option(
            "--to",
            help="Region to switch to (default: the other one, with two regions), or auto: "
            "the first region (in the runbook's order) whose capacity and health checks are "
            "green.",
        ),
    ] = None,
    param: ParamOption = [],  # noqa: B006 - Typer's way to spell a repeatable option
    unplanned: UnplannedOption = False,
    config: ConfigOption = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """What a switch would do: parallel groups, critical path, gates, irreversible steps, and
    every step's preflight and diff, with what the other kind of run does with each step (planned
    or --unplanned). Mutates nothing; exit 6 if a preflight fails. An evacuation plan: each
    service's preflights, its leases, two services writing one resource, the critical path."""
    if kind_of(runbook) == "Evacuation":
        if param:
            fail("--param: an evacuation plan gives each service its parameters")
        evacuation_cli.plan(runbook, from_region, to_region, unplanned, config, output)
        return
    to_region = to_region or _other(runbook, from_region, "--to")
    kind: Kind = "unplanned" if unplanned else "planned"
    inp = resolved(runbook, from_region, to_region, param, "dry-run", identity(None), kind,
                   config=config, quiet=output == OutputFormat.json)  # fmt: skip
    cfg = configured(inp, config)
    result = make_plan(inp, Clients(cfg))
    result.target_choice = inp.target_choice
    result.other = _other_kind(runbook, kind)
    result.past_runs, result.past_median_s = _past_durations(cfg, inp.runbook)
    if output == OutputFormat.json:
        print_json(result)
    else:
        table = Table(title=f"plan: {inp.runbook} {inp.from_region} -> {inp.to_region}",
                      header_style="bold", title_justify="left")  # fmt: skip
        other = "planned" if unplanned else "unplanned"
        for col in ("group", "step", "type", "preflight", "would change", other):
            table.add_column(col, overflow="fold")
        for row in result.steps:
            changes = "; ".join(
                f"{c['resource']}: {c['before']} -> {c['after']}" for c in row.changes
            ) or ("(nothing)" if row.preflight == "ok" else "")
            flag = " IRREVERSIBLE" if row.irreversible else ""
            style = "red" if row.error_kind else ""
            table.add_row(str(row.level), row.id + flag, row.type,
                          Text(row.preflight, style=style), changes,
                          result.other.get(row.id, ""))  # fmt: skip
        console.print(table)
        if inp.owed:
            info(f"deferred (owed to {inp.from_region}, run by 'failover recover'): "
                 + ", ".join(o.id for o in inp.owed))  # fmt: skip
        missing = [sid for sid, what in result.other.items() if what.startswith("only ")]
        if missing:
            info(f"only in {other} runs: {', '.join(missing)}")
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
    output: OutputOption = OutputFormat.table,
) -> None:
    """The observed state of every resource the runbook touches (what its snapshots read)."""
    inp = resolved(runbook, region, _other(runbook, region), param, "dry-run", "state")
    rows = observe_state(inp, Clients(configured(inp, config)))
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


def _other_kind(runbook: Path, kind: Kind) -> dict[str, str]:
    """What the other kind of run (planned / unplanned) does with each step."""
    from orchestrator.runbook.models import Unplanned

    rb = load_file(runbook)
    out = {}
    for s in rb.steps:
        if kind == "planned":
            u = s.unplanned
            out[s.id] = f"-> {u.replace.type}" if isinstance(u, Unplanned) else u
            if s.planned == "skip":
                out[s.id] = "only unplanned"
        else:
            out[s.id] = "skip" if s.planned == "skip" else "run"
            if s.unplanned in ("skip", "defer"):
                out[s.id] = "only planned"
    return out


def _other(runbook: Path, region: str, option: str = "") -> str:
    """The runbook's other region; with more than two, `option` must name one (one line, exit
    2) unless none is asked for (then the first other one)."""
    try:
        regions = load_file(runbook).regions
    except RunbookError:
        return region  # resolved() reports the runbook's problems
    others = [r for r in regions if r != region]
    if option and len(others) > 1:
        fail(f"{option}: runbook {runbook} has {len(regions)} regions ({', '.join(regions)}): "
             f"name one{' or auto' if option == '--to' else ''}")  # fmt: skip
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


# ----------------------------------------------------------------------------------- start
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
    kind: Kind = "planned",
    key: Path | None = None,
) -> None:
    # The live table is the progress; a worker hosted here only reports problems.
    configure("console", level=logging.WARNING)
    requester = identity(as_)
    cfg = load_config(config)
    inp = resolved(runbook, from_region, to_region, params, mode, requester, kind, cfg,
                   quiet=output == OutputFormat.json)  # fmt: skip
    accounts_defined(inp, cfg)
    if auto_approve is not None:
        if not cfg.sandbox:
            fail("--auto-approve is for sandbox demos only: approvals need a second person")
        if auto_approve.strip() == requester:
            fail(f"--auto-approve {auto_approve}: the requester cannot approve (two-person rule)")
        if inp.approval_auth == "signed":
            fail(
                f"--auto-approve {auto_approve}: cannot sign for them (the runbook says "
                "approval_auth: signed): approve with 'failover approve RUN --as NAME --key'"
            )
    if inp.approval_auth == "signed":
        _sign_request(inp, key, cfg)

    async def body(client: Client) -> tuple[RunProgress, str, str | None] | None:
        async with hosted_worker(client, cfg, enabled=not detach):
            try:
                h = await switch.start(client, inp, cfg.temporal.task_queue)
            except switch.AlreadyRunningError as exc:
                fail(str(exc))
            desc = await h.describe()
            link = ui_link(cfg, h.id, desc.run_id)
            if detach:
                if not await recent_pollers(client, cfg.temporal.task_queue):
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

    result = call(cfg, body)
    if result is not None:
        progress, wid, rid = result
        built = report.build(progress, wid, rid)
        if output != OutputFormat.json:
            info(
                f"RTO: traffic on {built.to_region} after {seconds(built.rto_traffic_s)}, "
                f"run {seconds(built.rto_total_s)}; RPO: {seconds(built.rpo_s)}"
            )
            # written by the worker when the run ended (to the configured store)
            info("report: " + (", ".join(progress.report_files) or "not written (see the "
                               "worker's log)"))  # fmt: skip
        _finish(progress, output)


async def _follow(h: switch.Handle, auto_approve: str | None, quiet: bool = False) -> RunProgress:
    """Refresh the live table until the run ends (on a terminal; piped: a plain line per change);
    approve gates as `auto_approve` if given. At once one line, exit 5, when no worker polls."""
    approved: set[str] = set()
    live = Live(console=err_console, refresh_per_second=4, transient=False)
    redraw = not quiet and err_console.is_terminal  # piped: a plain line per change instead
    seen: dict[str, str] = {}
    try:
        queue = await need_worker(h)
        if redraw:
            live.start()
        while True:
            p = await answered(h, switch.progress(h), queue)
            if redraw:
                live.update(progress_table(p, err_console.width))
            elif not quiet:
                for line in changes(seen, p):
                    info(line)
            if p.state.final:  # the result, once its report is written and notices sent
                done: RunProgress = await h.result()
                return done
            for gate in p.open_gates:
                if auto_approve and gate not in approved:
                    approved.add(gate)
                    vote = Decision(approver=auto_approve, gate=gate, comment="--auto-approve")
                    msg = await answered(h, switch.approve(h, vote), queue)
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
        took = ((p.ended_at or p.started_at) - p.started_at).total_seconds()
        style = "green" if p.state == RunState.SUCCEEDED else "bold red"
        err_console.print()
        err_console.print(f"[{style}]{p.state.value}[/] in {took:.1f}s", highlight=False)
    raise typer.Exit(int(FINAL_CODES.get(p.state, ExitCode.OK)))


def drill(
    runbook: RunbookArg,
    from_region: FromOption,
    to_region: ToOption,
    param: ParamOption = [],  # noqa: B006
    unplanned: UnplannedOption = False,
    as_: AsOption = None,
    auto_approve: AutoApproveOption = None,
    detach: DetachOption = False,
    key: KeyOption = None,
    config: ConfigOption = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Practise a switch (mode drill) and follow it live; exit 0/3/4 = succeeded/rolled back/
    rollback failed."""
    _start("drill", runbook, from_region, to_region, param, as_, auto_approve, detach, config,
           output, "unplanned" if unplanned else "planned", key)  # fmt: skip


def run(
    runbook: RunbookArg,
    from_region: FromOption,
    to_region: ToOption,
    param: ParamOption = [],  # noqa: B006
    unplanned: UnplannedOption = False,
    as_: AsOption = None,
    auto_approve: AutoApproveOption = None,
    detach: DetachOption = False,
    dry_run: Annotated[bool, typer.Option(help="Preflight and dry-run every step.")] = False,
    key: KeyOption = None,
    config: ConfigOption = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Switch for real (mode failover), or --dry-run to see what would change."""
    mode: Mode = "dry-run" if dry_run else "failover"
    _start(mode, runbook, from_region, to_region, param, as_, auto_approve, detach, config,
           output, "unplanned" if unplanned else "planned", key)  # fmt: skip


def recover(
    runbook: RunbookArg,
    region: Annotated[str, typer.Option(help="The region that failed and answers again.")],
    to_region: Annotated[
        str | None,
        typer.Option("--to", help="The region that took over (default: the runbook's other)."),
    ] = None,
    param: ParamOption = [],  # noqa: B006
    as_: AsOption = None,
    auto_approve: AutoApproveOption = None,
    detach: DetachOption = False,
    dry_run: Annotated[bool, typer.Option(help="Preflight and dry-run every step.")] = False,
    key: KeyOption = None,
    config: ConfigOption = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Recover a region that failed, once it answers: the work an unplanned switch deferred to
    it (fence its writers, demote its database, scale it down), then the runbook's `recovery:`
    steps (rejoin its database to the global cluster, report the writes it lost). A durable run
    like a switch: live table, gates, rollback, report. Until it has run, a planned switch back
    to the region is refused."""
    mode: Mode = "dry-run" if dry_run else "failover"
    target = to_region or _other(runbook, region, "--to (the region that took over)")
    _start(mode, runbook, region, target, param, as_, auto_approve, detach, config, output,
           "recovery", key)  # fmt: skip


# --------------------------------------------------------------------------------- inspect
def _asked(
    cfg: configuration.Config, ref: str, request: Callable[[switch.Handle], Awaitable[T]]
) -> T:
    """request(handle) on the run `ref` through `ask`: at once one line and exit 5 when no
    worker polls its task queue; an ended run is read from its result."""
    return call(cfg, lambda c: ask(switch.handle(c, run_id(ref)), request))


def status(
    ref: IdArg, config: ConfigOption = None, output: OutputOption = OutputFormat.table
) -> None:
    """The step table of a run (running or ended); an evacuation's service table."""
    if is_evacuation(ref):
        return evacuation_cli.status(ref, config, output)
    cfg = load_config(config)
    p = _asked(cfg, ref, switch.progress)
    if output == OutputFormat.json:
        print_json(p)
    else:
        console.print(progress_table(p, console.width))


def watch(
    ref: IdArg, config: ConfigOption = None, output: OutputOption = OutputFormat.table
) -> None:
    """Follow a run live until it ends; exits with its outcome's code."""
    if is_evacuation(ref):
        return evacuation_cli.watch(ref, config, output)
    cfg = load_config(config)
    configure("console", level=logging.WARNING)

    async def body(client: Client) -> RunProgress:
        async with hosted_worker(client, cfg):
            return await _follow(switch.handle(client, run_id(ref)), None,
                                 output == OutputFormat.json)  # fmt: skip

    _finish(call(cfg, body), output)


def _stored_report(cfg: configuration.Config, wid: str) -> report.Report | None:
    """The newest report of a workflow id in the configured store."""
    data = report_store.read_configured(cfg.reports, wid, evacuation_cli.stored_s3(cfg))
    return report.Report.model_validate(data) if data is not None else None


def report_cmd(
    ref: IdArg,
    fmt: ReportFormatOption = ReportFormat.md,
    out: OutOption = None,
    config: ConfigOption = None,
) -> None:
    """The report of a run: outcome, RTO, RPO, objectives, steps (before -> after), approvals,
    rollback, errors. An evacuation's: every service joined, its RTO and critical path."""
    if is_evacuation(ref):
        return evacuation_cli.report(ref, fmt, out, config)
    cfg = load_config(config)

    async def body(client: Client) -> report.Report:
        h = switch.handle(client, run_id(ref))
        try:
            desc = await h.describe()
        except RPCError as exc:  # gone from Temporal (retention): the report store has it
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            stored = _stored_report(cfg, h.id)
            if stored is None:
                fail(f"no run {h.id} in Temporal, and no report of it in "
                     f"{cfg.reports.where()}")  # fmt: skip
            return stored
        return report.build(await ask(h, switch.progress), h.id, desc.run_id)

    r = call(cfg, body)
    emit(render(r, fmt.value, report.markdown, report.html_page), out)


def list_runs(
    state: RunStateOption = None,
    runbook: Annotated[str | None, typer.Option(help="Only runs of this runbook.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many.", min=1)] = 20,
    config: ConfigOption = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Recent runs, newest first (from the search attributes)."""
    query = ["WorkflowType = 'RegionSwitch'"]
    # A run waiting for a person keeps FailoverState RUNNING (the workflow explains why): those
    # are found among the running ones and told apart by asking each run its state.
    live = state in (RunState.WAITING_APPROVAL, RunState.PAUSED)
    if live and state is not None:
        query.append(f"FailoverState IN ('{RunState.RUNNING.value}', '{state.value}')")
    elif state:
        query.append(f"FailoverState = '{state.value}'")
    if runbook:
        query.append(f"FailoverRunbook = '{runbook.replace(chr(39), '')}'")
    cfg = load_config(config)

    async def body(client: Client) -> list[dict[str, Any]]:
        rows = []
        async for wf in client.list_workflows(" AND ".join(query), limit=limit):
            attrs = wf.typed_search_attributes
            current = attrs.get(sa.STATE)
            if live:
                h: switch.Handle = client.get_workflow_handle(wf.id, run_id=wf.run_id)
                try:
                    current = (await ask(h, switch.progress)).state.value
                except switch.NoWorkerError as exc:  # its state is unknown: say so, go on
                    info(f"left out: {exc}")
                    continue
                if current != state:
                    continue
            rows.append(
                {
                    "workflow_id": wf.id,
                    "run_id": wf.run_id,
                    "runbook": attrs.get(sa.RUNBOOK),
                    "from": attrs.get(sa.FROM_REGION),
                    "to": attrs.get(sa.TO_REGION),
                    "mode": attrs.get(sa.MODE),
                    "kind": attrs.get(sa.KIND) or "planned",
                    "state": current,
                    "requester": attrs.get(sa.REQUESTER),
                    "started": wf.start_time.isoformat(),
                }
            )
        return rows

    rows = call(cfg, body)
    if output == OutputFormat.json:
        print_json(rows)
        return
    print_table(
        f"{len(rows)} run(s)",
        ["workflow", "runbook", "from -> to", "mode", "kind", "state", "requester", "started"],
        [
            [r["workflow_id"], r["runbook"], f"{r['from']} -> {r['to']}", r["mode"], r["kind"],
             r["state"], r["requester"], r["started"][:19]]
            for r in rows
        ],
    )  # fmt: skip


# ---------------------------------------------------------------------------------- decide
ServiceOption = Annotated[
    str | None,
    typer.Option(help="An evacuation's service: decide its own switch's open gate."),
]


TokenOption = Annotated[
    str | None,
    typer.Option(help="Send this signed token (made elsewhere with --print-token) as it is."),
]
PrintTokenOption = Annotated[
    bool,
    typer.Option(
        "--print-token",
        help="Sign only: print the token to paste into the Temporal UI's Update dialog as "
        '"signature" (with the same approver, gate and comment); nothing is sent.',
    ),
]


def approve(
    ref: IdArg,
    as_: AsOption = None,
    gate: Annotated[str | None, typer.Option(help="Gate step id (if several are open).")] = None,
    comment: Annotated[str, typer.Option(help="Why.")] = "",
    service: ServiceOption = None,
    key: KeyOption = None,
    token: TokenOption = None,
    print_token: PrintTokenOption = False,
    config: ConfigOption = None,
) -> None:
    """Approve an open gate (never your own switch: two-person rule). An evacuation's gate
    pre-approves the gates of the services it covers, where they allow it. A run with
    approval_auth: signed takes the decision signed with your key (--key, or ssh-agent)."""
    decision = Decision(approver=identity(as_), gate=gate, comment=comment)
    if is_evacuation(ref):
        _names_only(key, token, print_token)
        return evacuation_cli.decide(ref, decision, service, True, config)
    _decide(ref, decision, "approve", key, token, print_token, config)


def reject(
    ref: IdArg,
    reason: Annotated[str, typer.Option(help="Why (recorded in the report).")],
    as_: AsOption = None,
    gate: Annotated[str | None, typer.Option(help="Gate step id (if several are open).")] = None,
    service: ServiceOption = None,
    key: KeyOption = None,
    token: TokenOption = None,
    print_token: PrintTokenOption = False,
    config: ConfigOption = None,
) -> None:
    """Reject an open gate: the switch rolls back (an evacuation's: everything switched is
    switched back). Signed like an approval on runs with approval_auth: signed."""
    decision = Decision(approver=identity(as_), gate=gate, comment=reason)
    if is_evacuation(ref):
        _names_only(key, token, print_token)
        return evacuation_cli.decide(ref, decision, service, False, config)
    _decide(ref, decision, "reject", key, token, print_token, config)


def _names_only(key: Path | None, token: str | None, print_token: bool) -> None:
    if key is not None or token is not None or print_token:
        fail("an evacuation's gates take names, not signatures: leave out --key, --token and "
             "--print-token")  # fmt: skip


def _decide(
    ref: str,
    decision: Decision,
    action: DecisionAction,
    key: Path | None,
    token: str | None,
    print_token: bool,
    config: Path | None,
) -> None:
    """Send a decision; on a run with approval_auth: signed, signed first (or only printed)."""
    from orchestrator import signing  # (cryptography: loaded only to sign)

    cfg = load_config(config)
    if token is not None and print_token:
        fail("--token and --print-token: give one (a token to send, or one to make)")

    async def body(client: Client) -> str:
        h = switch.handle(client, run_id(ref))
        inp, first_run = await switch.started_with(h)
        if inp.approval_auth != "signed":
            if token is not None or print_token:
                fail(f"run {h.id} takes decisions by name (approval_auth: none): leave out "
                     "--token and --print-token")  # fmt: skip
            if key is not None:  # (perhaps $FAILOVER_SIGNING_KEY, set for every run)
                info(f"run {h.id} takes decisions by name (approval_auth: none): not signed")
        elif token is not None:
            decision.signature = token
        else:
            ctx = RunContext(h.id, first_run, plan_digest(inp))
            decision.gate = decision.gate or await _gate_to_sign(h, inp)
            try:
                sign = signing.signer_for(key or cfg.approvals.key, decision.approver, inp.signers)
                decision.signature = make_token(
                    ctx, decision.gate, action, decision.approver, decision.comment,
                    secrets.token_hex(16), sign,
                )  # fmt: skip
            except signing.SigningError as exc:
                fail(str(exc))
        if print_token:
            payload = decision.model_dump(exclude_none=True)
            payload["signature"] = "TOKEN"
            info(
                f'{action} {h.id}: paste the token below as "signature" (Temporal UI: More '
                f"Actions -> Send an Update -> {action}; Data "
                f"{json.dumps(payload)}); approver, gate and comment as signed"
            )
            return str(decision.signature)
        send = switch.approve if action == "approve" else switch.reject
        return await ask(h, lambda h: send(h, decision))

    answer = call(cfg, body)
    if print_token:
        typer.echo(answer)
    else:
        info(answer)


async def _gate_to_sign(h: switch.Handle, inp: SwitchInput) -> str:
    """The gate a decision with no --gate is for: the run's only gate, else its only open one."""
    gates = [s.id for s in inp.steps if s.kind == StepKind.GATE]
    if len(gates) == 1:
        return gates[0]
    if not gates:
        fail(f"run {h.id} has no approval gate")
    open_gates = (await ask(h, switch.progress)).open_gates
    if len(open_gates) == 1:
        return open_gates[0]
    fail(f"name the gate to sign with --gate ({', '.join(gates)}; open now: "
         f"{', '.join(open_gates) or 'none'})")  # fmt: skip


def abort(
    ref: IdArg,
    reason: Annotated[str, typer.Option(help="Why (recorded in the report).")],
    as_: AsOption = None,
    config: ConfigOption = None,
) -> None:
    """Stop the switch and undo every step it applied (an evacuation: its running switches roll
    back, its switched services are switched back, dependents first)."""
    req = Abort(by=identity(as_), reason=reason)
    if is_evacuation(ref):
        return evacuation_cli.abort(ref, req, config)
    cfg = load_config(config)
    info(_asked(cfg, ref, lambda h: switch.abort(h, req)))


def resolve_cmd(
    ref: IdArg,
    action: Annotated[Action, typer.Option(help="retry | skip | rollback (paused) | end (undo)")],
    reason: Annotated[str, typer.Option(help="Why (required to skip).")] = "",
    step: Annotated[str | None, typer.Option(help="Step id (if several wait).")] = None,
    as_: AsOption = None,
    config: ConfigOption = None,
) -> None:
    """Decide for a paused step or a failed undo (ROLLBACK_FAILED)."""
    req = OperatorAction(action=action.value, by=identity(as_), reason=reason, step=step)
    cfg = load_config(config)
    info(_asked(cfg, ref, lambda h: switch.operator(h, req)))


def register(app: typer.Typer) -> None:
    """Add these commands to the top-level app."""
    for fn in (plan, state, drill, run, recover, status, watch, approve, reject, abort):
        app.command()(fn)
    app.command("list")(list_runs)
    app.command("report")(report_cmd)
    app.command("resolve")(resolve_cmd)
