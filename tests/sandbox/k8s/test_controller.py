"""The stand-in's controller on its own store (no server): what it does to workloads and their
Pods, and that it leaves alone what is settled until it changes."""

from __future__ import annotations

from typing import Any

from orchestrator.sandbox.k8s.controller import Controller
from orchestrator.sandbox.k8s.resources import Registry, ResourceType
from orchestrator.sandbox.k8s.store import Store
from orchestrator.sandbox.latency import LatencyModel

NS = "shop"


def _world(rollout_s: float = 0.0) -> tuple[Store, Controller, ResourceType, ResourceType]:
    store = Store(Registry())
    ns_rt, dep_rt, pod_rt = (store.registry.by_kind(k) for k in ("Namespace", "Deployment", "Pod"))
    assert ns_rt and dep_rt and pod_rt
    store.create(ns_rt, "", {"metadata": {"name": NS}})
    latency = LatencyModel(time_scale=1.0, rollout_ready=rollout_s)
    return store, Controller(store, latency), dep_rt, pod_rt


def _deployment(name: str, replicas: int) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": name, "image": f"registry.example/{name}:1"}]},
            },
        },
    }


def _pods(store: Store, pod_rt: ResourceType) -> list[str]:
    return sorted(p["metadata"]["name"] for p in store.live(pod_rt, NS))


def test_a_settled_workload_is_not_rewritten_and_a_deleted_pod_comes_back() -> None:
    store, ctl, dep_rt, pod_rt = _world()
    store.create(dep_rt, NS, _deployment("cart", 2))
    ctl.reconcile()
    pods = _pods(store, pod_rt)
    assert len(pods) == 2
    assert store.get(dep_rt, NS, "cart")["status"]["readyReplicas"] == 2
    rv = store.rv
    for _ in range(3):
        ctl.reconcile()
    assert store.rv == rv  # settled: nothing written
    store.delete(pod_rt, NS, pods[0])
    ctl.reconcile()
    assert _pods(store, pod_rt) == pods  # its workload is walked again: the Pod is back


def test_a_change_to_a_settled_workload_is_reconciled() -> None:
    store, ctl, dep_rt, pod_rt = _world()
    store.create(dep_rt, NS, _deployment("cart", 1))
    ctl.reconcile()
    ctl.reconcile()
    dep = store.get(dep_rt, NS, "cart")
    dep["spec"]["replicas"] = 3
    store.replace(dep_rt, NS, "cart", dep)  # a client's update
    ctl.reconcile()
    assert store.get(dep_rt, NS, "cart")["status"]["readyReplicas"] == 3
    assert len(_pods(store, pod_rt)) == 3


def test_a_rollout_in_progress_is_walked_until_ready() -> None:
    store, ctl, dep_rt, _ = _world(rollout_s=3600.0)
    store.create(dep_rt, NS, _deployment("cart", 2))
    ctl.reconcile()
    status = store.get(dep_rt, NS, "cart")["status"]
    assert status["readyReplicas"] == 0 and status["unavailableReplicas"] == 2
    assert ctl.busy  # in progress: the controller keeps walking it
    ctl.latency = LatencyModel(time_scale=1.0, rollout_ready=0.0)
    ctl.reconcile()
    assert store.get(dep_rt, NS, "cart")["status"]["readyReplicas"] == 2
    assert not ctl.busy


def test_the_pods_of_a_deleted_workload_go_and_the_others_stay() -> None:
    store, ctl, dep_rt, pod_rt = _world()
    store.create(dep_rt, NS, _deployment("cart", 2))
    store.create(dep_rt, NS, _deployment("catalog", 1))
    ctl.reconcile()
    ctl.reconcile()  # (nothing changed: nothing looked for)
    store.delete(dep_rt, NS, "cart")
    ctl.reconcile()
    assert [p.split("-")[0] for p in _pods(store, pod_rt)] == ["catalog"]
