"""Fault step types (a game day's `fault`): inject, verified in effect; remove, verified gone."""

from __future__ import annotations

import time
import urllib.error
import urllib.request

import pytest

from activities import registry
from activities.base import StepType
from activities.errors import StepError, classify
from orchestrator.sandbox.control import SandboxControl
from orchestrator.sandbox.faults import FaultRule
from orchestrator.sandbox.manager import SandboxEnv
from tests.activities.test_step_types import RecordingClients, ctx, until
from tests.gameday.helpers import app_faults
from tests.sandbox.helpers import aws


def _type(name: str) -> StepType:
    stype = registry.get(name)
    assert stype is not None
    return stype


def test_every_fault_type_is_tested_here() -> None:
    faults = {n for n, t in registry.STEP_TYPES.items() if t.fault}
    assert faults == {"sandbox_fault", "region_outage", "fis_experiment", "chaos_mesh"}
    assert all(
        registry.STEP_TYPES[n].mutating and registry.STEP_TYPES[n].reversible for n in faults
    )


def test_sandbox_outage_is_in_effect_then_removed_and_seen_by_route53(
    env: SandboxEnv, control: SandboxControl
) -> None:
    fault, health = _type("sandbox_fault"), _type("route53_health_status")
    p = fault.Params.model_validate({"region": "us-east-1", "outage": True})
    red = health.Params.model_validate({"name": "us-east-1"})
    c = ctx(env)
    assert health.verify(c, red, {}).ok  # healthy before
    snap = fault.snapshot(c, p)
    assert snap == {"healthy": True, "error_rate": 0.0, "latency_ms": 0.0}
    fault.apply(c, p, snap)
    until(lambda: fault.verify(c, p, snap))
    fault.apply(c, p, snap)  # idempotent
    assert fault.dry_run(c, p) == []
    assert app_faults(env)["us-east-1"] == (False, 0.0, 0.0)
    down = health.verify(c, red, {})
    assert not down.ok and "unhealthy" in down.detail  # the detector fires
    assert app_faults(env)["us-west-2"] == (True, 0.0, 0.0)  # the other region untouched
    fault.undo(c, p, snap)
    until(lambda: fault.verify_undo(c, p, snap))
    assert app_faults(env)["us-east-1"] == (True, 0.0, 0.0)
    assert health.verify(c, red, {}).ok


def test_sandbox_error_rate_and_latency_reach_the_app(
    env: SandboxEnv, control: SandboxControl
) -> None:
    fault, check = _type("sandbox_fault"), _type("http_check")
    p = fault.Params.model_validate({"region": "us-west-2", "error_rate": 1.0, "latency_ms": 50})
    c = ctx(env)
    snap = fault.snapshot(c, p)
    fault.apply(c, p, snap)
    until(lambda: fault.verify(c, p, snap))
    probe = check.Params.model_validate(
        {"endpoint": "app", "path": "/api/request", "region": "us-west-2", "requests": 3,
         "min_success_rate": 0.0}
    )  # fmt: skip
    seen = check.verify(c, probe, {})
    assert seen.observed["success_rate"] == 0.0 and seen.observed["p95_ms"] >= 50
    fault.undo(c, p, snap)
    until(lambda: fault.verify_undo(c, p, snap))
    assert check.verify(c, probe, {}).observed["success_rate"] == 1.0


def test_sandbox_fault_lifts_itself_when_its_duration_is_over(
    env: SandboxEnv, control: SandboxControl
) -> None:
    """The dead man's switch: a fault whose orchestrator is gone does not stay forever."""
    fault = _type("sandbox_fault")
    p = fault.Params.model_validate({"region": "us-east-1", "outage": True, "duration": "1s"})
    c = ctx(env)
    snap = fault.snapshot(c, p)
    fault.apply(c, p, snap)
    assert app_faults(env)["us-east-1"][0] is False
    time.sleep(1.3)
    assert fault.verify_undo(c, p, snap).ok
    assert app_faults(env)["us-east-1"] == (True, 0.0, 0.0)


