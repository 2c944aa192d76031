"""Ambiguous writes through whole runs: a write that lands but answers an error does not fail the
switch, is not sent twice, and never leaves a rollback waiting for weeks.

The first test is the incident of the issue: a SwitchoverGlobalCluster that lands and answers 500.
Before, botocore resent it, the second one was refused (the cluster was switching over), the step
failed, and the rollback's undo then waited for the writer to come back on its own, forever.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from orchestrator import switch
from orchestrator.client import connect
from orchestrator.runs import Decision, OperatorAction, RunState, StepState, SwitchInput
from orchestrator.sandbox.control import SandboxControl
from orchestrator.sandbox.faults import FaultRule
from orchestrator.sandbox.manager import SandboxEnv
from tests.workflows.helpers import (
    WorkerProcess,
    drive,
    plan,
    run,
    sandbox_config,
    spawn_worker,
    start,
    wait_for,
    worker,
)
from tests.workflows.shop import world

SWITCHOVER = "rds:SwitchoverGlobalCluster"


def switchovers(control: SandboxControl, since: float) -> list[int]:
    """Statuses of the SwitchoverGlobalCluster calls the sandbox served since then."""
    return [c.status for c in control.calls(since) if c.operation == SWITCHOVER]


def _switch(env: SandboxEnv, frm: str, to: str, **kw: Any) -> Any:
    async def scenario() -> Any:
        async with worker(sandbox_config(env)) as (client, queue):
            return await drive(await start(client, queue, plan("shop-region-switch.yaml", frm, to,
                                                               **kw)))  # fmt: skip

    return run(scenario())


@pytest.mark.slow
def test_shop_drill_whose_switchover_lands_but_answers_500_succeeds_with_one_switchover(
    fresh: SandboxEnv, control: SandboxControl
) -> None:
    before = world(fresh)
    t0 = time.time()
    control.add_fault(FaultRule(target=f"aws:{SWITCHOVER}", error="InternalError", when="after"))
    result = _switch(fresh, "us-east-1", "us-west-2")
    assert result.state == RunState.SUCCEEDED, result.reason
    assert control.faults()[0].hits == 1, "the switchover answered 500"
    assert switchovers(control, t0) == [200], "served once: no resend, no second decision"
    faulted = world(fresh)
    assert faulted["aurora_writer"] == "us-west-2"
    # The world is exactly the one a clean switch makes: back, then there again with no fault.
    assert _switch(fresh, "us-west-2", "us-east-1").state == RunState.SUCCEEDED
    assert world(fresh) == before
    assert _switch(fresh, "us-east-1", "us-west-2").state == RunState.SUCCEEDED
    assert world(fresh) == faulted


def test_rollback_switches_a_landed_writer_back_even_when_its_answers_are_lost(
    fresh: SandboxEnv, control: SandboxControl
) -> None:
    """The switchover lands (answering 500); a later step fails; the rollback's switchover back
    lands too and hangs past the client's read timeout: the world is restored exactly."""
    before = world(fresh)
    t0 = time.time()
    control.add_fault(FaultRule(target=f"aws:{SWITCHOVER}", error="InternalError", when="after"))
    control.add_fault(FaultRule(target="aws:autoscaling:UpdateAutoScalingGroup", region="us-east-1",
                                error="AccessDenied"))  # fmt: skip
    undo_hang = FaultRule(target=f"aws:{SWITCHOVER}", error="none", when="after", delay=4.0)
    config = sandbox_config(fresh)
    config.aws.read_timeout = 2.0

    async def scenario() -> Any:
        async with worker(config) as (client, queue):
            h = await start(client, queue, plan("shop-region-switch.yaml"))
            result = asyncio.ensure_future(drive(h))  # approves the gate
            p = await wait_for(h, lambda p: p.step("aurora-switchover").state
                               == StepState.SUCCEEDED, timeout=60)  # fmt: skip
            assert p.state == RunState.RUNNING
            control.add_fault(undo_hang)  # for the undo's switchover back
            return await result

    result = run(scenario())
    assert result.state == RunState.ROLLED_BACK, result.reason
    assert all(f.hits == 1 for f in control.faults()), "every fault was hit"
    assert "scale-down-source-asg" in result.reason
    assert result.step("aurora-switchover").state == StepState.UNDONE
    assert switchovers(control, t0) == [200, 200], "one switchover each way"
    assert world(fresh) == before


