"""Evacuations end to end on the sandbox: order and max_parallel (from the children's own
progress), each failure policy with a fault injected in one service, abort, gates per tier, lease
conflicts in both directions, and the example plan there and back through the CLI.

Services here are small runbooks (`tests.evacuation.helpers.service_runbook`): each sets its own
SSM flag `/evac/NAME` to the target region, then works a little; the flags are the world."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowExecutionStatus

from orchestrator import lease_shards, leases, switch
from orchestrator import search_attributes as sa
from orchestrator.evacuation import client as evacuation
from orchestrator.evacuation.report import build as build_report
from orchestrator.evacuation.resolve import resources as evacuation_resources
from orchestrator.evacuation.runs import EvacState, EvacuationProgress, ServiceState
from orchestrator.runs import Abort, Decision, RunState
from orchestrator.sandbox.control import SandboxControl
from orchestrator.sandbox.faults import FaultRule
from orchestrator.sandbox.manager import SandboxEnv
from tests.cli import failover
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
from tests.workflows.helpers import RUNBOOKS, run, sandbox_config, wait_for, worker
from tests.workflows.helpers import plan as switch_plan
from tests.workflows.helpers import start as start_switch
from tests.workflows.shop import world

S, RB, FB, SK = (ServiceState.SUCCEEDED, ServiceState.ROLLED_BACK, ServiceState.FAILED_BACK,
                 ServiceState.SKIPPED)  # fmt: skip


def _interval(p: EvacuationProgress, name: str) -> tuple[datetime, datetime]:
    """A service's switch, start to end, as its own progress says."""
    r = p.service(name).result
    assert r is not None and r.ended_at is not None, name
    return r.started_at, r.ended_at


def test_dependencies_tiers_and_max_parallel_are_respected(env: SandboxEnv, tmp_path: Path) -> None:
    names = ["db", "cache", "app", "jobs", "web", "gated"]
    rbs = {n: service_runbook(n, flag_region=None, duration="300ms", gate=n in ("db", "gated"))
           for n in names}  # fmt: skip
    rbs["gated"]["approvers"] = ["carol"]  # the evacuation's approver (bob) cannot stand in
    path = write_plan(
        tmp_path,
        [
            {"name": "db", "runbook": "db"},
            {"name": "cache", "runbook": "cache"},
            {"name": "app", "runbook": "app", "tier": 2, "depends_on": ["db"]},
            {"name": "jobs", "runbook": "jobs", "tier": 2},
            {"name": "gated", "runbook": "gated", "tier": 2},
            {"name": "web", "runbook": "web", "tier": 3, "depends_on": ["app"]},
        ],
        rbs,
        max_parallel=2,
        approval={"scope": "tier", "approvers": ["bob", "carol"]},
    )

    async def scenario() -> EvacuationProgress:
        async with worker(sandbox_config(env)) as (client, queue):
            h = await start(client, queue, resolved(path))
            return await drive(client, h, "bob", services={"gated": "carol"})

    p = run(scenario())
    assert p.state == EvacState.SUCCEEDED, p.reason
    spans = {n: _interval(p, n) for n in names}
    preds = {"db": [], "cache": [], "app": ["db", "cache"], "jobs": ["db", "cache"],
             "gated": ["db", "cache"], "web": ["app", "jobs", "gated", "db", "cache"]}  # fmt: skip
    for name, before in preds.items():
        for b in before:
            assert spans[b][1] <= spans[name][0], (b, name, spans)
    for t0, _ in spans.values():  # never more than max_parallel switches at once
        assert sum(1 for a, b in spans.values() if a <= t0 < b) <= 2, spans
    tier2 = ["app", "jobs", "gated"]  # three ready at once, two places: one waited for a slot
    assert sum(p.service(n).after.startswith("slot:") for n in tier2) == 1
    # each tier's gate approved by bob, standing in for the services' gates where they allow it
    assert sorted(p.gates) == ["tier-1", "tier-2", "tier-3"]
    assert all(g.outcome == "approved" and g.approved_by == ["bob"] for g in p.gates.values())
    assert p.service("db").preapproved == ["approve"] and p.service("db").gates_left == []
    assert p.service("gated").gates_left == ["approve"]  # approved by carol, on its own switch
    gated = p.service("gated").result
    assert gated is not None and [a.approver for a in gated.approvals] == ["carol"]
    r = build_report(p, "evacuation-test")
    # each tier waited for its gate, which waited for the last service of the tier before; in
    # tier 2, the service that waited for a place follows the one whose end freed it
    path = [n.name for n in r.critical_path]
    last_of_tier2 = max(tier2, key=lambda n: p.service(n).ended_at or p.started_at)
    assert path[:3] in (
        ["gate:tier-1", "db", "gate:tier-2"],
        ["gate:tier-1", "cache", "gate:tier-2"],
    )
    assert path[-3:] == [last_of_tier2, "gate:tier-3", "web"], path
    assert set(path[3:-2]) <= set(tier2), path
    vias = {n.name: n.via for n in r.critical_path}
    assert vias["web"] == "gate" and vias["gate:tier-3"] == "tier"
    if len(path) == 7:  # the slot-waiter ended last
        assert vias[path[4]] == "slot (max_parallel)", r.critical_path
    assert r.rto_s is not None and 0 < r.rto_s <= (r.rto_total_s or 0)


