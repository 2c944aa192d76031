"""Ambiguous writes: a write that lands but answers an error (a 500, or no answer before the
client's read timeout) must neither fail the step nor be sent twice.

For every mutating operation of every step type, the engine's own activities (`step.prepare`,
`step.apply`, `step.undo`, as a worker runs them) are run against the sandbox with the fault
injected after the write commits. The step must succeed, leave the world as a clean run does
(checked with the step type's own observation, and `verify`), and a write that is not idempotent
must have been served exactly once (the sandbox's call log). The same for undo.

`sandbox_fault` and `region_outage` are left out: their writes go to the sandbox's own chaos
endpoints, not to a cloud API that can be made to misbehave.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from temporalio.testing import ActivityEnvironment

from activities import registry
from activities.base import StateStep, StepContext
from activities.clients import Clients
from activities.steps import StepActivities
from orchestrator.config import from_sandbox
from orchestrator.runs import PlannedStep, StepCall, StepKind, StepOutcome
from orchestrator.sandbox.control import SandboxControl
from orchestrator.sandbox.faults import FaultRule
from orchestrator.sandbox.manager import SandboxEnv
from tests.activities.test_fault_steps import HTTP_ABORT, _fis_template
from tests.activities.test_step_types import _ecs_service
from tests.sandbox.helpers import aws, wait_for

READ_TIMEOUT = 1.0  # the clients' read timeout in these tests ...
HANG = 1.6  # ... and how long a faulted write keeps its answer: past the timeout


@dataclass
class Case:
    """One step type, its params, and the writes its apply and its undo make."""

    type: str
    params: dict[str, Any]
    region: str | None
    apply_op: str
    undo_op: str | None = None  # None: irreversible, or the same as apply_op when ""
    setup: Callable[[SandboxEnv], None] | None = None
    once: set[str] = field(default_factory=set)  # operations that must be served once

    @property
    def id(self) -> str:
        return f"{self.type}:{self.apply_op.split(':')[-1]}"


def _old_writer_left_out(env: SandboxEnv) -> None:
    """After an unplanned failover: us-west-2 writes, us-east-1's cluster is out of the global
    cluster (what aurora_global_rejoin starts from)."""
    rds = aws(env, "rds", "us-west-2")
    target = rds.describe_db_clusters(DBClusterIdentifier="shop-aurora-us-west-2")["DBClusters"]
    rds.failover_global_cluster(GlobalClusterIdentifier="shop-global", AllowDataLoss=True,
                                TargetDbClusterIdentifier=target[0]["DBClusterArn"])  # fmt: skip

    def left_out() -> bool:
        gc = rds.describe_global_clusters(GlobalClusterIdentifier="shop-global")
        members = gc["GlobalClusters"][0]["GlobalClusterMembers"]
        return [m["DBClusterArn"].split(":")[3] for m in members] == ["us-west-2"]

    wait_for(left_out, timeout=30)


FLAG = {"name": "/shop/flags/maintenance", "value": "true", "region": "us-east-1"}
CASES = [
    Case("ssm_parameter", FLAG, None, "aws:ssm:PutParameter", ""),
    Case("ssm_parameter", {**FLAG, "name": "/shop/flags/brand-new"}, None, "aws:ssm:PutParameter",
         "aws:ssm:DeleteParameter"),
    Case("k8s_configmap_flag", {"namespace": "shop", "name": "shop-flags", "key": "writes-frozen",
                                "value": "true"}, "us-east-1", "k8s:us-east-1:patch:configmaps", ""),
    Case("route53_weighted", {"zone": "shop.example.", "record": "api.shop.example.",
                              "weights": {"us-east-1": 0, "us-west-2": 100}}, None,
         "aws:route53:ChangeResourceRecordSets", ""),
    Case("route53_failover", {"zone": "shop.example.", "record": "www.shop.example.",
                              "primary": "us-west-2"}, None,
         "aws:route53:ChangeResourceRecordSets", ""),
    Case("elbv2_weights", {"load_balancer": "shop-alb", "region": "us-east-1",
                           "weights": {"shop-local": 0, "shop-peer": 100}}, None,
         "aws:elbv2:ModifyListener", ""),
    Case("asg_capacity", {"name": "shop-asg", "region": "us-west-2", "desired": 3}, None,
         "aws:autoscaling:UpdateAutoScalingGroup", ""),
    Case("aurora_global_switchover", {"global_cluster": "shop-global",
                                      "target_region": "us-west-2"}, None,
         "aws:rds:SwitchoverGlobalCluster", "", once={"rds:SwitchoverGlobalCluster"}),
    Case("aurora_global_failover", {"global_cluster": "shop-global",
                                    "target_region": "us-west-2"}, None,
         "aws:rds:FailoverGlobalCluster", None, once={"rds:FailoverGlobalCluster"}),
    Case("aurora_global_rejoin", {"global_cluster": "shop-global",
                                  "cluster": "shop-aurora-us-east-1", "region": "us-east-1"},
         None, "aws:rds:CreateDBCluster", None, setup=_old_writer_left_out,
         once={"rds:CreateDBCluster", "rds:DeleteDBCluster"}),
    Case("rds_promote_replica", {"db_instance": "shop-db-replica", "region": "us-west-2"}, None,
         "aws:rds:PromoteReadReplica", None, once={"rds:PromoteReadReplica"}),
    Case("k8s_scale", {"names": ["checkout", "cart", "catalog"], "namespace": "shop",
                       "replicas": 3}, "us-west-2", "k8s:us-west-2:patch:deployments/scale", ""),
    Case("cnpg_role", {"namespace": "shop", "name": "shop-db", "role": "primary",
                       "primary": "shop-db-us-west-2"}, "us-west-2",
         "k8s:us-west-2:patch:clusters", ""),
    Case("ga_traffic_dial", {"accelerator": "shop-ga", "region": "us-west-2", "dial": 100}, None,
         "aws:globalaccelerator:UpdateEndpointGroup", ""),
    Case("arc_routing_controls", {"cluster": "shop-arc", "control_panel": "shop",
                                  "states": {"shop-us-west-2": "On"}}, None,
         "aws:route53-recovery-cluster:UpdateRoutingControlStates", ""),
    Case("route53_health_check", {"name": "us-east-1", "inverted": True}, None,
         "aws:route53:UpdateHealthCheck", ""),
    Case("ecs_service", {"cluster": "shop", "service": "web", "desired": 4, "region": "us-east-1"},
         None, "aws:ecs:UpdateService", "", setup=_ecs_service),
    Case("k8s_patch", {"api_version": "apps/v1", "kind": "Deployment", "namespace": "shop",
                       "name": "cart", "patch": {"metadata": {"annotations": {"drained": "yes"}},
                                                 "spec": {"paused": True}}},
         "us-east-1", "k8s:us-east-1:patch:deployments", ""),
    Case("k8s_job", {"namespace": "shop", "name": "smoke", "image": "smoke:1"}, "us-east-1",
         "k8s:us-east-1:create:jobs", "k8s:us-east-1:delete:jobs", once={"create:jobs"}),
    Case("fis_experiment", {"template": "shop-outage", "region": "us-east-1"}, None,
         "aws:fis:StartExperiment", "aws:fis:StopExperiment", setup=_fis_template),
    Case("chaos_mesh", HTTP_ABORT, "us-west-2", "k8s:us-west-2:create:httpchaos",
         "k8s:us-west-2:delete:httpchaos", once={"create:httpchaos"}),
]  # fmt: skip
FAULTS = {
    "500": {"error": "InternalError"},
    "hang": {"error": "none", "delay": HANG},
}


def test_every_mutating_type_and_write_is_covered() -> None:
    mutating = {n for n, t in registry.STEP_TYPES.items() if t.mutating}
    assert {c.type for c in CASES} == mutating - {"sandbox_fault", "region_outage"}
    for name in mutating:
        stype = registry.STEP_TYPES[name]
        assert isinstance(stype, StateStep)
        once = {op for c in CASES if c.type == name for op in c.once}
        assert stype.idempotent_write or once, f"{name}: its non-idempotent write is not tested"


# ---------------------------------------------------------------------------- harness
class Harness:
    """The engine's step activities with clients that give up after READ_TIMEOUT."""

    def __init__(self, env: SandboxEnv) -> None:
        config = from_sandbox(env)
        config.aws.read_timeout = READ_TIMEOUT
        config.kubernetes.read_timeout = READ_TIMEOUT
        self.acts = StepActivities(Clients(config))

    def run(self, fn: Callable[[StepCall], StepOutcome], call: StepCall) -> StepOutcome:
        """One activity, as a worker runs it: an attempt that started now, bounded by the
        step's timeout."""
        env = ActivityEnvironment()
        now = datetime.now(UTC)
        env.info = dataclasses.replace(
            env.info, scheduled_time=now, started_time=now, current_attempt_scheduled_time=now,
            start_to_close_timeout=call.step.timeout, schedule_to_close_timeout=None,
            heartbeat_timeout=timedelta(seconds=30),
        )  # fmt: skip
        return env.run(fn, call)

    def context(self, call: StepCall) -> StepContext:
        return self.acts.context(call, lambda *_: None)


