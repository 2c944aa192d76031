"""`failover validate`, `failover schema`, `failover steps`: runbooks and step types."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.markup import escape

from activities import registry
from orchestrator import permissions
from orchestrator.cli import evacuate
from orchestrator.cli.exit_codes import ExitCode
from orchestrator.cli.options import OutputFormat, OutputOption
from orchestrator.cli.output import err_console, fail, info, print_json, print_table
from orchestrator.evacuation.loader import kind_of
from orchestrator.evacuation.models import EvacuationPlan
from orchestrator.runbook.graph import levels
from orchestrator.runbook.loader import RunbookError, check_file, load_file
from orchestrator.runbook.models import Runbook


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
) -> None:
    """The minimal IAM policy (JSON) for the AWS actions the runbook's step types use."""
    typer.echo(json.dumps(permissions.iam_policy(permissions.step_types(_load(runbook))), indent=2))


def rbac(
    runbook: Annotated[
        Path | None, typer.Argument(help="Runbook YAML file (default: every step type).")
    ] = None,
) -> None:
    """The Kubernetes ClusterRole (YAML) for the verbs the runbook's step types use."""
    role = permissions.rbac_role(permissions.step_types(_load(runbook)))
    typer.echo(yaml.safe_dump(role, sort_keys=False), nl=False)


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
