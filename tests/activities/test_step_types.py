"""Step types against the sandbox with the real clients, without Temporal: the contract itself."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from activities import registry
from activities.base import Check, StateStep, StepContext, StepParams
from activities.clients import Clients
from activities.errors import StepError, classify
from orchestrator.config import from_sandbox
from orchestrator.sandbox.control import SandboxControl
from orchestrator.sandbox.faults import FaultRule
from orchestrator.sandbox.manager import SandboxEnv
from tests.sandbox.helpers import aws

IAM_PREFIX = {"monitoring": "cloudwatch"}  # botocore signing name -> IAM service prefix


class RecordingClients(Clients):
    """Clients that record every AWS operation called, as IAM actions, and count them by
    operation name (`calls`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.actions: set[str] = set()
        self.calls: Counter[str] = Counter()
        self._counting = threading.Lock()

    def taken(self) -> dict[str, int]:
        """The calls counted since the last `taken`, by operation name."""
        with self._counting:
            out = dict(self.calls)
            self.calls.clear()
        return out

    def _new_aws(
        self,
        service: str,
        region: str,
        endpoint_url: str | None = None,
        retry: bool = True,
        timeouts: tuple[float, float] | None = None,
    ) -> Any:
        client = super()._new_aws(service, region, endpoint_url, retry, timeouts)
        signing = client.meta.service_model.signing_name
        prefix = IAM_PREFIX.get(signing, signing)

        def record(model: Any, **_: Any) -> None:
            with self._counting:  # (calls come from several threads at once)
                self.actions.add(f"{prefix}:{model.name}")
                self.calls[model.name] += 1

        client.meta.events.register("before-call", record)
        return client


def ctx(env: SandboxEnv, region: str | None = None) -> StepContext:
    return StepContext(
        run_id="test",
        step_id="s",
        from_region="us-east-1",
        to_region="us-west-2",
        region=region,
        mode="drill",
        clients=RecordingClients(from_sandbox(env)),
    )


def params(type_name: str, **values: object) -> tuple[StateStep, StepParams]:
    stype = registry.get(type_name)
    assert isinstance(stype, StateStep)
    return stype, stype.Params.model_validate(values)


MUTATING_CASES = [
    ("ssm_parameter", {"name": "/shop/flags/maintenance", "value": "true", "region": "us-east-1"}),
    ("ssm_parameter", {"name": "/shop/flags/brand-new", "value": "on", "region": "us-west-2"}),
    (
        "k8s_configmap_flag",
        {"namespace": "shop", "name": "shop-flags", "key": "writes-frozen", "value": "true"},
    ),
    (
        "k8s_configmap_flag",
        {"namespace": "shop", "name": "shop-flags", "key": "new-key", "value": "x"},
    ),
    (
        "route53_weighted",
        {"zone": "shop.example.", "record": "api.shop.example.", "increments": 2,
         "weights": {"us-east-1": 0, "us-west-2": 100}},
    ),
    ("route53_failover", {"zone": "shop.example.", "record": "www.shop.example",
                          "primary": "us-west-2"}),
    ("elbv2_weights", {"load_balancer": "shop-alb", "region": "us-east-1",
                       "weights": {"shop-local": 0, "shop-peer": 100}}),
    ("asg_capacity", {"name": "shop-asg", "region": "us-west-2", "desired": 3}),
    ("aurora_global_switchover", {"global_cluster": "shop-global", "target_region": "us-west-2"}),
    ("k8s_scale", {"names": ["checkout", "cart", "catalog"], "namespace": "shop", "replicas": 3,
                   "region": "us-west-2"}),
    ("cnpg_role", {"namespace": "shop", "name": "shop-db", "role": "primary",
                   "primary": "shop-db-us-west-2", "region": "us-west-2"}),
    ("ga_traffic_dial", {"accelerator": "shop-ga", "region": "us-west-2", "dial": 100}),
    ("arc_routing_controls", {"cluster": "shop-arc", "control_panel": "shop",
                              "states": {"shop-us-west-2": "On"}}),
    ("route53_health_check", {"name": "us-east-1", "inverted": True}),
    ("ecs_service", {"cluster": "shop", "service": "web", "desired": 4, "region": "us-east-1"}),
    ("k8s_patch", {"api_version": "apps/v1", "kind": "Deployment", "namespace": "shop",
                   "name": "cart", "region": "us-east-1",
                   "patch": {"metadata": {"annotations": {"failover.dev/drained": "true"}},
                             "spec": {"paused": True, "replicas": 2}}}),
]  # fmt: skip


def _ecs_service(env: SandboxEnv) -> None:
    """The sandbox seeds no ECS: a cluster with one service (2 tasks) for the ECS step."""
    ecs = aws(env, "ecs", "us-east-1")
    ecs.create_cluster(clusterName="shop")
    ecs.register_task_definition(
        family="web", containerDefinitions=[{"name": "web", "image": "web:1", "memory": 128}]
    )
    ecs.create_service(cluster="shop", serviceName="web", taskDefinition="web", desiredCount=2)
    ecs.update_service(cluster="shop", service="web", desiredCount=2)  # moto: tasks "run" now


SETUP = {"ecs_service": _ecs_service}


def until(fn: Callable[[], Check], timeout: float = 30.0) -> Check:
    """Poll a verification as the engine does."""
    deadline = time.monotonic() + timeout
    while not (result := fn()).ok:
        assert time.monotonic() < deadline, result.detail
        time.sleep(0.1)
    return result


@pytest.mark.parametrize(
    ("type_name", "values"), MUTATING_CASES, ids=[f"{t}-{i}" for i, (t, _) in
                                                  enumerate(MUTATING_CASES)]
)  # fmt: skip
def test_apply_then_undo_restores_the_snapshot_exactly(
    fresh: SandboxEnv, control: SandboxControl, type_name: str, values: dict[str, object]
) -> None:
    SETUP.get(type_name, lambda _: None)(fresh)
    stype, p = params(type_name, **values)
    c = ctx(fresh, "us-east-1")
    stype.preflight(c, p)
    snap = stype.snapshot(c, p)
    planned = stype.dry_run(c, p)
    assert planned, "a change is planned"
    t0 = time.time()

    def writes() -> int:
        return len([x for x in control.calls(t0) if x.status < 400])

    stype.apply(c, p, snap)
    until(lambda: stype.verify(c, p, snap))
    applied = writes()
    assert applied >= 1
    observed = stype.observe(c, p)
    assert {k: observed[k] for k in snap} != snap
    stype.apply(c, p, snap)  # idempotent: a second apply changes nothing
    assert writes() == applied
    assert stype.dry_run(c, p) == [], "nothing left to change"
    stype.undo(c, p, snap)
    until(lambda: stype.verify_undo(c, p, snap))
    observed = stype.observe(c, p)
    assert {k: observed[k] for k in snap} == snap
    undone = writes()
    stype.undo(c, p, snap)  # idempotent too
    assert writes() == undone > applied
    # Least privilege: every AWS call made is in the type's declared actions (so in
    # `failover iam`), and every Kubernetes write in its declared RBAC verbs.
    assert isinstance(c.clients, RecordingClients)
    assert c.clients.actions <= set(stype.actions), c.clients.actions - set(stype.actions)
    k8s_writes = {tuple(x.operation.split(":")[::-1]) for x in control.calls(t0)
                  if x.source == "k8s"}  # fmt: skip
    declared = {(r, v) for _, r, v in stype.verbs}
    assert all((r, v) in declared or ("*", v) in declared for r, v in k8s_writes), k8s_writes


def test_ssm_parameter_refuses_to_snapshot_a_secure_string(fresh: SandboxEnv) -> None:
    aws(fresh, "ssm").put_parameter(Name="/shop/secret", Value="hunter2", Type="SecureString")
    stype, p = params("ssm_parameter", name="/shop/secret", value="x", region="us-east-1")
    with pytest.raises(StepError) as exc:
        stype.preflight(ctx(fresh), p)
    assert exc.value.kind == "PreflightFailed" and not exc.value.retryable
    assert "hunter2" not in str(exc.value)


def test_configmap_flag_on_a_missing_configmap_is_not_found(fresh: SandboxEnv) -> None:
    stype, p = params("k8s_configmap_flag", namespace="shop", name="nope", key="k", value="v")
    with pytest.raises(Exception) as exc:
        stype.snapshot(ctx(fresh, "us-east-1"), p)
    err = classify(exc.value)  # as the engine's activity classifies it
    assert err.kind == "NotFound" and not err.retryable


def _http(env: SandboxEnv, **values: object) -> tuple[bool, str]:
    stype = registry.get("http_check")
    assert stype is not None
    p = stype.Params.model_validate({"endpoint": "app", **values})
    result = stype.verify(ctx(env, "us-east-1"), p, {})
    return result.ok, result.detail


def test_http_check_status_body_rate_and_latency(env: SandboxEnv, control: SandboxControl) -> None:
    assert _http(env, path="/health", body_contains='"status": "ok"')[0]
    ok, detail = _http(env, path="/health", body_contains="nope", requests=2)
    assert not ok and "success 0%" in detail
    control.set_region_health("us-east-1", False)
    ok, detail = _http(env, path="/health", requests=2)
    assert not ok and "got 503" in detail
    assert _http(env, path="/health", expect_status=[503], requests=2)[0]
    control.set_region_health("us-east-1", True)
    control.set_app_fault("us-east-1", error_rate=0.5, latency_ms=0)
    ok, detail = _http(env, path="/api/request", requests=40, min_success_rate=0.95)
    assert not ok and "< 95%" in detail
    assert _http(env, path="/api/request", requests=40, min_success_rate=0.1)[0]
    control.set_app_fault("us-east-1", error_rate=0.0, latency_ms=120)
    ok, detail = _http(env, path="/api/request", requests=3, max_latency_ms=50)
    assert not ok and "p95" in detail and "> 50 ms" in detail


def test_unknown_endpoint_is_a_non_retryable_error(env: SandboxEnv) -> None:
    with pytest.raises(StepError) as exc:
        _http(env, endpoint="payments")
    assert exc.value.kind == "Validation" and not exc.value.retryable


WRITE_FAULTS = {
    "ssm_parameter": "aws:ssm:PutParameter",
    "k8s_configmap_flag": "k8s:us-east-1:patch:configmaps",
    "route53_weighted": "aws:route53:ChangeResourceRecordSets",
    "route53_failover": "aws:route53:ChangeResourceRecordSets",
    "elbv2_weights": "aws:elbv2:ModifyListener",
    "asg_capacity": "aws:autoscaling:UpdateAutoScalingGroup",
    "aurora_global_switchover": "aws:rds:SwitchoverGlobalCluster",
    "k8s_scale": "k8s:us-west-2:patch:deployments/scale",
    "cnpg_role": "k8s:us-west-2:patch:clusters",
    "ga_traffic_dial": "aws:globalaccelerator:UpdateEndpointGroup",
    "arc_routing_controls": "aws:route53-recovery-cluster:UpdateRoutingControlStates",
    "route53_health_check": "aws:route53:UpdateHealthCheck",
    "k8s_job": "k8s:us-east-1:create:jobs",
    "rds_promote_replica": "aws:rds:PromoteReadReplica",
    "aurora_global_failover": "aws:rds:FailoverGlobalCluster",
    "ecs_service": "aws:ecs:UpdateService",
    "k8s_patch": "k8s:us-east-1:patch:deployments",
    "aurora_global_rejoin": "aws:rds:CreateDBCluster",
}
ONE_PER_TYPE = {t: v for t, v in MUTATING_CASES}


def test_every_mutating_type_has_its_tests() -> None:
    types = {n: t for n, t in registry.STEP_TYPES.items() if not t.fault}  # test_fault_steps
    assert {n for n, t in types.items() if t.mutating} == set(WRITE_FAULTS)
    assert all(isinstance(t, StateStep) for t in types.values() if t.mutating)
    undoable = {n for n, t in types.items() if t.mutating and t.reversible}
    assert undoable - {"k8s_job"} == set(ONE_PER_TYPE)
    # The others have tests of their own below.
    assert set(WRITE_FAULTS) - set(ONE_PER_TYPE) == {
        "k8s_job",
        "rds_promote_replica",
        "aurora_global_failover",
        "aurora_global_rejoin",  # tests/activities/test_disaster_steps.py
    }


@pytest.mark.parametrize("type_name", sorted(ONE_PER_TYPE))
def test_access_denied_is_final_and_changes_nothing_throttling_is_retryable(
    fresh: SandboxEnv, control: SandboxControl, type_name: str
) -> None:
    SETUP.get(type_name, lambda _: None)(fresh)
    stype, p = params(type_name, **ONE_PER_TYPE[type_name])
    c = ctx(fresh, "us-east-1")
    snap = stype.snapshot(c, p)
    control.add_fault(FaultRule(target=WRITE_FAULTS[type_name], error="AccessDenied", count=None))
    with pytest.raises(StepError) as denied:
        stype.apply(c, p, snap)
    assert (denied.value.kind, denied.value.retryable) == ("AccessDenied", False)
    control.clear_faults()
    observed = stype.observe(c, p)
    assert {k: observed[k] for k in snap} == snap, "a refused write changed nothing"
    t0 = time.time()
    control.add_fault(FaultRule(target=WRITE_FAULTS[type_name], error="Throttling", count=1))
    try:
        stype.apply(c, p, snap)  # boto3 retries throttling itself (adaptive mode) ...
        throttled = [x for x in control.calls(t0) if x.fault]
        assert throttled, "the throttled call was made and retried"
        assert stype.idempotent_write
    except StepError as exc:  # ... the Kubernetes client, and writes that must not be resent
        assert (exc.kind, exc.retryable) == ("Throttling", True)  # leave it to the engine
        assert WRITE_FAULTS[type_name].startswith("k8s:") or not stype.idempotent_write
        served = [x for x in control.calls(t0) if x.operation == WRITE_FAULTS[type_name][4:]]
        assert len(served) <= 1, "sent once"


JOB_ABSENT = {"object": "absent"}  # a Job step's snapshot: this run's Job did not exist


def _run_job(env: SandboxEnv, **values: object) -> tuple[Any, StepParams, StepContext]:
    stype = registry.get("k8s_job")
    assert stype is not None
    p = stype.Params.model_validate(
        {"namespace": "shop", "name": "smoke", "image": "registry.example/smoke:1", **values}
    )
    c = ctx(env, "us-east-1")
    stype.preflight(c, p)
    stype.apply(c, p, stype.snapshot(c, p))
    return stype, p, c


def test_k8s_job_succeeds_once_and_undo_deletes_it(
    fresh: SandboxEnv, control: SandboxControl
) -> None:
    t0 = time.time()
    stype, p, c = _run_job(fresh)
    assert until(lambda: stype.verify(c, p, JOB_ABSENT)).detail.endswith("succeeded")
    stype.apply(c, p, JOB_ABSENT)  # a retried apply finds the run's Job: no second one
    creates = [x for x in control.calls(t0) if x.operation == "create:jobs" and x.status < 400]
    assert len(creates) == 1
    stype.undo(c, p, JOB_ABSENT)
    until(lambda: stype.verify_undo(c, p, JOB_ABSENT))


def test_k8s_job_failure_fails_the_step_with_its_reason(fresh: SandboxEnv) -> None:
    stype, p, c = _run_job(
        fresh,
        annotations={"sandbox.failover.dev/outcome": "fail",
                     "sandbox.failover.dev/reason": "checkout smoke test: 3 of 5 orders failed"},
    )  # fmt: skip
    with pytest.raises(StepError) as exc:
        until(lambda: stype.verify(c, p, JOB_ABSENT))
    assert exc.value.kind == "CheckFailed" and not exc.value.retryable
    assert "3 of 5 orders failed" in exc.value.message


def test_rds_promote_replica_detaches_it_once_and_cannot_be_undone(
    fresh: SandboxEnv, control: SandboxControl
) -> None:
    stype = registry.get("rds_promote_replica")
    assert stype is not None and stype.mutating and not stype.reversible
    p = stype.Params.model_validate({"db_instance": "shop-db-replica", "region": "us-west-2"})
    c = ctx(fresh)
    snap = stype.snapshot(c, p)
    assert snap["source"], "a replica before"
    assert stype.dry_run(c, p)
    t0 = time.time()
    stype.apply(c, p, snap)
    until(lambda: stype.verify(c, p, snap))
    stype.apply(c, p, snap)
    promotes = [x for x in control.calls(t0) if x.operation == "rds:PromoteReadReplica"]
    assert len(promotes) == 1 and stype.dry_run(c, p) == []


def test_dns_view_follows_weights_and_health(fresh: SandboxEnv, control: SandboxControl) -> None:
    view = registry.get("dns_view")
    assert view is not None and not view.mutating
    c = ctx(fresh)

    def answers(record: str, expect: list[str]) -> Check:
        p = view.Params.model_validate(
            {"zone": "shop.example.", "record": record, "expect": expect}
        )
        return view.verify(c, p, {})

    assert answers("api.shop.example.", ["us-east-1"]).ok
    assert answers("www.shop.example.", ["us-east-1"]).ok
    weights, wp = params("route53_weighted", zone="shop.example.", record="api.shop.example.",
                         weights={"us-east-1": 50, "us-west-2": 50})  # fmt: skip
    weights.apply(c, wp, weights.snapshot(c, wp))
    # us-west-2's record is unhealthy while its ARC routing control is Off
    assert answers("api.shop.example.", ["us-east-1"]).ok
    arc, ap = params("arc_routing_controls", cluster="shop-arc", control_panel="shop",
                     states={"shop-us-west-2": "On"})  # fmt: skip
    arc.apply(c, ap, arc.snapshot(c, ap))
    assert answers("api.shop.example.", ["us-east-1", "us-west-2"]).ok
    # us-east-1 Off and all the weight on it: the healthy zero-weight record is answered
    arc.apply(c, ap.model_copy(update={"states": {"shop-us-east-1": "Off"}}), {})
    weights.apply(c, wp.model_copy(update={"weights": {"us-east-1": 100, "us-west-2": 0}}), {})
    assert answers("api.shop.example.", ["us-west-2"]).ok
    control.set_region_health("us-east-1", False)  # its health check fails: failover answers
    check = until(lambda: answers("www.shop.example.", ["us-west-2"]))
    assert "answers from us-west-2" in check.detail


@pytest.mark.parametrize(
    ("type_name", "values", "region"),
    [
        ("k8s_job", {"namespace": "shop", "name": "smoke", "image": "x:1"}, "us-east-1"),
        ("rds_promote_replica", {"db_instance": "shop-db-replica"}, "us-west-2"),
    ],
)
def test_access_denied_is_final_throttling_retryable_for_the_other_types(
    fresh: SandboxEnv, control: SandboxControl, type_name: str, values: dict[str, Any], region: str
) -> None:
    stype = registry.get(type_name)
    assert stype is not None
    p = stype.Params.model_validate(values)
    c = ctx(fresh, region)
    control.add_fault(FaultRule(target=WRITE_FAULTS[type_name], error="AccessDenied", count=None))
    with pytest.raises(StepError) as denied:
        stype.apply(c, p, stype.snapshot(c, p))
    assert (denied.value.kind, denied.value.retryable) == ("AccessDenied", False)
    control.clear_faults()
    control.add_fault(FaultRule(target=WRITE_FAULTS[type_name], error="Throttling", count=1))
    try:
        stype.apply(c, p, stype.snapshot(c, p))
    except StepError as exc:
        assert (exc.kind, exc.retryable) == ("Throttling", True)


def test_aurora_global_failover_moves_the_writer_and_is_irreversible(
    fresh: SandboxEnv, control: SandboxControl
) -> None:
    stype = registry.get("aurora_global_failover")
    assert isinstance(stype, StateStep) and stype.mutating and not stype.reversible
    p = stype.Params.model_validate({"global_cluster": "shop-global", "target_region": "us-west-2"})
    c = ctx(fresh)
    snap = stype.snapshot(c, p)
    assert snap == {"writer_region": "us-east-1"}
    t0 = time.time()
    stype.apply(c, p, snap)
    until(lambda: stype.verify(c, p, snap))
    stype.apply(c, p, snap)
    calls = [x for x in control.calls(t0) if x.operation == "rds:FailoverGlobalCluster"]
    assert len(calls) == 1 and calls[0].params.get("AllowDataLoss") in (True, "true")


def test_cloudwatch_metric_threshold(env: SandboxEnv) -> None:
    cw = aws(env, "cloudwatch", "us-east-1")
    dims = {"LoadBalancer": "app/shop-alb/test"}
    cw.put_metric_data(
        Namespace="AWS/ApplicationELB",
        MetricData=[{"MetricName": "HTTPCode_Target_5XX_Count", "Value": 7.0,
                     "Dimensions": [{"Name": k, "Value": v} for k, v in dims.items()]}],
    )  # fmt: skip
    stype = registry.get("cloudwatch_metric")
    assert stype is not None and not stype.mutating
    c = ctx(env, "us-east-1")

    def check(limit: float) -> Check:
        p = stype.Params.model_validate({"namespace": "AWS/ApplicationELB", "dimensions": dims,
                                         "metric": "HTTPCode_Target_5XX_Count", "max": limit})  # fmt: skip
        return stype.verify(c, p, {})

    assert until(lambda: check(10)).ok
    low = check(5)
    assert not low.ok and "7 (max 5)" in low.detail


def test_cloudwatch_alarm_state(env: SandboxEnv) -> None:
    """The sandbox never evaluates alarms; SetAlarmState (AWS's own way to test them) moves them."""
    cw = aws(env, "cloudwatch", "us-east-1")
    cw.put_metric_alarm(
        AlarmName="shop-5xx", Namespace="AWS/ApplicationELB", MetricName="HTTPCode_Target_5XX_Count",
        Statistic="Sum", Period=60, EvaluationPeriods=1, Threshold=10.0,
        ComparisonOperator="GreaterThanThreshold",
    )  # fmt: skip
    stype = registry.get("cloudwatch_alarm")
    assert stype is not None and not stype.mutating
    c = ctx(env, "us-east-1")

    def check(**values: Any) -> Check:
        return stype.verify(c, stype.Params.model_validate({"alarms": ["shop-5xx"], **values}), {})

    cw.set_alarm_state(AlarmName="shop-5xx", StateValue="ALARM", StateReason="test")
    result = check()
    assert not result.ok and "shop-5xx is ALARM" in result.detail
    cw.set_alarm_state(AlarmName="shop-5xx", StateValue="OK", StateReason="test")
    assert check().ok
    steady = check(steady_for="1h")
    assert not steady.ok and "OK for" in steady.detail
    with pytest.raises(StepError) as exc:
        check(alarms=["nope"])
    assert exc.value.kind == "NotFound"


def test_arc_routing_controls_respect_safety_rules(fresh: SandboxEnv) -> None:
    """Turning the only 'On' cell off violates the 'at least one on' rule: ARC refuses it, the
    step fails without retrying, and nothing changed."""
    stype, p = params("arc_routing_controls", cluster="shop-arc", control_panel="shop",
                      states={"shop-us-east-1": "Off"})  # fmt: skip
    c = ctx(fresh)
    snap = stype.snapshot(c, p)
    assert snap == {"states": {"shop-us-east-1": "On"}}
    with pytest.raises(StepError) as exc:
        stype.apply(c, p, snap)
    assert not exc.value.retryable and "at-least-one-cell-on" in exc.value.message
    assert stype.observe(c, p) == snap
    # Both moves in one change (west on, east off) keep one cell on: allowed.
    both, bp = params("arc_routing_controls", cluster="shop-arc", control_panel="shop",
                      states={"shop-us-west-2": "On", "shop-us-east-1": "Off"})  # fmt: skip
    both.apply(c, bp, both.snapshot(c, bp))
    assert both.verify(c, bp, {}).ok
