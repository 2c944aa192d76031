"""Disaster mode end to end on the sandbox: a switch away from a region that is really down.

The shop runbook's unplanned run touches nothing in the failed region nor Route 53's API (both in
us-east-1 here): the writer fails over accepting the lag as data loss, behind the gate, traffic
moves through ARC's data plane, and the work on the failed region is owed to it. Its recovery
fences it, counts the writes lost, and rejoins its databases; a planned failback then brings the
world back to where it was.

Each test runs the runbook under a name of its own: what a region owes is looked up by runbook
name in Temporal (which the session's tests share), so one test's debt cannot refuse another's
switch.
"""

from __future__ import annotations

import asyncio
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from orchestrator import switch
from orchestrator.client import connect
from orchestrator.runbook.loader import load_text
from orchestrator.runbook.modes import Kind
from orchestrator.runbook.resolve import resolve
from orchestrator.runs import Decision, OperatorAction, RunProgress, RunState, StepState
from orchestrator.sandbox.control import SandboxControl
from orchestrator.sandbox.faults import FaultRule
from orchestrator.sandbox.latency import LatencyModel
from orchestrator.sandbox.manager import SandboxEnv
from tests.workflows.helpers import (
    RUNBOOKS,
    WorkerProcess,
    drive,
    run,
    sandbox_config,
    spawn_worker,
    start,
    wait_for,
    worker,
)
from tests.workflows.shop import dns_answers, world
from tests.workflows.test_crash_safety import HEARTBEAT

HANG = 20.0  # a blackholed region holds every connection this long


class Shop:
    """The shop runbook under a name of its own, its runs started on one worker."""

    def __init__(self, env: SandboxEnv) -> None:
        self.env = env
        self.name = f"shop-{uuid.uuid4().hex[:6]}"
        text = (RUNBOOKS / "shop-region-switch.yaml").read_text()
        self.runbook = load_text(text.replace("name: shop-region-switch", f"name: {self.name}"))

    def plan(self, frm: str, to: str, kind: Kind = "planned") -> Any:
        return resolve(self.runbook, frm, to, requester="alice", mode="drill", kind=kind)

    async def switch(self, frm: str, to: str, kind: Kind = "planned") -> RunProgress:
        async with worker(sandbox_config(self.env)) as (client, queue):
            return await drive(await start(client, queue, self.plan(frm, to, kind)), timeout=120)

    async def recover(self, region: str, to: str) -> RunProgress:
        """`failover recover`: the owed work is found in Temporal's visibility, which follows
        the end of the unplanned run closely (retried briefly, as a person would)."""
        for _ in range(50):
            try:
                return await self.switch(region, to, "recovery")
            except switch.RefusedError as exc:
                if "owes nothing" not in str(exc):
                    raise
                await asyncio.sleep(0.2)
        raise AssertionError(f"{region} never owed anything")


def _orders(env: SandboxEnv, region: str, n: int) -> None:
    for _ in range(n):
        req = urllib.request.Request(f"{env.regions[region].app_url}/api/orders", method="POST",
                                     data=b"{}")  # fmt: skip
        with urllib.request.urlopen(req, timeout=5) as resp:
            assert resp.status == 201


def _took(step: Any) -> float:
    return (step.ended_at - step.started_at).total_seconds() if step.ended_at else 0.0


def _lag_measured(env: SandboxEnv, region: str) -> None:
    """Wait until CloudWatch has a replication-lag datapoint for the region's Aurora secondary
    (the sandbox publishes one every 2 s; a busy machine may be late)."""
    from datetime import UTC, datetime, timedelta

    from tests.sandbox.helpers import aws

    cw = aws(env, "cloudwatch", region)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        now = datetime.now(UTC)
        points = cw.get_metric_statistics(
            Namespace="AWS/RDS", MetricName="AuroraGlobalDBReplicationLag",
            Dimensions=[{"Name": "DBClusterIdentifier", "Value": f"shop-aurora-{region}"}],
            StartTime=now - timedelta(minutes=5), EndTime=now + timedelta(minutes=1),
            Period=60, Statistics=["Maximum"],
        )["Datapoints"]  # fmt: skip
        if points:
            return
        time.sleep(0.25)
    raise AssertionError(f"no replication lag measured in {region} within 30 s")


