"""The evacuation benchmark's generated plan (`bench/evac_plan.py`): its runbooks and plan load
through the normal loaders and pass `failover validate`'s checks, every service writes resources
of its own, the plain script knows every step type the plan uses, and the bounds of the RTO are
right on small hand-checked plans. Pure: no sandbox, no Temporal."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import evac_plan, evac_world
from bench.evac_plan import ServiceSpec, evacuation_bound, ideal, layout, write
from orchestrator import leases
from orchestrator.evacuation.loader import load_file
from orchestrator.evacuation.resolve import check, overlaps, resolve_evacuation, resources
from orchestrator.evacuation.runs import EvacuationInput
from orchestrator.runbook.loader import load_file as load_runbook
from orchestrator.sandbox.latency import LatencyModel

MODEL = LatencyModel(time_scale=0.1)  # rollout 2 s, one Route 53 propagation 3 s
#: A service's own bound at time scale 0.1 (its chain to its last traffic step):
#: web: rollout 2 + weights in 2 increments 6 + failover record 3; api: 2 + 3 + 3.
WEB, API = 11.0, 8.0


def resolved(folder: Path, services: list[ServiceSpec], max_parallel: int) -> EvacuationInput:
    path = write(folder, services, max_parallel)
    return resolve_evacuation(load_file(path), "us-east-1", "us-west-2", requester="bench")


def test_generated_plan_loads_and_validates(tmp_path: Path) -> None:
    services = layout(9, seed=3)
    assert [s.tier for s in services] == [1, 1, 1, 2, 2, 3, 3, 4, 4]
    assert {s.shape for s in services} == {"web", "api", "worker"}
    for s in services:  # each depends on one or two of the tier before
        assert (s.tier == 1) == (not s.depends_on) and len(s.depends_on) <= 2
        assert all(d in {o.name for o in services if o.tier == s.tier - 1} for d in s.depends_on)
    path = write(tmp_path, services, max_parallel=5)
    for s in services:
        rb = load_runbook(tmp_path / f"bench-{s.name}.yaml")
        assert rb.name == f"bench-{s.name}" and 9 <= len(rb.steps) <= 10
    loaded = load_file(path)
    assert [s.name for s in loaded.plan.services] == [s.name for s in services]
    assert check(loaded) == []  # both directions resolve, nothing written twice, leases fit
    inp = resolve_evacuation(loaded, "us-east-1", "us-west-2", requester="bench")
    assert len(resources(inp, "evacuation-bench-9")) == 117  # 9 x 13: one search attribute
    # Past 127 resources the evacuation holds the rest on lease shards: `failover validate`
    # accepts it.
    ten = load_file(write(tmp_path / "ten", layout(10), 5))
    resolved = resolve_evacuation(ten, "us-east-1", "us-west-2", requester="bench")
    assert len(leases.keyed(resources(resolved, "evacuation-bench-10"), sharded=True)) == 130
    assert [len(s) for s in leases.shards(resources(resolved, "evacuation-bench-10"))] == [3]
    assert check(ten) == []
    assert overlaps(inp, "evacuation-bench") == []
    used = {t.type for s in inp.services for t in s.switch.steps}
    assert used == {"ssm_parameter", "k8s_scale", "k8s_configmap_flag", "asg_capacity",
                    "elbv2_weights", "route53_weighted", "route53_failover"}  # fmt: skip
    assert used <= set(evac_world.STEPS)  # the plain script makes every one of them
    # Resolved for the evacuation's direction: the target's Deployment scaled up, the weights.
    web = inp.services[0].switch
    up = next(t for t in web.steps if t.id == "scale-up-target")
    assert up.region == "us-west-2" and up.params["names"] == ["s000"]
    dns = next(t for t in web.steps if t.id == "dns-weights")
    assert dns.params["weights"] == {"us-west-2": 100, "us-east-1": 0}
    assert dns.params["record"] == "s000.bench.example."


def test_bound_of_a_chain_of_three_services(tmp_path: Path) -> None:
    """web -> api -> web: each waits for the whole of the one before (its last steps cost
    nothing here); the RTO ends at the last one's traffic."""
    services = layout(3)
    assert [(s.shape, s.depends_on) for s in services] == [
        ("web", []), ("api", ["s000"]), ("web", ["s001"])
    ]  # fmt: skip
    b = evacuation_bound(resolved(tmp_path, services, max_parallel=2), MODEL)
    assert b.service_s == pytest.approx({"s000": WEB, "s001": API, "s002": WEB})
    assert b.chain.seconds == pytest.approx(WEB + API + WEB) == pytest.approx(30.0)
    assert b.services_on_chain == ["s000", "s001", "s002"]
    assert b.chain.path[:5] == ["s000/scale-up-target", "s000/target-flag", "s000/dns-weights",
                                "s000/failover-record", "s000/scale-down-source"]  # fmt: skip
    assert b.chain.path[-1] == "s002/failover-record"
    assert b.slots_s == pytest.approx(15.0) and b.bound_by == "dependencies"
    assert b.seconds == pytest.approx(30.0) and b.ideal_s == pytest.approx(30.0)


def test_bound_of_independent_services_is_slot_limited(tmp_path: Path) -> None:
    """Three independent services (web, api, worker: the worker's 2 s rollout, no traffic): the
    longest chain is one web service; one at a time, their sum."""
    services = [
        ServiceSpec(f"s00{i}", shape, 1, []) for i, shape in enumerate(evac_plan.SHAPES[2:])
    ]
    assert [s.shape for s in services] == ["web", "api", "worker"]
    one = evacuation_bound(resolved(tmp_path / "one", services, max_parallel=1), MODEL)
    assert one.service_s == pytest.approx({"s000": WEB, "s001": API, "s002": 2.0})
    assert one.chain.seconds == pytest.approx(WEB)
    assert one.slots_s == pytest.approx(21.0) and one.bound_by == "slots"
    assert one.seconds == pytest.approx(21.0) == pytest.approx(one.ideal_s)
    three = evacuation_bound(resolved(tmp_path / "three", services, max_parallel=3), MODEL)
    assert three.bound_by == "dependencies" and three.seconds == pytest.approx(WEB)
    assert three.ideal_s == pytest.approx(WEB)


def test_ideal_schedule_places_services_in_plan_order() -> None:
    took = {"a": 4.0, "b": 1.0, "c": 1.0, "d": 2.0}
    preds = {"a": [], "b": [], "c": ["b"], "d": ["b"]}
    # Two places: a and b start; b ends at 1, c and d wait for a place: c at 1, d at 2.
    assert ideal(took, preds, 2) == pytest.approx(4.0)
    assert ideal(took, preds, 1) == pytest.approx(8.0)
    assert ideal(took, preds, 4) == pytest.approx(4.0)
    assert ideal({"a": 1.0, "b": 5.0}, {"a": [], "b": ["a"]}, 3) == pytest.approx(6.0)
