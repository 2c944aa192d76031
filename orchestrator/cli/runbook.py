"""`failover validate`, `failover schema`, `failover steps`: runbooks and step types."""

from __future__ import annotations

import json
import os
import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.markup import escape

from activities import registry
from activities.arns import Arns, Grant
from orchestrator import config as configuration
from orchestrator import permissions
from orchestrator.cli import evacuate
from orchestrator.cli.exit_codes import ExitCode
from orchestrator.cli.options import (
    ConfigOption,
    OutputFormat,
    OutputOption,
    ParamOption,
    parse_params,
)
from orchestrator.cli.output import err_console, fail, info, print_json, print_table
from orchestrator.config import Config
from orchestrator.evacuation.loader import kind_of
from orchestrator.evacuation.models import EvacuationPlan
from orchestrator.runbook.graph import levels
from orchestrator.runbook.loader import RunbookError, check_file, load_file
from orchestrator.runbook.models import Runbook
from orchestrator.runbook.resolve import ResolveError


class SchemaKind(StrEnum):
    """What `failover schema` describes."""

    runbook = "Runbook"
    evacuation = "Evacuation"


def validate(
    runbook: Annotated[Path, typer.Argument(help="Runbook or evacuation plan YAML file.")],
    output: OutputOption = OutputFormat.table,
) -> None:
    """Check a runbook: structure, step types and params, dependencies, templates, safety rules.
    An evacuation plan (kind: Evacuation): its services, their runbooks, dependencies and tiers,
    and that no two services write the same resource."""
    if kind_of(runbook) == "Evacuation":
        evacuate.validate(runbook, output)
        return
    try:
        rb, warnings = check_file(runbook)
    except RunbookError as exc:
        if output == OutputFormat.json:
            print_json({"valid": False, "problems": [p.__dict__ for p in exc.problems]})
        else:
            for problem in exc.problems:
                err_console.print(f"[bold red]error:[/] {escape(str(problem))}", highlight=False,
                                  soft_wrap=True)  # fmt: skip
        raise typer.Exit(int(ExitCode.INVALID_INPUT)) from None
    groups = levels({s.id: s.depends_on for s in rb.steps})
    if output == OutputFormat.json:
        print_json({"valid": True, "name": rb.name, "steps": len(rb.steps), "levels": groups,
                    "warnings": [w.__dict__ for w in warnings]})  # fmt: skip
        return
    for warning in warnings:
        err_console.print(f"[bold yellow]warning:[/] {escape(str(warning))}", highlight=False,
                          soft_wrap=True)  # fmt: skip
    info(f"{runbook}: valid runbook {rb.name!r}: {len(rb.steps)} steps in {len(groups)} levels")


def schema(
    kind: Annotated[
        SchemaKind, typer.Option(help="Runbook or Evacuation (a plan).", case_sensitive=False)
    ] = SchemaKind.runbook,
) -> None:
    """The runbook JSON Schema, or an evacuation plan's (for editors: yaml-language-server
    $schema)."""
    model = EvacuationPlan if kind == SchemaKind.evacuation else Runbook
    typer.echo(json.dumps(model.model_json_schema(), indent=2))


def steps(output: OutputOption = OutputFormat.table) -> None:
    """The registered step types and their params schema."""
    rows = [
        {
            "type": name,
            "mutating": t.mutating,
            "reversible": t.reversible,
            "gate": t.gate,
            "description": " ".join((type(t).__doc__ or "").strip().split("\n\n")[0].split()),
            "params_schema": t.Params.model_json_schema(),
        }
        for name, t in sorted(registry.STEP_TYPES.items())
    ]
    if output == OutputFormat.json:
        print_json(rows)
        return
    print_table(
        "step types",
        ["type", "mutating", "undo", "description"],
        [[r["type"], r["mutating"], r["reversible"], r["description"]] for r in rows],
    )


