"""Talking to Temporal from a command: connect, run, and turn what can go wrong into one line and
an exit code (unreachable: 5; refused: 2; no worker: 5).

A running workflow answers queries and Updates only through a worker polling its task queue:
every command that asks a run something goes through `ask` (or `need_worker`, then `answered`,
when it asks many times, as the live views do), which says at once, in one line, when no worker
polls, and names the run when one polls but does not answer in time."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from temporalio.client import Client, WorkflowHandle, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.service import RPCError, RPCStatusCode

from orchestrator import config as configuration
from orchestrator import leases, switch
from orchestrator.cli.exit_codes import ExitCode
from orchestrator.cli.output import fail
from orchestrator.client import UnreachableError, connect

T = TypeVar("T")
H = TypeVar("H", bound=WorkflowHandle[Any, Any])

ANSWER_TIMEOUT_S = 20.0  # a polled run answers a query or an Update within moments


def call(cfg: configuration.Config, body: Callable[[Client], Awaitable[T]]) -> T:
    """Connect and run body; Temporal unreachable or a refused request become one-line errors."""

    async def main() -> T:
        return await body(await connect(cfg.temporal))

    try:
        return asyncio.run(main())
    except UnreachableError as exc:
        fail(str(exc), ExitCode.UNREACHABLE)
    except configuration.ConfigError as exc:  # a payload key that cannot be used
        fail(str(exc), ExitCode.INVALID_INPUT)
    except (switch.RefusedError, leases.LeaseConflictError, leases.LeaseLockError) as exc:
        fail(f"refused: {exc}")
    except switch.NoWorkerError as exc:
        fail(str(exc), ExitCode.UNREACHABLE)
    except RPCError as exc:
        if "not found" in exc.message.lower():
            fail(f"no such run: {exc.message}")
        if timed_out(exc):
            fail(f"Temporal at {cfg.temporal.address} did not answer in time ({exc.message})",
                 ExitCode.UNREACHABLE)  # fmt: skip
        fail(f"Temporal refused the request: {exc.message}", ExitCode.UNREACHABLE)


def timed_out(exc: RPCError) -> bool:
    """Whether a request failed for want of an answer in time (not a refusal)."""
    return exc.status in (RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED) or (
        "timeout" in exc.message.lower() or "timed out" in exc.message.lower()
    )


async def need_worker(h: WorkflowHandle[Any, Any], what: str = "run") -> str | None:
    """The run's task queue once a worker is seen polling it, None when the run has ended (its
    result answers with no worker); NoWorkerError at once (one line naming the run, its task
    queue and how to start a worker: exit 5 through `call`) when it runs and none polls."""
    return await switch.worker_queue(h, what)


async def answered(
    h: WorkflowHandle[Any, Any],
    request: Awaitable[T],
    queue: str | None,
    what: str = "run",
    timeout: float = ANSWER_TIMEOUT_S,
) -> T:
    """A query or an Update on a run (`queue`: its task queue from `need_worker`, None if it had
    ended), given `timeout` seconds; no answer in time is a NoAnswerError naming the run."""
    if queue is None:
        return await request
    try:
        return await asyncio.wait_for(request, timeout)
    except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError):  # (an Update's own error)
        reason = f"no answer within {timeout:g}s"
    except RPCError as exc:
        if not timed_out(exc):
            raise
        reason = f"no answer in time ({exc.message})"
    raise switch.NoAnswerError(
        f"{what} {h.id} did not answer: {reason}, though a worker polls its task queue "
        f"{queue!r} (busy, stuck or just stopped: see its log); what was asked may still be "
        "done when it answers"
    )


async def ask(
    h: H,
    request: Callable[[H], Awaitable[T]],
    what: str = "run",
    timeout: float = ANSWER_TIMEOUT_S,
) -> T:
    """request(h): a query or an Update on a run, only once a worker polls its task queue (at
    once, an ended run: read from its result), within `timeout` seconds. Every command that asks
    a run something goes through here (or `need_worker` and `answered`)."""
    queue = await need_worker(h, what)
    return await answered(h, request(h), queue, what, timeout)


def ui_link(cfg: configuration.Config, wid: str, rid: str | None) -> str:
    """The run's page in the Temporal Web UI ("" when no UI is configured)."""
    if not cfg.temporal.ui_url:
        return ""
    return f"{cfg.temporal.ui_url}/namespaces/{cfg.temporal.namespace}/workflows/{wid}/{rid}"


async def recent_pollers(client: Client, queue: str) -> int:
    """Workers seen polling the queue lately (the server remembers dead ones for a while)."""
    return await switch.pollers(client, queue)
