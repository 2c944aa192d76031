"""The floor of the engine benchmark: a plain workflow of N sequential no-op activities."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow


@activity.defn(name="bench.noop")
def noop() -> None:
    """Does nothing (a sync activity in the same thread pool as the engine's steps)."""


@workflow.defn(name="BenchFloor")
class FloorWorkflow:
    """N no-op activities, one after the other: what Temporal itself costs per step."""

    @workflow.run
    async def run(self, n: int) -> int:
        for _ in range(n):
            await workflow.execute_activity(
                "bench.noop", start_to_close_timeout=timedelta(seconds=30)
            )
        return n
