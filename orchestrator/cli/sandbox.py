"""`failover sandbox ...`: the local world (Temporal, AWS, Kubernetes, shop app): two regions by
default, any number with `up --regions a,b,c`."""

from __future__ import annotations

import time
import urllib.error
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from orchestrator.cli.exit_codes import ExitCode
from orchestrator.cli.options import OutputFormat, OutputOption
from orchestrator.cli.output import fail, info, print_json, print_table
from orchestrator.cli.views import notify_note
from orchestrator.runbook.durations import parse_duration
from orchestrator.sandbox.control import SandboxControl
from orchestrator.sandbox.faults import FaultRule
from orchestrator.sandbox.latency import LatencyModel
from orchestrator.sandbox.manager import DEFAULT_HOME, Sandbox, SandboxEnv, SandboxError

app = typer.Typer(
    help="Run the local sandbox: two regions (or --regions a,b,c) on real servers, no cloud needed."
)
fault_app = typer.Typer(help="Inject errors and latency into the sandbox's servers.")
region_app = typer.Typer(help="Take a simulated region down or bring it back.")
app.add_typer(fault_app, name="fault")
app.add_typer(region_app, name="region")

HomeOption = Annotated[
    Path,
    typer.Option(
        "--home",
        envvar="FAILOVER_SANDBOX_HOME",
        help="Where pid files, logs, SQLite and env.json live.",
    ),
]


def _sandbox(home: Path) -> Sandbox:
    return Sandbox(home=home)


def _env(home: Path) -> SandboxEnv:
    env = _sandbox(home).load_env()
    if env is None:
        fail(f"the sandbox is not up in {home}: run 'failover sandbox up'", ExitCode.UNREACHABLE)
    return env


def _control(home: Path) -> SandboxControl:
    return SandboxControl(_env(home))


@contextmanager
def _answering() -> Iterator[None]:
    """Turn a component that does not answer, or a refused request, into a one-line error."""
    try:
        yield
    except SandboxError as exc:
        fail(str(exc))
    except (urllib.error.URLError, OSError) as exc:
        fail(
            f"a sandbox component did not answer ({exc}); see 'failover sandbox status'",
            ExitCode.UNREACHABLE,
        )


