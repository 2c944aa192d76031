"""Warm clients: a worker builds, as it starts, the clients its steps will ask for, and the steps
then get those very clients (one per service, region and retry mode), whatever thread asks."""

from __future__ import annotations

import threading
from typing import Any

from activities.clients import Clients
from orchestrator.config import Config
from orchestrator.sandbox.manager import SandboxEnv
from orchestrator.worker import warm_clients
from tests.workflows.helpers import sandbox_config


def test_warm_builds_every_client_once_and_steps_reuse_them(env: SandboxEnv) -> None:
    clients = Clients(sandbox_config(env))
    assert clients.regions() == sorted(env.regions)
    warmed = clients.warm(["rds", "elasticloadbalancing", "route53-recovery-cluster", "nope"])
    regions = sorted(env.regions)
    assert warmed.aws == [(s, r) for r in regions for s in ("elbv2", "rds")]
    assert warmed.kube == regions
    assert set(warmed.failed) == {f"aws:nope:{r}" for r in regions}  # said, not raised
    before = dict(clients._aws)
    # What a step asks for now is what was built: nothing new, from any thread.
    got: list[Any] = []
    threads = [threading.Thread(target=lambda: got.append(clients.aws("rds", regions[0])))
               for _ in range(8)]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(c is before[("rds", regions[0], True)] for c in got)
    assert clients.aws("elbv2", regions[1], retry=False) is before[("elbv2", regions[1], False)]
    assert clients.kube(regions[0]) is clients.kube(regions[0])
    assert clients._aws == before
    # The warm client answers like any other.
    assert clients.aws("rds", regions[0]).describe_global_clusters()["GlobalClusters"]


def test_a_worker_warms_what_the_step_types_use_and_a_bad_context_is_only_noted(
    env: SandboxEnv,
) -> None:
    clients = Clients(sandbox_config(env))
    warm_clients(clients)
    services = {key[0] for key in clients._aws}
    assert {"rds", "route53", "elbv2", "autoscaling", "cloudwatch", "ssm"} <= services
    assert "route53-recovery-cluster" not in services  # one client per ARC endpoint, on demand
    nowhere = Clients(Config(kubernetes={"kubeconfig": "/nonexistent/kubeconfig"}))
    warmed = nowhere.warm(["rds"], regions=["eu-west-1"])
    assert warmed.kube == [] and "kube:eu-west-1" in warmed.failed
