"""RegionSwitchWorkflow on the sandbox's real Temporal dev server, AWS and Kubernetes stand-ins."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from orchestrator import switch
from orchestrator.runs import Abort, Decision, RunState, StepState
from orchestrator.sandbox.control import SandboxControl
from orchestrator.sandbox.faults import FaultRule
from orchestrator.sandbox.manager import SandboxEnv
from tests.workflows.helpers import (
    RUNBOOKS,
    drive,
    observe,
    plan,
    run,
    sandbox_config,
    start,
    wait_for,
    worker,
)

MUTATING = ["freeze-writes", "source-maintenance-flag", "target-maintenance-banner",
            "target-maintenance-flag"]  # fmt: skip
FAULT_AT = {
    "freeze-writes": FaultRule(target="k8s:us-east-1:patch:configmaps", error="AccessDenied"),
    "source-maintenance-flag": FaultRule(
        target="aws:ssm:PutParameter", region="us-east-1", error="AccessDeniedException"
    ),
    "target-maintenance-banner": FaultRule(
        target="k8s:us-west-2:patch:configmaps", error="AccessDenied"
    ),
    "target-maintenance-flag": FaultRule(
        target="aws:ssm:PutParameter", region="us-west-2", error="AccessDeniedException"
    ),
}


def test_drill_succeeds_and_changes_exactly_what_it_says(
    fresh: SandboxEnv, control: SandboxControl
) -> None:
    before = observe(fresh)
    t0 = time.time()

    async def scenario() -> object:
        async with worker(sandbox_config(fresh)) as (client, queue):
            return await drive(await start(client, queue, plan("maintenance-drill.yaml")))

    result = run(scenario())
    assert result.state == RunState.SUCCEEDED, result.reason
    assert all(s.state == StepState.SUCCEEDED for s in result.steps)
    after = observe(fresh)
    assert after["us-east-1:configmap"]["writes-frozen"] == "true"
    assert after["us-west-2:configmap"]["maintenance"] == "true"
    assert after["us-east-1:ssm"]["/shop/flags/maintenance"] == "true"
    assert after["us-west-2:ssm"]["/shop/flags/maintenance"] == "true"
    # Nothing else moved.
    assert (
        after["us-west-2:configmap"]["writes-frozen"]
        == before["us-west-2:configmap"]["writes-frozen"]
    )
    # Each mutating step made its change exactly once.
    calls = Counter((c.operation, c.region) for c in control.calls(t0) if c.status < 400)
    assert calls == {
        ("patch:configmaps", "us-east-1"): 1,
        ("patch:configmaps", "us-west-2"): 1,
        ("ssm:PutParameter", "us-east-1"): 1,
        ("ssm:PutParameter", "us-west-2"): 1,
    }
    banner = result.step("target-maintenance-banner")
    assert banner.changes[0]["before"] == {"value": "false"}
    assert banner.changes[0]["after"] == {"value": "true"}
    assert result.step("approve").detail == "approved by bob"
    assert [a.approver for a in result.approvals] == ["bob"]


@pytest.mark.parametrize("failing", MUTATING)
def test_failure_at_each_mutating_step_rolls_everything_back(
    fresh: SandboxEnv, control: SandboxControl, failing: str
) -> None:
    before = observe(fresh)
    control.add_fault(FAULT_AT[failing])

    async def scenario() -> object:
        async with worker(sandbox_config(fresh)) as (client, queue):
            return await drive(await start(client, queue, plan("maintenance-drill.yaml")))

    result = run(scenario())
    assert result.state == RunState.ROLLED_BACK
    failed = result.step(failing)
    assert failed.error is not None and failed.error.kind == "AccessDenied"
    assert failed.attempts == 1, "AccessDenied must not be retried"
    assert failing in result.reason
    for rec in result.steps:
        if rec.applied:
            assert rec.state == StepState.UNDONE, (rec.id, rec.state)
        else:
            assert rec.state in (StepState.SUCCEEDED, StepState.NOT_RUN, StepState.FAILED)
    assert observe(fresh) == before


def test_throttling_is_retried_and_the_step_succeeds(
    fresh: SandboxEnv, control: SandboxControl
) -> None:
    # More throttles than boto3's own retries absorb (2 attempts here, so that its backoff is
    # short): the activity itself must be retried, and then succeeds.
    control.add_fault(
        FaultRule(target="aws:ssm:PutParameter", region="us-east-1", error="ThrottlingException",
                  count=3)
    )  # fmt: skip
    config = sandbox_config(fresh)
    config.aws.max_attempts = 2

    async def scenario() -> object:
        async with worker(config) as (client, queue):
            return await drive(await start(client, queue, plan("maintenance-drill.yaml")))

    result = run(scenario())
    assert result.state == RunState.SUCCEEDED, result.reason
    assert result.step("source-maintenance-flag").attempts == 2


def test_dry_run_mutates_nothing_and_lists_changes(
    fresh: SandboxEnv, control: SandboxControl
) -> None:
    t0 = time.time()

    async def scenario() -> object:
        async with worker(sandbox_config(fresh)) as (client, queue):
            inp = plan("maintenance-drill.yaml", mode="dry-run")
            return await drive(await start(client, queue, inp))

    result = run(scenario())
    assert result.state == RunState.SUCCEEDED
    assert [c for c in control.calls(t0) if not c.operation.startswith("get")] == []
    changes = result.step("freeze-writes").changes
    assert changes == [
        {
            "resource": "k8s:us-east-1:configmap/shop/shop-flags#writes-frozen",
            "before": {"value": "false"},
            "after": {"value": "true"},
        }
    ]
    assert result.step("approve").detail == "dry-run: gate not opened"
    assert result.approvals == []


def test_approvals_two_person_rule_and_validators(fresh: SandboxEnv) -> None:
    original = (RUNBOOKS / "maintenance-drill.yaml").read_text()
    text = original.replace("{approvals: 1, expires: 30m", "{approvals: 2, expires: 30m")
    assert text != original

    async def scenario() -> None:
        async with worker(sandbox_config(fresh)) as (client, queue):
            h = await start(client, queue, plan("", text=text))
            p = await wait_for(h, lambda p: p.state == RunState.WAITING_APPROVAL)
            assert p.open_gates == ["approve"]
            refusals = []
            for who in ("alice", "mallory", "  "):  # requester, not an approver, nobody
                with pytest.raises(switch.RefusedError) as exc:
                    await switch.approve(h, Decision(approver=who))
                refusals.append(str(exc.value))
            assert "cannot approve" in refusals[0] and "two-person rule" in refusals[0]
            assert "mallory may not decide gate approve" in refusals[1]
            assert "approver is required" in refusals[2]
            with pytest.raises(switch.RefusedError, match="not open"):
                await switch.approve(h, Decision(approver="bob", gate="settle"))
            assert "1 of 2" in await switch.approve(h, Decision(approver="bob", comment="ok"))
            with pytest.raises(switch.RefusedError, match="already approved"):
                await switch.approve(h, Decision(approver="bob"))
            p = await switch.progress(h)
            assert p.state == RunState.WAITING_APPROVAL, "one approval of two must not open it"
            assert "approved" in await switch.approve(h, Decision(approver="carol"))
            result = await h.result()
            assert result.state == RunState.SUCCEEDED
            assert [(a.approver, a.decision) for a in result.approvals] == [
                ("bob", "approve"),
                ("carol", "approve"),
            ]
            with pytest.raises(switch.RefusedError, match="has already ended"):
                await switch.abort(h, Abort(by="bob", reason="late"))

    run(scenario())


def test_reject_rolls_back(fresh: SandboxEnv) -> None:
    before = observe(fresh)

    async def scenario() -> object:
        async with worker(sandbox_config(fresh)) as (client, queue):
            h = await start(client, queue, plan("maintenance-drill.yaml"))
            await wait_for(h, lambda p: p.state == RunState.WAITING_APPROVAL)
            # The requester may reject their own switch (a safe decision).
            await switch.reject(h, Decision(approver="alice", comment="wrong window"))
            return await h.result()

    result = run(scenario())
    assert result.state == RunState.ROLLED_BACK
    assert "rejected by alice: wrong window" in result.reason
    assert result.step("freeze-writes").state == StepState.UNDONE
    assert result.step("target-maintenance-flag").state == StepState.NOT_RUN
    assert observe(fresh) == before


def test_abort_while_waiting_rolls_back(fresh: SandboxEnv) -> None:
    before = observe(fresh)

    async def scenario() -> object:
        async with worker(sandbox_config(fresh)) as (client, queue):
            h = await start(client, queue, plan("maintenance-drill.yaml"))
            await wait_for(h, lambda p: p.state == RunState.WAITING_APPROVAL)
            await switch.abort(h, Abort(by="carol", reason="region recovered"))
            with pytest.raises(switch.RefusedError, match="already rolling back"):
                await switch.abort(h, Abort(by="carol", reason="twice"))
            return await h.result()

    result = run(scenario())
    assert result.state == RunState.ROLLED_BACK
    assert result.reason == "aborted by carol: region recovered"
    assert observe(fresh) == before


def test_second_switch_of_a_runbook_is_refused_naming_the_running_one(
    fresh: SandboxEnv,
) -> None:
    async def scenario() -> None:
        async with worker(sandbox_config(fresh)) as (client, queue):
            inp = plan("maintenance-drill.yaml")
            first = await switch.start(client, inp, queue)
            try:
                await wait_for(first, lambda p: p.state == RunState.WAITING_APPROVAL)
                with pytest.raises(switch.AlreadyRunningError) as exc:
                    await switch.start(
                        client, plan("maintenance-drill.yaml", requester="dan"), queue
                    )
                message = str(exc.value)
                assert "already running: workflow switch-maintenance-drill" in message
                assert "requested by alice" in message and "WAITING_APPROVAL" in message
            finally:
                await switch.abort(first, Abort(by="test", reason="cleanup"))
                assert (await first.result()).state == RunState.ROLLED_BACK
            # Once it ended, the runbook can be switched again.
            again = await switch.start(client, inp, queue)
            await wait_for(again, lambda p: p.state == RunState.WAITING_APPROVAL)
            await switch.abort(again, Abort(by="test", reason="cleanup"))
            assert (await again.result()).state == RunState.ROLLED_BACK

    run(scenario())


def test_a_failed_guard_stops_the_step_before_it_mutates(
    fresh: SandboxEnv, control: SandboxControl
) -> None:
    before = observe(fresh)
    t0 = time.time()

    async def scenario() -> object:
        async with worker(sandbox_config(fresh)) as (client, queue):
            h = await start(client, queue, plan("maintenance-drill.yaml"))
            await wait_for(h, lambda p: p.state == RunState.WAITING_APPROVAL)
            control.set_region_health("us-west-2", False)  # the guard's health check fails
            return await drive(h)

    result = run(scenario())
    assert result.state == RunState.ROLLED_BACK
    banner = result.step("target-maintenance-banner")
    assert banner.error is not None and banner.error.kind == "GuardFailed"
    assert "the target region answers" in banner.error.message
    assert not banner.applied and banner.attempts == 0
    assert _west_configmap_patches(control, t0) == 0
    assert observe(fresh) == before


def _west_configmap_patches(control: SandboxControl, since: float) -> int:
    return sum(
        1
        for c in control.calls(since)
        if c.operation == "patch:configmaps" and c.region == "us-west-2"
    )
