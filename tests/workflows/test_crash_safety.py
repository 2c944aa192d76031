"""Crash safety: the worker process is SIGKILLed mid-apply, mid-verify and mid-rollback, and the
Temporal dev server is killed and restarted mid-run (SQLite persistence). Each run ends as an
uninterrupted one would, and the call log shows every change applied once."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from orchestrator import switch
from orchestrator.client import connect
from orchestrator.runs import Decision, RunState, StepState, SwitchInput
from orchestrator.sandbox.calls import Call
from orchestrator.sandbox.control import SandboxControl
from orchestrator.sandbox.faults import FaultRule
from orchestrator.sandbox.manager import Sandbox, SandboxEnv, pid_alive
from tests.workflows.helpers import (
    WorkerProcess,
    drive,
    observe,
    plan,
    run,
    sandbox_config,
    spawn_worker,
    start,
    wait_for,
)

HEARTBEAT = timedelta(seconds=2)  # worker death is noticed this fast


def _quick(inp: SwitchInput) -> SwitchInput:
    return inp.model_copy(update={"heartbeat_timeout": HEARTBEAT})


def _applied(calls: list[Call], operation: str, region: str) -> list[Call]:
    return [c for c in calls if c.operation == operation and c.region == region and c.status < 400]


async def _wait_call(
    control: SandboxControl, t0: float, operation: str, region: str, n: int
) -> None:
    deadline = time.monotonic() + 30
    while len(_applied(control.calls(t0), operation, region)) < n:
        assert time.monotonic() < deadline, f"{operation} in {region} not seen {n} times"
        await asyncio.sleep(0.05)


@pytest.mark.slow
def test_worker_killed_mid_apply(
    fresh: SandboxEnv, control: SandboxControl, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    queue, t0 = f"crash-{uuid.uuid4().hex[:6]}", time.time()
    # The sandbox holds this PutParameter 3 s before applying it: the worker dies meanwhile.
    control.add_fault(FaultRule(target="aws:ssm:PutParameter", region="us-east-1", error="none",
                                delay=3.0))  # fmt: skip

    async def scenario() -> Any:
        client = await connect(sandbox_config(fresh).temporal)
        first = spawn_worker(fresh, workers, queue, tmp_path)
        h = await start(client, queue, _quick(plan("maintenance-drill.yaml")))
        await wait_for(h, lambda p: p.step("source-maintenance-flag").phase == "apply")
        await asyncio.sleep(1.0)  # inside the held call
        first.kill()
        await asyncio.sleep(3.0)  # the call lands with no worker alive
        spawn_worker(fresh, workers, queue, tmp_path)
        return await drive(h, timeout=90)

    result = run(scenario())
    assert result.state == RunState.SUCCEEDED, result.reason
    assert result.step("source-maintenance-flag").attempts == 2  # the retry after the crash
    puts = _applied(control.calls(t0), "ssm:PutParameter", "us-east-1")
    assert len(puts) == 1, "the retried apply saw the change and did not repeat it"
    assert observe(fresh)["us-east-1:ssm"]["/shop/flags/maintenance"] == "true"


@pytest.mark.slow
def test_worker_killed_mid_verify(
    fresh: SandboxEnv, control: SandboxControl, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    queue, t0 = f"crash-{uuid.uuid4().hex[:6]}", time.time()
    # The patch lands, its answer is held 1.5 s; then verify's read is held 5 s.
    control.add_fault(FaultRule(target="k8s:us-east-1:patch:configmaps", error="none",
                                when="after", delay=1.5))  # fmt: skip

    async def scenario() -> Any:
        client = await connect(sandbox_config(fresh).temporal)
        first = spawn_worker(fresh, workers, queue, tmp_path)
        h = await start(client, queue, _quick(plan("maintenance-drill.yaml")))
        await _wait_call(control, t0, "patch:configmaps", "us-east-1", 1)
        verify_read = control.add_fault(
            FaultRule(target="k8s:us-east-1:get:configmaps", error="none", delay=5.0)
        )
        await asyncio.sleep(2.5)
        hits = {f.id: f.hits for f in control.faults()}
        assert hits.get(verify_read.id) == 1, "verify's read is in flight"
        first.kill()
        spawn_worker(fresh, workers, queue, tmp_path)
        return await drive(h, timeout=90)

    result = run(scenario())
    assert result.state == RunState.SUCCEEDED, result.reason
    assert result.step("freeze-writes").attempts == 2
    assert len(_applied(control.calls(t0), "patch:configmaps", "us-east-1")) == 1
    assert observe(fresh)["us-east-1:configmap"]["writes-frozen"] == "true"


@pytest.mark.slow
def test_worker_killed_mid_rollback(
    fresh: SandboxEnv, control: SandboxControl, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    before = observe(fresh)
    queue, t0 = f"crash-{uuid.uuid4().hex[:6]}", time.time()

    async def scenario() -> Any:
        client = await connect(sandbox_config(fresh).temporal)
        first = spawn_worker(fresh, workers, queue, tmp_path)
        h = await start(client, queue, _quick(plan("maintenance-drill.yaml")))
        await wait_for(h, lambda p: p.state == RunState.WAITING_APPROVAL)
        # The undo's patch lands, then its answer is held while the worker dies.
        control.add_fault(FaultRule(target="k8s:us-east-1:patch:configmaps", error="none",
                                    when="after", delay=3.0))  # fmt: skip
        await switch.reject(h, Decision(approver="bob", comment="drill of the rollback"))
        await _wait_call(control, t0, "patch:configmaps", "us-east-1", 2)
        progress = await switch.progress(h)
        assert progress.state == RunState.ROLLING_BACK
        first.kill()
        spawn_worker(fresh, workers, queue, tmp_path)
        return await h.result()

    result = run(scenario())
    assert result.state == RunState.ROLLED_BACK
    rec = result.step("freeze-writes")
    assert rec.state == StepState.UNDONE and rec.undo_attempts == 2
    patches = _applied(control.calls(t0), "patch:configmaps", "us-east-1")
    assert len(patches) == 2, "one apply and one undo, none repeated"
    assert observe(fresh) == before


def test_temporal_server_restart_mid_run(
    sandbox: Sandbox,
    fresh: SandboxEnv,
    control: SandboxControl,
    workers: list[WorkerProcess],
    tmp_path: Path,
) -> None:
    queue, t0 = f"crash-{uuid.uuid4().hex[:6]}", time.time()
    control.add_fault(FaultRule(target="aws:ssm:PutParameter", region="us-east-1", error="none",
                                delay=3.0))  # fmt: skip

    async def scenario() -> Any:
        client = await connect(sandbox_config(fresh).temporal)
        spawn_worker(fresh, workers, queue, tmp_path)
        h = await start(client, queue, _quick(plan("maintenance-drill.yaml")))
        await wait_for(h, lambda p: p.step("source-maintenance-flag").phase == "apply")
        pid = fresh.components["temporal"].pid
        os.killpg(pid, signal.SIGKILL)
        while pid_alive(pid):
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)
        await asyncio.to_thread(sandbox.up)  # same ports, same SQLite file
        return await drive(h, timeout=120)

    result = run(scenario())
    assert result.state == RunState.SUCCEEDED, result.reason
    assert all(s.state == StepState.SUCCEEDED for s in result.steps)
    assert len(_applied(control.calls(t0), "ssm:PutParameter", "us-east-1")) == 1
    assert observe(fresh)["us-east-1:ssm"]["/shop/flags/maintenance"] == "true"