def _policy_plan(tmp_path: Path, policy: str) -> Path:
    # b runs beside c. Under rollback_all it must still be running when c's failure reaches the
    # evacuation (with no workflow cache, on a loaded machine, that took over 3 s once): it is
    # stopped long before its 60 s; under the other policies it runs to its end
    rbs = {
        "a": service_runbook("a"),
        "b": service_runbook("b", duration="60s" if policy == "rollback_all" else "3s"),
        "c": service_runbook("c", flag_region="us-east-1"),  # the fault hits its write only
        "d": service_runbook("d"),
        "e": service_runbook("e"),
    }
    services = [
        {"name": "a", "runbook": "a"},
        {"name": "b", "runbook": "b", "depends_on": ["a"]},
        {"name": "c", "runbook": "c", "depends_on": ["a"]},
        {"name": "d", "runbook": "d", "depends_on": ["c"]},
        {"name": "e", "runbook": "e", "tier": 2},
    ]
    return write_plan(tmp_path, services, rbs, max_parallel=2, failure_policy=policy)


EXPECTED = {
    # b and c run together after a; c's write is refused (its switch rolls itself back)
    "continue": (EvacState.PARTIAL, {"a": S, "b": S, "c": RB, "d": SK, "e": S}),
    "stop": (EvacState.PARTIAL, {"a": S, "b": S, "c": RB, "d": SK, "e": SK}),
    "rollback_all": (EvacState.ROLLED_BACK, {"a": FB, "b": RB, "c": RB, "d": SK, "e": SK}),
}


@pytest.mark.parametrize("policy", sorted(EXPECTED))
def test_each_failure_policy_with_a_fault_in_one_service(
    env: SandboxEnv, control: SandboxControl, tmp_path: Path, policy: str
) -> None:
    names = ["a", "b", "c", "d", "e"]
    seed_flags(env, [n for n in names if n != "c"])
    seed_flags(env, ["c"], region="us-east-1")
    before = flags(env, names)
    control.add_fault(FaultRule(target="aws:ssm:PutParameter", region="us-east-1",
                                error="AccessDenied", count=None))  # fmt: skip
    path = _policy_plan(tmp_path, policy)

    async def scenario() -> EvacuationProgress:
        # rollback_all with no workflow cache: every activation replays (determinism)
        async with worker(sandbox_config(env), cache=0 if policy == "rollback_all" else 1000) as (
            client, queue,
        ):  # fmt: skip
            return await drive(client, await start(client, queue, resolved(path)))

    p = run(scenario())
    state, services = EXPECTED[policy]
    assert p.state == state, p.reason
    assert {s.name: s.state for s in p.services} == services, [
        (s.name, s.reason) for s in p.services
    ]
    assert "AccessDenied" in p.service("c").reason
    assert p.service("d").reason == "not started: it depends on c, which ROLLED_BACK"
    after = flags(env, names)
    switched = {n for n, st in services.items() if st == S}
    assert after == {n: ("us-west-2" if n in switched else before[n]) for n in names}
    if policy != "continue":
        assert p.reason.startswith("service c ROLLED_BACK: step flag failed: AccessDenied")
    if policy == "rollback_all":  # b was told to stop; a was switched back after it
        b, a = p.service("b"), p.service("a")
        assert b.result is not None and "evacuation:" in b.result.reason
        assert a.failback_result is not None and a.failback_result.state == RunState.SUCCEEDED
        assert b.ended_at is not None and a.failback_started_at is not None
        assert b.ended_at <= a.failback_started_at
        r = build_report(p, "evacuation-test")
        assert r.rolled_back == ["a", "b", "c"] and r.left_switched == []