def step_call(case: Case) -> StepCall:
    stype = registry.STEP_TYPES[case.type]
    params = stype.parse(case.params).model_dump(mode="json")
    step = PlannedStep(id="s", type=case.type, kind=StepKind.MUTATE, params=params,
                       region=case.region, timeout=timedelta(seconds=30))  # fmt: skip
    return StepCall(run_id="ambiguous/1", step=step, from_region="us-east-1",
                    to_region="us-west-2", mode="drill")  # fmt: skip


def _warm(env: SandboxEnv) -> None:
    """moto loads a service on its first call (RDS takes over a second): not during a test."""
    aws(env, "rds", "us-east-1").describe_global_clusters()
    aws(env, "rds", "us-west-2").describe_db_instances()


def served(control: SandboxControl, since: float, op: str) -> list[int]:
    """Statuses of the calls of one operation ("service:Operation" or "verb:resource")."""
    return [c.status for c in control.calls(since) if c.operation == op]


def _op(target: str) -> str:
    parts = target.split(":")
    return f"{parts[1]}:{parts[2]}" if parts[0] == "aws" else f"{parts[2]}:{parts[3]}"


def _observed(h: Harness, case: Case, call: StepCall) -> dict[str, Any]:
    stype, params = registry.bind(case.type, call.step.params)
    assert isinstance(stype, StateStep)
    return stype.observe(h.context(call), params)