@pytest.mark.slow
def test_unplanned_failover_recovery_and_failback_restore_the_world(
    fresh: SandboxEnv, control: SandboxControl
) -> None:
    shop, before = Shop(fresh), world(fresh)
    _orders(fresh, "us-east-1", 3)  # replicated ...
    time.sleep(1.0)
    control.set_replication_lag("us-west-2", 3600)
    _orders(fresh, "us-east-1", 4)  # ... and not: lost with the region
    _lag_measured(fresh, "us-west-2")  # CloudWatch measured a lag before the outage
    control.set_outage("us-east-1", "full", hang=HANG)

    # A planned switch refuses at once, with the way out; nothing ran.
    planned = run(shop.switch("us-east-1", "us-west-2"))
    assert planned.state == RunState.ROLLED_BACK
    assert "us-east-1 does not answer" in planned.reason and "--unplanned" in planned.reason
    assert all(s.state == StepState.NOT_RUN for s in planned.steps)

    result = run(shop.switch("us-east-1", "us-west-2", "unplanned"))
    assert result.state == RunState.SUCCEEDED, result.reason
    assert result.kind == "unplanned"
    slowest = max(result.steps, key=_took)
    assert _took(slowest) < HANG, f"{slowest.id} waited on the failed region"
    assert [o.id for o in result.owed] == [
        "freeze-writes", "writes-fenced", "dns-full", "failover-records", "source-alb-to-peer",
        "scale-down-source-pods", "scale-down-source-asg",
    ]  # fmt: skip
    assert result.step("aurora-switchover").type == "aurora_global_failover"
    assert "approved by bob (RPO at risk: replication lag last measured" in str(
        result.step("approve").detail
    )
    # What users get: the target, through DNS (Route 53's API is down with us-east-1).
    assert dns_answers(fresh, "api.shop.example.") == {"us-west-2": 20}
    assert dns_answers(fresh, "www.shop.example.") == {"us-west-2": 20}  # its health check

    # The failed region owes its work: a planned switch back is refused until it is recovered.
    with pytest.raises(switch.RefusedError, match="failover recover"):
        run(shop.switch("us-west-2", "us-east-1"))

    control.set_outage("us-east-1", None)
    recovery = run(shop.recover("us-east-1", "us-west-2"))
    assert recovery.state == RunState.SUCCEEDED, recovery.reason
    assert recovery.step("lost-writes").observed["lost_writes"] == 4
    after = world(fresh)
    assert after["aurora_writer"] == "us-west-2"
    assert after["aurora_members"] == ["us-east-1", "us-west-2"]
    assert after["api_weights"] == {"us-east-1": 0, "us-west-2": 100}
    assert after["www_primary"] == ["us-west-2"]
    assert after["arc"] == {"shop-us-east-1": "Off", "shop-us-west-2": "On"}
    east, west = after["us-east-1"], after["us-west-2"]
    assert east["db_replica"] is True and west["db_replica"] is False
    assert east["db_primary"] == west["db_primary"] == "shop-db-us-west-2"
    assert east["flags"]["writes-frozen"] == "false"
    assert east["replicas"] == {"checkout": 0, "cart": 0, "catalog": 0}

    back = run(shop.switch("us-west-2", "us-east-1"))
    assert back.state == RunState.SUCCEEDED, back.reason
    assert world(fresh) == before


def test_a_failure_before_the_point_of_no_return_rolls_back(
    fresh: SandboxEnv, control: SandboxControl
) -> None:
    shop, before = Shop(fresh), world(fresh)
    control.set_outage("us-east-1", "full")
    control.add_fault(FaultRule(target="aws:autoscaling:UpdateAutoScalingGroup",
                                region="us-west-2", error="AccessDenied"))  # fmt: skip
    result = run(shop.switch("us-east-1", "us-west-2", "unplanned"))
    assert result.state == RunState.ROLLED_BACK
    assert result.step("scale-up-target-asg").error is not None
    assert result.step("aurora-switchover").state == StepState.NOT_RUN
    assert result.owed == []  # a run rolled back owes nothing: it changed nothing
    control.set_outage("us-east-1", None)
    assert world(fresh) == before


