"""An evacuation survives its worker's death (issue 15): the worker process is SIGKILLed while two
services' switches are mid-run, a new worker takes over, and the evacuation ends as an
uninterrupted one would: every service switched, each service's switch started once, each flag
written once, and no lease left held (its own, nor its lease shards')."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from orchestrator import lease_shards, leases
from orchestrator.client import connect
from orchestrator.evacuation.resolve import resources as evacuation_resources
from orchestrator.evacuation.runs import EvacState, EvacuationProgress, ServiceState
from orchestrator.sandbox.control import SandboxControl
from orchestrator.sandbox.manager import SandboxEnv
from tests.evacuation.helpers import (
    drive,
    flags,
    resolved,
    seed_flags,
    service_runbook,
    start,
    until,
    write_plan,
)
from tests.workflows.helpers import WorkerProcess, run, sandbox_config, spawn_worker

HEARTBEAT = timedelta(seconds=2)  # a dead worker's activities are noticed this fast


@pytest.mark.slow
def test_worker_killed_mid_evacuation_it_completes_each_switch_started_once_no_lease_left(
    env: SandboxEnv,
    control: SandboxControl,
    workers: list[WorkerProcess],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Two keys a search attribute (not 127): its leases are held on lease shards too.
    monkeypatch.setattr(lease_shards, "MAX_KEYS", 2)
    names = ["a", "b", "c", "d"]
    seed_flags(env, names)
    rbs = {n: service_runbook(n, duration="3s") for n in names}
    services = [{"name": "a", "runbook": "a"}, {"name": "b", "runbook": "b"},
                {"name": "c", "runbook": "c", "depends_on": ["a"]},
                {"name": "d", "runbook": "d", "depends_on": ["b"]}]  # fmt: skip
    path = write_plan(tmp_path, services, rbs, name="crash", max_parallel=2)
    inp = resolved(path)
    inp = inp.model_copy(update={"services": [
        s.model_copy(update={"switch": s.switch.model_copy(update={"heartbeat_timeout": HEARTBEAT})})
        for s in inp.services]})  # fmt: skip
    queue, t0 = f"crash-{uuid.uuid4().hex[:6]}", time.time()

    async def scenario() -> tuple[EvacuationProgress, dict[str, int], list[Any], list[Any]]:
        client = await connect(sandbox_config(env).temporal)
        first = spawn_worker(env, workers, queue, tmp_path)
        h = await start(client, queue, inp)  # returns once its lease shards are listed
        # a and b have written their flags and are working: kill the worker under them
        await until(h, lambda p: all(p.service(n).state == ServiceState.RUNNING
                                     for n in ("a", "b")), timeout=60)  # fmt: skip
        deadline = time.monotonic() + 30
        while set(flags(env, ["a", "b"]).values()) != {"us-west-2"}:
            assert time.monotonic() < deadline, "a and b did not write their flags"
            await asyncio.sleep(0.05)
        first.kill()
        spawn_worker(env, workers, queue, tmp_path)
        p = await drive(client, h, timeout=120)
        runs = {}
        for n in names:
            query = f"WorkflowId = '{h.id}.{n}'"
            runs[n] = len([wf async for wf in client.list_workflows(query)])
        keys = leases.keyed(evacuation_resources(inp, h.id), sharded=True)
        held: list[Any] = []
        shards: list[Any] = []
        for _ in range(200):  # the server ends the shards a moment after the evacuation
            query = f"WorkflowType = '{lease_shards.WORKFLOW_TYPE}' AND ExecutionStatus = 'Running'"
            shards = [wf async for wf in client.list_workflows(query) if wf.parent_id == h.id]
            held = await leases.holders(client, keys) or []
            if not shards and not held:
                break
            await asyncio.sleep(0.05)
        return p, runs, held, shards

    p, runs, held, shards = run(scenario())
    assert p.state == EvacState.SUCCEEDED, p.reason
    assert {s.name: s.state for s in p.services} == dict.fromkeys(names, ServiceState.SUCCEEDED)
    assert flags(env, names) == dict.fromkeys(names, "us-west-2")
    assert runs == dict.fromkeys(names, 1), "a service's switch was started twice"
    puts = sorted(
        str(c.params.get("Name"))
        for c in control.calls(t0)
        if c.operation == "ssm:PutParameter" and c.status < 400
    )
    assert puts == sorted(f"/evac/{n}" for n in names), "a flag was written twice (or not)"
    assert held == [] and shards == [], (held, shards)
