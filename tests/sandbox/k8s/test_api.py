"""The Kubernetes API stand-in, driven by the official kubernetes client over HTTP."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from orchestrator.sandbox.control import SandboxControl
from orchestrator.sandbox.faults import FaultRule
from orchestrator.sandbox.k8s.controller import REQUEST_GAP
from orchestrator.sandbox.manager import SandboxEnv
from tests.conftest import WATCH_HISTORY
from tests.sandbox.helpers import kube, wait_for

NS = "shop"


def _status(exc: ApiException) -> dict:
    body = json.loads(exc.body)
    assert body["kind"] == "Status" and body["status"] == "Failure"
    return body


def raw(
    env: SandboxEnv,
    method: str,
    path: str,
    body: object = None,
    content_type: str = "application/json",
) -> tuple[int, str]:
    """A raw HTTP call to the us-east-1 API (for what the typed client cannot send)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(env.regions["us-east-1"].kube_api + path, data=data, method=method)
    req.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _cm(name: str, **data: str) -> client.V1ConfigMap:
    return client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name=name, labels={"test": "api"}), data=data
    )


def test_seeded_workloads(env: SandboxEnv) -> None:
    for region, replicas in (("us-east-1", 3), ("us-west-2", 0)):
        apps = client.AppsV1Api(kube(env, region))
        deployments = apps.list_namespaced_deployment(NS).items
        assert sorted(d.metadata.name for d in deployments) == ["cart", "catalog", "checkout"]
        assert {d.spec.replicas for d in deployments} == {replicas}


def test_errors_are_status_objects(env: SandboxEnv) -> None:
    core = client.CoreV1Api(kube(env, "us-east-1"))
    with pytest.raises(ApiException) as err:
        core.read_namespaced_config_map("missing", NS)
    assert err.value.status == 404 and _status(err.value)["reason"] == "NotFound"
    core.create_namespaced_config_map(NS, _cm("dup-test", a="1"))
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map(NS, _cm("dup-test", a="1"))
    assert err.value.status == 409 and _status(err.value)["reason"] == "AlreadyExists"
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map(NS, _cm("Bad_Name", a="1"))
    body = _status(err.value)
    assert err.value.status == 422 and body["reason"] == "Invalid"
    assert body["details"]["causes"][0]["field"] == "metadata.name"
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map("no-such-ns", _cm("x", a="1"))
    assert err.value.status == 404
    core.delete_namespaced_config_map("dup-test", NS)


def test_stale_resource_version_replace_is_a_conflict(env: SandboxEnv) -> None:
    core = client.CoreV1Api(kube(env, "us-east-1"))
    created = core.create_namespaced_config_map(NS, _cm("occ-test", v="1"))
    first = core.read_namespaced_config_map("occ-test", NS)
    first.data = {"v": "2"}
    updated = core.replace_namespaced_config_map("occ-test", NS, first)
    assert int(updated.metadata.resource_version) > int(created.metadata.resource_version)
    stale = first
    stale.metadata.resource_version = created.metadata.resource_version
    stale.data = {"v": "3"}
    with pytest.raises(ApiException) as err:
        core.replace_namespaced_config_map("occ-test", NS, stale)
    assert err.value.status == 409 and _status(err.value)["reason"] == "Conflict"
    assert core.read_namespaced_config_map("occ-test", NS).data == {"v": "2"}
    core.delete_namespaced_config_map("occ-test", NS)


def test_dry_run_patch_changes_nothing(env: SandboxEnv, control: SandboxControl) -> None:
    apps = client.AppsV1Api(kube(env, "us-east-1"))
    before = apps.read_namespaced_deployment("cart", NS)
    since = time.time()
    result = apps.patch_namespaced_deployment("cart", NS, {"spec": {"replicas": 7}}, dry_run="All")
    assert result.spec.replicas == 7
    after = apps.read_namespaced_deployment("cart", NS)
    assert after.spec.replicas == before.spec.replicas
    assert after.metadata.resource_version == before.metadata.resource_version
    assert [c for c in control.calls(since) if c.source == "k8s"] == []
    with pytest.raises(ApiException) as err:  # dry-run still validates
        apps.patch_namespaced_deployment("cart", NS, {"spec": {"replicas": -1}}, dry_run="All")
    assert err.value.status == 422


