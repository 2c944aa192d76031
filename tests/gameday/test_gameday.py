"""Game days end to end on the sandbox (dev server: schedules exist there, not on the test server).

Every scenario checks the world after the game day against the world before it: same observed
state (DNS, databases, load balancers, capacity, flags) and no fault left in any region.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.client import (
    Client,
    ScheduleActionExecutionStartWorkflow,
    WorkflowUpdateFailedError,
)

from orchestrator.client import connect
from orchestrator.gameday import client as gameday_client
from orchestrator.gameday import report as gd_report
from orchestrator.gameday import schedules
from orchestrator.gameday.models import GameDayProgress, Outcome, Phase
from orchestrator.runs import Decision, RunState
from orchestrator.sandbox.control import SandboxControl
from orchestrator.sandbox.manager import SandboxEnv
from tests.cli import failover
from tests.gameday.helpers import app_faults, child_until, progress_until, shop_gameday
from tests.workflows.helpers import WorkerProcess, run, sandbox_config, spawn_worker, worker
from tests.workflows.shop import world
from tests.workflows.test_crash_safety import HEARTBEAT
from workflows.gameday import GameDayWorkflow


def _name() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


async def _start(client: Client, queue: str, name: str, **edits: str) -> object:
    return await gameday_client.start_now(client, shop_gameday(name, **edits), queue, "test")


@pytest.mark.slow
def test_scheduled_game_day_completes_and_leaves_the_sandbox_as_found(
    fresh: SandboxEnv, control: SandboxControl
) -> None:
    before, faults_before = world(fresh), app_faults(fresh)

    async def scenario() -> tuple[GameDayProgress, str]:
        async with worker(sandbox_config(fresh)) as (client, queue):
            inp = shop_gameday(_name())
            timing = schedules.Timing(every=timedelta(days=7))
            sched = await schedules.create(client, inp, queue, timing, paused=True)
            try:
                desc = await sched.describe()
                assert desc.schedule.state.paused and desc.info.num_actions == 0
                assert (await schedules.game_day_input(client, sched)) == inp
                await sched.trigger()
                for _ in range(100):
                    desc = await sched.describe()
                    if desc.info.recent_actions:
                        break
                    await asyncio.sleep(0.1)
                action = desc.info.recent_actions[-1].action
                assert isinstance(action, ScheduleActionExecutionStartWorkflow)
                h = client.get_workflow_handle(action.workflow_id, result_type=GameDayProgress)
                return await h.result(), action.workflow_id
            finally:
                await sched.delete()

    p, wid = run(scenario())
    assert p.outcome == Outcome.SUCCEEDED, p.reason
    assert wid.startswith("gameday-")
    r = gd_report.build(p, wid)
    # detected, switched, verified, fault removed, failed back: every measure in the report
    assert r.mttd_s is not None and r.detected_by and "us-east-1" in r.detected_by
    assert r.fault_state == "removed" and r.fault_removed_at and r.fault_injected_at
    for d, (frm, to) in ((r.switch, ("us-east-1", "us-west-2")), (r.failback, ("us-west-2", "us-east-1"))):  # fmt: skip
        assert (
            d is not None and d.outcome == "SUCCEEDED" and (d.from_region, d.to_region) == (frm, to)
        )
        assert d.rto_traffic_s and d.rto_traffic_s > 0 and d.rpo_s is not None
        assert d.recovered_s is not None
    # users saw the outage (DNS still on the downed region), then the traffic on the other one
    assert r.slo_breach_s > 0 and any(pt.breach for pt in r.timeline)
    assert any(pt.weights.get("us-west-2", 0) > 0 == pt.weights.get("us-east-1", 0)
               for pt in r.timeline)  # fmt: skip
    assert r.objectives["mttd"].met and r.objectives["switch_rpo"].met
    assert "MTTD" in gd_report.markdown(r) and "<svg" in gd_report.html_page(r)
    assert world(fresh) == before
    assert app_faults(fresh) == faults_before == {r: (True, 0.0, 0.0) for r in fresh.regions}


def test_stop_condition_trips_mid_switch_rolls_back_and_says_which(
    fresh: SandboxEnv, control: SandboxControl
) -> None:
    before = world(fresh)

    async def scenario() -> GameDayProgress:
        # cache=0: every workflow task replays the whole history (determinism, eviction)
        async with worker(sandbox_config(fresh), cache=0) as (client, queue):
            h = await _start(client, queue, _name())
            p = await progress_until(h, lambda p: p.switch is not None)
            assert p.switch is not None and p.fault.state == "injected"
            await child_until(
                client, p.switch.workflow_id, p.switch.run_id,
                lambda c: c.step("aurora-switchover").state.value == "SUCCEEDED",
            )  # fmt: skip
            # the target region starts failing half its requests: the game day must stop
            control.set_app_fault("us-west-2", 0.6, 0.0)
            return await h.result()  # type: ignore[attr-defined,no-any-return]

    p = run(scenario())
    control.set_app_fault("us-west-2", 0.0, 0.0)
    assert p.outcome == Outcome.STOPPED
    assert p.stop is not None and p.stop.condition == "target-errors"
    assert "target-errors" in p.reason and "us-west-2" in p.stop.rule
    assert p.switch and p.switch.progress and p.switch.progress.state == RunState.ROLLED_BACK
    assert "target-errors" in p.switch.progress.reason
    assert p.failback is None  # rolled back, nothing to fail back
    assert p.fault.state == "removed"
    # it stopped injecting at once: the fault was gone before the switch finished rolling back
    assert p.fault.removed_at and p.switch.progress.ended_at
    assert p.fault.removed_at < p.switch.progress.ended_at
    assert world(fresh) == before
    assert app_faults(fresh) == {r: (True, 0.0, 0.0) for r in fresh.regions}


def test_cancelling_from_the_cli_mid_switch_removes_the_fault(
    fresh: SandboxEnv, control: SandboxControl
) -> None:
    before = world(fresh)

    async def scenario() -> GameDayProgress:
        async with worker(sandbox_config(fresh)) as (client, queue):
            h = await _start(client, queue, _name())
            await progress_until(h, lambda p: p.phase == Phase.SWITCHING)
            assert app_faults(fresh)["us-east-1"][0] is False  # the fault is in place
            proc = await asyncio.to_thread(failover, fresh, "gameday", "cancel", h.id)  # type: ignore[attr-defined]
            assert proc.returncode == 0, proc.stderr
            return await h.result()  # type: ignore[attr-defined,no-any-return]

    p = run(scenario())
    assert p.outcome == Outcome.CANCELLED and "cancelled" in p.reason
    assert p.fault.state == "removed"
    assert world(fresh) == before  # switch rolled back (or failed back if it had completed)
    assert app_faults(fresh) == {r: (True, 0.0, 0.0) for r in fresh.regions}


def test_preflight_refuses_a_service_already_missing_its_slo(
    fresh: SandboxEnv, control: SandboxControl
) -> None:
    control.set_app_fault("us-east-1", 1.0, 0.0)

    async def scenario() -> GameDayProgress:
        async with worker(sandbox_config(fresh)) as (client, queue):
            h = await _start(client, queue, _name())
            return await h.result()  # type: ignore[attr-defined,no-any-return]

    p = run(scenario())
    assert p.outcome == Outcome.FAILED
    assert "misses its SLO before any fault" in p.reason
    assert p.fault.state == "pending" and p.switch is None and not p.samples
    assert app_faults(fresh)["us-east-1"] == (True, 1.0, 0.0)  # untouched


def test_approval_gate_two_person_rule_and_rejection(fresh: SandboxEnv) -> None:
    async def scenario() -> GameDayProgress:
        async with worker(sandbox_config(fresh)) as (client, queue):
            h = await _start(
                client,
                queue,
                _name(),
                **{"  unattended: true": "  approval: true"},
            )
            await progress_until(h, lambda p: p.phase == Phase.WAITING_APPROVAL)
            try:
                await h.execute_update(GameDayWorkflow.approve, Decision(approver="alice"))  # type: ignore[attr-defined]
                raise AssertionError("the requester approved her own game day")
            except WorkflowUpdateFailedError as exc:
                assert "cannot approve" in str(exc.cause)
            try:
                await h.execute_update(GameDayWorkflow.approve, Decision(approver="mallory"))  # type: ignore[attr-defined]
                raise AssertionError("a non-approver approved")
            except WorkflowUpdateFailedError as exc:
                assert "mallory may not decide" in str(exc.cause)
            await h.execute_update(  # type: ignore[attr-defined]
                GameDayWorkflow.reject, Decision(approver="bob", comment="not today")
            )
            return await h.result()  # type: ignore[attr-defined,no-any-return]

    p = run(scenario())
    assert p.outcome == Outcome.CANCELLED and "rejected by bob: not today" in p.reason
    assert p.fault.state == "pending" and p.switch is None


def test_preflight_refuses_while_the_runbook_is_being_switched(
    fresh: SandboxEnv, control: SandboxControl
) -> None:
    from orchestrator import switch
    from tests.workflows.helpers import plan, wait_for

    async def scenario() -> GameDayProgress:
        async with worker(sandbox_config(fresh)) as (client, queue):
            real = await switch.start(client, plan("shop-region-switch.yaml"), queue,
                                      workflow_id_override=f"test-busy-{uuid.uuid4().hex[:6]}")  # fmt: skip
            await wait_for(real, lambda p: p.state == RunState.WAITING_APPROVAL, 60)
            try:
                h = await _start(client, queue, _name())
                return await h.result()  # type: ignore[attr-defined,no-any-return]
            finally:
                await switch.reject(real, Decision(approver="bob", comment="test over"))
                await real.result()

    p = run(scenario())
    assert p.outcome == Outcome.FAILED
    assert "already being switched or practised" in p.reason and "RegionSwitch" in p.reason
    assert p.fault.state == "pending" and p.switch is None


def test_alarm_stop_condition_stops_the_game_day(
    fresh: SandboxEnv, control: SandboxControl
) -> None:
    from tests.sandbox.helpers import aws

    cw = aws(fresh, "cloudwatch", "us-west-2")
    cw.put_metric_alarm(AlarmName="shop-5xx", MetricName="5xx", Namespace="shop", Statistic="Sum",
                        Period=60, EvaluationPeriods=1, Threshold=1,
                        ComparisonOperator="GreaterThanThreshold")  # fmt: skip
    cw.set_alarm_state(AlarmName="shop-5xx", StateValue="ALARM", StateReason="test")
    before = world(fresh)
    alarm = "\n    - name: shop-5xx\n      alarm: shop-5xx\n      alarm_region: ${{ to_region }}"
    edits = {"      for: 2s": "      for: 2s" + alarm}

    async def scenario() -> GameDayProgress:
        async with worker(sandbox_config(fresh)) as (client, queue):
            h = await _start(client, queue, _name(), **edits)
            return await h.result()  # type: ignore[attr-defined,no-any-return]

    p = run(scenario())
    assert p.outcome == Outcome.STOPPED, p.reason
    assert p.stop is not None and p.stop.condition == "shop-5xx" and "ALARM" in p.stop.detail
    assert p.fault.state == "removed" and p.failback is None
    # it trips on the first probe window: before the switch, or early in it (then rolled back)
    assert p.switch is None or (
        p.switch.progress and p.switch.progress.state == RunState.ROLLED_BACK
    )
    assert world(fresh) == before
    assert app_faults(fresh) == {r: (True, 0.0, 0.0) for r in fresh.regions}


@pytest.mark.slow
def test_worker_killed_mid_switch_the_game_day_still_ends_as_found(
    fresh: SandboxEnv, control: SandboxControl, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    before = world(fresh)
    queue = f"test-{uuid.uuid4().hex[:8]}"
    first = spawn_worker(fresh, workers, queue, tmp_path)
    inp = shop_gameday(_name())
    # The switch's activities on a dead worker are retried this fast; the game day's own (the
    # SLO probe, a single attempt) get more, so a loaded machine does not fail its preflight.
    inp.heartbeat_timeout = HEARTBEAT * 3
    inp.switch.heartbeat_timeout = inp.failback.heartbeat_timeout = HEARTBEAT

    async def scenario() -> GameDayProgress:
        client = await connect(sandbox_config(fresh).temporal)
        h = await gameday_client.start_now(client, inp, queue, "crash")
        await progress_until(h, lambda p: p.phase == Phase.SWITCHING, 90)
        first.kill()
        assert app_faults(fresh)["us-east-1"][0] is False  # the fault outlives the worker ...
        spawn_worker(fresh, workers, queue, tmp_path)  # ... and the next worker carries on
        return await h.result()

    p = run(scenario())
    assert p.outcome == Outcome.SUCCEEDED, p.reason
    assert p.switch and p.failback and p.fault.state == "removed"
    assert world(fresh) == before
    assert app_faults(fresh) == {r: (True, 0.0, 0.0) for r in fresh.regions}


def test_a_switch_waiting_for_its_operator_does_not_keep_the_fault_in(
    fresh: SandboxEnv, control: SandboxControl
) -> None:
    from orchestrator import switch
    from orchestrator.runs import OperatorAction
    from orchestrator.sandbox.faults import FaultRule

    before = world(fresh)

    async def scenario() -> tuple[GameDayProgress, GameDayProgress]:
        async with worker(sandbox_config(fresh)) as (client, queue):
            h = await _start(client, queue, _name())
            p = await progress_until(h, lambda p: p.switch is not None)
            assert p.switch is not None
            wid, rid = p.switch.workflow_id, p.switch.run_id
            await child_until(client, wid, rid,
                              lambda c: c.step("aurora-switchover").state.value == "SUCCEEDED")  # fmt: skip
            # the switch fails (ALB refused), and the undo of the write fence is refused too
            control.add_fault(FaultRule(target="aws:elbv2:ModifyListener", region="us-west-2",
                                        error="AccessDenied", count=None))  # fmt: skip
            control.add_fault(FaultRule(target="k8s:us-east-1:patch:configmaps",
                                        error="AccessDenied", count=None))  # fmt: skip
            await child_until(client, wid, rid, lambda c: c.state == RunState.ROLLBACK_FAILED)
            waiting = await progress_until(h, lambda p: p.fault.state == "removed")
            assert app_faults(fresh)["us-east-1"] == (True, 0.0, 0.0)  # gone, operator awaited
            control.clear_faults()
            await switch.operator(
                switch.handle(client, wid, rid), OperatorAction(action="retry", by="carol")
            )
            return waiting, await h.result()  # type: ignore[attr-defined]

    waiting, p = run(scenario())
    assert waiting.ended_at is None and "needs its operator" in waiting.reason
    assert p.outcome == Outcome.FAILED and "needs its operator" in p.reason
    assert p.switch and p.switch.progress and p.switch.progress.state == RunState.ROLLED_BACK
    assert p.fault.removed_at and p.switch.progress.ended_at
    assert p.fault.removed_at < p.switch.progress.ended_at
    assert world(fresh) == before
