"""The `failover` command: one Typer sub-app per resource, assembled here."""

from __future__ import annotations

import os
import sys

import typer

from orchestrator import __version__
from orchestrator.cli import codec, evacuate, gameday, guard, readiness, runbook, trends, worker
from orchestrator.cli import switch as switch_cli
from orchestrator.cli.output import fail

app = typer.Typer(
    name="failover",
    help="Safe, verified, reversible region switches, run as durable Temporal workflows.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _add_sandbox(app: typer.Typer) -> None:
    """The sandbox's commands; when this install has no sandbox (installed without the
    `[sandbox]` extra: orchestrator.sandbox refuses to load without its libraries), a stand-in
    that says what to install. Any other import error is a bug, and raised."""
    try:
        from orchestrator.cli import sandbox
    except ModuleNotFoundError as exc:  # the product runs without it (`failover worker`, ...)
        why = f"the sandbox is not installed ({exc.name or exc}): "

        @app.command(
            "sandbox",
            help="The local sandbox (not installed here).",
            context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
        )
        def not_installed() -> None:
            fail(why + "pip install 'failover-orchestrator[sandbox]'")

        return
    app.add_typer(sandbox.app, name="sandbox")


_add_sandbox(app)
runbook.register(app)
app.command()(worker.worker)
config_app = typer.Typer(help="The configuration: Temporal, AWS, Kubernetes, endpoints.")
config_app.command("show")(worker.config_show)
app.add_typer(config_app, name="config")
switch_cli.register(app)
evacuate.register(app)
app.add_typer(gameday.app, name="gameday")
app.add_typer(guard.app, name="guard")
app.add_typer(readiness.app, name="readiness")
app.command("trends")(trends.trends)
app.add_typer(codec.app, name="codec")


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


def main() -> None:
    """Console-script entry point.

    Ends with os._exit: once a Temporal client or worker has run in the process, the SDK's native
    threads can outlive interpreter finalization and crash it (SIGSEGV or abort after the
    command's work is done: temporalio/sdk-python#300). Output is flushed first.
    """
    code = 0
    try:
        app()
    except SystemExit as exc:
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
            code = 1
        else:
            code = int(exc.code or 0)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
