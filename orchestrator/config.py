"""Where the orchestrator's clients connect: Temporal, AWS, Kubernetes, named HTTP endpoints.

One config file (YAML) can say it all; with none, the running sandbox's connection file
(`.failover/sandbox/env.json`, or `$FAILOVER_SANDBOX_HOME/env.json`) is the default, so nothing
needs configuring on the sandbox. Several files (`a.yaml:b.yaml`) are merged, the later winning.
Temporal is reached with an API key or over TLS with a client certificate (`temporal.tls`,
`orchestrator.temporal_tls`); Temporal's own environment configuration overrides that section.
Secrets (API keys, the TLS client key, AWS keys, encryption keys, notification secrets and URLs)
are never printed: `redacted()` hides them.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    SerializationInfo,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)

from orchestrator.connection import ConnectionFile, connection_path
from orchestrator.notifications import NOTIFY_EVENTS, NotifyEvent
from orchestrator.runbook.models import ID_PATTERN
from orchestrator.temporal_tls import SOURCES, Item, TemporalTLS, TLSError, TLSMaterial

if TYPE_CHECKING:
    from temporalio.envconfig import ClientConfigProfile

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
    #: An environment variable holding the API key (instead of `api_key`).
    api_key_env: str | None = None
    #: false: plain; true: TLS with the system's CAs; a mapping: TLS with a server CA, server
    #: name, mTLS client certificate and key (`orchestrator.temporal_tls.TemporalTLS`).
    tls: TemporalTLS | None = None
    ui_url: str | None = None
    #: Encrypt every payload stored in Temporal (`orchestrator.codec`); None: plain JSON.
    encryption: EncryptionConfig | None = None

    @field_validator("tls", mode="before")
    @classmethod
    def _tls_flag(cls, v: Any) -> Any:
        if v is True:
            return {}
        if v is False:
            return None
        return v

    @field_serializer("tls")
    def _tls_shown(self, v: TemporalTLS | None, info: SerializationInfo) -> Any:
        if v is None:
            return False
        return v.model_dump(mode=info.mode, exclude_none=True) or True

    @model_validator(mode="after")
    def _one_api_key(self) -> TemporalConfig:
        if self.api_key is not None and self.api_key_env:
            raise ValueError("give one of api_key and api_key_env")
        return self

    def api_key_value(self) -> str | None:
        """The API key (from `api_key_env` when given that way); ConfigError if its variable is
        not set."""
        if self.api_key is not None:
            return self.api_key.get_secret_value()
        if self.api_key_env:
            value = os.environ.get(self.api_key_env, "").strip()
            if not value:
                raise ConfigError(
                    f"temporal.api_key_env (${self.api_key_env}): the environment variable is "
                    "not set"
                )
            return value
        return None

    def tls_material(self) -> TLSMaterial | None:
        """The TLS certificates and names, read and checked (None: no TLS); ConfigError (one line
        naming the field and file) for one that cannot be used."""
        if self.tls is None:
            return None
        try:
            return self.tls.material("temporal.tls")
        except TLSError as exc:
            raise ConfigError(str(exc)) from None

    def check(self) -> None:
        """Everything the connection needs can be read (ConfigError otherwise)."""
        self.api_key_value()
        self.tls_material()

    def describe_tls(self) -> str:
        """How the connection is secured, in a few words (for messages)."""
        if self.tls is None:
            return "without TLS"
        ca = self.tls.where("server_ca_cert")
        how = f"over TLS (server CA: {ca}"
        if self.tls.server_name:
            how += f", server name {self.tls.server_name}"
        if self.tls.given("client_cert"):
            how += f", client certificate {self.tls.where('client_cert')}"
        else:
            how += ", no client certificate"
        return how + ")"

    def connect_args(self) -> dict[str, Any]:
        """The keyword arguments of `temporalio.client.Client.connect` for this section
        (ConfigError for a key or certificate that cannot be read)."""
        from temporalio.service import TLSConfig

        material = self.tls_material()
        tls: bool | TLSConfig = False
        if material is not None:
            tls = TLSConfig(**dataclasses.asdict(material)) if material != TLSMaterial() else True
        return {
            "target_host": self.address,
            "namespace": self.namespace,
            "api_key": self.api_key_value(),
            "tls": tls,
        }


#: An IAM role ARN (any partition): arn:aws:iam::123456789012:role/path/name.
ROLE_ARN_PATTERN = r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$"
#: What STS takes as a role session name.
SESSION_NAME_PATTERN = r"^[\w+=,.@-]{2,64}$"
#: AWS caps a session assumed with assumed-role credentials (role chaining) at one hour.
CHAINED_MAX_S = 3600


class AWSAccount(_Strict):
    """One account steps can act in (`aws.accounts.NAME`): a role assumed from the base
    credentials (the standard chain, `aws.profile` or `aws.access_key_id`), from a profile of
    its own, or from another account's role (`base`: role chaining)."""

    #: The role to assume.
    role_arn: str
    #: The `sts:ExternalId` the role's trust policy requires (a secret: never printed).
    external_id: SecretStr | None = None
    #: The role session name (CloudTrail shows it); default `failover-NAME`.
    session_name: str | None = Field(default=None, pattern=SESSION_NAME_PATTERN)
    #: Seconds each set of credentials lasts; they are refreshed before they expire. Over 3600,
    #: the role's MaxSessionDuration must allow it.
    duration_s: int = Field(default=3600, ge=900, le=43200)
    #: A profile (from the AWS config files) to assume the role with, instead of the base.
    profile: str | None = None
    #: Another account whose role assumes this one (role chaining: at most 3600 s).
    base: str | None = None

    @field_validator("role_arn")
    @classmethod
    def _role_arn(cls, v: str) -> str:
        import re

        if not re.match(ROLE_ARN_PATTERN, v):
            raise ValueError(f"{v!r} is not an IAM role ARN (arn:aws:iam::ACCOUNT_ID:role/NAME)")
        return v

    @model_validator(mode="after")
    def _one_source(self) -> AWSAccount:
        if self.profile is not None and self.base is not None:
            raise ValueError("give profile or base, not both")
        if self.base is not None and self.duration_s > CHAINED_MAX_S:
            raise ValueError(
                f"duration_s {self.duration_s}: a role assumed from another account's role "
                f"(base: {self.base}) lasts at most {CHAINED_MAX_S} s (AWS's role chaining limit)"
            )
        return self


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
    #: Accounts steps can act in (a step's `account:`), each an IAM role assumed from the base
    #: credentials above; sessions are cached per account and refreshed before they expire.
    accounts: dict[str, AWSAccount] = Field(default_factory=dict)
    #: The account of steps that name none (None: the base credentials).
    default_account: str | None = None
    #: The region whose STS endpoint assumes the roles (regional STS; default: the base
    #: session's region, from AWS_REGION or the profile, else us-east-1).
    sts_region: str | None = None

    @field_validator("accounts")
    @classmethod
    def _account_names(cls, v: dict[str, AWSAccount]) -> dict[str, AWSAccount]:
        import re

        for name in v:
            if not re.match(ID_PATTERN, name):
                raise ValueError(f"account name {name!r}: use lowercase letters, digits and -")
        return v

    @model_validator(mode="after")
    def _accounts_known(self) -> AWSConfig:
        known = ", ".join(sorted(self.accounts)) or "none"
        if self.default_account is not None and self.default_account not in self.accounts:
            raise ValueError(
                f"default_account {self.default_account!r} is not among accounts ({known})"
            )
        for name, account in self.accounts.items():
            seen = [name]
            while account.base is not None:
                if account.base not in self.accounts:
                    raise ValueError(
                        f"accounts.{seen[-1]}.base: {account.base!r} is not among accounts "
                        f"({known})"
                    )
                if account.base in seen:
                    cycle = " -> ".join([*seen, account.base])
                    raise ValueError(f"accounts.{name}: base accounts form a cycle ({cycle})")
                seen.append(account.base)
                account = self.accounts[account.base]
        return self

    def endpoint(self, region: str) -> str | None:
        return self.endpoints.get(region, self.endpoint_url)

    def account(self, name: str | None) -> str | None:
        """The account a step acts in: the one it names, else `default_account` (None: the
        base credentials)."""
        return name or self.default_account