def test_scale_subresource_generation_and_readiness(env: SandboxEnv) -> None:
    apps = client.AppsV1Api(kube(env, "us-west-2"))
    dep = apps.read_namespaced_deployment("catalog", NS)
    gen = dep.metadata.generation
    scale = apps.read_namespaced_deployment_scale("catalog", NS)
    assert scale.spec.replicas == 0 and scale.status.selector == "app=catalog"
    apps.patch_namespaced_deployment_scale("catalog", NS, {"spec": {"replicas": 2}})
    dep = apps.read_namespaced_deployment("catalog", NS)
    assert dep.metadata.generation == gen + 1

    def ready() -> bool:
        d = apps.read_namespaced_deployment_status("catalog", NS)
        conds = {c.type: c.status for c in d.status.conditions or []}
        return (
            d.status.observed_generation == d.metadata.generation
            and d.status.ready_replicas == 2
            and conds.get("Available") == "True"
        )

    wait_for(ready)
    pods = client.CoreV1Api(kube(env, "us-west-2")).list_namespaced_pod(
        NS, label_selector="app=catalog"
    )
    assert len(pods.items) == 2 and {p.status.phase for p in pods.items} == {"Running"}
    # Label changes do not bump generation; status sent on the main resource is ignored.
    apps.patch_namespaced_deployment(
        "catalog", NS, {"metadata": {"labels": {"x": "y"}}, "status": {"readyReplicas": 99}}
    )
    dep = apps.read_namespaced_deployment("catalog", NS)
    assert dep.metadata.generation == gen + 1 and dep.status.ready_replicas == 2
    apps.patch_namespaced_deployment_scale("catalog", NS, {"spec": {"replicas": 0}})
    wait_for(
        lambda: (
            not client.CoreV1Api(kube(env, "us-west-2"))
            .list_namespaced_pod(NS, label_selector="app=catalog")
            .items
        )
    )


def test_a_rollout_is_ready_exactly_its_modelled_time_after_the_scale(
    env: SandboxEnv, control: SandboxControl
) -> None:
    """The toy controller sees a change when it is written, and a read gets the status as it
    stands at that moment: a rollout is ready on the first read made its modelled time after
    the write, not one tick of the controller's loop later (issue 17: the RTO's lower bound)."""
    control.set_latency(rollout_ready=100.0)  # 1 s at the test time scale
    apps = client.AppsV1Api(kube(env, "us-west-2"))
    seeded = apps.read_namespaced_deployment("catalog", NS).to_dict()
    body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "rollout-timing", "labels": {"test": "api"}},
        "spec": seeded["spec"] | {"replicas": 0},
    }
    body = client.ApiClient().sanitize_for_serialization(body)
    apps.create_namespaced_deployment(NS, body)
    try:
        sent = time.monotonic()
        apps.patch_namespaced_deployment_scale("rollout-timing", NS, {"spec": {"replicas": 2}})
        answered = time.monotonic()  # the write was served between `sent` and now
        while True:  # every read that is answered within 0.8 s of the write: not ready yet
            ready = apps.read_namespaced_deployment_status("rollout-timing", NS).status
            if time.monotonic() - sent >= 0.8:
                break
            assert (ready.ready_replicas or 0) < 2, "ready before its rollout time"
            time.sleep(0.1)
        # A read is served at most REQUEST_GAP late: a reconcile just before it (the
        # controller's loop, 0.995 s after the write) is what it reads (a gate once read 1 of 2).
        time.sleep(max(0.0, answered + 1.0 + REQUEST_GAP - time.monotonic()))
        dep = apps.read_namespaced_deployment_status("rollout-timing", NS)  # sent >= 1 s later
        conds = {c.type: c.status for c in dep.status.conditions or []}
        assert dep.status.ready_replicas == 2 and conds.get("Available") == "True"
    finally:
        apps.delete_namespaced_deployment("rollout-timing", NS)
        control.set_latency(rollout_ready=20.0)


def test_label_selector_filters_and_strategic_merge(env: SandboxEnv) -> None:
    apps = client.AppsV1Api(kube(env, "us-east-1"))
    assert apps.list_namespaced_deployment(NS, label_selector="app=nothing").items == []
    names = [
        d.metadata.name
        for d in apps.list_namespaced_deployment(NS, label_selector="app in (cart,checkout)").items
    ]
    assert sorted(names) == ["cart", "checkout"]
    apps.patch_namespaced_deployment(
        "checkout",
        NS,
        {
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {"name": "checkout", "image": "registry.example/shop/checkout:1.1.0"}
                        ]
                    }
                }
            }
        },
    )
    c = apps.read_namespaced_deployment("checkout", NS).spec.template.spec.containers
    assert len(c) == 1 and c[0].image.endswith(":1.1.0") and c[0].ports[0].container_port == 8080
    field = apps.list_namespaced_deployment(NS, field_selector="metadata.name=cart").items
    assert [d.metadata.name for d in field] == ["cart"]


