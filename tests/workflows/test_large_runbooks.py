"""A 1,000-step runbook completes, and its history stays well inside Temporal's limits."""

from __future__ import annotations

import json
from typing import Any

import pytest

from orchestrator.runs import RunState, StepState
from orchestrator.sandbox.manager import SandboxEnv
from tests.workflows.helpers import plan, run, sandbox_config, start, worker

HISTORY_EVENT_WARNING = 10_240  # Temporal warns from here (hard limit 51,200)
HISTORY_BYTES_WARNING = 10 * 1024 * 1024  # warns from 10 MiB (hard limit 50 MiB)


def runbook(n: int, parallel: int) -> str:
    head = (
        "apiVersion: failover.dev/v1\nkind: Runbook\nname: wide\nregions: [us-east-1, us-west-2]\n"
        f"max_parallel: {parallel}\nsteps:\n"
    )
    steps = "".join(f"  - {{id: s{i}, type: noop}}\n" for i in range(n - 1))
    return head + steps + f"  - {{id: last, type: noop, depends_on: [s0, s{n - 2}]}}\n"


@pytest.mark.slow
def test_thousand_step_runbook_completes_with_a_small_history(env: SandboxEnv) -> None:
    async def scenario() -> Any:
        async with worker(sandbox_config(env)) as (client, queue):
            h = await start(client, queue, plan("", text=runbook(1000, 200)))
            result = await h.result()
            history = await h.fetch_history()
            return result, history

    result, history = run(scenario())
    assert result.state == RunState.SUCCEEDED
    assert len(result.steps) == 1000
    assert all(s.state == StepState.SUCCEEDED for s in result.steps)
    assert len(history.events) < HISTORY_EVENT_WARNING / 2, len(history.events)
    size = sum(e.ByteSize() for e in history.events)
    assert size < HISTORY_BYTES_WARNING / 4, size
    print(f"1000 steps: {len(history.events)} events, {size} bytes")


@pytest.mark.slow
def test_many_ready_steps_start_over_several_workflow_tasks_at_most_in_flight(
    env: SandboxEnv,
) -> None:
    """450 steps ready at once (max_parallel 450): no workflow task starts more than
    START_BATCH of them, so no task takes a second however wide the runbook is, and no more
    than IN_FLIGHT run at once, so no task can find the server's buffer of events full."""
    from workflows.region_switch import IN_FLIGHT, START_BATCH

    async def scenario() -> Any:
        async with worker(sandbox_config(env)) as (client, queue):
            h = await start(client, queue, plan("", text=runbook(450, 450)))
            return await h.result(), await h.fetch_history()

    result, history = run(scenario())
    assert result.state == RunState.SUCCEEDED
    assert all(s.state == StepState.SUCCEEDED for s in result.steps)
    per_task: list[int] = []  # step activities scheduled by each workflow task's commands
    markers = []
    steps: set[int] = set()  # the scheduled events of step activities
    in_flight = most = 0
    for e in history.events:
        if e.HasField("workflow_task_completed_event_attributes"):
            per_task.append(0)
        elif e.HasField("activity_task_scheduled_event_attributes"):
            kind = e.activity_task_scheduled_event_attributes.activity_type.name
            if kind.startswith("step."):  # (not the run's notices)
                per_task[-1] += 1
                steps.add(e.event_id)
                in_flight += 1
                most = max(most, in_flight)
        elif e.HasField("activity_task_completed_event_attributes"):
            in_flight -= e.activity_task_completed_event_attributes.scheduled_event_id in steps
        elif e.HasField("marker_recorded_event_attributes"):
            patch = e.marker_recorded_event_attributes.details["patch-data"].payloads[0].data
            markers.append(json.loads(patch)["id"])
    assert max(per_task) == START_BATCH, per_task[:10]
    assert sum(per_task) >= 450
    assert markers.count("start-batches") == 1  # the patch, asked once
    assert most == IN_FLIGHT, most  # (each step has one activity in flight: prepare, apply)
    assert markers.count("in-flight") == 1