#: Where a pod's ServiceAccount credentials are mounted (token, ca.crt, namespace).
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


class InClusterAuth(_Strict):
    """The worker runs in this region's cluster: its pod's ServiceAccount token and CA, the API
    server from $KUBERNETES_SERVICE_HOST and $KUBERNETES_SERVICE_PORT (as every in-cluster client
    finds it). The token file is read again whenever it changes (projected tokens rotate)."""

    #: The directory holding `token` and `ca.crt`.
    token_dir: str = SERVICE_ACCOUNT_DIR


class EksCluster(_Strict):
    """An EKS cluster: its endpoint and CA from `eks:DescribeCluster`, and a bearer token made
    from the worker's AWS credentials (a presigned STS GetCallerIdentity, as `aws eks get-token`
    makes it), renewed before it expires."""

    name: str = Field(min_length=1, max_length=100, pattern=r"^[0-9A-Za-z][A-Za-z0-9\-_]*$")
    #: The cluster's AWS region (default: the runbook region it serves).
    region: str | None = None


class KubeCluster(_Strict):
    """How one runbook region's Kubernetes API is reached: exactly one of a kubeconfig `context`,
    `in_cluster` (`true`, or `{token_dir: ...}`), or an `eks` cluster."""

    context: str | None = None
    in_cluster: InClusterAuth | None = None
    eks: EksCluster | None = None

    @field_validator("in_cluster", mode="before")
    @classmethod
    def _flag(cls, v: Any) -> Any:
        if v is True:
            return {}
        if v is False:
            return None
        return v

    @model_validator(mode="after")
    def _one_way(self) -> KubeCluster:
        given = [k for k in ("context", "in_cluster", "eks") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of context, in_cluster, eks"
                + (f" (not {' and '.join(given)})" if given else "")
            )
        return self

    def describe(self) -> str:
        """How it authenticates, in a few words (for messages)."""
        if self.eks is not None:
            where = f" in {self.eks.region}" if self.eks.region else ""
            return f"EKS cluster {self.eks.name}{where}"
        if self.in_cluster is not None:
            return f"in-cluster ServiceAccount ({self.in_cluster.token_dir})"
        return f"kubeconfig context {self.context}"


