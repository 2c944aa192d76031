"""The real clients steps act with: boto3 per (service, region), kubernetes per region context.

Clients are created once per worker and reused (boto3 clients are thread-safe; each Kubernetes
ApiClient has its own connection pool). AWS uses the standard credential chain (or a profile, or
keys from the config), adaptive retries for throttling, and botocore's parameter validation, so a
call that is wrong for AWS is wrong here too. An endpoint override per region is how the sandbox
is reached; nothing else differs.
"""

from __future__ import annotations

import threading
import urllib.request
from typing import Any

from orchestrator.config import Config


class Clients:
    """A cache of clients built from one configuration."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._aws: dict[tuple[str, str], Any] = {}
        self._kube: dict[str, Any] = {}
        self._session: Any = None

    # ---------------------------------------------------------------------------- AWS
    def aws(self, service: str, region: str) -> Any:
        """A boto3 client for a service in a region."""
        key = (service, region)
        with self._lock:
            if key not in self._aws:
                self._aws[key] = self._new_aws(service, region)
            return self._aws[key]

    def aws_at(self, service: str, region: str, endpoint_url: str) -> Any:
        """A boto3 client for a given endpoint (Route 53 ARC cluster endpoints are per cluster)."""
        key = (service, f"{region}@{endpoint_url}")
        with self._lock:
            if key not in self._aws:
                self._aws[key] = self._new_aws(service, region, endpoint_url)
            return self._aws[key]

    def _new_aws(self, service: str, region: str, endpoint_url: str | None = None) -> Any:
        import boto3
        from botocore.config import Config as BotoConfig

        cfg = self.config.aws
        if self._session is None:
            kwargs: dict[str, Any] = {}
            if cfg.profile:
                kwargs["profile_name"] = cfg.profile
            if cfg.access_key_id and cfg.secret_access_key:
                kwargs["aws_access_key_id"] = cfg.access_key_id.get_secret_value()
                kwargs["aws_secret_access_key"] = cfg.secret_access_key.get_secret_value()
            self._session = boto3.session.Session(**kwargs)
        return self._session.client(
            service,
            region_name=region,
            endpoint_url=endpoint_url or cfg.endpoint(region),
            config=BotoConfig(
                retries={"max_attempts": cfg.max_attempts, "mode": "adaptive"},
                parameter_validation=True,
                connect_timeout=5,
                read_timeout=30,
            ),
        )

    # ---------------------------------------------------------------------- Kubernetes
    def kube(self, region: str) -> Any:
        """A kubernetes ApiClient for the region's kubeconfig context."""
        with self._lock:
            if region not in self._kube:
                from kubernetes import config as kube_config

                self._kube[region] = kube_config.new_client_from_config(
                    config_file=self.config.kubernetes.kubeconfig,
                    context=self.config.kubernetes.context(region),
                )
            return self._kube[region]

    # ---------------------------------------------------------------------------- HTTP
    def endpoint(self, name: str, region: str) -> str:
        """The URL of a named endpoint in a region (from the config)."""
        from activities.errors import StepError

        urls = self.config.endpoints.get(name)
        if not urls or region not in urls:
            raise StepError(
                "Validation",
                f"no endpoint {name!r} for region {region} in the configuration",
                retryable=False,
            )
        return urls[region]

    def http(self) -> urllib.request.OpenerDirector:
        """An HTTP opener that ignores proxy settings (checks go straight to the endpoint)."""
        return urllib.request.build_opener(urllib.request.ProxyHandler({}))
