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
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from orchestrator.sandbox.manager import DEFAULT_HOME, SandboxEnv

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


class AWSConfig(_Strict):
    profile: str | None = None
    #: One endpoint for every region and service (the sandbox), or none for AWS itself.
    endpoint_url: str | None = None
    #: Per-region endpoint overrides.
    endpoints: dict[str, str] = Field(default_factory=dict)
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None
    max_attempts: int = Field(default=5, ge=1, le=20)

    def endpoint(self, region: str) -> str | None:
        return self.endpoints.get(region, self.endpoint_url)


class KubernetesConfig(_Strict):
    kubeconfig: str | None = None
    #: Runbook region -> kubeconfig context (default: a context named like the region).
    contexts: dict[str, str] = Field(default_factory=dict)

    def context(self, region: str) -> str:
        return self.contexts.get(region, region)


class Config(_Strict):
    """The resolved configuration of a CLI or worker process."""

    temporal: TemporalConfig = Field(default_factory=TemporalConfig)
    aws: AWSConfig = Field(default_factory=AWSConfig)
    kubernetes: KubernetesConfig = Field(default_factory=KubernetesConfig)
    #: Named HTTP endpoints per region, e.g. {"app": {"us-east-1": "https://..."}}.
    endpoints: dict[str, dict[str, str]] = Field(default_factory=dict)
    #: True when this is the local sandbox (demos may auto-approve only there).
    sandbox: bool = False
    source: str = ""

    def redacted(self) -> dict[str, Any]:
        """The configuration as JSON-able data with every secret replaced by ***."""
        return self.model_dump(mode="json")  # SecretStr dumps as "**********"


def from_sandbox(env: SandboxEnv, source: str = "") -> Config:
    """The configuration that reaches a running sandbox."""
    return Config(
        temporal=TemporalConfig(
            address=env.temporal_address,
            namespace=env.temporal_namespace,
            ui_url=env.temporal_ui_url,
        ),
        aws=AWSConfig(
            endpoint_url=env.aws_endpoint_url,
            access_key_id=SecretStr("sandbox"),
            secret_access_key=SecretStr("sandbox"),
        ),
        kubernetes=KubernetesConfig(
            kubeconfig=env.kubeconfig,
            contexts={r: e.kube_context for r, e in env.regions.items()},
        ),
        endpoints={
            "app": {r: e.app_url for r, e in env.regions.items()},
            "sandbox": {r: env.control_url(r) for r in env.regions},
        },
        sandbox=True,
        source=source or f"{env.home}/env.json",
    )


def load(path: str | Path | None = None) -> Config:
    """The config file if given (or $FAILOVER_CONFIG), else the sandbox's connection file;
    Temporal's environment configuration (TEMPORAL_ADDRESS, ...) overrides its section."""
    cfg = _load(path)
    from orchestrator.client import env_config

    env = env_config()
    if env:
        t = cfg.temporal
        t.address = env.get("target_host", t.address)
        t.namespace = env.get("namespace", t.namespace)
        if env.get("api_key"):
            t.api_key = SecretStr(env["api_key"])
        t.tls = bool(env.get("tls", t.tls))
        cfg.source += " + Temporal environment configuration"
    return cfg


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
    home = Path(os.environ.get("FAILOVER_SANDBOX_HOME") or DEFAULT_HOME)
    env_file = home / "env.json"
    if not env_file.exists():
        raise ConfigError(
            f"no configuration: no --config, no $FAILOVER_CONFIG and no sandbox in {home} "
            "(run 'failover sandbox up')"
        )
    return from_sandbox(SandboxEnv.model_validate_json(env_file.read_text()), str(env_file))
