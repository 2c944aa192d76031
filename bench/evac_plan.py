"""The evacuation benchmark's plan: N services of real step types, and the bounds of its RTO.

Each service has its own runbook (`bench-<service>`, regions us-east-1 and us-west-2, written with
`${{ from_region }}` / `${{ to_region }}` so it switches either way) over resources of its own:
a Deployment and a ConfigMap per region (namespace `bench`), SSM parameters, Route 53 weighted and
failover records in the zone `bench.example.`, and, by shape, an Auto Scaling group or an ALB per
region. Three shapes, in turn (web, api, web, api, worker):

- web (10 steps): writes frozen (SSM, source), target scaled up (rollout), target flag
  (ConfigMap), target ALB forwards locally, Route 53 weights in 2 increments, the failover record,
  source ALB forwards to the peer, source flag, source scaled to 0, target active (SSM);
- api (10 steps): as web with an Auto Scaling group in place of the ALB, weights in 1 increment;
- worker (9 steps): no traffic step: SSM, scale, ASG, flags, queue region (SSM), scale down.

Services are laid out in `TIERS` tiers in plan order; each service of a tier depends on one or two
services of the tier before (seeded, deterministic).

Bounds of the RTO (the report's: first step of any service to the last service's last traffic
step, or its end for a service with no traffic step), from the sandbox's latency model:

- the dependency bound: the longest chain of modelled step durations through one DAG of every
  service's steps, where a service's first steps wait for every step of the services it depends
  on (`bench.rto.lower_bound`, ending at each service's RTO steps: `bench.rto.rto_ends`);
- the slot bound: every service holds one of `max_parallel` places for at least its own bound
  (its steps' longest chain to its RTO steps), so RTO >= their sum / max_parallel;
- the lower bound is the larger of the two (`bound_by` says which);
- the ideal schedule: the services' own bounds placed as the workflow places them (plan order,
  max_parallel, a service once its dependencies have ended) with no overhead at all.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bench.rto import Bound, lower_bound, modelled, rto_ends
from orchestrator.evacuation.rules import predecessors, start_order
from orchestrator.evacuation.runs import EvacuationInput
from orchestrator.sandbox.latency import LatencyModel

REGIONS = ("us-east-1", "us-west-2")
ZONE = "bench.example."
NAMESPACE = "bench"
TIERS = 4
SHAPES = ("web", "api", "web", "api", "worker")
FROM, TO = "${{ from_region }}", "${{ to_region }}"


@dataclass(frozen=True)
class ServiceSpec:
    """One generated service: its name, shape, tier and the services it depends on."""

    name: str
    shape: str
    tier: int
    depends_on: list[str]

    # The names of its own resources (each region has one of each, under the same name).
    @property
    def deployment(self) -> str:
        return self.name

    @property
    def configmap(self) -> str:
        return f"{self.name}-config"

    @property
    def record(self) -> str:
        return f"{self.name}.{ZONE}"

    @property
    def failover_record(self) -> str:
        return f"{self.name}-www.{ZONE}"

    @property
    def asg(self) -> str:
        return f"{self.name}-asg"

    @property
    def alb(self) -> str:
        return f"{self.name}-alb"

    def ssm(self, leaf: str) -> str:
        return f"/bench/{self.name}/{leaf}"


def layout(n: int, seed: int = 1, tiers: int = TIERS) -> list[ServiceSpec]:
    """N services in `tiers` tiers (plan order); each depends on 1 or 2 of the tier before."""
    rng = random.Random(seed)
    tiers = max(1, min(tiers, n))
    out: list[ServiceSpec] = []
    for i in range(n):
        tier = i * tiers // n + 1
        before = [s.name for s in out if s.tier == tier - 1]
        deps = sorted(rng.sample(before, min(len(before), rng.choice((1, 2))))) if before else []
        out.append(ServiceSpec(f"s{i:03d}", SHAPES[i % len(SHAPES)], tier, deps))
    return out


def _step(sid: str, stype: str, params: dict[str, Any], *, region: str | None = None,
          depends_on: Sequence[str] = ()) -> dict[str, Any]:  # fmt: skip
    out: dict[str, Any] = {"id": sid, "type": stype}
    if depends_on:
        out["depends_on"] = list(depends_on)
    if region is not None:
        out["region"] = region
    out["params"] = params
    return out


def steps_of(s: ServiceSpec) -> list[dict[str, Any]]:
    """The runbook steps of a service (in an order where every step follows its dependencies)."""
    ns = NAMESPACE
    freeze = _step(
        "freeze-writes",
        "ssm_parameter",
        {"name": s.ssm("writes-frozen"), "value": "true"},
        region=FROM,
    )
    up = _step(
        "scale-up-target",
        "k8s_scale",
        {"names": [s.deployment], "namespace": ns, "replicas": 2},
        region=TO,
    )
    flag_to = _step(
        "target-flag",
        "k8s_configmap_flag",
        {"namespace": ns, "name": s.configmap, "key": "active", "value": "true"},
        region=TO,
        depends_on=["scale-up-target"],
    )
    flag_from_params = {"namespace": ns, "name": s.configmap, "key": "active", "value": "false"}
    down = {"names": [s.deployment], "namespace": ns, "replicas": 0}
    active = _step(
        "target-active",
        "ssm_parameter",
        {"name": s.ssm("active"), "value": "true"},
        region=TO,
        depends_on=["failover-record"],
    )
    weights = {"zone": ZONE, "record": s.record, "weights": {TO: 100, FROM: 0}}
    failover = _step(
        "failover-record",
        "route53_failover",
        {"zone": ZONE, "record": s.failover_record, "primary": TO},
        depends_on=["dns-weights"],
    )
    if s.shape == "web":
        return [
            freeze, up, flag_to,
            _step("target-alb", "elbv2_weights",
                  {"load_balancer": s.alb, "weights": {f"{s.name}-local": 100,
                                                       f"{s.name}-peer": 0}},
                  region=TO, depends_on=["scale-up-target"]),
            _step("dns-weights", "route53_weighted", weights | {"increments": 2},
                  depends_on=["freeze-writes", "target-flag", "target-alb"]),
            failover,
            _step("source-alb", "elbv2_weights",
                  {"load_balancer": s.alb, "weights": {f"{s.name}-local": 0,
                                                       f"{s.name}-peer": 100}},
                  region=FROM, depends_on=["dns-weights"]),
            _step("source-flag", "k8s_configmap_flag", flag_from_params, region=FROM,
                  depends_on=["dns-weights"]),
            _step("scale-down-source", "k8s_scale", down, region=FROM,
                  depends_on=["failover-record", "source-alb"]),
            active,
        ]  # fmt: skip
    asg_to = _step("target-asg", "asg_capacity", {"name": s.asg, "desired": 2}, region=TO)
    if s.shape == "api":
        return [
            freeze, up, asg_to, flag_to,
            _step("dns-weights", "route53_weighted", weights,
                  depends_on=["freeze-writes", "target-flag", "target-asg"]),
            failover,
            _step("source-asg", "asg_capacity", {"name": s.asg, "desired": 0, "min": 0},
                  region=FROM, depends_on=["failover-record"]),
            _step("source-flag", "k8s_configmap_flag", flag_from_params, region=FROM,
                  depends_on=["dns-weights"]),
            _step("scale-down-source", "k8s_scale", down, region=FROM,
                  depends_on=["failover-record"]),
            active,
        ]  # fmt: skip
    flag_to["depends_on"] = ["scale-up-target", "target-asg"]
    return [
        freeze, up, asg_to, flag_to,
        _step("queue-region", "ssm_parameter", {"name": s.ssm("queue-region"), "value": TO},
              region=TO, depends_on=["freeze-writes", "target-flag"]),
        _step("source-flag", "k8s_configmap_flag", flag_from_params, region=FROM,
              depends_on=["queue-region"]),
        _step("source-asg", "asg_capacity", {"name": s.asg, "desired": 0, "min": 0},
              region=FROM, depends_on=["queue-region"]),
        _step("scale-down-source", "k8s_scale", down, region=FROM,
              depends_on=["queue-region"]),
        _step("target-active", "ssm_parameter", {"name": s.ssm("active"), "value": "true"},
              region=TO, depends_on=["source-asg", "scale-down-source"]),
    ]  # fmt: skip


def runbook_of(s: ServiceSpec) -> dict[str, Any]:
    """A service's runbook (a real one: the normal loader reads it)."""
    return {
        "apiVersion": "failover.dev/v1",
        "kind": "Runbook",
        "name": f"bench-{s.name}",
        "description": f"Benchmark service {s.name} ({s.shape}, tier {s.tier}).",
        "owners": ["bench"],
        "regions": list(REGIONS),
        "max_parallel": 4,
        "steps": steps_of(s),
    }


