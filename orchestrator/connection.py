"""The connection file of a local world (`env.json`): where Temporal, AWS and each region's
Kubernetes API and app answer.

The sandbox writes it when it comes up; the product reads it as its default configuration when
none is given (`orchestrator.config.load`). Only what a client needs is modelled here: the
sandbox's own bookkeeping (its processes, latency model) rides along in the same file and is
ignored by the product, so the sandbox can be left out of an install without changing how the
product reads the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

#: Where `failover sandbox up` keeps its files (and where the product looks for env.json).
DEFAULT_HOME = Path(".failover/sandbox")


class RegionEnv(BaseModel):
    """Where one simulated region's endpoints are."""

    role: str  # "active" | "standby" (initial)
    kube_context: str
    kube_api: str
    app_url: str
    #: The region's own control endpoints (its outage, app faults, calls), which keep answering
    #: while the region is down; older sandboxes served them on the Kubernetes API's port.
    control: str | None = None


class ConnectionFile(BaseModel):
    """Everything a client needs to use a local world (the sandbox's env.json)."""

    version: int = 1
    home: str
    temporal_address: str
    temporal_namespace: str = "default"
    temporal_ui_url: str
    aws_endpoint_url: str
    #: Each region's AWS endpoint: the calls made in a region go there, so that a region can be
    #: taken down on its own (older sandboxes had one endpoint for every region).
    aws_endpoints: dict[str, str] = Field(default_factory=dict)
    #: host:port of the authoritative DNS server of the hosted zones (UDP and TCP).
    dns_server: str | None = None
    #: Route 53 ARC clusters' data-plane endpoints, by cluster name, as DescribeCluster lists
    #: them ([{"Region": ..., "Endpoint": ...}]): known ahead, so that moving traffic needs no
    #: control-plane call (which has a single home region) while a region is down.
    arc_clusters: dict[str, list[dict[str, str]]] = Field(default_factory=dict)
    kubeconfig: str
    regions: dict[str, RegionEnv]
    #: Resource ids the world was seeded with (names, ARNs), for demos and tests.
    topology: dict[str, Any] = Field(default_factory=dict)
    #: The notification sink (Slack-, PagerDuty- and webhook-shaped endpoints that record what
    #: arrives), the HMAC key its webhook endpoint checks signatures with (a sandbox-only value),
    #: and the SNS topic that delivers to it; None on sandboxes without one.
    notify_url: str | None = None
    notify_secret: str | None = None
    notify_topic_arn: str | None = None

    def control_url(self, component: str) -> str:
        """Base URL of a component's /_sandbox/ control endpoints ("aws" or a region)."""
        if component == "aws":
            return self.aws_endpoint_url
        region = self.regions[component]
        return region.control or region.kube_api


def connection_path(home: Path | str | None = None) -> Path:
    """The connection file under `home` (default: $FAILOVER_SANDBOX_HOME, else DEFAULT_HOME)."""
    import os

    return Path(home or os.environ.get("FAILOVER_SANDBOX_HOME") or DEFAULT_HOME) / "env.json"
