"""Where the orchestrator's clients connect: Temporal, AWS, Kubernetes, named HTTP endpoints.

One config file (YAML) can say it all; with none, the running sandbox's connection file
(`.failover/sandbox/env.json`, or `$FAILOVER_SANDBOX_HOME/env.json`) is the default, so nothing
needs configuring on the sandbox. Secrets (API keys, AWS keys, notification secrets and URLs)
are never printed: `redacted()` hides them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, cast

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from orchestrator.connection import ConnectionFile, connection_path
from orchestrator.notifications import NOTIFY_EVENTS, NotifyEvent
from orchestrator.runbook.models import ID_PATTERN

TASK_QUEUE = "failover"


class ConfigError(ValueError):
    """The configuration is missing or invalid (one line, for the user)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EncryptionKey(_Strict):
    """One key: given (`key` or `key_env`), or a KMS key that wraps per-process data keys."""

    key: SecretStr | None = Field(default=None, description="base64 of 32 random bytes.")
    key_env: str | None = Field(default=None, description="An environment variable holding it.")
    kms_key_id: str | None = Field(default=None, description="KMS key id, ARN or alias.")
    kms_region: str | None = None
    #: The KMS endpoint (the sandbox's; default: AWS's).
    kms_endpoint_url: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> EncryptionKey:
        given = [x for x in (self.key, self.key_env, self.kms_key_id) if x]
        if len(given) != 1:
            raise ValueError("give exactly one of key, key_env, kms_key_id")
        if self.kms_key_id and not self.kms_region:
            raise ValueError("kms_region is required with kms_key_id")
        return self


class EncryptionConfig(_Strict):
    """`temporal.encryption` in the configuration."""

    #: Key id -> key. Ids are written beside each payload: keep an old key listed while
    #: histories encrypted with it are still read.
    keys: dict[str, EncryptionKey] = Field(min_length=1)
    #: The key new payloads are encrypted with.
    active: str

    @model_validator(mode="after")
    def _active_listed(self) -> EncryptionConfig:
        if self.active not in self.keys:
            listed = ", ".join(self.keys)
            raise ValueError(f"active key {self.active!r} is not among keys ({listed})")
        return self


class TemporalConfig(_Strict):
    address: str = "127.0.0.1:7233"
    namespace: str = "default"
    task_queue: str = TASK_QUEUE
    api_key: SecretStr | None = None
    tls: bool = False
    ui_url: str | None = None
    #: Encrypt every payload stored in Temporal (`orchestrator.codec`); None: plain JSON.
    encryption: EncryptionConfig | None = None
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


class ReportsConfig(_Strict):
    """Where reports are written when a run ends (by the worker, however it ends) and read back
    once Temporal's retention has dropped the run: a local directory, or an S3 bucket."""

    #: A directory (default: $FAILOVER_REPORTS, else .failover/reports beside the worker).
    directory: str | None = None
    #: An S3 bucket instead of a directory (written with the worker's AWS client).
    s3_bucket: str | None = None
    s3_prefix: str = "failover/reports/"
    s3_region: str | None = None

    def where(self) -> str:
        """The store in one line (for messages)."""
        if self.s3_bucket:
            return f"s3://{self.s3_bucket}/{self.s3_prefix}"
        return self.directory or os.environ.get("FAILOVER_REPORTS", ".failover/reports")


PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
ChannelType = Literal["slack", "pagerduty", "sns", "webhook"]
#: Events a sandbox's SNS channel takes: the ones someone must act on (the sandbox's SNS publishes
#: are AWS calls, recorded with every other; runs that succeed do not add to them).
SANDBOX_SNS_EVENTS: tuple[NotifyEvent, ...] = (
    "rollback_failed",
    "guard_detected",
    "gameday_result",
    "readiness_regression",
)


def _all_events() -> list[NotifyEvent]:
    return [cast(NotifyEvent, e) for e in NOTIFY_EVENTS]