def plan_of(
    services: Sequence[ServiceSpec], max_parallel: int, name: str | None = None
) -> dict[str, Any]:
    """The evacuation plan of these services (each service's runbook `bench-<name>.yaml`)."""
    return {
        "apiVersion": "failover.dev/v1",
        "kind": "Evacuation",
        "name": name or f"bench-{len(services)}",
        "description": f"{len(services)} benchmark services in tiers.",
        "owners": ["bench"],
        "max_parallel": max_parallel,
        "failure_policy": "stop",
        "services": [
            {"name": s.name, "runbook": f"bench-{s.name}.yaml",
             "description": f"{s.shape}, tier {s.tier}", "depends_on": list(s.depends_on)}
            for s in services
        ],
    }  # fmt: skip


def write(
    folder: Path, services: Sequence[ServiceSpec], max_parallel: int, name: str | None = None
) -> Path:
    """Write every service's runbook and the plan into `folder`; returns the plan's path."""
    folder.mkdir(parents=True, exist_ok=True)
    for s in services:
        path = folder / f"bench-{s.name}.yaml"
        if not path.exists():
            path.write_text(yaml.safe_dump(runbook_of(s), sort_keys=False))
    plan = plan_of(services, max_parallel, name)
    path = folder / f"{plan['name']}.yaml"
    path.write_text(yaml.safe_dump(plan, sort_keys=False))
    return path


