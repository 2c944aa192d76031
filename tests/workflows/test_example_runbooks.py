"""Every example runbook end to end on the sandbox (there and back), and a rollback of each."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from orchestrator import switch
from orchestrator.runs import Decision, RunState, StepState
from orchestrator.sandbox.control import SandboxControl
from orchestrator.sandbox.faults import FaultRule
from orchestrator.sandbox.manager import SandboxEnv
from tests.workflows.helpers import RUNBOOKS, drive, plan, run, sandbox_config, start, wait_for
from tests.workflows.helpers import worker as in_process_worker
from tests.workflows.shop import world

Check = Callable[[dict[str, Any]], bool]

THERE: dict[str, Check] = {
    "dns-only.yaml": lambda w: (
        w["api_weights"] == {"us-east-1": 0, "us-west-2": 100}
        and w["www_primary"] == ["us-west-2"]
        and w["arc"] == {"shop-us-east-1": "Off", "shop-us-west-2": "On"}
        and w["dns_api"] == {"us-west-2": 20}
    ),
    "aurora-only.yaml": lambda w: w["aurora_writer"] == "us-west-2",
    "kubernetes-only.yaml": lambda w: (
        w["us-west-2"]["ready"]["cart"] == 3
        and w["us-east-1"]["replicas"]["cart"] == 0
        and w["us-west-2"]["db_replica"] is False
    ),
    "noop-drill.yaml": lambda w: True,
    "maintenance-drill.yaml": lambda w: w["us-west-2"]["flags"]["maintenance"] == "true",
}


def test_every_example_runbook_has_a_case() -> None:
    shipped = {p.name for p in RUNBOOKS.glob("*.yaml")} - {"shop-region-switch.yaml"}
    assert shipped == set(THERE)  # shop-region-switch: tests/workflows/test_shop_runbook.py


async def _run(env: SandboxEnv, name: str, frm: str, to: str, text: str | None = None) -> Any:
    async with in_process_worker(sandbox_config(env)) as (client, queue):
        inp = plan(name, frm, to, text=text) if text else plan(name, frm, to)
        return await drive(await start(client, queue, inp), timeout=120)


@pytest.mark.parametrize("name", sorted(set(THERE) - {"maintenance-drill.yaml"}))
def test_example_runbook_there_and_back(fresh: SandboxEnv, name: str) -> None:
    before = world(fresh)
    there = run(_run(fresh, name, "us-east-1", "us-west-2"))
    assert there.state == RunState.SUCCEEDED, there.reason
    assert THERE[name](world(fresh))
    back = run(_run(fresh, name, "us-west-2", "us-east-1"))
    assert back.state == RunState.SUCCEEDED, back.reason
    assert world(fresh) == before


def _fail_target_check(text: str) -> str:
    """dns-only: the target's health check fails fast (one attempt, short timeout)."""
    out = text.replace(
        "timeout: 1m\n  - id: api-full", "timeout: 3s\n    retry: {attempts: 1}\n  - id: api-full"
    )
    assert out != text
    return out


ROLLBACKS: dict[str, tuple[FaultRule | None, str]] = {
    "dns-only.yaml": (None, "target-healthy"),  # the target region is down
    "aurora-only.yaml": (
        FaultRule(target="aws:rds:SwitchoverGlobalCluster", error="AccessDenied"),
        "switchover",
    ),
    "kubernetes-only.yaml": (
        FaultRule(target="k8s:us-east-1:patch:deployments/scale", error="AccessDenied"),
        "scale-down-source",
    ),
}


@pytest.mark.parametrize("name", sorted(ROLLBACKS))
def test_example_runbook_rolls_back(fresh: SandboxEnv, control: SandboxControl, name: str) -> None:
    before = world(fresh)
    fault, failing = ROLLBACKS[name]
    text = None
    if fault is not None:
        control.add_fault(fault)
    else:
        control.set_region_health("us-west-2", False)
        text = _fail_target_check((RUNBOOKS / name).read_text())
    result = run(_run(fresh, name, "us-east-1", "us-west-2", text))
    assert result.state == RunState.ROLLED_BACK
    assert result.step(failing).error is not None, result.step(failing)
    assert any(s.state == StepState.UNDONE for s in result.steps), result.steps
    control.set_region_health("us-west-2", True)
    assert world(fresh) == before


def test_noop_drill_rejected_rolls_back(env: SandboxEnv) -> None:
    async def scenario() -> Any:
        async with in_process_worker(sandbox_config(env)) as (client, queue):
            h = await start(client, queue, plan("noop-drill.yaml"))
            await wait_for(h, lambda p: p.state == RunState.WAITING_APPROVAL)
            await switch.reject(h, Decision(approver="bob", comment="not now"))
            return await h.result()

    result = run(scenario())
    assert result.state == RunState.ROLLED_BACK
    assert result.step("settle").state == StepState.NOT_RUN