class NotifyChannel(_Strict):
    """One place notifications go (`notify.channels.NAME`).

    `url` is a secret too: a Slack incoming-webhook URL carries its token, and any other URL may.
    """

    type: ChannelType
    #: Slack: the incoming-webhook URL; PagerDuty: the Events API v2 URL (default PagerDuty's);
    #: webhook: where the signed JSON is POSTed.
    url: SecretStr | None = None
    #: PagerDuty: the integration's routing key.
    routing_key: SecretStr | None = None
    #: SNS: the topic and its region (default: the ARN's region).
    topic_arn: str | None = None
    region: str | None = None
    #: webhook: the HMAC-SHA256 key of the `X-Failover-Signature: sha256=<hex>` header.
    secret: SecretStr | None = None
    #: The events this channel gets (default: every event).
    events: list[NotifyEvent] = Field(default_factory=lambda: _all_events())
    #: Seconds one notification may take on this channel, retries included: a channel that
    #: answers errors or hangs costs at most this (the activity sends channels in parallel).
    deadline: float = Field(default=10.0, gt=0, le=25)
    #: Seconds to wait for a connection (bounded by the deadline too).
    connect_timeout: float = Field(default=3.0, gt=0)

    @model_validator(mode="after")
    def _complete(self) -> NotifyChannel:
        need: dict[str, tuple[str, ...]] = {
            "slack": ("url",),
            "pagerduty": ("routing_key",),
            "sns": ("topic_arn",),
            "webhook": ("url", "secret"),
        }
        missing = [f for f in need[self.type] if getattr(self, f) is None]
        if missing:
            raise ValueError(f"a {self.type} channel needs {' and '.join(missing)}")
        if self.type == "pagerduty" and self.url is None:
            self.url = SecretStr(PAGERDUTY_EVENTS_URL)
        if self.type == "sns":
            parts = (self.topic_arn or "").split(":")
            if len(parts) != 6 or parts[0] != "arn" or parts[2] != "sns" or not parts[5]:
                raise ValueError(
                    f"topic_arn {self.topic_arn!r} is not an SNS topic ARN "
                    "(arn:aws:sns:REGION:ACCOUNT:NAME)"
                )
            self.region = self.region or parts[3]
        if self.url is not None:
            scheme = self.url.get_secret_value().split("://", 1)[0]
            if scheme not in ("http", "https"):
                raise ValueError("url must be an http:// or https:// URL")
        return self

    def takes(self, event: str) -> bool:
        """Whether this channel gets `event`."""
        return event in self.events


class NotifyConfig(_Strict):
    """Where notifications go: named channels (a runbook's `notify:` routes name them)."""

    channels: dict[str, NotifyChannel] = Field(default_factory=dict)

    @field_validator("channels")
    @classmethod
    def _names(cls, v: dict[str, NotifyChannel]) -> dict[str, NotifyChannel]:
        import re

        for name in v:
            if not re.match(ID_PATTERN, name):
                raise ValueError(f"channel name {name!r}: use lowercase letters, digits and -")
        return v


class ApprovalsConfig(_Strict):
    """Signed requests and decisions (runbooks with `approval_auth: signed`, the default outside
    the sandbox): where the CLI finds the public keys of those who may sign, and the operator's
    own key. Paths, not secrets: a private key stays in its file or in ssh-agent."""

    #: A file of git's allowed_signers format (`NAME ssh-ed25519 AAAA...` per line), added to
    #: each runbook's own `allowed_signers`.
    allowed_signers: str | None = None
    #: The operator's private key file (OpenSSH ed25519) when --key is not given; neither:
    #: ssh-agent (SSH_AUTH_SOCK).
    key: str | None = None


class Config(_Strict):
    """The resolved configuration of a CLI or worker process."""

    temporal: TemporalConfig = Field(default_factory=TemporalConfig)
    aws: AWSConfig = Field(default_factory=AWSConfig)
    kubernetes: KubernetesConfig = Field(default_factory=KubernetesConfig)
    dns: DnsConfig = Field(default_factory=DnsConfig)
    #: Named HTTP endpoints per region, e.g. {"app": {"us-east-1": "https://..."}}.
    endpoints: dict[str, dict[str, str]] = Field(default_factory=dict)
    #: Notification channels (Slack, PagerDuty, SNS, signed webhooks).
    notify: NotifyConfig = Field(default_factory=NotifyConfig)
    reports: ReportsConfig = Field(default_factory=ReportsConfig)
    approvals: ApprovalsConfig = Field(default_factory=ApprovalsConfig)
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
        notify=_sandbox_notify(env),
        # Reports beside the sandbox (`.failover/reports` for the default home), wherever the
        # worker runs from; $FAILOVER_REPORTS wins.
        reports=ReportsConfig(
            directory=os.environ.get("FAILOVER_REPORTS") or str(Path(env.home).parent / "reports")
        ),
        sandbox=True,
        source=source or f"{env.home}/env.json",
    )


def _sandbox_notify(env: ConnectionFile) -> NotifyConfig:
    """Channels for each endpoint of the sandbox's notification sink (none on a sandbox that has
    no sink): Slack-, PagerDuty- and webhook-shaped, and moto's SNS topic (which delivers to the
    sink), so notifications work end to end with nothing configured."""
    if not env.notify_url:
        return NotifyConfig()
    base = env.notify_url.rstrip("/")
    channels = {
        "sandbox-slack": NotifyChannel(type="slack", url=SecretStr(f"{base}/slack/sandbox-slack"),
                                       deadline=5.0),
        "sandbox-pagerduty": NotifyChannel(
            type="pagerduty", url=SecretStr(f"{base}/pagerduty/sandbox-pagerduty/v2/enqueue"),
            routing_key=SecretStr("sandbox-routing-key"), deadline=5.0,
        ),
    }  # fmt: skip
    if env.notify_secret:
        channels["sandbox-webhook"] = NotifyChannel(
            type="webhook",
            url=SecretStr(f"{base}/webhook/sandbox-webhook"),
            secret=SecretStr(env.notify_secret),
            deadline=5.0,
        )
    if env.notify_topic_arn:
        channels["sandbox-sns"] = NotifyChannel(
            type="sns",
            topic_arn=env.notify_topic_arn,
            events=list(SANDBOX_SNS_EVENTS),
            deadline=5.0,
        )
    return NotifyConfig(channels=channels)


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