# ------------------------------------------------------------------------------------ bounds
@dataclass(frozen=True)
class EvacuationBound:
    """The bounds of an evacuation's RTO (seconds), and the chain that makes the first."""

    chain: Bound  # steps as "service/step", first first
    slots_s: float
    max_parallel: int
    service_s: dict[str, float]  # each service's own bound (its chain to its RTO steps)
    ideal_s: float
    whole_s: dict[str, float]  # each service's whole duration (every step: what a slot holds)

    @property
    def seconds(self) -> float:
        return max(self.chain.seconds, self.slots_s)

    @property
    def bound_by(self) -> str:
        return "dependencies" if self.chain.seconds >= self.slots_s else "slots"

    @property
    def services_on_chain(self) -> list[str]:
        return list(dict.fromkeys(p.split("/", 1)[0] for p in self.chain.path))


def ideal(
    took: Mapping[str, float],
    preds: Mapping[str, Sequence[str]],
    max_parallel: int,
    order: Sequence[str] | None = None,
) -> float:
    """Services taking `took` scheduled with no overhead: each starts the moment its
    predecessors have ended and a place is free, in `order` (the workflow's: `start_order`;
    default: as `took` lists them)."""
    order = list(took) if order is None else list(order)
    ended: dict[str, float] = {}
    running: dict[str, float] = {}  # name -> end time
    now = 0.0
    while len(ended) < len(order):
        for name in order:
            if name in ended or name in running or len(running) >= max_parallel:
                continue
            if all(p in ended for p in preds[name]):
                running[name] = now + took[name]
        name, now = min(running.items(), key=lambda kv: kv[1])
        ended[name] = running.pop(name)
    return max(ended.values(), default=0.0)


def evacuation_bound(inp: EvacuationInput, model: LatencyModel) -> EvacuationBound:
    """The bounds of a resolved evacuation's RTO under `model` (see the module's docstring)."""
    deps: dict[str, list[str]] = {}
    cost: dict[str, float] = {}
    ends: list[str] = []
    own: dict[str, float] = {}
    preds = predecessors(inp.services)
    for s in inp.services:
        sw = s.switch
        steps = modelled(sw, model)
        rto_steps = rto_ends(sw)
        own[s.name] = lower_bound({t.id: t.depends_on for t in sw.steps}, steps, rto_steps).seconds
        for t in sw.steps:
            node = f"{s.name}/{t.id}"
            cost[node] = steps[t.id]
            inner = [f"{s.name}/{d}" for d in t.depends_on]
            # A service's first steps wait for every step of the services it depends on.
            outer = [] if t.depends_on else [f"{p}/$end" for p in preds[s.name]]
            deps[node] = [*inner, *outer]
        cost[f"{s.name}/$end"] = 0.0
        deps[f"{s.name}/$end"] = [f"{s.name}/{t.id}" for t in sw.steps]
        ends += [f"{s.name}/{sid}" for sid in rto_steps]
    chain = lower_bound(deps, cost, ends)
    chain = Bound([p for p in chain.path if not p.endswith("/$end")], chain.seconds)
    slots = sum(own.values()) / inp.max_parallel
    # The ideal schedule needs each service's whole duration (a dependent waits for its end);
    # the RTO ends at the last service's RTO steps, which end no later.
    whole = {
        s.name: lower_bound({t.id: t.depends_on for t in s.switch.steps},
                            modelled(s.switch, model)).seconds
        for s in inp.services
    }  # fmt: skip
    best = ideal(whole, preds, inp.max_parallel, start_order(inp.services))
    return EvacuationBound(chain, slots, inp.max_parallel, own, best, whole)