class KubernetesConfig(_Strict):
    """`kubernetes:` in the configuration. Each region's API server is reached as `clusters`
    says; a region not listed there uses the kubeconfig context `contexts` names (default: a
    context named like the region)."""

    kubeconfig: str | None = None
    #: Runbook region -> kubeconfig context (default: a context named like the region).
    contexts: dict[str, str] = Field(default_factory=dict)
    #: Runbook region -> how to reach its cluster: {context: X}, {in_cluster: true} or
    #: {eks: {name: N, region: R}}.
    clusters: dict[str, KubeCluster] = Field(default_factory=dict)
    #: Seconds to wait for a connection, then for an answer, from a Kubernetes API server.
    connect_timeout: float = Field(default=5.0, gt=0)
    read_timeout: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _said_once(self) -> KubernetesConfig:
        twice = sorted(set(self.contexts) & set(self.clusters))
        if twice:
            raise ValueError(
                f"region {twice[0]} is in both contexts and clusters: give it in one of them"
            )
        return self

    def context(self, region: str) -> str:
        return self.contexts.get(region, region)

    def cluster(self, region: str) -> KubeCluster:
        """How the region's cluster is reached (a kubeconfig context unless `clusters` says)."""
        return self.clusters.get(region) or KubeCluster(context=self.context(region))

    def regions(self) -> set[str]:
        """The regions this section names."""
        return set(self.contexts) | set(self.clusters)


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
        """The configuration as JSON-able data with every secret replaced: secret fields
        (SecretStr: API keys, client key PEM, AWS keys, encryption keys, notification URLs and
        keys) dump as "**********", and a password written into any URL (https://user:pw@host)
        is masked too."""
        return cast(dict[str, Any], _mask_url_passwords(self.model_dump(mode="json")))


_URL_PASSWORD = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://[^/?#@:\s]*:)[^/?#@\s]*@")


