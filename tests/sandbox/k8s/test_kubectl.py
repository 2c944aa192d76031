"""The stand-in as kubectl sees it: get, label selectors, jsonpath, scale, patch, rollout status."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from orchestrator.sandbox.manager import SandboxEnv

KUBECTL = str(Path(sys.executable).parent / "kubectl")


def kubectl(env: SandboxEnv, context: str, *args: str, timeout: float = 30) -> str:
    proc = subprocess.run(
        [KUBECTL, "--kubeconfig", env.kubeconfig, "--context", context, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, f"kubectl {' '.join(args)} failed: {proc.stderr}"
    return proc.stdout


def test_get_deployments_lists_the_three(env: SandboxEnv) -> None:
    out = kubectl(env, "us-west-2", "get", "deploy", "-n", "shop")
    lines = out.strip().splitlines()
    assert lines[0].split()[:2] == ["NAME", "READY"]
    assert sorted(line.split()[0] for line in lines[1:]) == ["cart", "catalog", "checkout"]
    names = kubectl(env, "us-east-1", "get", "deploy", "-n", "shop", "-l", "app=cart", "-o", "name")
    assert names.strip() == "deployment.apps/cart"


def test_scale_and_rollout_status_and_jsonpath(env: SandboxEnv) -> None:
    kubectl(env, "us-west-2", "scale", "deploy/cart", "-n", "shop", "--replicas=2")
    out = kubectl(
        env, "us-west-2", "rollout", "status", "deploy/cart", "-n", "shop", "--timeout=20s"
    )
    assert 'deployment "cart" successfully rolled out' in out
    ready = kubectl(
        env,
        "us-west-2",
        "get",
        "deploy",
        "cart",
        "-n",
        "shop",
        "-o",
        "jsonpath={.status.readyReplicas}",
    )
    assert ready == "2"
    kubectl(
        env,
        "us-west-2",
        "wait",
        "--for=condition=Available",
        "deploy/cart",
        "-n",
        "shop",
        "--timeout=10s",
    )
    kubectl(env, "us-west-2", "scale", "deploy/cart", "-n", "shop", "--replicas=0")


def _set_maintenance(env: SandboxEnv, value: str) -> None:
    patch = json.dumps({"data": {"maintenance": value}})
    kubectl(
        env,
        "us-east-1",
        "patch",
        "configmap",
        "shop-flags",
        "-n",
        "shop",
        "--type=merge",
        "-p",
        patch,
    )


def test_patch_merge_and_read_back(env: SandboxEnv) -> None:
    _set_maintenance(env, "true")
    path = "jsonpath={.data.maintenance}"
    assert kubectl(env, "us-east-1", "get", "cm", "shop-flags", "-n", "shop", "-o", path) == "true"
    _set_maintenance(env, "false")


def test_custom_resource_and_nodes(env: SandboxEnv) -> None:
    out = kubectl(env, "us-west-2", "get", "clusters.postgresql.cnpg.io", "-n", "shop")
    assert "shop-db" in out
    nodes = kubectl(env, "us-west-2", "get", "nodes", "-o", "name")
    assert nodes.split() == ["node/us-west-2-node-1", "node/us-west-2-node-2"]
