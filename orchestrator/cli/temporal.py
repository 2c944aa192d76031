"""Talking to Temporal from a command: connect, run, and turn what can go wrong into one line and
an exit code (unreachable: 5; refused: 2; no worker: 5)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from temporalio.client import Client
from temporalio.service import RPCError

from orchestrator import config as configuration
from orchestrator import switch
from orchestrator.cli.exit_codes import ExitCode
from orchestrator.cli.output import fail
from orchestrator.client import UnreachableError, connect

T = TypeVar("T")


def call(cfg: configuration.Config, body: Callable[[Client], Awaitable[T]]) -> T:
    """Connect and run body; Temporal unreachable or a refused request become one-line errors."""

    async def main() -> T:
        return await body(await connect(cfg.temporal))

    try:
        return asyncio.run(main())
    except UnreachableError as exc:
        fail(str(exc), ExitCode.UNREACHABLE)
    except switch.RefusedError as exc:
        fail(f"refused: {exc}")
    except switch.NoWorkerError as exc:
        fail(str(exc), ExitCode.UNREACHABLE)
    except RPCError as exc:
        if "not found" in exc.message.lower():
            fail(f"no such run: {exc.message}")
        fail(f"Temporal refused the request: {exc.message}", ExitCode.UNREACHABLE)


def ui_link(cfg: configuration.Config, wid: str, rid: str | None) -> str:
    """The run's page in the Temporal Web UI ("" when no UI is configured)."""
    if not cfg.temporal.ui_url:
        return ""
    return f"{cfg.temporal.ui_url}/namespaces/{cfg.temporal.namespace}/workflows/{wid}/{rid}"