def _mask_url_passwords(value: Any) -> Any:
    """`value` with the password of every URL among its strings replaced by **********."""
    if isinstance(value, dict):
        return {k: _mask_url_passwords(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_url_passwords(v) for v in value]
    if isinstance(value, str):
        return _URL_PASSWORD.sub(r"\1**********@", value)
    return value


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
    """The config file if given (or $FAILOVER_CONFIG; several files separated by ':' are merged,
    later ones winning), else the sandbox's connection file; Temporal's environment configuration
    (TEMPORAL_ADDRESS, TEMPORAL_TLS_*, ...) overrides its section. This is the one place it is
    applied: `orchestrator.client.connect` uses the result as it is. What the Temporal connection
    reads (the API key's variable, TLS certificates and key) is checked here: a problem is a
    ConfigError naming the field and the file."""
    cfg = _load(path)
    profile = temporal_profile()
    if profile is not None:
        _apply_temporal_profile(cfg.temporal, profile)
        cfg.source += " + Temporal environment configuration"
    try:
        cfg.temporal.check()
    except ConfigError as exc:
        raise ConfigError(f"{cfg.source}: {exc}") from None
    return cfg


def temporal_profile() -> ClientConfigProfile | None:
    """Temporal's environment configuration (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE,
    TEMPORAL_API_KEY, TEMPORAL_TLS*, TEMPORAL_PROFILE and its TOML file, TEMPORAL_CONFIG_FILE), as
    the `temporal` CLI and the SDKs read it; None when none of it is set."""
    if not any(k.startswith("TEMPORAL_") for k in os.environ):
        return None
    from temporalio.envconfig import ClientConfigProfile

    file = os.environ.get("TEMPORAL_CONFIG_FILE")
    try:
        return ClientConfigProfile.load(
            profile=os.environ.get("TEMPORAL_PROFILE"),
            config_source=Path(file) if file else None,
        )
    except Exception as exc:  # the SDK's loader: a bad TOML file, an unknown profile
        raise ConfigError(f"Temporal environment configuration: {exc}") from None


def _apply_temporal_profile(t: TemporalConfig, profile: ClientConfigProfile) -> None:
    """Temporal's environment configuration over the `temporal` section: each setting it gives
    replaces the section's (a certificate given there replaces the file's, however the file gave
    it); an API key there turns TLS on, as the SDKs do, unless TLS is disabled there."""
    if profile.address:
        t.address = profile.address
    if profile.namespace:
        t.namespace = profile.namespace
    if profile.api_key:
        t.api_key, t.api_key_env = SecretStr(profile.api_key), None
    given = profile.tls
    if given is not None and given.disabled:
        t.tls = None
        return
    if given is None and not profile.api_key:
        return
    settings: dict[str, Any] = t.tls.model_dump(exclude_none=True) if t.tls else {}
    from_env: set[str] = set()
    if given is not None:
        pairs: list[tuple[Item, Any]] = [
            ("server_ca_cert", given.server_root_ca_cert),
            ("client_cert", given.client_cert),
            ("client_key", given.client_private_key),
        ]
        for item, source in pairs:
            if source is None:
                continue
            for name in SOURCES[item]:
                settings.pop(name, None)
            if isinstance(source, Path):
                settings[item] = str(source)
                from_env.add(item)
            else:
                text = source.decode() if isinstance(source, bytes) else source
                settings[f"{item}_data"] = text
                from_env.add(f"{item}_data")
        if given.server_name:
            settings["server_name"] = given.server_name
    try:
        t.tls = TemporalTLS.model_validate(settings)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ConfigError(
            f"temporal.tls with Temporal's environment configuration: {_message(err)}"
        ) from None
    t.tls.mark_from_environment(from_env)


def _message(err: Any) -> str:
    """A pydantic error's message without its "Value error, " prefix."""
    return str(err["msg"]).removeprefix("Value error, ")


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`over` on `base`: mappings merged key by key, anything else replaced."""
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _load(path: str | Path | None) -> Config:
    path = path or os.environ.get("FAILOVER_CONFIG")
    if path:
        files = [Path(p) for p in str(path).split(os.pathsep) if p]
        data: dict[str, Any] = {}
        for p in files:
            data = _merge(data, _read_yaml(p))
        source = " + ".join(str(p) for p in files)
        try:
            return Config.model_validate({**data, "source": source})
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(x) for x in err["loc"])
            raise ConfigError(f"{source}: {where}: {_message(err)}") from None
    env_file = connection_path()
    if not env_file.exists():
        raise ConfigError(
            f"no configuration: no --config, no $FAILOVER_CONFIG and no sandbox in "
            f"{env_file.parent} (run 'failover sandbox up')"
        )
    return from_sandbox(ConnectionFile.model_validate_json(env_file.read_text()), str(env_file))


def _read_yaml(p: Path) -> dict[str, Any]:
    """One configuration file's mapping (ConfigError, one line, for anything else)."""
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: not a mapping (temporal:, aws:, ...)")
    return data
