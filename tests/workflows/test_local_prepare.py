"""A mutating step's `step.prepare` runs as a local activity: its snapshot is a marker recorded in
the workflow task that schedules `step.apply`, and the undo restores that snapshot."""

from __future__ import annotations

import json
from typing import Any

from temporalio.api.history.v1 import HistoryEvent

from orchestrator.runs import RunState, StepState
from orchestrator.sandbox.manager import SandboxEnv
from tests.sandbox.helpers import aws
from tests.workflows.helpers import drive, plan, run, sandbox_config, start, worker

RUNBOOK = """
apiVersion: failover.dev/v1
kind: Runbook
name: local-prepare
regions: [us-east-1, us-west-2]
steps:
  - id: flag-source
    type: ssm_parameter
    params: {name: /shop/flags/maintenance, value: "lp-1", region: "${{ from_region }}"}
  - id: flag-target
    type: ssm_parameter
    depends_on: [flag-source]
    params: {name: /shop/flags/maintenance, value: "lp-2", region: "${{ to_region }}"}
  - id: check
    type: http_check
    depends_on: [flag-target]
    params: {url: "http://127.0.0.1:1/", requests: 1, request_timeout: 0.2}
    timeout: 3s
    retry: {attempts: 1}
"""


def _prepares(events: list[HistoryEvent]) -> tuple[list[str], list[dict[str, Any]], list[str]]:
    """The activity types scheduled, the local activities' marker data, the patches asked."""
    scheduled, local, patches = [], [], []
    for e in events:
        if e.HasField("activity_task_scheduled_event_attributes"):
            scheduled.append(e.activity_task_scheduled_event_attributes.activity_type.name)
        elif e.HasField("marker_recorded_event_attributes"):
            details = e.marker_recorded_event_attributes.details
            if "patch-data" in details:
                patches.append(json.loads(details["patch-data"].payloads[0].data)["id"])
            elif "data" in details:
                local.append(json.loads(details["data"].payloads[0].data))
    return scheduled, local, patches


def test_prepare_is_a_local_activity_and_its_snapshot_undoes_the_step(env: SandboxEnv) -> None:
    """Both flags are prepared locally (no `step.prepare` activity, one marker each, the patch
    asked once); the check then fails, and each undo restores the value its marker recorded."""
    ssm = {r: aws(env, "ssm", r) for r in ("us-east-1", "us-west-2")}
    name = "/shop/flags/maintenance"
    before = {r: c.get_parameter(Name=name)["Parameter"]["Value"] for r, c in ssm.items()}
    assert "lp-1" not in before.values() and "lp-2" not in before.values()

    async def scenario() -> Any:
        async with worker(sandbox_config(env)) as (client, queue):
            h = await start(client, queue, plan("", text=RUNBOOK))
            return await drive(h), await h.fetch_history()

    result, history = run(scenario())
    assert result.state == RunState.ROLLED_BACK, result.reason
    states = {s.id: s.state for s in result.steps}
    assert states == {
        "flag-source": StepState.UNDONE,
        "flag-target": StepState.UNDONE,
        "check": StepState.FAILED,
    }
    scheduled, local, patches = _prepares(list(history.events))
    assert "step.prepare" not in scheduled, scheduled
    assert scheduled.count("step.apply") == 2 and scheduled.count("step.undo") == 2
    assert [m["activity_type"] for m in local] == ["step.prepare", "step.prepare"], local
    assert patches.count("local-prepare") == 1, patches
    after = {r: c.get_parameter(Name=name)["Parameter"]["Value"] for r, c in ssm.items()}
    assert after == before
