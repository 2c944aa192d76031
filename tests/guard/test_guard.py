"""The guard on the sandbox: the shop runbook's `guard:` section (faster), a worker in this
process, real outages (`region down`), the real switch it starts, checked through Temporal and the
sandbox's own state.

Each test runs the runbook under a name of its own (the guard's and the switch's workflow ids are
per runbook name).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from orchestrator import report, switch, trends
from orchestrator.client import connect
from orchestrator.guard import client as guard_client
from orchestrator.guard.models import GuardInput, GuardState, GuardStatus
from orchestrator.guard.resolve import resolve_guard
from orchestrator.runbook.loader import load_text
from orchestrator.runs import Abort, Decision, RunState
from orchestrator.sandbox.control import SandboxControl
from orchestrator.sandbox.manager import Sandbox, SandboxEnv, pid_alive
from tests.workflows.helpers import (
    RUNBOOKS,
    WorkerProcess,
    drive,
    run,
    sandbox_config,
    spawn_worker,
    worker,
)
from tests.workflows.shop import dns_answers
from workflows.guard import guard_workflow_id

# Evaluate every 0.3 s; 3 of 4 failing for 1 s confirm.
FAST = {
    "  interval: 5s": "  interval: 0.3s",
    "confirm: {failures: 3, of: 4, for: 10s}": "confirm: {failures: 3, of: 4, for: 1s}",
}


def _switch_started(s: GuardState) -> bool:
    """The guard started its switch and the server created it (its run id is known): SWITCHING
    is shown as the guard asks for the child, moments before the child exists."""
    ep = s.episode
    return s.status == GuardStatus.SWITCHING and ep is not None and ep.switch is not None \
        and ep.switch.run_id is not None  # fmt: skip


def _guard(name: str, **edits: str) -> GuardInput:
    text = (RUNBOOKS / "shop-region-switch.yaml").read_text()
    for old, new in {**FAST, "name: shop-region-switch": f"name: {name}", **edits}.items():
        assert old in text, old
        text = text.replace(old, new, 1)
    return resolve_guard(load_text(text), "us-east-1", requester="test")


async def _until(
    client: Client, runbook: str, pred: Callable[[GuardState], bool], timeout: float = 60.0
) -> GuardState:
    deadline = time.monotonic() + timeout
    while True:
        _, state, _ = await guard_client.status(client, runbook)
        if pred(state):
            return state
        assert time.monotonic() < deadline, f"guard state not reached: {state.status}"
        await asyncio.sleep(0.2)


async def _switches(client: Client, runbook: str) -> list[Any]:
    query = f"WorkflowType = 'RegionSwitch' AND FailoverRunbook = '{runbook}'"
    return [wf async for wf in client.list_workflows(query)]


async def _stop(client: Client, runbook: str) -> GuardState:
    await guard_client.stop(client, runbook, "test", "done")
    state: GuardState = await guard_client.handle(client, runbook).result()
    return state


@pytest.mark.slow
def test_a_healthy_region_gets_no_action_then_an_outage_is_switched_after_approval(
    fresh: SandboxEnv, control: SandboxControl
) -> None:
    name = f"shop-{uuid.uuid4().hex[:6]}"
    inp = _guard(name)

    async def scenario() -> tuple[GuardState, GuardState, list[Any], report.Report, Any]:
        async with worker(sandbox_config(fresh)) as (client, queue):
            since = datetime.now(UTC) - timedelta(minutes=1)
            await guard_client.start(client, inp, queue)
            # A long stretch of green evaluations: nothing happens.
            calm = await _until(client, name, lambda s: s.evaluations >= 10)
            assert calm.status == GuardStatus.HEALTHY and calm.episode is None
            assert not await _switches(client, name)
            with_refusal = None
            try:
                await guard_client.start(client, inp, queue)
            except guard_client.GuardError as exc:
                with_refusal = str(exc)
            assert with_refusal and "already running" in with_refusal

            control.set_outage("us-east-1", "app")
            waiting = await _until(client, name, _switch_started)
            ep = waiting.episode
            assert ep is not None and ep.switch is not None and ep.confirmed_at is not None
            assert ep.failures >= 3 and (ep.mttd_s or 0) >= 1.0
            # The switch it started waits for a person at its gate.
            h = switch.handle(client, ep.switch.workflow_id, ep.switch.run_id)
            for _ in range(100):
                p = await switch.progress(h)
                if p.open_gates:
                    break
                await asyncio.sleep(0.2)
            assert p.kind == "unplanned" and p.open_gates == ["approve"]
            await asyncio.sleep(1.0)  # nobody approves: it keeps waiting
            assert (await switch.progress(h)).state == RunState.WAITING_APPROVAL
            await switch.approve(h, Decision(approver="bob", gate="approve"))
            done = await _until(client, name, lambda s: s.status == GuardStatus.COOLDOWN)
            # The switch's report and the trends carry the guard's detection.
            rep = report.build(await h.result(), h.id)
            points, _ = await trends.from_temporal(client, name, since)

            # us-west-2 fails now, within the cooldown: no second switch, a person decides.
            control.set_outage("us-west-2", "app")
            held = await _until(client, name, lambda s: s.episode is not None
                                and s.episode.outcome == "cooldown")  # fmt: skip
            switches = await _switches(client, name)
            control.set_outage("us-west-2", None)
            return done, held, switches, rep, points

    done, held, switches, rep, points = run(scenario())
    control.set_outage("us-east-1", None)
    # People were told: the outage, the guard's decision, the gate with the command to approve.
    got = [n for n in control.notifications()
           if n["kind"] == "webhook" and name in json.dumps(n.get("body", ""))]  # fmt: skip
    assert all(n["signature"] == "valid" for n in got)
    events = {n.get("event") for n in got}
    assert {"guard_detected", "guard_decision", "gate_open", "switch_succeeded"} <= events, events
    gate = next(n for n in got if n["event"] == "gate_open")
    assert "failover approve" in json.dumps(gate["body"])
    assert done.active == "us-west-2" and done.last_switch_at is not None
    ep = done.history[-1]
    assert ep.outcome == "switched" and ep.switch is not None
    assert ep.switch.state == "SUCCEEDED" and ep.switch.approved_by == ["bob"]
    assert ep.switch.rto_s is not None and ep.switch.rto_s > 0
    assert ep.mttd_s is not None and 1.0 <= ep.mttd_s < 10.0
    assert ep.decision_s is not None and ep.decision_s >= 1.0  # nobody approved for a second
    d = rep.detection
    assert d is not None and d.guard == guard_workflow_id(name) and d.region == "us-east-1"
    assert d.mttd_s == round(ep.mttd_s, 3) and d.failures == ep.failures
    assert d.decision_s == round(ep.decision_s, 3)
    assert d.outage_to_traffic_s is not None and d.outage_to_traffic_s > d.mttd_s + d.decision_s
    (point,) = [pt for pt in points if pt.kind == "switch"]
    assert point.started_by == "guard" and point.mttd_s == d.mttd_s
    assert point.decision_s == d.decision_s
    assert held.status == GuardStatus.COOLDOWN and held.active == "us-west-2"
    assert held.episode is not None and "cooldown" in held.episode.decision
    assert len(switches) == 1, "one switch for one outage; none in the cooldown"
    # The world agrees: users are sent to us-west-2 (DNS, through ARC).
    assert dns_answers(fresh, "api.shop.example.") == {"us-west-2": 20}


@pytest.mark.slow
def test_a_flapping_region_is_paged_not_switched(
    fresh: SandboxEnv, control: SandboxControl
) -> None:
    name = f"shop-{uuid.uuid4().hex[:6]}"
    # Confirmation needs 10 s of failure (the runbook's): an outage ended after 3 failures is a
    # blip.
    inp = _guard(name, **{"confirm: {failures: 3, of: 4, for: 1s}":
                          "confirm: {failures: 3, of: 4, for: 10s}"})  # fmt: skip

    async def scenario() -> tuple[GuardState, list[Any]]:
        async with worker(sandbox_config(fresh)) as (client, queue):
            await guard_client.start(client, inp, queue)
            await _until(client, name, lambda s: s.evaluations >= 3)
            control.set_outage("us-east-1", "app")  # down ...
            await _until(client, name, lambda s: s.episode is not None and s.episode.failures >= 3)
            control.set_outage("us-east-1", None)  # ... up ...
            blip = await _until(client, name, lambda s: s.last_recovery_at is not None)
            assert blip.history[-1].failures >= 3 and blip.history[-1].confirmed_at is None
            control.set_outage("us-east-1", "app")  # ... down again, within the window
            state = await _until(client, name, lambda s: s.status == GuardStatus.FLAPPING)
            await asyncio.sleep(1.0)
            switches = await _switches(client, name)
            control.set_outage("us-east-1", None)
            stopped = await _stop(client, name)
            assert stopped.status == GuardStatus.STOPPED and stopped.stopped_by == "test: done"
            return state, switches

    state, switches = run(scenario())
    assert switches == [], "a flapping region is not switched away from"
    ep = state.episode
    assert ep is not None and ep.outcome == "flapping" and "flapping" in ep.decision
    assert [e.outcome for e in state.history] == ["recovered"]


def test_the_guard_continues_as_new_with_its_state(
    fresh: SandboxEnv, control: SandboxControl
) -> None:
    name = f"shop-{uuid.uuid4().hex[:6]}"
    inp = _guard(name).model_copy(update={"evaluations_per_run": 4})

    async def scenario() -> tuple[GuardState, int]:
        async with worker(sandbox_config(fresh)) as (client, queue):
            h = await guard_client.start(client, inp, queue)
            first = (await h.describe()).run_id
            state = await _until(client, name, lambda s: s.evaluations >= 10)
            now = (await guard_client.handle(client, name).describe()).run_id
            assert now != first, "a new run after 4 evaluations"
            runs = [wf async for wf in client.list_workflows(
                f"WorkflowId = 'guard-{name}'")]  # fmt: skip
            await guard_client.stop(client, name, "test", "done")
            return state, len(runs)

    state, runs = run(scenario())
    assert state.evaluations >= 10 and state.started_at is not None
    assert runs >= 3


def test_stop_needs_a_reason_and_a_second_guard_is_refused(
    fresh: SandboxEnv, control: SandboxControl
) -> None:
    name = f"shop-{uuid.uuid4().hex[:6]}"

    async def scenario() -> str:
        async with worker(sandbox_config(fresh)) as (client, queue):
            await guard_client.start(client, _guard(name), queue)
            h = guard_client.handle(client, name)
            try:
                await switch.update(h, "stop", Abort(by="test", reason=" "))
                raise AssertionError("stopped without a reason")
            except switch.RefusedError as exc:
                why = str(exc)
            await _stop(client, name)
            return why

    assert "reason" in run(scenario())


@pytest.mark.slow
def test_worker_killed_and_temporal_restarted_while_guarding_one_switch_one_page(
    sandbox: Sandbox,
    fresh: SandboxEnv,
    control: SandboxControl,
    workers: list[WorkerProcess],
    tmp_path: Path,
) -> None:
    name = f"shop-{uuid.uuid4().hex[:6]}"
    queue = f"guard-{uuid.uuid4().hex[:6]}"
    inp = _guard(name)

    async def scenario() -> tuple[GuardState, list[Any]]:
        client = await connect(sandbox_config(fresh).temporal)
        first = spawn_worker(fresh, workers, queue, tmp_path)
        await guard_client.start(client, inp, queue)
        await _until(client, name, lambda s: s.evaluations >= 5)
        first.kill()  # SIGKILL, mid-guard
        pid = fresh.components["temporal"].pid
        os.killpg(pid, signal.SIGKILL)  # and the Temporal server with it
        while pid_alive(pid):
            await asyncio.sleep(0.05)
        await asyncio.to_thread(sandbox.up)  # same ports, same SQLite file
        client = await connect(sandbox_config(fresh).temporal)
        spawn_worker(fresh, workers, queue, tmp_path)
        before = (await _until(client, name, lambda s: s.evaluations >= 1)).evaluations
        await _until(client, name, lambda s: s.evaluations >= before + 5)  # it carries on
        control.set_outage("us-east-1", "app")
        state = await _until(client, name, _switch_started)
        assert state.episode is not None and state.episode.switch is not None
        sw = state.episode.switch
        h = switch.handle(client, sw.workflow_id, sw.run_id)
        await drive(h, timeout=120)
        done = await _until(client, name, lambda s: s.status == GuardStatus.COOLDOWN)
        return done, await _switches(client, name)

    done, switches = run(scenario())
    control.set_outage("us-east-1", None)
    assert len(switches) == 1 and done.active == "us-west-2"
    assert [e.outcome for e in done.history] == ["switched"]
    got = [n for n in control.notifications()
           if n["kind"] == "webhook" and name in json.dumps(n.get("body", ""))]  # fmt: skip
    detected = [n for n in got if n.get("event") == "guard_detected"]
    assert len(detected) == 1, "one outage, one notification of it"