def test_an_undo_that_cannot_converge_ends_rollback_failed_within_its_step_timeout(
    fresh: SandboxEnv, control: SandboxControl
) -> None:
    """Every write of the undo fails (nothing lands): the rollback stops for the operator within
    the step's timeout, with the reason, instead of retrying as long as attempts last."""
    timeout = 6.0
    inp = plan("maintenance-drill.yaml")
    steps = [s.model_copy(update={"timeout": timedelta(seconds=timeout)}) for s in inp.steps]
    inp = inp.model_copy(update={"steps": steps, "undo_attempts": 50})

    async def scenario() -> tuple[Any, float, Any]:
        async with worker(sandbox_config(fresh)) as (client, queue):
            h = await start(client, queue, inp)
            await wait_for(h, lambda p: p.state == RunState.WAITING_APPROVAL, timeout=30)
            # Unfencing the source's writers will fail every time (nothing lands).
            control.add_fault(FaultRule(target="k8s:us-east-1:patch:configmaps",
                                        error="ServiceUnavailable", count=None))  # fmt: skip
            await switch.reject(h, Decision(approver="bob", comment="test"))
            rolling = time.monotonic()
            p = await wait_for(h, lambda p: p.state == RunState.ROLLBACK_FAILED, timeout=60)
            took = time.monotonic() - rolling
            control.clear_faults()
            await switch.operator(h, OperatorAction(action="retry", by="carol"))
            return await h.result(), took, p

    result, took, stuck = run(scenario())
    failed = stuck.step("freeze-writes")
    assert failed.state == StepState.UNDO_FAILED and failed.undo_error is not None
    assert failed.undo_error.kind == "ServiceUnavailable", failed.undo_error
    assert failed.undo_attempts >= 2, "retried within the bound"
    assert took < timeout + 5, f"ROLLBACK_FAILED after {took:.1f}s (step timeout {timeout}s)"
    assert result.state == RunState.ROLLED_BACK, "retried once the fault was gone"
    assert result.step("freeze-writes").state == StepState.UNDONE


@pytest.mark.slow
def test_worker_killed_between_a_landed_switchover_and_its_answer(
    fresh: SandboxEnv, control: SandboxControl, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    """The switchover lands; its answer is held; the worker dies waiting for it. The next
    attempt observes the switchover under way and converges without sending a second one."""
    queue, t0 = f"crash-{uuid.uuid4().hex[:6]}", time.time()
    control.add_fault(FaultRule(target=f"aws:{SWITCHOVER}", error="none", when="after",
                                delay=6.0))  # fmt: skip
    inp: SwitchInput = plan("aurora-only.yaml").model_copy(
        update={"heartbeat_timeout": timedelta(seconds=2)}
    )

    async def scenario() -> Any:
        client = await connect(sandbox_config(fresh).temporal)
        first = spawn_worker(fresh, workers, queue, tmp_path)
        h = await start(client, queue, inp)
        deadline = time.monotonic() + 60
        while not switchovers(control, t0):  # landed: the answer is being held
            if (await switch.progress(h)).state == RunState.WAITING_APPROVAL:
                await switch.approve(h, Decision(approver="bob"))
            assert time.monotonic() < deadline, "the switchover was never sent"
            await asyncio.sleep(0.1)
        first.kill()
        spawn_worker(fresh, workers, queue, tmp_path)
        return await drive(h, timeout=90)

    result = run(scenario())
    assert result.state == RunState.SUCCEEDED, result.reason
    assert result.step("switchover").attempts >= 2, "the attempt after the crash did it"
    assert switchovers(control, t0) == [200], "one switchover: the crash did not double it"
    assert world(fresh)["aurora_writer"] == "us-west-2"
