"""Warm clients: a worker builds, as it starts, the clients its steps will ask for, and the steps
then get those very clients (one per service, region and retry mode), whatever thread asks."""

from __future__ import annotations

import json
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import activities
from activities.clients import KUBE_APIS, POOL_CONNECTIONS, Clients, _import_kube_apis
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
    assert all(c is before[("rds", regions[0], True, None)] for c in got)
    assert (
        clients.aws("elbv2", regions[1], retry=False) is before[("elbv2", regions[1], False, None)]
    )
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


def test_warming_imports_every_kubernetes_api_class_the_steps_use() -> None:
    """kubernetes.client imports an API class (and its models) on first use: about a second for
    CoreV1Api. Warming imports each one the steps and readiness checks name."""
    used: set[str] = set()
    for path in Path(activities.__file__).parent.rglob("*.py"):
        used |= set(re.findall(r"\b(?:client|k8s)\.(\w+Api)\b", path.read_text()))
    assert {"CoreV1Api", "AppsV1Api", "CustomObjectsApi"} <= used
    assert used <= set(KUBE_APIS), used - set(KUBE_APIS)
    assert _import_kube_apis() == {}
    assert {"kubernetes.client.api.core_v1_api", "kubernetes.dynamic"} <= set(sys.modules)


class _KeepAlive(BaseHTTPRequestHandler):
    """An AWS JSON endpoint that keeps connections open, as AWS does; counts connections."""

    protocol_version = "HTTP/1.1"
    connections = 0
    lock = threading.Lock()
    #: Each call is answered once every caller's call has arrived: all in flight at once.
    together = threading.Barrier(1)

    def setup(self) -> None:
        super().setup()
        with _KeepAlive.lock:
            _KeepAlive.connections += 1

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        _KeepAlive.together.wait()
        body = json.dumps({"Parameters": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_a_client_keeps_a_connection_per_concurrent_caller_open_for_the_next_call() -> None:
    """30 steps calling one client at once, twice: the second round reuses the first round's
    connections (botocore's default pool keeps 10: 20 connections a round were opened and
    closed again, a TLS handshake each on AWS)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _KeepAlive)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    clients = Clients(
        Config(aws={"endpoint_url": url, "access_key_id": "k", "secret_access_key": "s"})
    )
    ssm = clients.aws("ssm", "us-east-1")
    callers = 30
    assert callers <= POOL_CONNECTIONS

    def round_of_calls() -> None:
        threads = [threading.Thread(target=ssm.describe_parameters) for _ in range(callers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    try:
        _KeepAlive.connections = 0
        _KeepAlive.together = threading.Barrier(callers, timeout=30)
        round_of_calls()
        first = _KeepAlive.connections
        round_of_calls()
        assert first == callers  # a connection each, all at once
        assert _KeepAlive.connections == first  # none opened again
    finally:
        server.shutdown()
        server.server_close()
