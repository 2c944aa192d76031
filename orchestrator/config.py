"""Where the orchestrator's clients connect: Temporal, AWS, Kubernetes, named HTTP endpoints.

One config file (YAML) can say it all; with none, the running sandbox's connection file
(`.failover/sandbox/env.json`, or `$FAILOVER_SANDBOX_HOME/env.json`) is the default, so nothing
needs configuring on the sandbox. Secrets (API keys, AWS keys) are never printed: `redacted()`
hides them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, ValidationError

from orchestrator.connection import ConnectionFile, connection_path

TASK_QUEUE = "failover"


class ConfigError(ValueError):
    """The configuration is missing or invalid (one line, for the user)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TemporalConfig(_Strict):
    address: str = "127.0.0.1:7233"
    namespace: str = "default"
    task_queue: str = TASK_QUEUE
    api_key: SecretStr | None = None
    tls: bool = False
    ui_url: str | None = None
    #: TLS settings with certificates, when Temporal's environment configuration gives them.
    _tls_config: Any = PrivateAttr(default=None)

    def connect_args(self) -> dict[str, Any]:
        """The keyword arguments of `temporalio.client.Client.connect` for this section."""
        return {
            "target_host": self.address,
            "namespace": self.namespace,
            "api_key": self.api_key.get_secret_value() if self.api_key else None,
            "tls": self._tls_config if self._tls_config is not None else self.tls,
        }


class AWSConfig(_Strict):
    profile: str | None = None
    #: One endpoint for every region and service (the sandbox), or none for AWS itself.
    endpoint_url: str | None = None
    #: Per-region endpoint overrides.
    endpoints: dict[str, str] = Field(default_factory=dict)
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None
    max_attempts: int = Field(default=5, ge=1, le=20)
    #: Seconds to wait for a connection, then for an answer, before a call fails (and, for a
    #: read or an idempotent write, is retried): a region that hangs costs this much, not more.
    connect_timeout: float = Field(default=5.0, gt=0)
    read_timeout: float = Field(default=30.0, gt=0)
    #: Route 53 ARC clusters' data-plane endpoints by cluster name ([{"Region", "Endpoint"}], as
    #: `aws route53-recovery-control-config describe-cluster` lists them). Listed here, routing
    #: controls are read and set without ARC's control plane (us-west-2 only): AWS's advice for
    #: a failover that must work while a region is down.
    arc_clusters: dict[str, list[dict[str, str]]] = Field(default_factory=dict)

    def endpoint(self, region: str) -> str | None:
        return self.endpoints.get(region, self.endpoint_url)


class KubernetesConfig(_Strict):
    kubeconfig: str | None = None
    #: Runbook region -> kubeconfig context (default: a context named like the region).
    contexts: dict[str, str] = Field(default_factory=dict)
    #: Seconds to wait for a connection, then for an answer, from a Kubernetes API server.
    connect_timeout: float = Field(default=5.0, gt=0)
    read_timeout: float = Field(default=30.0, gt=0)

    def context(self, region: str) -> str:
        return self.contexts.get(region, region)


class DnsConfig(_Strict):
    """Where DNS answers are checked (the data plane: what users' resolvers are told)."""

    #: host[:port] of name servers to ask; empty: the zone's own authoritative name servers,
    #: found through DNS itself (so checking works while Route 53's API does not).
    nameservers: list[str] = Field(default_factory=list)
    timeout: float = Field(default=2.0, gt=0)


class Config(_Strict):
    """The resolved configuration of a CLI or worker process."""

    temporal: TemporalConfig = Field(default_factory=TemporalConfig)
    aws: AWSConfig = Field(default_factory=AWSConfig)
    kubernetes: KubernetesConfig = Field(default_factory=KubernetesConfig)
    dns: DnsConfig = Field(default_factory=DnsConfig)
    #: Named HTTP endpoints per region, e.g. {"app": {"us-east-1": "https://..."}}.
    endpoints: dict[str, dict[str, str]] = Field(default_factory=dict)
    #: True when this is the local sandbox (demos may auto-approve only there).
    sandbox: bool = False
    source: str = ""

    def redacted(self) -> dict[str, Any]:
        """The configuration as JSON-able data with every secret replaced by ***."""
        return self.model_dump(mode="json")  # SecretStr dumps as "**********"