def _answers(url: str) -> bool:
    """Whether anything accepts a connection and answers there (any HTTP status)."""
    try:
        with urllib.request.urlopen(url, timeout=3):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def test_region_outage_takes_the_whole_region_down_then_brings_it_back(
    env: SandboxEnv, control: SandboxControl
) -> None:
    fault = _type("region_outage")
    p = fault.Params.model_validate({"region": "us-west-2", "outage": "full"})
    c = ctx(env)
    west = env.regions["us-west-2"]
    endpoints = [
        f"{west.app_url}/health",
        f"{west.kube_api}/version",
        env.aws_endpoints["us-west-2"],
    ]
    snap = fault.snapshot(c, p)
    assert snap == {"outage": "none", "hang": 0.0}
    fault.apply(c, p, snap)
    until(lambda: fault.verify(c, p, snap))
    assert fault.dry_run(c, p) == []
    assert [_answers(u) for u in endpoints] == [False, False, False]
    assert _answers(f"{env.regions['us-east-1'].app_url}/health")  # the other region is up
    assert control.outages()["us-west-2"]["outage"] == "full"
    fault.undo(c, p, snap)
    until(lambda: fault.verify_undo(c, p, snap))
    assert [_answers(u) for u in endpoints] == [True, True, True]


def test_region_outage_lifts_itself_when_its_duration_is_over(
    env: SandboxEnv, control: SandboxControl
) -> None:
    fault = _type("region_outage")
    p = fault.Params.model_validate({"region": "us-west-2", "hang": 5, "duration": "1s"})
    c = ctx(env)
    snap = fault.snapshot(c, p)
    fault.apply(c, p, snap)
    assert fault.observe(c, p) == {"outage": "full", "hang": 5.0}
    time.sleep(1.5)
    assert fault.verify_undo(c, p, snap).ok
    assert _answers(env.aws_endpoints["us-west-2"])
    assert _answers(f"{env.regions['us-west-2'].app_url}/health")


def test_sandbox_fault_params_need_a_fault() -> None:
    with pytest.raises(ValueError, match="outage, error_rate and/or latency_ms"):
        _type("sandbox_fault").Params.model_validate({"region": "us-east-1"})


def _fis_template(env: SandboxEnv, region: str = "us-east-1") -> str:
    fis = aws(env, "fis", region)
    return str(
        fis.create_experiment_template(
            clientToken=f"t-{time.time_ns()}",
            description="stop the shop's instances",
            roleArn="arn:aws:iam::123456789012:role/fis",
            stopConditions=[{"source": "none"}],
            actions={"stop": {"actionId": "aws:ec2:stop-instances", "parameters": {}}},
            tags={"Name": "shop-outage"},
        )["experimentTemplate"]["id"]
    )


def test_fis_experiment_runs_once_and_is_stopped_on_undo(
    fresh: SandboxEnv, control: SandboxControl
) -> None:
    _fis_template(fresh)
    fault = _type("fis_experiment")
    p = fault.Params.model_validate({"template": "shop-outage", "region": "us-east-1"})
    c = ctx(fresh)
    fault.preflight(c, p)
    snap = fault.snapshot(c, p)
    fault.apply(c, p, snap)
    running = until(lambda: fault.verify(c, p, snap))
    assert running.observed["status"] == "running"
    try:
        fault.apply(c, p, snap)  # a retried apply finds the same experiment ...
    except StepError as ended:  # ... (moto completes an experiment after a few reads)
        assert ended.kind == "FaultEnded" and not ended.retryable
    fis = aws(fresh, "fis", "us-east-1")
    assert len(fis.list_experiments()["experiments"]) == 1, "never a second start"
    fault.undo(c, p, snap)
    stopped = until(lambda: fault.verify_undo(c, p, snap))
    assert stopped.observed["status"] in ("stopped", "completed")
    fault.undo(c, p, snap)  # idempotent
    assert isinstance(c.clients, RecordingClients)
    assert c.clients.actions <= set(fault.actions), c.clients.actions - set(fault.actions)


