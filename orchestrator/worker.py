"""The worker: RegionSwitchWorkflow, GameDayWorkflow, GuardWorkflow, ReadinessWorkflow, the step,
game-day, guard, notification, report and readiness activities, on one task queue.

Step activities are synchronous (boto3 and the kubernetes client are), so they run in a thread
pool sized to the worker's activity slots.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from temporalio.client import Client
from temporalio.worker import Worker

from activities.clients import Clients
from activities.gameday import GameDayActivities
from activities.guard import GuardActivities
from activities.notify import NotifyActivities
from activities.reach import ReachActivities
from activities.readiness import ReadinessActivities
from activities.report import ReportActivities
from activities.steps import StepActivities
from orchestrator.config import Config
from workflows import WORKFLOWS

MAX_CONCURRENT_ACTIVITIES = 200


def build_worker(
    client: Client,
    config: Config,
    executor: ThreadPoolExecutor,
    task_queue: str | None = None,
    max_cached_workflows: int = 1000,
) -> Worker:
    """A worker for the orchestrator's workflows and activities (not started).

    `max_cached_workflows=0` evicts a workflow after every activation (tests use it: every
    workflow task then replays the history from the start).
    """
    clients = Clients(config)
    steps = StepActivities(clients)
    gameday = GameDayActivities(clients, client)
    reach = ReachActivities(clients)
    guard = GuardActivities(clients)
    notify = NotifyActivities(clients)
    reports = ReportActivities(clients)
    readiness = ReadinessActivities(clients, client)
    return Worker(
        client,
        task_queue=task_queue or config.temporal.task_queue,
        workflows=WORKFLOWS,
        activities=[
            *steps.all(),
            *gameday.all(),
            *reach.all(),
            *guard.all(),
            *notify.all(),
            *reports.all(),
            *readiness.all(),
        ],
        activity_executor=executor,
        max_concurrent_activities=MAX_CONCURRENT_ACTIVITIES,
        max_cached_workflows=max_cached_workflows,
    )


def executor() -> ThreadPoolExecutor:
    """The thread pool the step activities run in."""
    return ThreadPoolExecutor(max_workers=MAX_CONCURRENT_ACTIVITIES, thread_name_prefix="step")
