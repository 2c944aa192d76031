"""Cancellation that means "stop and clean up", shared by both workflows."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from temporalio import workflow


async def run_shielded(main: Coroutine[Any, Any, None], on_cancel: Callable[[], None]) -> None:
    """Run `main` to its end even when the workflow is cancelled: a cancellation calls
    `on_cancel` (which asks `main` to wind down: roll back, remove a fault) and waits on. An
    eviction from the worker's cache cancels every task, `main` included: that one propagates.
    Returns once `main` is done and every Update/signal handler has finished."""
    task = asyncio.create_task(main)
    while True:
        try:
            await asyncio.shield(task)
            break
        except asyncio.CancelledError:
            if task.cancelling() or task.done():
                raise
            on_cancel()
    await workflow.wait_condition(workflow.all_handlers_finished)
