"""The operator's paths: a paused step, an undo that fails (ROLLBACK_FAILED), cancellation."""

from __future__ import annotations

import pytest

from orchestrator import switch
from orchestrator.runs import Decision, OperatorAction, RunState, StepState
from orchestrator.sandbox.control import SandboxControl
from orchestrator.sandbox.faults import FaultRule
from orchestrator.sandbox.manager import SandboxEnv
from tests.workflows.helpers import RUNBOOKS, observe, plan, run, sandbox_config, start, wait_for
from tests.workflows.helpers import worker as in_process_worker

SSM_WEST = FaultRule(target="aws:ssm:PutParameter", region="us-west-2", error="AccessDenied")
CM_EAST = FaultRule(target="k8s:us-east-1:patch:configmaps", error="AccessDenied", count=None)


def test_paused_step_waits_for_the_operator_then_retries(
    fresh: SandboxEnv, control: SandboxControl
) -> None:
    text = (RUNBOOKS / "maintenance-drill.yaml").read_text()
    text = text.replace(
        'region: "${{ to_region }}"}\n    timeout: 30s\n  - id: settle',
        'region: "${{ to_region }}"}\n    timeout: 30s\n    on_failure: pause\n  - id: settle',
    )
    assert "on_failure: pause" in text
    control.add_fault(SSM_WEST)

    async def scenario() -> object:
        async with in_process_worker(sandbox_config(fresh)) as (client, queue):
            h = await start(client, queue, plan("", text=text))
            await wait_for(h, lambda p: p.state == RunState.WAITING_APPROVAL)
            await switch.approve(h, Decision(approver="bob"))
            p = await wait_for(h, lambda p: p.state == RunState.PAUSED)
            paused = p.step("target-maintenance-flag")
            assert paused.state == StepState.PAUSED and paused.error is not None
            with pytest.raises(switch.RefusedError, match="does not apply"):
                await switch.operator(h, OperatorAction(action="end", by="carol"))
            await switch.operator(h, OperatorAction(action="retry", by="carol", reason="fixed"))
            return await h.result()

    result = run(scenario())
    assert result.state == RunState.SUCCEEDED
    assert result.step("target-maintenance-flag").attempts == 2


def _reject_with_a_broken_undo(env: SandboxEnv, control: SandboxControl, finish: str) -> object:
    async def scenario() -> object:
        async with in_process_worker(sandbox_config(env)) as (client, queue):
            h = await start(client, queue, plan("maintenance-drill.yaml"))
            await wait_for(h, lambda p: p.state == RunState.WAITING_APPROVAL)
            control.add_fault(CM_EAST)  # the undo of freeze-writes will be refused
            await switch.reject(h, Decision(approver="bob", comment="no"))
            p = await wait_for(h, lambda p: p.state == RunState.ROLLBACK_FAILED)
            rec = p.step("freeze-writes")
            assert rec.state == StepState.UNDO_FAILED and rec.undo_error is not None
            assert rec.undo_error.kind == "AccessDenied"
            # The other undo went through meanwhile.
            assert p.step("source-maintenance-flag").state == StepState.UNDONE
            with pytest.raises(switch.RefusedError, match="does not apply"):
                await switch.operator(h, OperatorAction(action="rollback", by="carol"))
            with pytest.raises(switch.RefusedError, match="needs a reason"):
                await switch.operator(h, OperatorAction(action="skip", by="carol"))
            # Retrying while the cause is still there fails again, and waits again.
            await switch.operator(h, OperatorAction(action="retry", by="carol"))
            await wait_for(
                h,
                lambda p: (
                    p.state == RunState.ROLLBACK_FAILED
                    and p.step("freeze-writes").undo_attempts == 2
                ),
            )
            if finish == "retry":
                control.clear_faults()
                await switch.operator(h, OperatorAction(action="retry", by="carol"))
            else:
                await switch.operator(h, OperatorAction(action="end", by="carol", reason="paged"))
            return await h.result()

    return run(scenario())


def test_failed_undo_stops_in_rollback_failed_until_retried(
    fresh: SandboxEnv, control: SandboxControl
) -> None:
    before = observe(fresh)
    result = _reject_with_a_broken_undo(fresh, control, "retry")
    assert result.state == RunState.ROLLED_BACK
    assert result.step("freeze-writes").state == StepState.UNDONE
    assert observe(fresh) == before


def test_failed_undo_ended_by_the_operator_is_never_success(
    fresh: SandboxEnv, control: SandboxControl
) -> None:
    result = _reject_with_a_broken_undo(fresh, control, "end")
    assert result.state == RunState.ROLLBACK_FAILED
    rec = result.step("freeze-writes")
    assert rec.state == StepState.UNDO_FAILED
    assert rec.undo_note == "rollback ended by carol: paged"
    # Honest about the world: the flag is still set.
    assert observe(fresh)["us-east-1:configmap"]["writes-frozen"] == "true"


def test_cancelling_the_workflow_rolls_back(fresh: SandboxEnv) -> None:
    before = observe(fresh)

    async def scenario() -> object:
        async with in_process_worker(sandbox_config(fresh)) as (client, queue):
            h = await start(client, queue, plan("maintenance-drill.yaml"))
            await wait_for(h, lambda p: p.state == RunState.WAITING_APPROVAL)
            await h.cancel()
            return await h.result()

    result = run(scenario())
    assert result.state == RunState.ROLLED_BACK
    assert result.reason == "aborted by temporal: the workflow was cancelled"
    assert result.step("freeze-writes").state == StepState.UNDONE
    assert observe(fresh) == before


def test_runs_survive_eviction_after_every_workflow_task(
    fresh: SandboxEnv, control: SandboxControl
) -> None:
    """No workflow cache: each task replays the history, through a gate and a rollback."""
    before = observe(fresh)
    control.add_fault(SSM_WEST)

    async def scenario() -> object:
        async with in_process_worker(sandbox_config(fresh), cache=0) as (client, queue):
            h = await start(client, queue, plan("maintenance-drill.yaml"))
            await wait_for(h, lambda p: p.state == RunState.WAITING_APPROVAL)
            await switch.approve(h, Decision(approver="bob"))
            return await h.result()

    result = run(scenario())
    assert result.state == RunState.ROLLED_BACK
    assert result.step("target-maintenance-flag").error is not None
    assert result.step("freeze-writes").state == StepState.UNDONE
    assert observe(fresh) == before
