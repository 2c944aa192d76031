"""The lower bound of RTO (`bench/rto.py`): the longest chain of modelled durations through a
runbook's DAG, from the sandbox's latency model. Pure: no sandbox, no Temporal."""

from __future__ import annotations

import pytest

from activities import registry
from bench.rto import RUNBOOK, Bound, bound_of, lower_bound, resolved
from orchestrator.runbook.loader import load_text
from orchestrator.runbook.resolve import resolve
from orchestrator.sandbox.latency import STEP_OPERATIONS, LatencyModel

#: A hand-made runbook: two chains meet at `dns` (two Route 53 changes), then a gate and a no-op.
#:   warm (noop 1s) -> pods (scale up: a rollout) --+
#:   slow (noop 5s) --------------------------------+-> dns (2 increments) -> ok (gate) -> done
HAND_MADE = """\
apiVersion: failover.dev/v1
kind: Runbook
name: hand-made
regions: [us-east-1, us-west-2]
max_parallel: 4
approvers: [alice, bob]
steps:
  - {id: warm, type: noop, params: {duration: 1s}}
  - id: pods
    type: k8s_scale
    depends_on: [warm]
    params: {names: [web], namespace: shop, replicas: 3}
  - {id: slow, type: noop, params: {duration: 5s}}
  - id: dns
    type: route53_weighted
    depends_on: [pods, slow]
    params: {zone: shop.example., record: api.shop.example., increments: 2,
             weights: {"${{ to_region }}": 100, "${{ from_region }}": 0}}
  - {id: ok, type: approval, depends_on: [dns]}
  - {id: done, type: noop, depends_on: [ok], params: {duration: 500ms}}
  - {id: idle, type: k8s_scale, params: {names: [web], namespace: shop, replicas: 0}}
"""


def test_longest_path_of_a_small_dag() -> None:
    deps = {"a": [], "b": ["a"], "c": [], "d": ["b", "c"], "e": ["d"]}
    cost = {"a": 1.0, "b": 2.0, "c": 4.0, "d": 3.0, "e": 0.0}
    assert lower_bound(deps, cost) == Bound(["c", "d", "e"], 7.0)
    # Only the paths that end where the measured time ends count.
    assert lower_bound(deps, cost, ends=["b"]) == Bound(["a", "b"], 3.0)
    assert lower_bound(deps, cost, ends=["a", "c"]) == Bound(["c"], 4.0)
    # Of equal costs, the path with more steps, then the first in the DAG's order.
    assert lower_bound({"x": [], "y": [], "z": ["x", "y"]}, dict.fromkeys("xyz", 0.0)) == Bound(
        ["x", "z"], 0.0
    )
    deps2 = {"p": [], "q": ["p"], "r": [], "s": ["q", "r"]}
    cost2 = {"p": 1.0, "q": 0.0, "r": 1.0, "s": 0.0}
    assert lower_bound(deps2, cost2) == Bound(["p", "q", "s"], 1.0)
    assert lower_bound({}, {}) == Bound([], 0.0)


def test_hand_made_runbook_bound_from_the_latency_model() -> None:
    model = LatencyModel(time_scale=0.1)
    inp = resolve(load_text(HAND_MADE), "us-east-1", "us-west-2", requester="carol")
    bound, cost = bound_of(inp, model)
    assert cost == {
        "warm": 1.0,
        "pods": model.seconds("rollout_ready"),  # 2 s: scaling up waits for the rollout
        "slow": 5.0,
        "dns": 2 * model.seconds("dns_propagation"),  # one propagation per increment
        "ok": 0.0,  # a gate answered at once
        "done": 0.5,
        "idle": 0.0,  # scaling to 0 is done at once
    }
    # dns is the only traffic step: the RTO ends with it, so the gate and `done` are not in it.
    assert bound == Bound(["slow", "dns"], pytest.approx(5.0 + 6.0))
    # Slower rollouts make the other chain the longest.
    slow_rollouts = model.model_copy(update={"rollout_ready": 60.0})
    assert bound_of(inp, slow_rollouts)[0] == Bound(["warm", "pods", "dns"], pytest.approx(13.0))


def test_shop_runbook_critical_path_is_the_readme_one() -> None:
    """The README's shop switch: the target scaled up, the approval, the Aurora switchover (longer
    than CloudNativePG's demote then promote), the writes check, the target ALB, ARC On, Route 53
    weights 50/50, the check at half, 100/0, the failover records (the last traffic step)."""
    model = LatencyModel(time_scale=0.1)
    inp = resolved(RUNBOOK, "us-east-1", "us-west-2")
    bound, cost = bound_of(inp, model)
    assert bound.path == [
        "scale-up-target-pods",
        "approve",
        "aurora-switchover",
        "target-takes-writes",
        "target-alb-local",
        "arc-target-on",
        "dns-half",
        "target-healthy-at-half",
        "dns-full",
        "failover-records",
    ]
    expected = sum(
        model.seconds(op) for op in ("rollout_ready", "aurora_switchover", *["dns_propagation"] * 3)
    )
    assert bound.seconds == pytest.approx(expected) == pytest.approx(17.0)
    assert cost["demote-source-db"] + cost["promote-target-db"] < cost["aurora-switchover"]
    # The failback has the same shape.
    back = bound_of(resolved(RUNBOOK, "us-west-2", "us-east-1"), model)[0]
    assert back.path == bound.path and back.seconds == pytest.approx(expected)
    # At real-world durations: 170 s.
    assert bound_of(inp, LatencyModel(time_scale=1.0))[0].seconds == pytest.approx(170.0)


def test_every_step_type_says_what_it_waits_for() -> None:
    """A new step type must be listed in STEP_OPERATIONS (with () if nothing modelled takes
    time), and every operation named there is one the sandbox models."""
    assert set(STEP_OPERATIONS) == set(registry.STEP_TYPES)
    fields = set(LatencyModel.model_fields) - {"time_scale"}
    named = {op for ops in STEP_OPERATIONS.values() for op in ops}
    assert named <= fields
    assert fields - named == set()  # every modelled operation is waited for by some type