def test_abort_switches_back_what_had_switched(env: SandboxEnv, tmp_path: Path) -> None:
    names = ["x", "y", "z"]
    seed_flags(env, names)
    rbs = {"x": service_runbook("x"), "y": service_runbook("y", duration="30s"),
           "z": service_runbook("z")}  # fmt: skip
    path = write_plan(tmp_path, [{"name": "x", "runbook": "x"},
                                 {"name": "y", "runbook": "y", "depends_on": ["x"]},
                                 {"name": "z", "runbook": "z", "depends_on": ["y"]}],
                      rbs, failure_policy="continue")  # fmt: skip

    async def scenario() -> EvacuationProgress:
        async with worker(sandbox_config(env)) as (client, queue):
            h = await start(client, queue, resolved(path))
            # (RUNNING comes before the child's start; its run id once the server has it)
            p = await until(h, lambda p: p.service("y").run_id is not None)
            ref = p.service("y")
            child = switch.handle(client, ref.workflow_id, ref.run_id)
            await wait_for(child, lambda c: c.step("work").state.value == "RUNNING")
            with pytest.raises(switch.RefusedError, match="by and reason are required"):
                await evacuation.abort(h, Abort(by="carol", reason=" "))
            said = await evacuation.abort(h, Abort(by="carol", reason="wrong region"))
            assert said.startswith("aborting")
            with pytest.raises(switch.RefusedError, match="already rolling back"):
                await evacuation.abort(h, Abort(by="carol", reason="again"))
            return await h.result()

    p = run(scenario())
    assert p.state == EvacState.ROLLED_BACK
    assert [p.service(n).state for n in names] == [FB, RB, SK]
    assert p.reason == "aborted by carol: wrong region"
    assert flags(env, names) == dict.fromkeys(names, "us-east-1")


def test_a_second_run_that_would_write_a_held_resource_is_refused(
    env: SandboxEnv, tmp_path: Path
) -> None:
    seed_flags(env, ["held", "other"])
    rbs = {"held": service_runbook("held"), "other": service_runbook("other", gate=True)}
    path = write_plan(tmp_path, [{"name": "held", "runbook": "held"}], rbs, name="lease-test",
                      approval={"scope": "evacuation"})  # fmt: skip
    held_text = (tmp_path / "held.yaml").read_text()
    other_path = write_plan(tmp_path, [{"name": "other", "runbook": "other"}], rbs,
                            name="lease-other")  # fmt: skip

    async def scenario() -> None:
        async with worker(sandbox_config(env)) as (client, queue):
            # an evacuation waiting at its gate holds what its services write ...
            h = await start(client, queue, resolved(path))
            await until(h, lambda p: p.open_gates == ["evacuation"])
            try:
                with pytest.raises(leases.LeaseConflictError) as caught:
                    await start_switch(client, queue, switch_plan("held", text=held_text))
                message = str(caught.value)
                assert "ssm:us-west-2:/evac/held" in message and "runbook:held" in message
                assert f"held by Evacuation {h.id} (run " in message
                assert "requested by alice" in message
            finally:
                await evacuation.reject(h, Decision(approver="bob", comment="test over"))
            assert (await h.result()).state == EvacState.ROLLED_BACK
            # ... and released however it ends (here: terminated while it held them)
            h = await start(client, queue, resolved(path))
            await until(h, lambda p: p.open_gates == ["evacuation"])
            await h.terminate("test: a run that ends badly")
            sw = await start_switch(client, queue, switch_plan("held", text=held_text))
            assert (await sw.result()).state == RunState.SUCCEEDED
            # a switch waiting at its gate holds its resources: an evacuation of them is refused
            other = switch_plan("other", text=(tmp_path / "other.yaml").read_text())
            sw = await start_switch(client, queue, other)
            await wait_for(sw, lambda p: p.state == RunState.WAITING_APPROVAL)
            try:
                with pytest.raises(leases.LeaseConflictError) as caught:
                    await start(client, queue, resolved(other_path))
                assert f"held by RegionSwitch {sw.id}" in str(caught.value)
                assert "ssm:us-west-2:/evac/other" in str(caught.value)
            finally:
                await switch.reject(sw, Decision(approver="bob", comment="test over"))
                await sw.result()
            # a dry run holds nothing and is never refused
            dry = await start(client, queue, resolved(other_path, mode="dry-run"))
            assert (await dry.result()).state == EvacState.SUCCEEDED

    run(scenario())
    assert flags(env, ["held", "other"]) == {"held": "us-west-2", "other": "us-east-1"}


