"""Evacuation plans without a sandbox: validation (file:line:col), resolution, overlaps, the
rules the workflow follows (order, pre-approval, outcome, critical path) and lease keys."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from orchestrator import lease_shards, leases
from orchestrator.evacuation.loader import load_file, load_text
from orchestrator.evacuation.resolve import check, overlaps, resolve_evacuation, resources
from orchestrator.evacuation.rules import (
    gate_for,
    outcome,
    path_taken,
    preapprove,
    predecessors,
)
from orchestrator.evacuation.runs import (
    EvacState,
    GateWait,
    ServiceRecord,
    ServiceState,
    child_workflow_id,
    is_evacuation,
)
from orchestrator.runbook.loader import RunbookError
from orchestrator.runbook.resolve import ResolveError
from tests.cli import failover
from tests.evacuation.helpers import service_runbook, write_plan
from tests.workflows.helpers import plan

ROOT = Path(__file__).resolve().parents[2]
PLATFORM = ROOT / "runbooks" / "plans" / "platform.yaml"
RUNBOOKS = ROOT / "runbooks"


def _problems(text: str) -> list[str]:
    with pytest.raises(RunbookError) as caught:
        load_text(text, "plan.yaml", RUNBOOKS)
    return [str(p) for p in caught.value.problems]


HEAD = "apiVersion: failover.dev/v1\nkind: Evacuation\nname: p\n"


def test_plan_problems_name_file_line_and_column() -> None:
    text = HEAD + (
        "failure_policy: sometimes\n"  # 4
        "services:\n"
        "  - name: a\n"
        "    runbook: noop-drill.yaml\n"
        "    colour: red\n"  # 8
    )
    assert _problems(text) == [
        "plan.yaml:4:17: failure_policy: expected 'continue', 'stop' or 'rollback_all'",
        "plan.yaml:8:5: services[0].colour: unknown field",
    ]
    text = HEAD + (
        "services:\n"
        "  - name: a\n"  # 5
        "    runbook: noop-drill.yaml\n"
        "    tier: 2\n"
        "    depends_on: [b, zz]\n"  # 8
        "    params: {nope: 1}\n"  # 9
        "  - name: b\n"
        "    runbook: noop-drill.yaml\n"
        "    tier: 3\n"
        "  - name: a\n"  # 13
        "    runbook: missing.yaml\n"  # 14
    )
    assert _problems(text) == [
        "plan.yaml:13:11: services[2].name: duplicate service 'a' (first at services[0])",
        "plan.yaml:8:18: services[0].depends_on[0]: 'b' is in tier 3, after this service's "
        "tier 2: a service cannot wait for a later tier",
        "plan.yaml:8:21: services[0].depends_on[1]: depends on unknown service 'zz'",
        "plan.yaml:9:14: services[0].params.nope: runbook 'noop-drill' has no parameter 'nope' "
        "(it has: pause)",
        f"plan.yaml:14:14: services[2].runbook: no runbook file 'missing.yaml' (looked for "
        f"{RUNBOOKS / 'missing.yaml'})",
    ]


def test_a_cycle_and_an_invalid_runbook_keep_their_own_locations(tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text(
        "apiVersion: failover.dev/v1\nkind: Runbook\nname: broken\nregions: [us-east-1, "
        "us-west-2]\nsteps:\n  - id: s\n    type: warp\n"
    )
    text = HEAD + (
        "services:\n"
        "  - {name: a, runbook: broken.yaml, depends_on: [b]}\n"  # 5
        "  - {name: b, runbook: broken.yaml, depends_on: [a]}\n"
    )
    with pytest.raises(RunbookError) as caught:
        load_text(text, "plan.yaml", tmp_path)
    got = [str(p) for p in caught.value.problems]
    assert got[0].startswith("plan.yaml:5:24: services[0].runbook: runbook 'broken.yaml' is not "
                             "valid: ")  # fmt: skip
    assert "plan.yaml:5:49: services[0].depends_on: dependency cycle: a -> b -> a" in got
    # the runbook's own problem, once (two services share the runbook)
    own = [p for p in got if p.startswith(f"{tmp_path / 'broken.yaml'}:7:11: steps[0].type: "
                                          "unknown step type 'warp'")]  # fmt: skip
    assert len(own) == 1


def test_two_services_writing_one_resource_are_reported_by_validate_and_plan(
    tmp_path: Path,
) -> None:
    rbs = {"one": service_runbook("shared"), "two": service_runbook("shared")}
    rbs["two"]["name"] = "two"
    path = write_plan(tmp_path, [{"name": "x", "runbook": "one"},
                                 {"name": "y", "runbook": "two", "tier": 2}], rbs)  # fmt: skip
    problems = [str(p) for p in check(load_file(path))]
    assert problems == [
        f"{path}:8:12: services[1].runbook: service 'y' writes ssm:us-west-2:/evac/shared, as "
        "service 'x' does (us-east-1 -> us-west-2): two services of one evacuation must not "
        "write the same resource"
    ]
    r = failover(None, "validate", str(path))
    assert r.returncode == 2 and r.stderr.strip() == f"error: {problems[0]}"
    r = failover(None, "plan", str(path), "--from", "us-east-1")  # before any preflight
    assert r.returncode == 2 and "as service 'x' does" in r.stderr
    # the example plan's four runbooks write nothing in common
    r = failover(None, "validate", str(PLATFORM), "-o", "json")
    assert r.returncode == 0 and json.loads(r.stdout)["services"] == 4


def test_the_example_plan_resolves_with_failbacks_and_no_overlap() -> None:
    lp = load_file(PLATFORM)
    inp = resolve_evacuation(lp, "us-east-1", None, requester="alice")
    assert [(s.name, s.switch.to_region, s.failback is not None) for s in inp.services] == [
        ("database", "us-west-2", True), ("workloads", "us-west-2", True),
        ("batch", "us-west-2", True), ("traffic", "us-west-2", True),
    ]  # fmt: skip
    assert overlaps(inp, "evacuation-platform") == []
    held = resources(inp, "evacuation-platform")
    assert "rds:global-cluster/shop-global" in held and "route53:api.shop.example." in held
    assert {"runbook:aurora-only", "runbook:dns-only"} <= set(held)
    assert predecessors(inp.services)["traffic"] == ["workloads", "database", "batch"]
    with pytest.raises(ResolveError) as caught:  # static stability, named by service
        resolve_evacuation(lp, "us-east-1", None, requester="alice", kind="unplanned")
    assert str(caught.value).startswith(
        "service workloads (../kubernetes-only.yaml): step freeze-writes (k8s_configmap_flag) "
        "depends on us-east-1, the region an unplanned run leaves"
    )
    noop = load_text(HEAD + "services:\n  - {name: n, runbook: noop-drill.yaml}\n", "p", RUNBOOKS)
    unplanned = resolve_evacuation(noop, "us-east-1", None, requester="alice", kind="unplanned")
    assert unplanned.services[0].failback is None  # its region is down: nothing to switch back
    schema = json.loads(failover(None, "schema", "--kind", "evacuation").stdout)
    assert schema["title"] == "EvacuationPlan" and "failure_policy" in schema["properties"]


def test_service_gates_are_preapproved_only_where_they_allow_it() -> None:
    text = (RUNBOOKS / "aurora-only.yaml").read_text()  # approvers: alice, bob
    inp = plan("aurora-only.yaml", text=text)
    done, left = preapprove(inp, ["carol"])[1:]
    assert (done, left) == ([], ["approve"])  # carol is not among its approvers
    out, done, left = preapprove(inp, ["bob"])
    assert (done, left) == (["approve"], [])
    assert out.steps[1].gate is not None and out.steps[1].gate.preapproved_by == "bob"
    assert preapprove(inp, ["alice"])[1] == []  # the requester never approves her own switch
    two = text.replace("approvals: 1", "approvals: 2")
    assert preapprove(plan("aurora-only.yaml", text=two), ["bob"])[2] == ["approve"]
    irreversible = (RUNBOOKS / "shop-region-switch.yaml").read_text()
    shop = resolve_evacuation(  # the shop's unplanned gate guards an irreversible failover
        load_text(HEAD + f"services:\n  - {{name: s, runbook: {RUNBOOKS}/shop-region-switch.yaml}}\n"),
        "us-east-1", "us-west-2", requester="alice", kind="unplanned",
    ).services[0].switch  # fmt: skip
    assert "irreversible: true" in irreversible
    assert preapprove(shop, ["bob"])[1] == []
    assert gate_for("tier", 2) == "tier-2" and gate_for("evacuation", 2) == "evacuation"


def _rec(name: str, state: ServiceState, after: str = "", end: int = 0) -> ServiceRecord:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    return ServiceRecord(name=name, runbook=name, state=state, after=after,
                         ended_at=t0 + timedelta(seconds=end) if end else None)  # fmt: skip


def test_outcome_and_the_critical_path_taken() -> None:
    S, RB, FB = ServiceState.SUCCEEDED, ServiceState.ROLLED_BACK, ServiceState.FAILED_BACK
    assert outcome([_rec("a", S), _rec("b", S)]) == EvacState.SUCCEEDED
    assert outcome([_rec("a", S), _rec("b", RB)]) == EvacState.PARTIAL
    assert outcome([_rec("a", FB), _rec("b", RB), _rec("c", ServiceState.SKIPPED)]) == (
        EvacState.ROLLED_BACK
    )
    assert outcome([_rec("a", S), _rec("b", ServiceState.FAILBACK_FAILED)]) == (
        EvacState.ROLLBACK_FAILED
    )
    records = [
        _rec("db", S, "gate:tier-1", 5),
        _rec("app", S, "db", 9),
        _rec("jobs", S, "db", 7),
        _rec("web", S, "gate:tier-3", 12),
        _rec("late", S, "slot:jobs", 11),
    ]
    gates = {"tier-1": GateWait(), "tier-3": GateWait(after="app")}
    assert path_taken(records, gates, "web") == ["gate:tier-1", "db", "app", "gate:tier-3", "web"]
    assert path_taken(records, gates, "late") == ["gate:tier-1", "db", "jobs", "late"]


def test_ids_and_lease_keys() -> None:
    assert child_workflow_id("evacuation-p", "db") == "evacuation-p.db"
    assert child_workflow_id("evacuation-p", "db", failback=True) == "evacuation-p.db.failback"
    assert is_evacuation("evacuation-p") and not is_evacuation("evacuation-p.db")
    assert not is_evacuation("switch-p")
    k = leases.key("route53:api.shop.example.")
    assert k == leases.key("route53:api.shop.example.") and len(k) == 13 and k.startswith("r")
    assert k != leases.key("route53:www.shop.example.")
    shop = plan("shop-region-switch.yaml")
    names = leases.resources(shop, "switch-shop-region-switch")
    assert names[0] == "runbook:shop-region-switch"
    assert "k8s:us-east-1:configmap/shop/shop-flags#writes-frozen" in names
    assert "rds:global-cluster/shop-global" in names and len(names) == len(set(names))
    with pytest.raises(ValueError, match="at most 127 resources"):
        leases.keyed(f"r{i}" for i in range(128))
    # The most a run may hold is what Temporal takes as one search attribute value (2,048 bytes).
    most = sorted(leases.keyed(f"r{i}" for i in range(lease_shards.MAX_KEYS)))
    assert len(json.dumps(most, separators=(",", ":"))) <= 2048
    assert len(json.dumps([*most, most[0]], separators=(",", ":"))) > 2048


def test_lease_shards_hold_what_the_evacuations_own_attribute_cannot() -> None:
    names = [f"route53:s{i:03d}.example." for i in range(300)]
    keys = leases.keyed(names, sharded=True)
    assert len(keys) == 300
    own, shards = lease_shards.split(keys)
    # every key once, in sorted order: the first 127 on the evacuation, the rest 127 a shard
    assert [len(own), *map(len, shards)] == [127, 127, 46]
    assert own + [k for s in shards for k in s] == sorted(keys)
    assert shards == leases.shards(names) and lease_shards.split(reversed(own)) == (own, [])
    for held in (own, *shards):  # each fits one search attribute value
        assert len(json.dumps(held, separators=(",", ":"))) <= 2048
    assert leases.shards(names[:127]) == []
    # A shard's id belongs to one run of its evacuation (a run started just after another must
    # not meet the last one's shards, which the server ends a moment after it closes).
    assert lease_shards.shard_id("evacuation-p", "run-a", 2) == "evacuation-p.leases.run-a.2"
    assert lease_shards.shard_id("evacuation-p", "run-b", 2) != "evacuation-p.leases.run-a.2"


def test_the_ui_details_and_the_live_table() -> None:
    from rich.console import Console

    from orchestrator import ui
    from orchestrator.cli.views import evacuation_table
    from orchestrator.evacuation.runs import EvacuationProgress

    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    p = EvacuationProgress(
        plan="platform", from_region="us-east-1", mode="drill", requester="alice",
        failure_policy="stop", max_parallel=2, state=EvacState.WAITING_APPROVAL, started_at=t0,
        services=[_rec("db", ServiceState.SUCCEEDED, "gate:tier-1", 5),
                  _rec("app", ServiceState.PENDING)],
        open_gates=["tier-2"], gates={"tier-1": GateWait(outcome="approved")},
    )  # fmt: skip
    text = ui.evacuation_details(p)
    assert "**Gate `tier-2` is open**" in text and '"gate": "tier-2"' in text
    assert "| db | 1 | SUCCEEDED |" in text and "| app | 1 | PENDING |" in text
    assert "Critical path so far: gate:tier-1 → db" in text
    console = Console(width=80, record=True)
    console.print(evacuation_table(p, {}, "evacuation-platform", 80))
    out = console.export_text()
    said = " ".join(out.split())  # the lines under the table wrap
    assert "failover approve evacuation-platform --gate tier-2 --as NAME" in said
    rows = [line for line in out.splitlines() if line.startswith(("│db", "│app"))]
    assert len(rows) == 2  # one line per service at 80 columns
