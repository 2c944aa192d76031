"""The worker: RegionSwitchWorkflow, GameDayWorkflow, GuardWorkflow, ReadinessWorkflow, the step,
game-day, guard, notification, report and readiness activities, on one task queue.

Step activities are synchronous (boto3 and the kubernetes client are), so they run in a thread
pool sized to the worker's activity slots. A long-lived worker (`failover worker`, the one a
drill hosts) warms its clients in the background as it starts (`warm=True`).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import structlog
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
from workflows.registry import WORKFLOWS

MAX_CONCURRENT_ACTIVITIES = 200
log = structlog.get_logger("failover.worker")


def build_worker(
    client: Client,
    config: Config,
    executor: ThreadPoolExecutor,
    task_queue: str | None = None,
    max_cached_workflows: int = 1000,
    warm: bool = False,
    clients: Clients | None = None,
) -> Worker:
    """A worker for the orchestrator's workflows and activities (not started).

    `max_cached_workflows=0` evicts a workflow after every activation (tests use it: every
    workflow task then replays the history from the start). `warm=True` builds the clients the
    step types can ask for in the configured regions, in a background thread, now. `clients`:
    the activities' clients (default: new ones for `config`; a benchmark passes clients it has
    warmed already).
    """
    clients = clients or Clients(config)
    if warm:
        threading.Thread(target=warm_clients, args=(clients,), name="warm", daemon=True).start()
    steps = StepActivities(clients)
    gameday = GameDayActivities(clients, client)
    reach = ReachActivities(clients)
    guard = GuardActivities(clients, client)
    notify = NotifyActivities(clients)
    reports = ReportActivities(clients, notify)
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


def warm_clients(clients: Clients) -> None:
    """Build every client the registered step types (and probes) can ask for; log what."""
    from orchestrator.permissions import step_types

    services = {a.split(":", 1)[0] for t in step_types(None) for a in t.actions}
    warmed = clients.warm(services)
    log.info(
        "clients warmed",
        aws=len(warmed.aws),
        kubernetes=len(warmed.kube),
        seconds=warmed.seconds,
        not_built=sorted(warmed.failed)[:10],
    )


def executor() -> ThreadPoolExecutor:
    """The thread pool the step activities run in."""
    return ThreadPoolExecutor(max_workers=MAX_CONCURRENT_ACTIVITIES, thread_name_prefix="step")