def test_json_patch_and_custom_resource_rules(env: SandboxEnv) -> None:
    custom = client.CustomObjectsApi(kube(env, "us-east-1"))
    db = custom.get_namespaced_custom_object("postgresql.cnpg.io", "v1", NS, "clusters", "shop-db")
    assert (
        db["spec"]["replica"]["primary"] == db["spec"]["replica"]["self"] == "shop-db-us-east-1"
        and db["status"]["replicaCluster"] is False
        and db["status"]["phase"] == "Cluster in healthy state"
    )
    core = client.CoreV1Api(kube(env, "us-east-1"))
    core.patch_namespaced_config_map(
        "shop-flags", NS, [{"op": "replace", "path": "/data/maintenance", "value": "true"}]
    )
    assert core.read_namespaced_config_map("shop-flags", NS).data["maintenance"] == "true"
    core.patch_namespaced_config_map("shop-flags", NS, {"data": {"maintenance": "false"}})
    # A strategic merge patch on a custom resource is refused with 415, as a real server does.
    status, body = raw(
        env,
        "PATCH",
        "/apis/postgresql.cnpg.io/v1/namespaces/shop/clusters/shop-db",
        {"spec": {"instances": 2}},
        "application/strategic-merge-patch+json",
    )
    assert status == 415 and json.loads(body)["reason"] == "UnsupportedMediaType"


def test_cnpg_promotion_and_demotion(env: SandboxEnv, control: SandboxControl) -> None:
    control.set_latency(cnpg_promotion=100.0)  # 1 s at the test time scale
    east = client.CustomObjectsApi(kube(env, "us-east-1"))
    west = client.CustomObjectsApi(kube(env, "us-west-2"))
    args = ("postgresql.cnpg.io", "v1", NS, "clusters", "shop-db")
    west_primary = {"spec": {"replica": {"primary": "shop-db-us-west-2"}}}
    east.patch_namespaced_custom_object(*args, west_primary)  # demoted: it publishes a token
    wait_for(lambda: east.get_namespaced_custom_object(*args)["status"].get("demotionToken"))
    token = east.get_namespaced_custom_object(*args)["status"]["demotionToken"]
    west.patch_namespaced_custom_object(
        *args, {"spec": {"replica": {"primary": "shop-db-us-west-2", "promotionToken": token}}}
    )
    wait_for(
        lambda: (
            west.get_namespaced_custom_object(*args)["status"]["phase"]
            == "Promoting to primary cluster"
        )
    )
    wait_for(
        lambda: (
            west.get_namespaced_custom_object(*args)["status"]["phase"]
            == "Cluster in healthy state"
        )
    )
    assert west.get_namespaced_custom_object(*args)["status"]["replicaCluster"] is False
    # and back, so the seeded state is restored
    east_primary = {"spec": {"replica": {"primary": "shop-db-us-east-1", "promotionToken": None}}}
    west.patch_namespaced_custom_object(*args, east_primary)
    east.patch_namespaced_custom_object(*args, east_primary)
    wait_for(
        lambda: (
            east.get_namespaced_custom_object(*args)["status"].get("replicaCluster") is False
            and east.get_namespaced_custom_object(*args)["status"]["phase"]
            == "Cluster in healthy state"
        )
    )
    control.set_latency(cnpg_promotion=20.0)


def test_jobs_succeed_or_fail_by_annotation(env: SandboxEnv) -> None:
    batch = client.BatchV1Api(kube(env, "us-east-1"))

    def job(name: str, outcome: str) -> dict:
        return {
            "metadata": {
                "name": name,
                "annotations": {
                    "sandbox.failover.dev/outcome": outcome,
                    "sandbox.failover.dev/reason": "smoke test: 3 of 10 checks failed",
                },
            },
            "spec": {
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [{"name": "smoke", "image": "smoke:1"}],
                    }
                }
            },
        }

    batch.create_namespaced_job(NS, job("smoke-ok", "succeed"))
    batch.create_namespaced_job(NS, job("smoke-bad", "fail"))
    ok = wait_for(lambda: batch.read_namespaced_job_status("smoke-ok", NS).status.succeeded)
    assert ok == 1
    failed = wait_for(lambda: batch.read_namespaced_job_status("smoke-bad", NS).status.failed)
    assert failed
    cond = batch.read_namespaced_job_status("smoke-bad", NS).status.conditions[0]
    assert cond.type == "Failed" and cond.message == "smoke test: 3 of 10 checks failed"
    for name in ("smoke-ok", "smoke-bad"):
        batch.delete_namespaced_job(name, NS)