@app.command()
def up(
    home: HomeOption = DEFAULT_HOME,
    regions: Annotated[
        str, typer.Option(help="Comma-separated regions (two or more); the first is active.")
    ] = "us-east-1,us-west-2",
    time_scale: Annotated[
        float, typer.Option(help="Multiplier of real-world durations (1.0 = real time).")
    ] = LatencyModel().time_scale,
    free_ports: Annotated[bool, typer.Option(help="Use free ports, not the defaults.")] = False,
    worker: Annotated[
        bool,
        typer.Option(
            "--worker/--no-worker",
            help="Run a worker on the default task queue as a component (schedules, game days "
            "and guards fire with nothing else started); --no-worker if you bring your own.",
        ),
    ] = True,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Start the sandbox (harmless if already up) and seed the shop topology."""
    names = tuple(r.strip() for r in regions.split(",") if r.strip())
    if time_scale < 0:
        fail("--time-scale must be >= 0")
    try:
        sandbox = Sandbox(home, names, LatencyModel(time_scale=time_scale), free_ports=free_ports,
                          worker=worker)  # fmt: skip
        env = sandbox.up(progress=info)
    except SandboxError as exc:
        fail(str(exc), ExitCode.UNREACHABLE)
    if output == OutputFormat.json:
        print_json(env)
        return
    info(f"sandbox up in {env.home}")
    info(f"  Temporal   {env.temporal_address}   UI {env.temporal_ui_url}")
    info(f"  AWS        {env.aws_endpoint_url}")
    info(f"  kubeconfig {env.kubeconfig}  (contexts: {', '.join(env.regions)})")
    for name, r in env.regions.items():
        info(f"  {name:<10} {r.role:<8} app {r.app_url}   kube-apiserver {r.kube_api}")
    clusters = {r: (env.topology.get("regions") or {}).get(r, {}).get("eks_cluster")
                for r in env.regions}  # fmt: skip
    if any(clusters.values()):
        eks = ", ".join(f"{c} ({env.kube_secure.get(r, '?')})" for r, c in clusters.items() if c)
        info(f"  EKS        {eks}  (CA {env.kube_ca})")


@app.command()
def down(home: HomeOption = DEFAULT_HOME) -> None:
    """Stop every process the sandbox started (SQLite state is kept)."""
    stopped = _sandbox(home).down(progress=info)
    info(f"stopped {len(stopped)} component(s)" if stopped else "nothing was running")


@app.command()
def status(home: HomeOption = DEFAULT_HOME, output: OutputOption = OutputFormat.table) -> None:
    """Each component's health; exits non-zero if any is not running."""
    env, statuses = _sandbox(home).status()
    if output == OutputFormat.json:
        print_json(
            {
                "up": env is not None and all(s.ok for s in statuses),
                "env_file": str(_sandbox(home).env_file) if env else None,
                "components": [
                    {"name": s.name, "state": s.state, "pid": s.pid, "detail": s.detail}
                    for s in statuses
                ],
            }
        )
    else:
        print_table(
            "sandbox",
            ["component", "state", "pid", "detail"],
            [[s.name, s.state, s.pid, s.detail] for s in statuses],
        )
    if env is None:
        raise typer.Exit(int(ExitCode.UNREACHABLE))
    if not all(s.ok for s in statuses):
        raise typer.Exit(int(ExitCode.NOT_HEALTHY))


@app.command()
def reset(home: HomeOption = DEFAULT_HOME) -> None:
    """Back to the seeded state: AWS, clusters and app; faults and the call log cleared."""
    if _sandbox(home).load_env() is None:
        fail(f"the sandbox is not up in {home}: run 'failover sandbox up'", ExitCode.UNREACHABLE)
    with _answering():
        _sandbox(home).reset(progress=info)
    info("sandbox reset")


@app.command()
def calls(
    home: HomeOption = DEFAULT_HOME,
    since: Annotated[float | None, typer.Option(help="Only calls after this Unix time.")] = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Every mutating call the sandbox served: operation, region, parameters, time."""
    with _answering():
        served = _control(home).calls(since)
    if output == OutputFormat.json:
        print_json(served)
        return
    print_table(
        f"{len(served)} mutating call(s)",
        ["seq", "source", "region", "operation", "status", "fault"],
        [[c.seq, c.source, c.region, c.operation, c.status, c.fault or ""] for c in served],
    )


@app.command()
def notifications(
    home: HomeOption = DEFAULT_HOME,
    since: Annotated[
        float | None, typer.Option(help="Only what arrived after this Unix time.")
    ] = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """What arrived at the sandbox's notification sink (Slack, PagerDuty, webhook, SNS)."""
    with _answering():
        arrived = _control(home).notifications(since)
    if output == OutputFormat.json:
        print_json(arrived)
        return
    print_table(
        f"{len(arrived)} notification(s)",
        ["#", "time", "kind", "channel", "event", "summary", "answered", "note"],
        [
            [
                n["id"],
                time.strftime("%H:%M:%S", time.localtime(n["at"])),
                n["kind"],
                n["channel"],
                n.get("event") or n.get("action") or "",
                n.get("summary", ""),
                n.get("status", ""),
                notify_note(n),
            ]
            for n in arrived
        ],
    )


@app.command()
def active(home: HomeOption = DEFAULT_HOME, output: OutputOption = OutputFormat.table) -> None:
    """Which region is active now (holds the Aurora writer) and which are standby."""
    with _answering():
        env = _env(home)
        region = SandboxControl(env).active_region()
    standby = [r for r in env.regions if r != region]
    if output == OutputFormat.json:
        print_json({"active": region, "standby": standby})
    else:
        typer.echo(f"active {region}, standby {', '.join(standby)}")


@app.command()
def quota(
    service: Annotated[
        str | None,
        typer.Argument(help="An AWS service, by its API name (route53, ssm, ...); none: list."),
    ] = None,
    rate: Annotated[
        float | None,
        typer.Option(min=0, help="Requests a second per account; 0 lifts the quota."),
    ] = None,
    burst: Annotated[
        float | None,
        typer.Option(min=1, help="At most this many at once (default: one second's worth)."),
    ] = None,
    home: HomeOption = DEFAULT_HOME,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Throttle an AWS service's API past a rate, per account, as AWS does (Route 53: 5 a
    second); with no service, list the quotas and the calls each served and throttled."""
    if service is not None and rate is None:
        fail(f"give the quota of {service}: --rate N (requests a second; 0 lifts it)")
    if service is None and (rate is not None or burst is not None):
        fail("--rate and --burst go with a service: failover sandbox quota route53 --rate 5")
    with _answering():
        control = _control(home)
        if service is not None and rate is not None:
            control.set_quota(service, rate, burst)
        quotas = control.quotas()
    if output == OutputFormat.json:
        print_json(quotas)
        return
    print_table(
        "API quotas (per account)",
        ["service", "rate /s", "burst", "served", "throttled"],
        [[name, q["rate"], q["burst"], q["served"], q["throttled"]] for name, q in quotas.items()],
    )


@fault_app.command("add")
def fault_add(
    target: Annotated[
        str,
        typer.Option(help="aws:<service>:<Operation> or k8s:<region>:<verb>:<resource> (* ok)"),
    ],
    error: Annotated[
        str, typer.Option(help="Throttling, ServiceUnavailable, AccessDenied, a code, or none")
    ] = "ServiceUnavailable",
    count: Annotated[int, typer.Option(help="How many calls fail (0 = until cleared).")] = 1,
    region: Annotated[str | None, typer.Option(help="Only calls to this region.")] = None,
    delay: Annotated[float, typer.Option(help="Seconds to wait before answering.")] = 0.0,
    when: Annotated[
        str, typer.Option(help="before: nothing changes; after: the change lands, then the error")
    ] = "before",
    home: HomeOption = DEFAULT_HOME,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Make the next N matching calls fail with a real error response from the server."""
    if count < 0:
        fail("--count must be >= 0")
    try:
        rule = FaultRule(
            target=target,
            error=error,
            count=count or None,
            region=region,
            delay=delay,
            when=when,  # type: ignore[arg-type]
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        fail(f"--{first['loc'][0] if first['loc'] else 'fault'}: {first['msg']}")
    with _answering():
        added = _control(home).add_fault(rule)
    if output == OutputFormat.json:
        print_json(added)
    else:
        info(f"fault {added.id}: {added.target} -> {added.error} x{added.count or 'inf'}")


@fault_app.command("list")
def fault_list(home: HomeOption = DEFAULT_HOME, output: OutputOption = OutputFormat.table) -> None:
    """Active faults and how many calls each has hit."""
    with _answering():
        rules = _control(home).faults()
    if output == OutputFormat.json:
        print_json(rules)
        return
    print_table(
        "faults",
        ["id", "target", "error", "when", "region", "hits", "count"],
        [
            [r.id, r.target, r.error, r.when, r.region or "*", r.hits, r.count or "inf"]
            for r in rules
        ],
    )


@fault_app.command("clear")
def fault_clear(home: HomeOption = DEFAULT_HOME) -> None:
    """Remove every fault."""
    with _answering():
        n = _control(home).clear_faults()
    info(f"cleared {n} fault(s)")


class Outage(StrEnum):
    app = "app"
    full = "full"


@region_app.command("down")
def region_down(
    region: str,
    outage: Annotated[
        Outage,
        typer.Option(
            help="app: its app answers 503 (health checks fail); full: the "
            "whole region stops answering (Kubernetes API, app, AWS endpoint, "
            "its ARC endpoint; Route 53's API with us-east-1)."
        ),
    ] = Outage.app,
    hang: Annotated[
        float,
        typer.Option(
            min=0,
            help="With --outage full: calls hang this long (seconds), "
            "then fail (a blackholed region; default: refused at once).",
        ),
    ] = 0.0,
    for_: Annotated[
        str | None,
        typer.Option(
            "--for",
            metavar="DURATION",
            help="Bring it back by itself after this long (30s, 10m, 1h); default: until "
            "`region up`.",
        ),
    ] = None,
    home: HomeOption = DEFAULT_HOME,
) -> None:
    """Take a region down."""
    if hang and outage != Outage.full:
        fail("--hang goes with --outage full")
    expires = None
    if for_ is not None:
        try:
            expires = parse_duration(for_).total_seconds()
        except ValueError as exc:
            fail(f"--for: {exc}")
    with _answering():
        _control(home).set_outage(region, outage.value, hang, expires)
    what = (
        "DOWN: its app answers 503, its health check fails"
        if outage == Outage.app
        else "DOWN (full outage): its Kubernetes API, app and AWS endpoint "
        + (f"hang {hang:g}s then fail" if hang else "refuse connections")
        + (", and Route 53's API with it" if region == "us-east-1" else "")
    )
    info(f"region {region} is {what}" + (f"; back by itself in {for_}" if for_ else ""))


@region_app.command("up")
def region_up(region: str, home: HomeOption = DEFAULT_HOME) -> None:
    """Bring a downed region back (whatever the outage)."""
    with _answering():
        _control(home).set_outage(region, None)
    info(f"region {region} is up")
