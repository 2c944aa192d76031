"""`failover worker`: run the workflows and step activities against the configured Temporal."""

from __future__ import annotations

import asyncio
import signal
from typing import Annotated

import typer

from orchestrator import config as configuration
from orchestrator.cli.exit_codes import ExitCode
from orchestrator.cli.options import ConfigOption, LogFormat, load_config
from orchestrator.cli.output import fail, info
from orchestrator.client import UnreachableError, connect
from orchestrator.logs import configure
from orchestrator.worker import build_worker, executor


def worker(
    config: ConfigOption = None,
    task_queue: Annotated[str | None, typer.Option(help="Task queue (default: failover).")] = None,
    log_format: Annotated[
        LogFormat, typer.Option(help="console or json", case_sensitive=False)
    ] = LogFormat.console,
) -> None:
    """Run a worker: region-switch workflows and step activities; stops cleanly on SIGTERM."""
    configure("json" if log_format == LogFormat.json else "console")
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