def test_fis_unknown_template_and_refused_start(fresh: SandboxEnv, control: SandboxControl) -> None:
    fault = _type("fis_experiment")
    c = ctx(fresh)
    missing = fault.Params.model_validate({"template": "nope", "region": "us-east-1"})
    with pytest.raises(StepError) as exc:
        fault.preflight(c, missing)
    assert exc.value.kind == "NotFound" and not exc.value.retryable
    _fis_template(fresh)
    p = fault.Params.model_validate({"template": "shop-outage", "region": "us-east-1"})
    control.add_fault(FaultRule(target="aws:fis:StartExperiment", error="AccessDenied", count=None))
    snap = fault.snapshot(c, p)
    with pytest.raises(Exception) as denied:
        fault.apply(c, p, snap)
    err = classify(denied.value)
    assert (err.kind, err.retryable) == ("AccessDenied", False)
    control.clear_faults()
    assert fault.verify_undo(c, p, snap).ok  # nothing was started: nothing to remove


HTTP_ABORT = {"kind": "HTTPChaos", "namespace": "shop", "name": "shop-abort", "region": "us-west-2",
              "spec": {"mode": "all", "selector": {"namespaces": ["shop"]}, "target": "Request",
                       "port": 8080, "path": "/api/*", "abort": True}}  # fmt: skip


def _get(env: SandboxEnv, region: str, path: str) -> int:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(env.regions[region].app_url + path, timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_chaos_mesh_object_is_injected_then_deleted_and_gone(
    env: SandboxEnv, control: SandboxControl
) -> None:
    fault = _type("chaos_mesh")
    p = fault.Params.model_validate(HTTP_ABORT)
    c = ctx(env)
    snap = fault.snapshot(c, p)
    fault.apply(c, p, snap)
    injected = until(lambda: fault.verify(c, p, snap))
    assert injected.observed["conditions"]["AllInjected"] == "True"
    fault.apply(c, p, snap)  # a retried apply finds the same object
    assert _get(env, "us-west-2", "/api/request") == 503  # the app honours the HTTPChaos
    assert _get(env, "us-west-2", "/health") == 200  # outside its path
    assert _get(env, "us-east-1", "/api/request") == 200  # other cluster untouched
    fault.undo(c, p, snap)
    until(lambda: fault.verify_undo(c, p, snap))
    assert _get(env, "us-west-2", "/api/request") == 200
    writes = {x.operation for x in control.calls() if x.source == "k8s"}
    declared = {f"{v}:{r}" for _, r, v in fault.verbs}
    assert {w for w in writes if "httpchaos" in w} <= declared


def test_chaos_mesh_delete_refused_is_a_failed_removal_not_a_success(
    env: SandboxEnv, control: SandboxControl
) -> None:
    fault = _type("chaos_mesh")
    p = fault.Params.model_validate({**HTTP_ABORT, "name": "stuck"})
    c = ctx(env)
    snap = fault.snapshot(c, p)
    fault.apply(c, p, snap)
    until(lambda: fault.verify(c, p, snap))
    control.add_fault(FaultRule(target="k8s:us-west-2:delete:httpchaos", error="AccessDenied",
                                count=None))  # fmt: skip
    with pytest.raises(Exception) as exc:
        fault.undo(c, p, snap)
    err = classify(exc.value)
    assert err.kind == "AccessDenied" and not err.retryable
    left = fault.verify_undo(c, p, snap)
    assert not left.ok and "present" in left.detail
    control.clear_faults()
    fault.undo(c, p, snap)
    until(lambda: fault.verify_undo(c, p, snap))


def test_chaos_mesh_kind_is_checked() -> None:
    with pytest.raises(ValueError, match="kind must be one of"):
        _type("chaos_mesh").Params.model_validate({**HTTP_ABORT, "kind": "Chaos"})