def test_an_evacuation_holds_leases_past_its_own_attribute_on_shards_that_end_with_it(
    env: SandboxEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Four keys a search attribute (not 127): the plan's 6 resources need the evacuation's own
    # attribute and one shard, as a plan of more than 127 resources needs them at full size.
    monkeypatch.setattr(lease_shards, "MAX_KEYS", 4)
    names = ["big1", "big2", "big3"]
    seed_flags(env, names)
    rbs = {n: service_runbook(n) for n in names}
    path = write_plan(tmp_path, [{"name": n, "runbook": n} for n in names], rbs,
                      name="lease-shards", approval={"scope": "evacuation"})  # fmt: skip

    async def running_shards(client: Any, wid: str) -> list[Any]:
        query = f"WorkflowType = '{lease_shards.WORKFLOW_TYPE}' AND ExecutionStatus = 'Running'"
        return [wf async for wf in client.list_workflows(query) if wf.parent_id == wid]

    async def until_released(client: Any, wid: str, keys: list[str]) -> None:
        for _ in range(200):
            if not await running_shards(client, wid) and not await leases.holders(
                client, dict.fromkeys(keys, "")
            ):
                return
            await asyncio.sleep(0.05)
        raise AssertionError("the shard's leases were not released")

    async def scenario() -> None:
        async with worker(sandbox_config(env)) as (client, queue):
            inp = resolved(path)
            h = await start(client, queue, inp)  # returns once its shard is listed
            held = evacuation_resources(inp, h.id)
            own, shards = lease_shards.split(leases.keyed(held, sharded=True))
            assert [len(own), *map(len, shards)] == [4, 2]
            listed = await running_shards(client, h.id)
            run_id = (await h.describe()).run_id
            assert [wf.id for wf in listed] == [f"{h.id}.leases.{run_id}.1"]
            assert listed[0].typed_search_attributes.get(sa.RESOURCES) == shards[0]
            desc = await client.get_workflow_handle(h.id).describe()
            assert desc.typed_search_attributes.get(sa.RESOURCES) == own
            await until(h, lambda p: p.open_gates == ["evacuation"])
            # The shard's keys are the evacuation's: its holder is the evacuation, not the shard.
            found = await leases.holders(client, {k: k for k in shards[0]})
            assert found is not None and [(f.workflow_id, f.workflow_type, f.requester,
                                           f.resources) for f in found] == [
                (h.id, "Evacuation", "alice", sorted(shards[0]))]  # fmt: skip
            # Every service's switch is refused (each writes a key of the attribute or shard).
            for n in names:
                with pytest.raises(leases.LeaseConflictError, match=f"held by Evacuation {h.id}"):
                    text = (tmp_path / f"{n}.yaml").read_text()
                    await start_switch(client, queue, switch_plan(n, text=text))
            # Rejected: it ends (ROLLED_BACK), and the server ends its shard with it.
            await evacuation.reject(h, Decision(approver="bob", comment="test over"))
            assert (await h.result()).state == EvacState.ROLLED_BACK
            await until_released(client, h.id, shards[0])
            # Terminated while it waits at its gate: the shard ends all the same.
            h = await start(client, queue, inp)
            await until(h, lambda p: p.open_gates == ["evacuation"])
            assert len(await running_shards(client, h.id)) == 1
            await h.terminate("test: a run that ends badly")
            await until_released(client, h.id, shards[0])
            sw = await start_switch(client, queue, switch_plan("big2", text=(
                tmp_path / "big2.yaml").read_text()))  # fmt: skip
            assert (await sw.result()).state == RunState.SUCCEEDED

    run(scenario())
    assert flags(env, names) == {"big1": "us-east-1", "big2": "us-west-2", "big3": "us-east-1"}


def test_an_evacuation_whose_shards_are_not_listed_in_time_is_stopped_having_changed_nothing(
    env: SandboxEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lease_shards, "MAX_KEYS", 4)  # 6 resources: one shard
    monkeypatch.setattr(leases, "SHARDS_WAIT_S", 1.0)
    names = ["late1", "late2", "late3"]
    seed_flags(env, names)
    rbs = {n: service_runbook(n) for n in names}
    path = write_plan(tmp_path, [{"name": n, "runbook": n} for n in names], rbs, name="late")

    async def scenario() -> None:
        async with worker(sandbox_config(env)) as (client, _):
            inp = resolved(path)
            # On a task queue no worker polls: nothing starts its shard.
            with pytest.raises(leases.LeaseLockError) as caught:
                await start(client, f"nobody-{uuid.uuid4().hex[:6]}", inp)
            message = str(caught.value)
            assert message.startswith("evacuation 'late' was stopped before it changed anything")
            assert "did not start its 1 lease shards in time (is a worker running?)" in message
            query = "WorkflowType = 'Evacuation' AND FailoverEvacuation = 'late'"
            runs = [wf async for wf in client.list_workflows(query)]
            assert len(runs) == 1
            desc = await client.get_workflow_handle(runs[0].id, run_id=runs[0].run_id).describe()
            assert desc.status == WorkflowExecutionStatus.TERMINATED
            # Its leases went with it (its own attribute, and the shard it never had).
            held = {leases.key(n): n for n in evacuation_resources(inp, runs[0].id)}
            for _ in range(100):
                if await leases.holders(client, held) == []:
                    break
                await asyncio.sleep(0.05)
            assert await leases.holders(client, held) == []

    run(scenario())
    assert flags(env, names) == dict.fromkeys(names, "us-east-1")


def test_detach_refuses_at_once_an_evacuation_with_shards_when_no_worker_polls(
    env: SandboxEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lease_shards, "MAX_KEYS", 4)  # 6 resources: one shard
    names = ["det1", "det2", "det3"]
    rbs = {n: service_runbook(n) for n in names}
    path = write_plan(tmp_path, [{"name": n, "runbook": n} for n in names], rbs, name="det")
    assert evacuation.sharded(resolved(path))
    assert not evacuation.sharded(resolved(path, mode="dry-run"))  # a dry run holds nothing

    async def nobody(*_: Any) -> bool:
        return False

    monkeypatch.setattr("orchestrator.cli.evacuate.recent_pollers", nobody)
    ran = failover(env, "evacuate", str(path), "--from", "us-east-1", "--detach")
    assert ran.returncode == 2, ran.stderr
    last = ran.stderr.splitlines()[-1]  # (after the start order it worked out)
    assert last.startswith("error: evacuation 'det' holds more leases than one search attribute")
    assert last.endswith("no worker polls 'failover': start one (failover worker), or leave out "
                         "--detach")  # fmt: skip

    async def started() -> list[Any]:
        async with worker(sandbox_config(env)) as (client, _):
            query = "WorkflowType = 'Evacuation' AND FailoverEvacuation = 'det'"
            return [wf async for wf in client.list_workflows(query)]

    assert run(started()) == []  # nothing was started


@pytest.mark.slow
def test_the_example_plan_evacuates_and_fails_back(fresh: SandboxEnv) -> None:
    plan = str(RUNBOOKS / "plans" / "platform.yaml")
    before = world(fresh)

    def evacuate(frm: str, to: str) -> dict[str, Any]:
        r = failover(fresh, "evacuate", plan, "--from", frm, "--to", to, "--auto-approve", "bob",
                     "-o", "json")  # fmt: skip
        assert r.returncode == 0, r.stderr
        out: dict[str, Any] = json.loads(r.stdout)
        return out

    there = evacuate("us-east-1", "us-west-2")
    w = world(fresh)
    assert w["aurora_writer"] == "us-west-2" and w["api_weights"]["us-west-2"] == 100
    assert w["us-west-2"]["db_replica"] is False and w["us-east-1"]["replicas"]["cart"] == 0
    assert [s["outcome"] for s in there["services"]] == ["SUCCEEDED"] * 4
    assert [n["name"] for n in there["critical_path"]] == [
        "gate:evacuation", "database", "workloads", "traffic"]  # fmt: skip
    assert there["rto_s"] > 0 and there["objective"]["met"] is True
    assert all(s["preapproved"] == ["approve"] for s in there["services"][:3])
    status = failover(fresh, "status", there["workflow_id"], "-o", "json")
    assert status.returncode == 0 and json.loads(status.stdout)["state"] == "SUCCEEDED"
    md = failover(fresh, "report", there["workflow_id"])
    assert md.returncode == 0 and "Critical path taken" in md.stdout
    back = evacuate("us-west-2", "us-east-1")
    assert back["outcome"] == "SUCCEEDED"
    assert world(fresh) == before
