"""Output helpers shared by the CLI sub-apps: tables for people, JSON for machines."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any, NoReturn

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from orchestrator.cli.exit_codes import ExitCode

console = Console()
err_console = Console(stderr=True, soft_wrap=True)


class OutputFormat(StrEnum):
    table = "table"
    json = "json"


OutputOption = typer.Option(OutputFormat.table, "--output", "-o", help="table or json")


def _plain(data: Any) -> Any:
    if isinstance(data, BaseModel):
        return data.model_dump(mode="json")
    if isinstance(data, list):
        return [_plain(x) for x in data]
    if isinstance(data, dict):
        return {k: _plain(v) for k, v in data.items()}
    return data


def print_json(data: Any) -> None:
    """Machine output: JSON on stdout, nothing else."""
    typer.echo(json.dumps(_plain(data), indent=2, default=str))


def print_table(title: str | None, columns: list[str], rows: list[list[Any]]) -> None:
    table = Table(title=title, show_lines=False, header_style="bold")
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    console.print(table)


def fail(message: str, code: ExitCode = ExitCode.INVALID_INPUT) -> NoReturn:
    """One line on stderr, a distinct exit code; never a traceback for a user error."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(int(code))


def info(message: str) -> None:
    """Progress for people, on stderr (so stdout stays clean for -o json)."""
    err_console.print(message, highlight=False)