# ------------------------------------------------------------------------------ tests
def prepared(env: SandboxEnv, case: Case) -> tuple[Harness, StepCall]:
    """The case's world set up and its step prepared (snapshot taken), as the engine does."""
    _warm(env)
    if case.setup:
        case.setup(env)
    h = Harness(env)
    call = step_call(case)
    call.snapshot = h.run(h.acts.prepare, call).snapshot
    return h, call


@pytest.mark.parametrize("fault", sorted(FAULTS))
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_apply_whose_write_lands_but_answers_an_error_succeeds_once(
    fresh: SandboxEnv, control: SandboxControl, case: Case, fault: str
) -> None:
    h, call = prepared(fresh, case)
    t0 = time.time()
    control.add_fault(FaultRule(target=case.apply_op, when="after", count=1, **FAULTS[fault]))
    out = h.run(h.acts.apply, call)  # no error: the write landed, the step saw it
    assert control.faults()[0].hits == 1, "the fault was hit"
    stype, params = registry.bind(case.type, call.step.params)
    assert isinstance(stype, StateStep)
    wanted = stype.desired(h.context(call), params, call.snapshot or {})
    assert stype.matches(_observed(h, case, call), wanted), out.detail
    assert stype.verify(h.context(call), params, call.snapshot or {}).ok
    for op in case.once:
        statuses = served(control, t0, op)
        assert len(statuses) == 1 and statuses[0] < 400, f"{op} served as {statuses}"


UNDOABLE = [c for c in CASES if c.undo_op is not None]


@pytest.mark.parametrize("fault", sorted(FAULTS))
@pytest.mark.parametrize("case", UNDOABLE, ids=[c.id for c in UNDOABLE])
def test_undo_whose_write_lands_but_answers_an_error_restores_the_world(
    fresh: SandboxEnv, control: SandboxControl, case: Case, fault: str
) -> None:
    h, call = prepared(fresh, case)
    before = _observed(h, case, call)
    h.run(h.acts.apply, call)
    t0 = time.time()
    undo_op = case.undo_op or case.apply_op
    control.add_fault(FaultRule(target=undo_op, when="after", count=1, **FAULTS[fault]))
    h.run(h.acts.undo, call)
    assert control.faults()[0].hits == 1, "the fault was hit"
    stype, params = registry.bind(case.type, call.step.params)
    assert isinstance(stype, StateStep)
    after = _observed(h, case, call)
    assert stype.matches(after, call.snapshot or {}), (before, after)
    assert not stype.in_transition(after)
    assert stype.verify_undo(h.context(call), params, call.snapshot or {}).ok
    for op in {_op(undo_op)} & case.once:
        statuses = served(control, t0, op)
        assert len(statuses) == 1 and statuses[0] < 400, f"{op} served as {statuses}"
