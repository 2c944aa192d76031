"""What an evacuation tells people, on the sandbox's notification sink: the evacuation says that
it started, that its gate waits and how it ended, once for all its services; each service's
switch tells only what needs people (its own gate, its rollback), not that it started or
succeeded (an evacuation of 200 services sent 400 such notices)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from orchestrator.evacuation.report import build as build_report
from orchestrator.evacuation.report import markdown
from orchestrator.evacuation.runs import EvacState, EvacuationProgress, ServiceState
from orchestrator.sandbox.control import SandboxControl
from orchestrator.sandbox.faults import FaultRule
from orchestrator.sandbox.manager import SandboxEnv
from tests.evacuation.helpers import (
    drive,
    resolved,
    seed_flags,
    service_runbook,
    start,
    write_plan,
)
from tests.workflows.helpers import run, sandbox_config, worker


def webhooks(control: SandboxControl, since: float, prefix: str) -> list[dict[str, Any]]:
    """The signed webhooks the sink received for runs whose workflow id starts with `prefix`
    (an evacuation and its services' switches), oldest first."""
    return [
        n
        for n in control.notifications(since)
        if n["kind"] == "webhook"
        and str((n.get("body") or {}).get("workflow_id", "")).startswith(prefix)
    ]


def test_an_evacuation_tells_its_start_gate_and_end_and_its_services_only_what_needs_people(
    env: SandboxEnv, control: SandboxControl, tmp_path: Path
) -> None:
    since = time.time()
    seed_flags(env, ["a", "b"])
    seed_flags(env, ["c"], region="us-east-1")
    control.add_fault(FaultRule(target="aws:ssm:PutParameter", region="us-east-1",
                                error="AccessDenied", count=None))  # fmt: skip
    rbs = {
        "a": service_runbook("a"),
        # its own gate stays with people: bob, who approves the evacuation, is not its approver
        "b": service_runbook("b", gate=True, approvers=["carol"]),
        "c": service_runbook("c", flag_region="us-east-1"),  # refused: rolls itself back
    }
    services = [
        {"name": "a", "runbook": "a"},
        {"name": "b", "runbook": "b"},
        {"name": "c", "runbook": "c"},
    ]
    path = write_plan(tmp_path, services, rbs, name="told", max_parallel=3,
                      failure_policy="continue", approval={"scope": "evacuation"})  # fmt: skip

    async def scenario() -> tuple[EvacuationProgress, str]:
        async with worker(sandbox_config(env)) as (client, queue):
            h = await start(client, queue, resolved(path))
            return await drive(client, h, approver="bob", services={"b": "carol"}), h.id

    p, wid = run(scenario())
    assert p.state == EvacState.PARTIAL, p.reason
    states = {s.name: s.state for s in p.services}
    assert states == {"a": ServiceState.SUCCEEDED, "b": ServiceState.SUCCEEDED,
                      "c": ServiceState.ROLLED_BACK}  # fmt: skip

    got = webhooks(control, since, wid)
    own = [n["event"] for n in got if n["body"]["workflow_id"] == wid]
    # (the first two are sent in one workflow task, as two activities: in either order)
    assert sorted(own[:2]) == ["evacuation_started", "gate_open"], own
    assert own[2:] == ["evacuation_result"], own
    children = sorted((w, e) for n in got if (w := n["body"]["workflow_id"]) != wid
                      for e in [n["event"]])  # fmt: skip
    # a said nothing; b's own gate waited for people, so its success resolves that page; c
    # rolled back
    assert not [e for w, e in children if w == f"{wid}.a"], children
    assert [e for w, e in children if w == f"{wid}.b"] == ["gate_open", "switch_succeeded"]
    assert [e for w, e in children if w == f"{wid}.c"] == ["switch_rolled_back"]
    assert not any(e == "switch_started" for _, e in children)

    started = next(n["body"] for n in got if n["event"] == "evacuation_started")
    assert (
        started["summary"] == "evacuation told: 3 services us-east-1 -> us-west-2 started by alice"
    )
    assert f"failover watch {wid}" in started["commands"]
    gate = next(n["body"] for n in got if n["body"]["workflow_id"] == wid
                and n["event"] == "gate_open")  # fmt: skip
    assert f"failover approve {wid} --gate evacuation" in gate["commands"]
    assert "3 services" in gate["summary"]
    result = next(n["body"] for n in got if n["event"] == "evacuation_result")
    assert result["summary"] == "evacuation told us-east-1 -> us-west-2: PARTIAL"
    assert result["severity"] == "warning"
    assert result["detail"].startswith("1 ROLLED_BACK, 2 SUCCEEDED; took ")
    assert f"failover report {wid}" in result["commands"]

    # the evacuation's progress and report record its own deliveries
    assert {(d.channel, d.event, d.ok) for d in p.notifications} >= {
        ("sandbox-webhook", "evacuation_started", True),
        ("sandbox-webhook", "evacuation_result", True),
    }
    md = markdown(build_report(p, wid))
    assert "## Notifications" in md and "| evacuation_result | sandbox-webhook | yes |" in md


def test_a_dry_run_evacuation_tells_no_one(
    env: SandboxEnv, control: SandboxControl, tmp_path: Path
) -> None:
    since = time.time()
    rbs = {"a": service_runbook("a")}
    path = write_plan(tmp_path, [{"name": "a", "runbook": "a"}], rbs, name="quiet")

    async def scenario() -> tuple[EvacuationProgress, str]:
        async with worker(sandbox_config(env)) as (client, queue):
            h = await start(client, queue, resolved(path, mode="dry-run"))
            return await drive(client, h), h.id

    p, wid = run(scenario())
    assert p.state == EvacState.SUCCEEDED, p.reason
    assert p.notifications == [] and webhooks(control, since, wid) == []


def test_the_plans_routes_say_where_the_evacuations_own_notices_go(
    env: SandboxEnv, tmp_path: Path
) -> None:
    rbs = {"a": service_runbook("a")}
    routes = [{"channel": "sandbox-webhook", "events": ["evacuation_result"]}]
    path = write_plan(tmp_path, [{"name": "a", "runbook": "a"}], rbs, name="routed",
                      notify=routes)  # fmt: skip
    inp = resolved(path)
    assert [r.channel for r in inp.notify] == ["sandbox-webhook"]

    async def scenario() -> EvacuationProgress:
        async with worker(sandbox_config(env)) as (client, queue):
            return await drive(client, await start(client, queue, inp))

    p = run(scenario())
    assert p.state == EvacState.SUCCEEDED, p.reason
    assert {(d.channel, d.event) for d in p.notifications if d.ok} == {
        ("sandbox-webhook", "evacuation_result")
    }, p.notifications
