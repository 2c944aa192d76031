"""A worker in the command's own process, on the sandbox, while the command follows a run: one
command is enough there (`drill`, `run`, `watch`, `gameday run`). More workers on one task queue
share the work; a detached run goes on when any worker polls."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from temporalio.client import Client

from orchestrator import config as configuration
from orchestrator.worker import build_worker, executor


@contextlib.asynccontextmanager
async def hosted_worker(
    client: Client, cfg: configuration.Config, enabled: bool = True
) -> AsyncIterator[None]:
    """On the sandbox (and when enabled), a worker in this process for the duration."""
    if not (cfg.sandbox and enabled):
        yield
        return
    with executor() as pool:
        async with build_worker(client, cfg, pool, warm=True):
            yield
