"""Sending notifications from a workflow: deterministic, no I/O (`notify.send` does the I/O).

`notify()` runs the activity within a deadline and never raises: an activity that fails or times
out is a failed `Delivery`. `Notifier` runs each notice as a background task, so a notification
never delays what the workflow does, keeps what was delivered, and lets the workflow wait for the
ones still in flight before it ends, for at most the activity's deadline.

Replay: a workflow that adopts notifications guards them with `workflow.patched("notify")`
(histories recorded before have no such activities) and passes the result as `enabled`.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from orchestrator.notifications import Delivery, Notice, NotifyCall, NotifyRoute

#: One attempt of `notify.send`: channels are sent in parallel, each within its own deadline
#: (at most 25 s, `NotifyChannel.deadline`), so an attempt ends well within this.
START_TO_CLOSE = timedelta(seconds=30)
#: Every attempt together (a second one only if the worker running the first died).
SCHEDULE_TO_CLOSE = timedelta(seconds=65)
RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=5),
    maximum_attempts=2,
)


async def notify(notice: Notice, routes: list[NotifyRoute]) -> list[Delivery]:
    """Send `notice` (the activity `notify.send`); its deliveries, one per channel. An activity
    that fails or runs out of time is one failed Delivery (channel "*"), never an exception."""
    try:
        out: list[Delivery] = await workflow.execute_activity(
            "notify.send",
            NotifyCall(notice=notice, routes=routes),
            result_type=list[Delivery],
            start_to_close_timeout=START_TO_CLOSE,
            schedule_to_close_timeout=SCHEDULE_TO_CLOSE,
            retry_policy=RETRY,
            summary=f"notify {notice.event}",
        )
    except ActivityError as exc:
        cause = exc.cause or exc
        return [
            Delivery(
                channel="*",
                event=notice.event,
                ok=False,
                detail=f"not sent: {type(cause).__name__}: {cause}",
                at=workflow.now(),
            )
        ]
    return out


class Notifier:
    """A workflow's notifications: each sent in the background, its deliveries recorded.

    Args:
        enabled: False for runs that must not notify (recorded before notifications existed,
            dry runs): `send` then does nothing.
        routes: the runbook's routes (empty: every configured channel that takes the event).
        deliveries: where deliveries are appended (the workflow's progress).
    """

    def __init__(self, enabled: bool, routes: list[NotifyRoute], deliveries: list[Delivery]):
        self.enabled = enabled
        self.routes = routes
        self.deliveries = deliveries
        self._tasks: list[asyncio.Task[None]] = []

    def send(self, notice: Notice) -> None:
        """Start sending `notice` in the background (returns at once)."""
        if not self.enabled:
            return

        async def run() -> None:
            self.deliveries.extend(await notify(notice, self.routes))

        self._tasks.append(asyncio.create_task(run()))

    @property
    def sent(self) -> int:
        """Notices sent so far (in flight or delivered)."""
        return len(self._tasks)

    @property
    def in_flight(self) -> int:
        return sum(1 for t in self._tasks if not t.done())

    async def drain(self, timeout: timedelta = SCHEDULE_TO_CLOSE) -> None:
        """Wait until every notice sent has its deliveries, for at most `timeout` (no timer
        when none is in flight)."""
        if not self.in_flight:
            return
        try:
            await workflow.wait_condition(lambda: self.in_flight == 0, timeout=timeout)
        except TimeoutError:
            workflow.logger.warning("notifications still in flight when the workflow ended")


def run_ref() -> tuple[str, str, str]:
    """(workflow id, run id, dedup key: one per run) of the current workflow."""
    info = workflow.info()
    return info.workflow_id, info.run_id, f"{info.workflow_id}/{info.run_id}"