def test_watch_streams_changes_and_resumes(env: SandboxEnv) -> None:
    core = client.CoreV1Api(kube(env, "us-east-1"))
    start = core.list_namespaced_config_map(NS).metadata.resource_version
    events: list[tuple[str, str]] = []

    def consume() -> None:
        w = watch.Watch()
        for ev in w.stream(
            core.list_namespaced_config_map,
            NS,
            label_selector="test=watch",
            resource_version=start,
            timeout_seconds=5,
        ):
            events.append((ev["type"], ev["object"].metadata.name))
            if len(events) == 3:
                w.stop()

    t = threading.Thread(target=consume)
    t.start()
    time.sleep(0.3)
    core.create_namespaced_config_map(
        NS,
        client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="w1", labels={"test": "watch"}), data={"a": "1"}
        ),
    )
    core.create_namespaced_config_map(NS, _cm("not-watched", a="1"))
    core.patch_namespaced_config_map("w1", NS, {"data": {"a": "2"}})
    core.delete_namespaced_config_map("w1", NS)
    t.join(timeout=10)
    assert events == [("ADDED", "w1"), ("MODIFIED", "w1"), ("DELETED", "w1")]
    core.delete_namespaced_config_map("not-watched", NS)


def test_watch_from_a_compacted_version_is_expired(env: SandboxEnv) -> None:
    # Push the history past its window, then ask to resume from version 1.
    core = client.CoreV1Api(kube(env, "us-east-1"))
    core.create_namespaced_config_map(NS, _cm("churn", n="0"))
    path = "/api/v1/namespaces/shop/configmaps/churn"
    for i in range(WATCH_HISTORY + 50):
        raw(env, "PATCH", path, {"data": {"n": str(i + 1)}}, "application/merge-patch+json")
    status, body = raw(
        env,
        "GET",
        "/api/v1/namespaces/shop/configmaps?watch=true&resourceVersion=1&timeoutSeconds=1",
    )
    events = [json.loads(x) for x in body.splitlines() if x.strip()]
    assert status == 200 and events[0]["type"] == "ERROR"
    assert events[0]["object"]["code"] == 410 and events[0]["object"]["reason"] == "Expired"
    core.delete_namespaced_config_map("churn", NS)


def test_k8s_faults_before_and_after_commit(env: SandboxEnv, control: SandboxControl) -> None:
    apps = client.AppsV1Api(kube(env, "us-east-1"))
    control.add_fault(
        FaultRule(target="k8s:us-east-1:patch:deployments/scale", error="Throttling", count=2)
    )
    codes = []
    for _ in range(3):
        try:
            apps.patch_namespaced_deployment_scale("cart", NS, {"spec": {"replicas": 3}})
            codes.append(200)
        except ApiException as exc:
            codes.append(exc.status)
    assert codes == [429, 429, 200]
    control.add_fault(
        FaultRule(target="k8s:us-east-1:patch:configmaps", error="Timeout", when="after")
    )
    with pytest.raises(ApiException) as err:
        client.CoreV1Api(kube(env, "us-east-1")).patch_namespaced_config_map(
            "shop-flags", NS, {"data": {"maintenance": "after"}}
        )
    assert err.value.status == 504
    cm = client.CoreV1Api(kube(env, "us-east-1")).read_namespaced_config_map("shop-flags", NS)
    assert cm.data["maintenance"] == "after"  # the write landed
    client.CoreV1Api(kube(env, "us-east-1")).patch_namespaced_config_map(
        "shop-flags", NS, {"data": {"maintenance": "false"}}
    )


def test_secrets_never_reach_the_call_log(env: SandboxEnv, control: SandboxControl) -> None:
    since = time.time()
    core = client.CoreV1Api(kube(env, "us-east-1"))
    core.create_namespaced_secret(
        NS,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="s1"), string_data={"token": "super-secret-value"}
        ),
    )
    core.delete_namespaced_secret("s1", NS)
    calls = [c for c in control.calls(since) if c.source == "k8s"]
    assert [c.operation for c in calls] == ["create:secrets", "delete:secrets"]
    assert "super-secret-value" not in json.dumps([c.model_dump() for c in calls])
