"""The options the `failover` commands share, spelled once: who you are, which configuration,
regions, parameters, output formats; and the small parsers behind them (one-line errors)."""

from __future__ import annotations

import getpass
import os
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from orchestrator import config as configuration
from orchestrator.cli.exit_codes import ExitCode
from orchestrator.cli.output import fail


class OutputFormat(StrEnum):
    """`-o`: a table for people, JSON for machines."""

    table = "table"
    json = "json"


class ChartFormat(StrEnum):
    """`-o` of commands that can also draw (trends)."""

    table = "table"
    json = "json"
    html = "html"


class ReportFormat(StrEnum):
    """`--format` of a report."""

    md = "md"
    json = "json"
    html = "html"


class LogFormat(StrEnum):
    console = "console"
    json = "json"


OutputOption = Annotated[
    OutputFormat, typer.Option("--output", "-o", help="table or json", case_sensitive=False)
]
ChartOption = Annotated[
    ChartFormat, typer.Option("--output", "-o", help="table, json or html", case_sensitive=False)
]
ReportFormatOption = Annotated[
    ReportFormat, typer.Option("--format", "-f", help="md, json or html", case_sensitive=False)
]
ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        envvar="FAILOVER_CONFIG",
        help="Config file, or several separated by ':' (later ones win); default: sandbox.",
    ),
]
AsOption = Annotated[
    str | None, typer.Option("--as", help="Who you are (default: $FAILOVER_USER or $USER).")
]
FromOption = Annotated[str, typer.Option("--from", help="Region to switch away from.")]
ToOption = Annotated[
    str,
    typer.Option(
        "--to",
        help="Region to switch to, or auto: the first region (in the runbook's order) whose "
        "capacity and health checks are green.",
    ),
]
ParamOption = Annotated[list[str], typer.Option("--param", "-p", help="NAME=VALUE (repeatable).")]
AutoApproveOption = Annotated[
    str | None, typer.Option(help="Approve every gate as this person (sandbox demos only).")
]
DetachOption = Annotated[bool, typer.Option(help="Return the run id at once.")]
RunbookArg = Annotated[Path, typer.Argument(help="Runbook YAML file.")]
OutOption = Annotated[Path | None, typer.Option(help="Write to this file (default: stdout).")]


def identity(name: str | None) -> str:
    """The operator's name: --as, else $FAILOVER_USER, else the login name."""
    who = name or os.environ.get("FAILOVER_USER") or getpass.getuser()
    if not who.strip():
        fail("--as: who you are is required")
    return who.strip()


def parse_params(values: list[str]) -> dict[str, str]:
    """--param NAME=VALUE pairs (one-line error for anything else)."""
    out: dict[str, str] = {}
    for v in values:
        key, sep, val = v.partition("=")
        if not sep or not key:
            fail(f"--param {v!r}: expected NAME=VALUE")
        out[key] = val
    return out


def load_config(path: Path | None) -> configuration.Config:
    """The configuration, or a one-line error (exit 2 for a bad file, 5 for no sandbox)."""
    try:
        return configuration.load(path)
    except configuration.ConfigError as exc:
        code = ExitCode.INVALID_INPUT if path else ExitCode.UNREACHABLE
        fail(str(exc), code)
