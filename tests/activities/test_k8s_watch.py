"""k8s_scale waits for a rollout on a watch of the workload, not by reading it again and again:
the rollout's end is seen as soon as a poll would see it, with a handful of reads; a watch that
is refused falls back to the polls."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from kubernetes import client

from activities import steps
from activities.base import StepContext
from activities.clients import Clients
from activities.registry import STEP_TYPES
from orchestrator.config import from_sandbox
from orchestrator.sandbox.control import SandboxControl
from orchestrator.sandbox.faults import FaultRule
from orchestrator.sandbox.manager import SandboxEnv
from tests.sandbox.helpers import kube

NS, NAME, REGION = "shop", "watched-rollout", "us-west-2"
ROLLOUT = 1.5  # seconds: rollout_ready 150 at the tests' time scale of 0.01


@pytest.fixture
def deployment(env: SandboxEnv, control: SandboxControl) -> Iterator[client.AppsV1Api]:
    """A Deployment of 0 replicas of its own, its rollouts taking ROLLOUT seconds."""
    apps = client.AppsV1Api(kube(env, REGION))
    seeded = apps.read_namespaced_deployment("catalog", NS).to_dict()
    body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": NAME, "labels": {"test": "watch"}},
        "spec": seeded["spec"] | {"replicas": 0},
    }
    apps.create_namespaced_deployment(NS, client.ApiClient().sanitize_for_serialization(body))
    control.set_latency(rollout_ready=ROLLOUT * 100)
    try:
        yield apps
    finally:
        control.set_latency(rollout_ready=20.0)
        apps.delete_namespaced_deployment(NAME, NS)


def _scale_up(env: SandboxEnv, monkeypatch: pytest.MonkeyPatch) -> tuple[float, float, int]:
    """k8s_scale to 3 replicas as step.apply runs it (write, then verify until it holds):
    seconds from the write until verified, until the rollout was ready, and Deployment reads."""
    reads = 0
    real = client.AppsV1Api.read_namespaced_deployment

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal reads
        reads += 1
        return real(self, *args, **kwargs)

    monkeypatch.setattr(client.AppsV1Api, "read_namespaced_deployment", counted)
    stype = STEP_TYPES["k8s_scale"]
    params = stype.Params.model_validate(
        {"names": [NAME], "namespace": NS, "replicas": 3, "region": REGION}
    )
    ctx = StepContext("run", "scale", "us-east-1", REGION, None, "drill",
                      Clients(from_sandbox(env)))  # fmt: skip
    call: Any = SimpleNamespace(step=SimpleNamespace(id="scale", type="k8s_scale",
                                                     timeout=timedelta(seconds=30)))  # fmt: skip
    snap = stype.snapshot(ctx, params)
    t0 = time.monotonic()
    stype.apply(ctx, params, snap)
    written = time.monotonic()
    reads = 0
    result = steps.StepActivities(ctx.clients)._until_holds(
        call, stype, ctx, lambda: stype.verify(ctx, params, snap), params=params
    )
    done = time.monotonic()
    assert result.ok, result.detail
    print(
        f"verified {done - t0:.3f} s after the write (ready by {written - t0 + ROLLOUT:.3f} s), "
        f"{reads} reads"
    )
    return done - t0, written - t0 + ROLLOUT, reads


def test_a_rollout_is_watched_and_seen_ready_at_once(
    env: SandboxEnv, deployment: client.AppsV1Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    took, ready_by, reads = _scale_up(env, monkeypatch)
    # Woken by the change, not by the end of a watch's 2 s window (slack for a loaded machine).
    assert ROLLOUT <= took <= ready_by + 1.0, (took, ready_by)
    # Polled, a 1.5 s wait reads the Deployment about 30 times (every 0.05 s at first); on a
    # watch, once per change of it and once more (its Pods come ready one after another).
    assert reads <= 8, reads


def test_a_refused_watch_falls_back_to_polls(
    env: SandboxEnv,
    deployment: client.AppsV1Api,
    control: SandboxControl,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    control.add_fault(FaultRule(target=f"k8s:{REGION}:watch:deployments", region=REGION,
                                error="Forbidden", count=None))  # fmt: skip
    took, ready_by, reads = _scale_up(env, monkeypatch)
    assert ROLLOUT <= took <= ready_by + 1.0, (took, ready_by)
    assert reads >= 15, reads  # every poll read it
