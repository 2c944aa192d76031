"""A 1,000-step runbook completes, and its history stays well inside Temporal's limits."""

from __future__ import annotations

from typing import Any

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