def iam(
    runbook: Annotated[
        Path | None, typer.Argument(help="Runbook YAML file (default: every step type).")
    ] = None,
    account: Annotated[
        str | None,
        typer.Option(
            help="The AWS account id in ARNs (default: '*', or the caller's with --lookup)."
        ),
    ] = None,
    partition: Annotated[str, typer.Option(help="aws, aws-cn or aws-us-gov.")] = "aws",
    lookup: Annotated[
        bool,
        typer.Option(
            help="Ask AWS (read-only) for the ids ARNs need: hosted zones by name, "
            "health checks by Name tag, the account."
        ),
    ] = False,
    param: ParamOption = [],  # noqa: B006 - Typer's way to spell a repeatable option
    config: ConfigOption = None,
    worker_role: Annotated[
        str | None,
        typer.Option(help="The worker's own role ARN (the trust policies' principal)."),
    ] = None,
) -> None:
    """The least-privilege IAM policy (JSON) for what a worker does for the runbook: each action
    on the resources the runbook names (hosted zones, record names, the global cluster, ...), "*"
    only where AWS has no resource-level permission for it; plus the configuration's report
    bucket and SNS topics. Without a runbook: every step type's actions, on "*". A runbook
    whose steps name AWS accounts: the worker's policy, and per account (from the
    configuration's aws.accounts) its role's policy and trust policy."""
    if account is not None and not re.fullmatch(r"\d{12}", account):
        fail(f"--account: {account!r} is not an AWS account id (12 digits)")
    if partition not in ("aws", "aws-cn", "aws-us-gov"):
        fail(f"--partition: {partition!r} is not aws, aws-cn or aws-us-gov")
    rb = _load(runbook)
    cfg = _config(config, needed=True) if lookup else None
    arns = Arns(account=account or "*", partition=partition)
    if cfg is not None:
        try:
            arns = permissions.looked_up(cfg, account, partition)
        except permissions.AwsLookupError as exc:
            fail(str(exc), ExitCode.UNREACHABLE)
    if rb is not None and permissions.names_accounts(rb):
        cfg = cfg or _config(config, needed=True)
        assert cfg is not None  # (needed: a missing configuration failed above)
        try:
            permissions.check_accounts(rb, cfg.aws, cfg.source)
            docs = permissions.account_documents(
                rb, cfg.aws, worker_role, arns, parse_params(param),
                permissions.config_grants(cfg, rb, arns),
            )  # fmt: skip
        except ValueError as exc:  # (a ResolveError too)
            fail(str(exc))
        typer.echo(json.dumps(docs, indent=2))
        return
    try:
        if rb is None:
            types = permissions.step_types(None)
            grants = [Grant(tuple(t.actions), ("*",)) for t in types if t.actions]
        else:
            grants = permissions.runbook_grants(rb, arns, parse_params(param))
    except ResolveError as exc:
        fail(str(exc))
    except permissions.AwsLookupError as exc:
        fail(str(exc), ExitCode.UNREACHABLE)
    if cfg is None:
        cfg = _config(config, needed=False)
    if cfg is not None:
        grants += permissions.config_grants(cfg, rb, arns)
    typer.echo(json.dumps(permissions.iam_policy(grants), indent=2))


def rbac(
    runbooks: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Runbook YAML files the worker runs (default: every step type, as "
            "one ClusterRole)."
        ),
    ] = None,
    service_account: Annotated[
        str, typer.Option(help="The worker's ServiceAccount (the bindings' subject).")
    ] = permissions.NAME,
    sa_namespace: Annotated[str, typer.Option(help="The ServiceAccount's namespace.")] = "failover",
    group: Annotated[
        list[str],
        typer.Option(
            help="A group to bind too (repeatable): the one an EKS access entry maps "
            "the worker's IAM role to."
        ),
    ] = [],  # noqa: B006
    param: ParamOption = [],  # noqa: B006
) -> None:
    """Kubernetes RBAC (YAML) for the runbooks' steps: a Role and RoleBinding per namespace they
    act in, with only the kinds, verbs and objects they need, and a ClusterRole only for
    cluster-scoped resources. Without a runbook: a ClusterRole with every step type's verbs."""
    if not runbooks:
        role = permissions.rbac_role(permissions.step_types(None))
        typer.echo(yaml.safe_dump(role, sort_keys=False), nl=False)
        return
    rules = []
    for path in runbooks:
        rb = _load(path)
        assert rb is not None
        try:
            rules += permissions.runbook_rules(rb, parse_params(param))
        except ResolveError as exc:
            fail(f"{path}: {exc}")
    docs = permissions.rbac_objects(rules, service_account, sa_namespace, groups=group)
    typer.echo(yaml.safe_dump_all(docs, sort_keys=False), nl=False)


def _config(path: Path | None, needed: bool) -> Config | None:
    """The configuration (its report bucket, SNS topics, AWS endpoints): the one given, else the
    sandbox's; none found is fine unless `needed` (--lookup reaches AWS through it)."""
    try:
        return configuration.load(path)
    except configuration.ConfigError as exc:
        if path is not None or needed or os.environ.get("FAILOVER_CONFIG"):
            fail(str(exc))
        info("no configuration: the report bucket and SNS topics are not in the policy "
             "(--config)")  # fmt: skip
        return None


def _load(path: Path | None) -> Runbook | None:
    if path is None:
        return None
    try:
        return load_file(path)
    except RunbookError as exc:
        fail(str(exc))


def register(app: typer.Typer) -> None:
    """Add these commands to the top-level app."""
    for fn in (validate, schema, steps, iam, rbac):
        app.command()(fn)
