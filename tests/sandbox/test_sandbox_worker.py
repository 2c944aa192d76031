"""The sandbox's own worker: a game day triggered from its schedule on a fresh sandbox completes
with no other process started, and its report is in the store."""

from __future__ import annotations

import asyncio
import json
import os
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.client import ScheduleActionExecutionStartWorkflow

from orchestrator import report_store
from orchestrator.client import connect
from orchestrator.config import from_sandbox
from orchestrator.gameday import schedules
from orchestrator.gameday.models import GameDayProgress, Outcome
from orchestrator.sandbox.latency import LatencyModel
from orchestrator.sandbox.manager import Sandbox
from tests.gameday.helpers import shop_gameday
from tests.workflows.helpers import run


@pytest.mark.slow
def test_a_scheduled_game_day_fires_on_a_fresh_sandbox_and_writes_its_report(
    tmp_path: Path,
) -> None:
    box = Sandbox(home=tmp_path / "sandbox", latency=LatencyModel(time_scale=0.01),
                  free_ports=True)  # fmt: skip
    reports = tmp_path / "reports"  # the sandbox's default store: beside its home
    os.environ.pop("FAILOVER_REPORTS", None)
    try:
        env = box.up()
        assert "worker" in env.components

        async def scenario() -> tuple[GameDayProgress, str, str]:
            config = from_sandbox(env)
            client = await connect(config.temporal)
            sched = await schedules.create(client, shop_gameday("weekly"),
                                           config.temporal.task_queue,
                                           schedules.Timing(every=timedelta(days=7)))  # fmt: skip
            await sched.trigger()
            for _ in range(100):
                desc = await sched.describe()
                if desc.info.recent_actions:
                    break
                await asyncio.sleep(0.1)
            action = desc.info.recent_actions[-1].action
            assert isinstance(action, ScheduleActionExecutionStartWorkflow)
            h = client.get_workflow_handle(action.workflow_id, result_type=GameDayProgress)
            p = await asyncio.wait_for(h.result(), 180)
            await sched.delete()
            return p, action.workflow_id, action.first_execution_run_id

        p, wid, rid = run(scenario())
    finally:
        box.down()
    assert p.outcome == Outcome.SUCCEEDED, p.reason
    stem = report_store.stem(wid, rid)
    assert sorted(Path(f).name for f in p.report_files) == [
        f"{stem}.html",
        f"{stem}.json",
        f"{stem}.md",
    ]
    data = json.loads((reports / f"{stem}.json").read_text())
    assert data["workflow_id"] == wid and data["outcome"] == "SUCCEEDED"
