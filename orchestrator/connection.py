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


class ConnectionFile(BaseModel):
    """Everything a client needs to use a local world (the sandbox's env.json)."""

    version: int = 1
    home: str
    temporal_address: str
    temporal_namespace: str = "default"
    temporal_ui_url: str
    aws_endpoint_url: str
    kubeconfig: str
    regions: dict[str, RegionEnv]
    #: Resource ids the world was seeded with (names, ARNs), for demos and tests.
    topology: dict[str, Any] = Field(default_factory=dict)

    def control_url(self, component: str) -> str:
        """Base URL of a component's /_sandbox/ control endpoints ("aws" or a region)."""
        if component == "aws":
            return self.aws_endpoint_url
        return self.regions[component].kube_api


def connection_path(home: Path | str | None = None) -> Path:
    """The connection file under `home` (default: $FAILOVER_SANDBOX_HOME, else DEFAULT_HOME)."""
    import os

    return Path(home or os.environ.get("FAILOVER_SANDBOX_HOME") or DEFAULT_HOME) / "env.json"