def test_past_the_point_of_no_return_a_failure_pauses_for_the_operator(
    fresh: SandboxEnv, control: SandboxControl
) -> None:
    """The writer has moved (irreversibly): rolling the rest back would leave users with no
    region at all, so a failing traffic step waits for the operator instead."""
    shop = Shop(fresh)
    control.set_outage("us-east-1", "full")
    control.add_fault(FaultRule(target="aws:route53-recovery-cluster:UpdateRoutingControlStates",
                                error="AccessDenied", count=None))  # fmt: skip

    async def scenario() -> RunProgress:
        async with worker(sandbox_config(fresh)) as (client, queue):
            h = await start(client, queue, shop.plan("us-east-1", "us-west-2", "unplanned"))
            await wait_for(h, lambda p: p.state == RunState.WAITING_APPROVAL, timeout=60)
            await switch.approve(h, Decision(approver="bob"))
            p = await wait_for(h, lambda p: p.state == RunState.PAUSED, timeout=60)
            paused = p.step("arc-target-on")
            assert paused.state == StepState.PAUSED and paused.error is not None
            assert paused.error.kind == "AccessDenied"
            assert p.step("aurora-switchover").state == StepState.SUCCEEDED
            control.clear_faults()
            await switch.operator(h, OperatorAction(action="retry", by="carol", reason="IAM fixed"))
            return await h.result()

    result = run(scenario())
    assert result.state == RunState.SUCCEEDED, result.reason
    assert result.step("arc-target-on").attempts >= 2
    assert dns_answers(fresh, "api.shop.example.") == {"us-west-2": 20}
    control.set_outage("us-east-1", None)
    recovery = run(shop.recover("us-east-1", "us-west-2"))  # leave no debt behind
    assert recovery.state == RunState.SUCCEEDED, recovery.reason


def test_recovery_is_refused_when_nothing_is_owed(fresh: SandboxEnv) -> None:
    shop = Shop(fresh)
    with pytest.raises(switch.RefusedError, match="owes nothing"):
        run(shop.switch("us-east-1", "us-west-2", "recovery"))


