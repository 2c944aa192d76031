"""runbooks/shop-region-switch.yaml end to end on the sandbox: the switch, the failback, rollbacks."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.runs import RunState, StepState
from orchestrator.sandbox.control import SandboxControl
from orchestrator.sandbox.faults import FaultRule
from orchestrator.sandbox.manager import SandboxEnv
from tests.workflows.helpers import drive, plan, run, sandbox_config, start, worker
from tests.workflows.shop import world

RUNBOOK = "shop-region-switch.yaml"


async def _switch(env: SandboxEnv, frm: str, to: str) -> Any:
    async with worker(sandbox_config(env)) as (client, queue):
        return await drive(await start(client, queue, plan(RUNBOOK, frm, to)), timeout=120)


@pytest.mark.slow
def test_switch_to_us_west_2_then_fail_back(fresh: SandboxEnv, control: SandboxControl) -> None:
    before = world(fresh)
    control.set_lag(0.75)  # seconds of replication lag the sandbox publishes
    result = run(_switch(fresh, "us-east-1", "us-west-2"))
    assert result.state == RunState.SUCCEEDED, result.reason
    # The lag measured right before the writer moved (the switchover's guard) is the RPO.
    assert result.rpo_seconds == pytest.approx(0.75)
    assert result.step("aurora-switchover").observed["lag_seconds"] == pytest.approx(0.75)
    after = world(fresh)
    assert after["aurora_writer"] == "us-west-2"
    assert after["api_weights"] == {"us-east-1": 0, "us-west-2": 100}
    assert after["www_primary"] == ["us-west-2"]
    west, east = after["us-west-2"], after["us-east-1"]
    assert west["replicas"] == west["ready"] == {"checkout": 3, "cart": 3, "catalog": 3}
    assert east["replicas"] == {"checkout": 0, "cart": 0, "catalog": 0}
    assert west["db_replica"] is False and east["db_replica"] is True
    assert west["db_primary"] == east["db_primary"] == "shop-db-us-west-2"
    # Users' resolvers: ARC lets only the target be answered, and the weights agree.
    assert after["arc"] == {"shop-us-east-1": "Off", "shop-us-west-2": "On"}
    assert after["dns_api"] == {"us-west-2": 20}
    assert west["flags"]["writes-frozen"] == east["flags"]["writes-frozen"] == "false"
    assert west["asg"][:2] == (3, 3) and east["asg"][:2] == (1, 1)
    assert west["alb"] == {"shop-local": 100, "shop-peer": 0}
    assert east["alb"] == {"shop-local": 0, "shop-peer": 100}

    back = run(_switch(fresh, "us-west-2", "us-east-1"))
    assert back.state == RunState.SUCCEEDED, back.reason
    assert world(fresh) == before


@pytest.mark.parametrize(
    ("failing", "fault"),
    [
        ("freeze-writes", FaultRule(target="k8s:us-east-1:patch:configmaps", error="Forbidden")),
        ("aurora-switchover",
         FaultRule(target="aws:rds:SwitchoverGlobalCluster", error="AccessDenied")),
        ("scale-down-source-asg",
         FaultRule(target="aws:autoscaling:UpdateAutoScalingGroup", region="us-east-1",
                   error="AccessDenied")),
    ],
)  # fmt: skip
def test_a_failure_rolls_the_whole_switch_back(
    fresh: SandboxEnv, control: SandboxControl, failing: str, fault: FaultRule
) -> None:
    before = world(fresh)
    control.add_fault(fault)
    result = run(_switch(fresh, "us-east-1", "us-west-2"))
    assert result.state == RunState.ROLLED_BACK
    assert result.step(failing).state in (StepState.FAILED, StepState.UNDONE)
    assert result.step(failing).error is not None
    undone = [s.id for s in result.steps if s.state == StepState.UNDONE]
    assert all(s.state != StepState.UNDO_FAILED for s in result.steps)
    if failing == "scale-down-source-asg":
        assert {"aurora-switchover", "dns-full", "promote-target-db"} <= set(undone)
    assert world(fresh) == before