def from_sandbox(env: ConnectionFile, source: str = "") -> Config:
    """The configuration that reaches a running sandbox (its connection file)."""
    return Config(
        temporal=TemporalConfig(
            address=env.temporal_address,
            namespace=env.temporal_namespace,
            ui_url=env.temporal_ui_url,
        ),
        aws=AWSConfig(
            endpoint_url=env.aws_endpoint_url,
            endpoints=dict(env.aws_endpoints),
            arc_clusters={k: [dict(e) for e in v] for k, v in env.arc_clusters.items()},
            access_key_id=SecretStr("sandbox"),
            secret_access_key=SecretStr("sandbox"),
        ),
        dns=DnsConfig(nameservers=[env.dns_server] if env.dns_server else []),
        kubernetes=KubernetesConfig(
            kubeconfig=env.kubeconfig,
            contexts={r: e.kube_context for r, e in env.regions.items()},
        ),
        endpoints={
            "app": {r: e.app_url for r, e in env.regions.items()},
            "sandbox": {r: env.control_url(r) for r in env.regions},
            # the AWS server's control endpoint (one for every region): a region_outage fault
            # takes the region's AWS endpoint down there
            "sandbox-aws": {r: env.control_url("aws") for r in env.regions},
        },
        sandbox=True,
        source=source or f"{env.home}/env.json",
    )


def load(path: str | Path | None = None) -> Config:
    """The config file if given (or $FAILOVER_CONFIG), else the sandbox's connection file;
    Temporal's environment configuration (TEMPORAL_ADDRESS, ...) overrides its section. This is
    the one place it is applied: `orchestrator.client.connect` uses the result as it is."""
    cfg = _load(path)
    env = temporal_env()
    if env:
        t = cfg.temporal
        t.address = env.get("target_host", t.address)
        t.namespace = env.get("namespace", t.namespace)
        if env.get("api_key"):
            t.api_key = SecretStr(env["api_key"])
        tls = env.get("tls")
        t.tls = bool(tls) or t.tls
        if tls is not None and not isinstance(tls, bool):
            t._tls_config = tls  # certificates given by file in Temporal's own configuration
        cfg.source += " + Temporal environment configuration"
    return cfg


def temporal_env() -> dict[str, Any]:
    """Temporal's environment configuration (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE,
    TEMPORAL_API_KEY, TEMPORAL_TLS*, TEMPORAL_PROFILE and its TOML file, TEMPORAL_CONFIG_FILE), as
    the `temporal` CLI and the SDKs read it; {} when none of it is set."""
    if not any(k.startswith("TEMPORAL_") for k in os.environ):
        return {}
    from temporalio.envconfig import ClientConfig

    loaded = ClientConfig.load_client_connect_config(
        profile=os.environ.get("TEMPORAL_PROFILE"),
        config_file=os.environ.get("TEMPORAL_CONFIG_FILE"),
    )
    return dict(loaded)


def _load(path: str | Path | None) -> Config:
    path = path or os.environ.get("FAILOVER_CONFIG")
    if path:
        p = Path(path)
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except OSError as exc:
            raise ConfigError(f"{p}: cannot read: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{p}: not valid YAML: {exc}") from None
        try:
            return Config.model_validate({**data, "source": str(p)})
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(x) for x in err["loc"])
            raise ConfigError(f"{p}: {where}: {err['msg']}") from None
    env_file = connection_path()
    if not env_file.exists():
        raise ConfigError(
            f"no configuration: no --config, no $FAILOVER_CONFIG and no sandbox in "
            f"{env_file.parent} (run 'failover sandbox up')"
        )
    return from_sandbox(ConnectionFile.model_validate_json(env_file.read_text()), str(env_file))