@pytest.mark.slow
def test_worker_killed_during_the_unplanned_failover(
    fresh: SandboxEnv, control: SandboxControl, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    """The worker dies while the writer fails over: the next one finishes the run, and the
    failover (not idempotent: it would be refused while one is under way) is sent once."""
    shop, queue, t0 = Shop(fresh), f"crash-{uuid.uuid4().hex[:6]}", time.time()
    control.set_outage("us-east-1", "full")
    control.set_latency(aurora_failover=300.0)  # x0.01: 3 s under way

    def failovers() -> list[int]:
        return [c.status for c in control.calls(t0) if c.operation == "rds:FailoverGlobalCluster"]

    async def scenario() -> RunProgress:
        client = await connect(sandbox_config(fresh).temporal)
        first = spawn_worker(fresh, workers, queue, tmp_path)
        # A dead worker's activity is retried once its heartbeat is missed: while the failover
        # it sent is still under way (3 s).
        plan = shop.plan("us-east-1", "us-west-2", "unplanned")
        h = await start(client, queue, plan.model_copy(update={"heartbeat_timeout": HEARTBEAT}))
        deadline = time.monotonic() + 60
        while not failovers():
            if (await switch.progress(h)).state == RunState.WAITING_APPROVAL:
                await switch.approve(h, Decision(approver="bob"))
            assert time.monotonic() < deadline, "the failover was never sent"
            await asyncio.sleep(0.1)
        first.kill()
        spawn_worker(fresh, workers, queue, tmp_path)
        return await drive(h, timeout=120)

    try:
        result = run(scenario())
    finally:
        control.set_latency(aurora_failover=LatencyModel().aurora_failover)
    assert result.state == RunState.SUCCEEDED, result.reason
    assert failovers() == [200], "one failover: the crash did not double it"
    assert world_writer(fresh) == "us-west-2"
    control.set_outage("us-east-1", None)
    assert run(shop.recover("us-east-1", "us-west-2")).state == RunState.SUCCEEDED


def world_writer(env: SandboxEnv) -> str:
    from tests.sandbox.helpers import aws

    gc = aws(env, "rds").describe_global_clusters(GlobalClusterIdentifier="shop-global")
    members = gc["GlobalClusters"][0]["GlobalClusterMembers"]
    return str(next(m for m in members if m["IsWriter"])["DBClusterArn"].split(":")[3])


# ------------------------------------------------------------------ a fault on each write
def _denied(target: str, region: str | None = None) -> FaultRule:
    return FaultRule(target=target, region=region, error="AccessDenied", count=None)


#: The writes of the unplanned run before its point of no return: the run rolls back.
BEFORE_NO_RETURN = {
    "scale-up-target-asg": _denied("aws:autoscaling:UpdateAutoScalingGroup", "us-west-2"),
    "scale-up-target-pods": _denied("k8s:us-west-2:patch:deployments/scale"),
}
#: The writes from the point of no return on (an irreversible promotion started): the run
#: stops for the operator, who here rolls it back (the promotions stay).
PAST_NO_RETURN = {
    "aurora-switchover": _denied("aws:rds:FailoverGlobalCluster"),
    "promote-target-db": _denied("k8s:us-west-2:patch:clusters"),
    "target-alb-local": _denied("aws:elbv2:ModifyListener", "us-west-2"),
    "arc-target-on": _denied("aws:route53-recovery-cluster:UpdateRoutingControlStates"),
}
#: Every write of the recovery (unfreeze-source makes the same call as freeze-writes).
RECOVERY = {
    "freeze-writes": _denied("k8s:us-east-1:patch:configmaps"),
    "dns-full": _denied("aws:route53:ChangeResourceRecordSets"),
    "source-alb-to-peer": _denied("aws:elbv2:ModifyListener", "us-east-1"),
    "scale-down-source-pods": _denied("k8s:us-east-1:patch:deployments/scale"),
    "scale-down-source-asg": _denied("aws:autoscaling:UpdateAutoScalingGroup", "us-east-1"),
    "rejoin-aurora": _denied("aws:rds:CreateDBClusterSnapshot"),
    "rejoin-source-db": _denied("k8s:us-east-1:patch:clusters"),
}


def test_unplanned_writes_before_the_point_of_no_return_roll_back(
    fresh: SandboxEnv, control: SandboxControl
) -> None:
    shop, before = Shop(fresh), world(fresh)
    for step, fault in BEFORE_NO_RETURN.items():
        control.set_outage("us-east-1", "full")
        control.add_fault(fault)
        result = run(shop.switch("us-east-1", "us-west-2", "unplanned"))
        assert result.state == RunState.ROLLED_BACK, step
        assert (
            result.step(step).error is not None and result.step(step).error.kind == "AccessDenied"
        )
        assert all(s.state != StepState.UNDO_FAILED for s in result.steps)
        control.clear_faults()
        control.set_outage("us-east-1", None)
        assert world(fresh) == before, step


@pytest.mark.parametrize("step", sorted(PAST_NO_RETURN))
def test_unplanned_writes_past_the_point_of_no_return_wait_for_the_operator(
    fresh: SandboxEnv, control: SandboxControl, step: str
) -> None:
    shop, before = Shop(fresh), world(fresh)
    control.set_outage("us-east-1", "full")
    control.add_fault(PAST_NO_RETURN[step])

    async def scenario() -> RunProgress:
        async with worker(sandbox_config(fresh)) as (client, queue):
            h = await start(client, queue, shop.plan("us-east-1", "us-west-2", "unplanned"))
            await wait_for(h, lambda p: p.state == RunState.WAITING_APPROVAL, timeout=60)
            await switch.approve(h, Decision(approver="bob"))
            p = await wait_for(h, lambda p: p.state == RunState.PAUSED, timeout=60)
            assert p.step(step).state == StepState.PAUSED
            assert p.step(step).error is not None and p.step(step).error.kind == "AccessDenied"
            await switch.operator(h, OperatorAction(action="rollback", by="carol",
                                                    reason="game over"))  # fmt: skip
            return await h.result()

    result = run(scenario())
    assert result.state == RunState.ROLLED_BACK
    irreversible = {"aurora-switchover", "promote-target-db"}
    for s in result.steps:
        if s.id in irreversible and s.started_at is not None:
            assert s.state == StepState.UNDO_SKIPPED and "irreversible" in str(s.undo_note)
        assert s.state != StepState.UNDO_FAILED
    assert result.step("scale-up-target-asg").state == StepState.UNDONE
    control.clear_faults()
    control.set_outage("us-east-1", None)
    after = world(fresh)
    assert after["us-west-2"]["asg"] == before["us-west-2"]["asg"]
    assert after["us-west-2"]["replicas"] == before["us-west-2"]["replicas"]
    assert after["us-west-2"]["alb"] == before["us-west-2"]["alb"]
    assert after["arc"] == before["arc"]


@pytest.mark.slow
def test_a_fault_on_each_recovery_write_rolls_the_recovery_back_and_it_can_run_again(
    fresh: SandboxEnv, control: SandboxControl
) -> None:
    shop = Shop(fresh)
    control.set_outage("us-east-1", "full")
    assert run(shop.switch("us-east-1", "us-west-2", "unplanned")).state == RunState.SUCCEEDED
    control.set_outage("us-east-1", None)
    owed = world(fresh)  # what the recovery starts from, and comes back to when it rolls back
    for step, fault in RECOVERY.items():
        control.add_fault(fault)
        result = run(shop.recover("us-east-1", "us-west-2"))
        control.clear_faults()
        assert result.state == RunState.ROLLED_BACK, step
        assert result.step(step).error is not None, step
        assert all(s.state != StepState.UNDO_FAILED for s in result.steps), step
        assert result.owed == [], step
        assert world(fresh) == owed, step
    recovery = run(shop.recover("us-east-1", "us-west-2"))  # still owed: it runs, and succeeds
    assert recovery.state == RunState.SUCCEEDED, recovery.reason
