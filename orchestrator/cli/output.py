"""Output helpers shared by the CLI sub-apps: tables for people, JSON for machines, one-line
errors; progress and errors on stderr so that stdout stays clean for `-o json`."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from orchestrator.cli.exit_codes import ExitCode

console = Console()
err_console = Console(stderr=True, soft_wrap=True)


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
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(int(code))


def info(message: str) -> None:
    """Progress for people, on stderr (so stdout stays clean for -o json)."""
    err_console.print(escape(message), highlight=False)


def problems(items: list[Any]) -> NoReturn:
    """Every problem of an invalid input, one line each; exit 2 (nothing was done)."""
    for problem in items:
        err_console.print(f"[bold red]error:[/] {escape(str(problem))}", highlight=False,
                          soft_wrap=True)  # fmt: skip
    raise typer.Exit(int(ExitCode.INVALID_INPUT))


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
