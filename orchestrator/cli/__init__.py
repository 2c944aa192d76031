"""The `failover` command: one Typer sub-app per resource, assembled here."""

from __future__ import annotations

import typer

from orchestrator import __version__
from orchestrator.cli import runbook, sandbox, worker
from orchestrator.cli import switch as switch_cli

app = typer.Typer(
    name="failover",
    help="Safe, verified, reversible region switches, run as durable Temporal workflows.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(sandbox.app, name="sandbox")
runbook.register(app)
app.command()(worker.worker)
switch_cli.register(app)


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


def main() -> None:
    """Console-script entry point."""
    app()
