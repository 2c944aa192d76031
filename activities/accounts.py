"""AWS sessions per account: the base credentials, and a role assumed from them per account.

The base session is what boto3 finds on its own (the standard chain: environment, EKS Pod
Identity, IRSA's web identity token, an instance profile, ...), or `aws.profile`, or keys from
the configuration. Each account of `aws.accounts` gets one boto3 session of its own whose
credentials come from `sts:AssumeRole` (with the account's external id), called through a
regional STS client built from the base session (or from the account's own profile, or from
another account's session: role chaining). The credentials are botocore's refreshable ones:
fetched on first use, then refreshed before they expire, by one thread while the others keep
signing with the current ones (`RefreshableCredentials` locks), so a long run never signs with
expired credentials and an account costs one STS call per refresh, not one per client.

External ids are secrets: never logged by this module, and masked in what botocore logs at
DEBUG (AssumeRole's parameters), as are temporary credentials (STS's answer, the session token
header of every signed request).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import structlog

from activities.errors import StepError
from orchestrator.config import AWSAccount, AWSConfig

log = structlog.get_logger("failover.aws")

#: Where STS is asked when nothing says which region (the base session has none either).
DEFAULT_STS_REGION = "us-east-1"
#: botocore's own windows (refresh 15 min before expiry if convenient, 10 min if it must) are
#: longer than a 15-minute session: scaled down to a share of the session for short ones.
ADVISORY_S, MANDATORY_S = 15 * 60, 10 * 60
ADVISORY_SHARE, MANDATORY_SHARE = 0.25, 1 / 6

Clock = Callable[[], datetime]
#: How botocore names where the credentials came from.
METHOD = "sts-assume-role"


def _now() -> datetime:
    return datetime.now(UTC)


def refresh_windows(duration_s: int) -> tuple[int, int]:
    """Seconds before expiry when credentials lasting `duration_s` are refreshed: (advisory, a
    refresh that may fail and keep the current ones; mandatory, one that must succeed)."""
    return (
        min(ADVISORY_S, int(duration_s * ADVISORY_SHARE)),
        min(MANDATORY_S, int(duration_s * MANDATORY_SHARE)),
    )


def assumed_role_credentials(
    refresh_using: Callable[[], dict[str, Any]], duration_s: int, clock: Clock
) -> Any:
    """botocore credentials fetched on first use (`refresh_using`), then refreshed
    `refresh_windows(duration_s)` before they expire, as `clock` tells the time."""
    from botocore.credentials import DeferredRefreshableCredentials

    credentials = DeferredRefreshableCredentials(refresh_using, METHOD, time_fetcher=clock)
    advisory, mandatory = refresh_windows(duration_s)
    credentials._advisory_refresh_timeout = advisory
    credentials._mandatory_refresh_timeout = mandatory
    return credentials


class AwsSessions:
    """The base boto3 session and one per account, built once, from any thread."""

    def __init__(self, cfg: AWSConfig, clock: Clock = _now) -> None:
        self.cfg = cfg
        self.clock = clock
        self._lock = threading.RLock()  # an account's session builds its base's first
        self._base: dict[str | None, Any] = {}  # profile (None: aws.profile) -> session
        self._accounts: dict[str, Any] = {}
        hide_in_botocore_logs(a.external_id.get_secret_value()
                              for a in cfg.accounts.values() if a.external_id)  # fmt: skip

    def session(self, account: str | None) -> Any:
        """The boto3 session of an account (None: the base credentials)."""
        if account is None:
            return self.base()
        with self._lock:
            if account not in self._accounts:
                spec = self.cfg.accounts.get(account)
                if spec is None:
                    known = ", ".join(sorted(self.cfg.accounts)) or "none"
                    raise StepError(
                        "Validation",
                        f"account {account!r} is not in the configuration's aws.accounts ({known})",
                        retryable=False,
                    )
                self._accounts[account] = self._assumed(account, spec)
            return self._accounts[account]

    def base(self, profile: str | None = None) -> Any:
        """The base session: `profile`, else the configuration's (profile, keys, or the
        standard credential chain)."""
        import boto3

        with self._lock:
            if profile not in self._base:
                kwargs: dict[str, Any] = {}
                if profile is not None:
                    kwargs["profile_name"] = profile
                else:
                    if self.cfg.profile:
                        kwargs["profile_name"] = self.cfg.profile
                    if self.cfg.access_key_id and self.cfg.secret_access_key:
                        kwargs["aws_access_key_id"] = self.cfg.access_key_id.get_secret_value()
                        kwargs["aws_secret_access_key"] = (
                            self.cfg.secret_access_key.get_secret_value()
                        )
                self._base[profile] = boto3.session.Session(botocore_session=_regional(),
                                                            **kwargs)  # fmt: skip
            return self._base[profile]

    def sts_region(self, source: Any) -> str:
        """Where roles are assumed: `aws.sts_region`, else the source session's region."""
        return self.cfg.sts_region or source.region_name or DEFAULT_STS_REGION

    def _assumed(self, name: str, spec: AWSAccount) -> Any:
        """A session whose credentials are `spec`'s role, assumed (and re-assumed) on demand."""
        import boto3
        from botocore.config import Config as BotoConfig
        from botocore.credentials import CredentialProvider, CredentialResolver

        source = self.session(spec.base) if spec.base else self.base(spec.profile)
        region = self.sts_region(source)
        sts = source.client(
            "sts",
            region_name=region,
            endpoint_url=self.cfg.endpoint(region),
            config=BotoConfig(
                retries={"total_max_attempts": self.cfg.max_attempts, "mode": "standard"},
                connect_timeout=self.cfg.connect_timeout,
                read_timeout=self.cfg.read_timeout,
            ),
        )
        request: dict[str, Any] = {
            "RoleArn": spec.role_arn,
            "RoleSessionName": spec.session_name or f"failover-{name}"[:64],
            "DurationSeconds": spec.duration_s,
        }
        if spec.external_id is not None:
            request["ExternalId"] = spec.external_id.get_secret_value()

        def assume() -> dict[str, Any]:
            got = sts.assume_role(**request)["Credentials"]
            expiry: datetime = got["Expiration"]
            log.info("role assumed", account=name, role_arn=spec.role_arn, sts_region=region,
                     expires=expiry.isoformat())  # fmt: skip
            return {
                "access_key": got["AccessKeyId"],
                "secret_key": got["SecretAccessKey"],
                "token": got["SessionToken"],
                "expiry_time": expiry.isoformat(),
            }

        credentials = assumed_role_credentials(assume, spec.duration_s, self.clock)

        class Assumed(CredentialProvider):
            METHOD = "sts-assume-role"

            def load(self) -> Any:
                return credentials

        core = _regional()
        core.register_component("credential_provider", CredentialResolver([Assumed()]))
        if source.region_name:
            core.set_config_variable("region", source.region_name)
        return boto3.session.Session(botocore_session=core)


