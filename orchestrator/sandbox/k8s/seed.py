"""The demo objects of one region's cluster: namespace `shop`, its workloads, flags and database."""

from __future__ import annotations

import base64
from typing import Any

from orchestrator.sandbox.k8s.resources import CNPG_CLUSTER
from orchestrator.sandbox.k8s.store import Store

NAMESPACE = "shop"
DEPLOYMENTS = ("checkout", "cart", "catalog")
FLAGS_CONFIGMAP = "shop-flags"
DB_CLUSTER = "shop-db"


def _deployment(name: str, replicas: int) -> dict[str, Any]:
    labels = {"app": name, "part-of": "shop"}
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": name,
                            "image": f"registry.example/shop/{name}:1.0.0",
                            "ports": [{"containerPort": 8080}],
                            "env": [{"name": "WRITES_FROZEN_CONFIGMAP", "value": FLAGS_CONFIGMAP}],
                        }
                    ]
                },
            },
        },
    }


def seed(store: Store, region: str, active: bool, peer: str, regions: tuple[str, ...] = ()) -> None:
    """Create the region's objects (active: 3 replicas and the primary database). A standby's
    database follows its peer (the active region); every region of the sandbox is one of its
    external clusters."""
    members = tuple(dict.fromkeys((region, peer, *regions)))
    reg = store.registry
    ns_rt, node_rt = reg.by_kind("Namespace"), reg.by_kind("Node")
    cm_rt, secret_rt = reg.by_kind("ConfigMap"), reg.by_kind("Secret")
    svc_rt, deploy_rt = reg.by_kind("Service"), reg.by_kind("Deployment")
    assert ns_rt and node_rt and cm_rt and secret_rt and svc_rt and deploy_rt
    for ns in ("default", "kube-system", NAMESPACE):
        store.create(ns_rt, "", {"metadata": {"name": ns}})
        store.set_status(ns_rt, "", ns, {"phase": "Active"})
    for i in range(1, 3):
        name = f"{region}-node-{i}"
        store.create(
            node_rt,
            "",
            {
                "metadata": {
                    "name": name,
                    "labels": {
                        "topology.kubernetes.io/region": region,
                        "kubernetes.io/hostname": name,
                    },
                }
            },
        )
        store.set_status(node_rt, "", name, {"conditions": [{"type": "Ready", "status": "True"}]})
    store.create(
        cm_rt,
        NAMESPACE,
        {
            "metadata": {"name": FLAGS_CONFIGMAP, "labels": {"part-of": "shop"}},
            "data": {"writes-frozen": "false", "maintenance": "false", "region": region},
        },
    )
    store.create(
        secret_rt,
        NAMESPACE,
        {
            "metadata": {"name": "shop-db-credentials"},
            "type": "Opaque",
            "data": {"password": base64.b64encode(b"sandbox-only").decode()},
        },
    )
    for name in DEPLOYMENTS:
        store.create(deploy_rt, NAMESPACE, _deployment(name, 3 if active else 0))
        store.create(
            svc_rt,
            NAMESPACE,
            {
                "metadata": {"name": name},
                "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]},
            },
        )
    store.registry.register(CNPG_CLUSTER)
    store.create(
        CNPG_CLUSTER,
        NAMESPACE,
        {
            "apiVersion": "postgresql.cnpg.io/v1",
            "kind": "Cluster",
            "metadata": {"name": DB_CLUSTER},
            # CloudNativePG's distributed topology (1.24+): the cluster is the primary when
            # `replica.primary` names itself (`replica.self`).
            "spec": {
                "instances": 3,
                "storage": {"size": "10Gi"},
                "replica": {
                    "self": f"{DB_CLUSTER}-{region}",
                    "primary": f"{DB_CLUSTER}-{region if active else peer}",
                    "source": f"{DB_CLUSTER}-{peer}",
                },
                "externalClusters": [{"name": f"{DB_CLUSTER}-{r}"} for r in members],
            },
        },
    )
