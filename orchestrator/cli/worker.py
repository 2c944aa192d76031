"""`failover worker`: run the workflows and step activities against the configured Temporal."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Annotated

import typer

from orchestrator import config as configuration
from orchestrator.cli.exit_codes import ExitCode
from orchestrator.cli.output import fail, info
from orchestrator.client import UnreachableError, connect
from orchestrator.logs import LogFormat, configure
from orchestrator.worker import build_worker, executor

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", envvar="FAILOVER_CONFIG", help="Config file (default: sandbox)."
    ),
]


def load_config(path: Path | None) -> configuration.Config:
    """The configuration, or a one-line error (exit 2 for a bad file, 5 for no sandbox)."""
    try:
        return configuration.load(path)
    except configuration.ConfigError as exc:
        code = ExitCode.INVALID_INPUT if path else ExitCode.UNREACHABLE
        fail(str(exc), code)


def worker(
    config: ConfigOption = None,
    task_queue: Annotated[str | None, typer.Option(help="Task queue (default: failover).")] = None,
    log_format: Annotated[str, typer.Option(help="console or json")] = "console",
) -> None:
    """Run a worker: region-switch workflows and step activities; stops cleanly on SIGTERM."""
    if log_format not in ("console", "json"):
        fail(f"--log-format: expected console or json, got {log_format!r}")
    fmt: LogFormat = "json" if log_format == "json" else "console"
    configure(fmt)
    cfg = load_config(config)
    queue = task_queue or cfg.temporal.task_queue
    try:
        asyncio.run(_run(cfg, queue))
    except UnreachableError as exc:
        fail(str(exc), ExitCode.UNREACHABLE)


async def _run(cfg: configuration.Config, queue: str) -> None:
    client = await connect(cfg.temporal)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    with executor() as pool:
        async with build_worker(client, cfg, pool, task_queue=queue):
            info(f"worker on {cfg.temporal.address} ns={cfg.temporal.namespace} queue={queue}")
            await stop.wait()
            info("worker stopping: finishing in-flight tasks")


def config_show(config: ConfigOption = None) -> None:
    """The resolved configuration (YAML), secrets redacted."""
    import yaml

    typer.echo(yaml.safe_dump(load_config(config).redacted(), sort_keys=False), nl=False)