def _regional() -> Any:
    """A botocore session whose STS clients use their region's endpoint (regional STS: the
    default of recent botocore, kept even where AWS_STS_REGIONAL_ENDPOINTS says legacy), so
    assuming a role does not depend on us-east-1."""
    import botocore.session

    core = botocore.session.Session()
    core.set_config_variable("sts_regional_endpoints", "regional")
    return core


# ---------------------------------------------------------------------------- logging
#: botocore's loggers that print request parameters, headers or raw answers at DEBUG.
BOTOCORE_LOGGERS = ("botocore.endpoint", "botocore.parsers", "botocore.auth")
#: What botocore prints of temporary credentials and external ids: STS's answer (XML), the
#: session token header (in the canonical request and in the request's repr), AssumeRole's
#: parameters. Each pattern keeps group 1 and masks what follows.
_PRINTED_SECRETS = (
    re.compile(r"(<(?:SecretAccessKey|SessionToken)>)[^<]*"),
    re.compile(r"(x-amz-security-token:)\S+", re.I),
    re.compile(r"(['\"]X-Amz-Security-Token['\"]:\s*b?['\"])[^'\"]*", re.I),
    re.compile(r"(['\"]ExternalId['\"]:\s*['\"])[^'\"]*"),
)


class _Masked(logging.Filter):
    """Masks the external ids it knows, and temporary credentials, in a log record."""

    def __init__(self) -> None:
        super().__init__("failover-secrets")
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        masked = text
        for pattern in _PRINTED_SECRETS:
            masked = pattern.sub(r"\1***", masked)
        for secret in self.secrets:
            masked = masked.replace(secret, "***")
        if masked != text:
            record.msg, record.args = masked, None
        return True


_MASK = _Masked()


def hide_in_botocore_logs(secrets: Any) -> None:
    """Mask these values (and STS's temporary secrets) in what botocore logs."""
    _MASK.secrets.update(s for s in secrets if s)
    for name in BOTOCORE_LOGGERS:
        logger = logging.getLogger(name)
        if _MASK not in logger.filters:
            logger.addFilter(_MASK)
