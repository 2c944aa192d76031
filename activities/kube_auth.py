"""Credentials for a Kubernetes API server other than a kubeconfig: a pod's ServiceAccount
(in-cluster) and EKS bearer tokens made from AWS credentials.

In-cluster: the API server is https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT, its CA
and the token are files of the ServiceAccount's directory. A projected token is rotated by the
kubelet (a new file swapped in well before the old one expires), so the token is read again
whenever its file changes (one `stat` per request), never cached for the process's life.

EKS: the bearer token is `k8s-aws-v1.` and the unpadded base64url of a presigned STS
GetCallerIdentity URL (SigV4 in the query, `X-Amz-Expires=60`) whose signed headers include
`x-k8s-aws-id: <cluster name>`: what `aws eks get-token` and aws-iam-authenticator make. EKS
calls that URL to learn who signed it; STS accepts it for 15 minutes after its `X-Amz-Date`
(whatever `X-Amz-Expires` says), and the signature binds it to the one cluster. A token is
renewed once it is 14 minutes old (as the CLI's ExecCredential says), under a lock, on the
request that finds it old: one renewal however many threads call at once.

The signature is computed here (SigV4, query form) rather than by botocore's presigner, so the
time a token is dated by comes from the same clock that decides when to renew it (tests move
that clock instead of waiting 15 minutes); the tests check that the URL is the one botocore
presigns for the same credentials and time, byte for byte.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from activities.errors import StepError

TOKEN_PREFIX = "k8s-aws-v1."
CLUSTER_ID_HEADER = "x-k8s-aws-id"
#: `X-Amz-Expires` of the presigned URL (ignored by STS for this call; kept as the CLI sends it).
PRESIGN_EXPIRES = 60
#: Seconds a token is accepted after its X-Amz-Date, and its age when it is renewed.
TOKEN_LIFETIME = 15 * 60
RENEW_AT = 14 * 60
STS_API_VERSION = "2011-06-15"
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_AMZ_DATE = "%Y%m%dT%H%M%SZ"


@dataclass(frozen=True)
class AwsKeys:
    """AWS credentials as a signature needs them (botocore's frozen credentials)."""

    access_key: str
    secret_key: str
    token: str | None = None


def _encode(text: str) -> str:
    """RFC 3986 percent-encoding, as SigV4 canonicalizes (and botocore writes) query strings."""
    return quote(text, safe="-_.~")


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def _canonical_host(url: str) -> str:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return host if parts.port in (None, default) else f"{host}:{parts.port}"


def presigned_identity_url(
    keys: AwsKeys, sts_endpoint: str, region: str, cluster: str, when: datetime
) -> str:
    """A GET of STS GetCallerIdentity at `sts_endpoint`, presigned (SigV4 query form, scoped to
    `region`) at `when`, with the `x-k8s-aws-id: cluster` header signed."""
    stamp = when.astimezone(UTC).strftime(_AMZ_DATE)
    scope = f"{stamp[:8]}/{region}/sts/aws4_request"
    host = _canonical_host(sts_endpoint)
    signed_headers = f"host;{CLUSTER_ID_HEADER}"
    operation = [("Action", "GetCallerIdentity"), ("Version", STS_API_VERSION)]
    auth = [
        ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
        ("X-Amz-Credential", f"{keys.access_key}/{scope}"),
        ("X-Amz-Date", stamp),
        ("X-Amz-Expires", str(PRESIGN_EXPIRES)),
        ("X-Amz-SignedHeaders", signed_headers),
    ]
    if keys.token:
        auth.append(("X-Amz-Security-Token", keys.token))
    params = operation + auth
    canonical_query = "&".join(
        f"{k}={v}" for k, v in sorted((_encode(k), _encode(v)) for k, v in params)
    )
    canonical_request = "\n".join(
        [
            "GET",
            "/",
            canonical_query,
            f"host:{host}\n{CLUSTER_ID_HEADER}:{cluster.strip()}\n",
            signed_headers,
            _EMPTY_SHA256,
        ]
    )
    to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256",
            stamp,
            scope,
            hashlib.sha256(canonical_request.encode()).hexdigest(),
        ]
    )
    key = _hmac(f"AWS4{keys.secret_key}".encode(), stamp[:8])
    for part in (region, "sts", "aws4_request"):
        key = _hmac(key, part)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    query = "&".join(f"{_encode(k)}={_encode(v)}" for k, v in params)
    parts = urlsplit(sts_endpoint)
    return urlunsplit((parts.scheme, parts.netloc, "/", f"{query}&X-Amz-Signature={signature}", ""))


def eks_token(keys: AwsKeys, sts_endpoint: str, region: str, cluster: str, when: datetime) -> str:
    """The bearer token EKS takes for `cluster`, dated `when`."""
    url = presigned_identity_url(keys, sts_endpoint, region, cluster, when)
    return TOKEN_PREFIX + base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")


class BearerSource:
    """Something that gives the current bearer token; `install` makes a kubernetes client
    Configuration ask it before every request."""

    def token(self) -> str:
        raise NotImplementedError

    def install(self, configuration: Any) -> None:
        """Set the token on the configuration, and the hook that refreshes it per request."""

        def refresh(conf: Any) -> None:
            conf.api_key["authorization"] = f"Bearer {self.token()}"

        refresh(configuration)
        configuration.refresh_api_key_hook = refresh


class EksTokens(BearerSource):
    """Tokens for one EKS cluster, renewed once `renew_at` seconds old (by `clock`)."""

    def __init__(
        self,
        cluster: str,
        region: str,
        sts_endpoint: str,
        credentials: Callable[[], AwsKeys],
        clock: Callable[[], float] = time.time,
        renew_at: float = RENEW_AT,
    ) -> None:
        self.cluster, self.region, self.sts_endpoint = cluster, region, sts_endpoint
        self.credentials, self.clock, self.renew_at = credentials, clock, renew_at
        self._lock = threading.Lock()
        self._token = ""
        self._made = 0.0
        #: How many tokens were made (one per renewal).
        self.made = 0

    def token(self) -> str:
        now = self.clock()
        if self._token and now - self._made < self.renew_at:
            return self._token
        with self._lock:  # one renewal, however many requests found the token old
            now = self.clock()
            if not self._token or now - self._made >= self.renew_at:
                when = datetime.fromtimestamp(now, UTC)
                self._token = eks_token(
                    self.credentials(), self.sts_endpoint, self.region, self.cluster, when
                )
                self._made = now
                self.made += 1
            return self._token


class ServiceAccountToken(BearerSource):
    """A ServiceAccount token file, read again whenever it changes (a rotated projected token:
    the kubelet swaps the file in by renaming, so its inode, size or mtime change)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._seen: tuple[int, int, int] | None = None
        self._token = ""
        #: How many times the file was read.
        self.reads = 0

    def token(self) -> str:
        try:
            st = os.stat(self.path)
        except OSError:
            if self._token:  # gone for a moment: the last token is still the best guess
                return self._token
            raise
        seen = (st.st_ino, st.st_mtime_ns, st.st_size)
        if seen != self._seen:
            with self._lock:
                if seen != self._seen:
                    self._token = self.path.read_text().strip()
                    self._seen = seen
                    self.reads += 1
        return self._token


def in_cluster_server(environ: Mapping[str, str]) -> str | None:
    """https://host:port of the API server, as a pod sees it (None outside a pod)."""
    host = environ.get("KUBERNETES_SERVICE_HOST", "").strip()
    port = environ.get("KUBERNETES_SERVICE_PORT", "").strip()
    if not host or not port:
        return None
    if ":" in host and not host.startswith("["):  # IPv6
        host = f"[{host}]"
    return f"https://{host}:{port}"


def configure_in_cluster(
    configuration: Any, region: str, token_dir: str, environ: Mapping[str, str] = os.environ
) -> ServiceAccountToken:
    """Point a kubernetes Configuration at this pod's cluster with its ServiceAccount token.

    Raises:
        StepError: (Validation) not in a pod, or no token or CA in `token_dir`: one line naming
            the region.
    """
    where = f"kubernetes.clusters.{region}.in_cluster"
    server = in_cluster_server(environ)
    if server is None:
        raise StepError(
            "Validation",
            f"Kubernetes in {region}: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are "
            f"not set, so this process does not run in a pod ({where})",
            retryable=False,
        )
    directory = Path(token_dir)
    for name in ("token", "ca.crt"):
        if not (directory / name).is_file():
            raise StepError(
                "Validation",
                f"Kubernetes in {region}: no ServiceAccount {name} at {directory / name} "
                f"(is a ServiceAccount token mounted? {where})",
                retryable=False,
            )
    source = ServiceAccountToken(directory / "token")
    if not source.token():
        raise StepError(
            "Validation",
            f"Kubernetes in {region}: the ServiceAccount token {directory / 'token'} is empty "
            f"({where})",
            retryable=False,
        )
    configuration.host = server
    configuration.ssl_ca_cert = str(directory / "ca.crt")
    source.install(configuration)
    return source


def configure_eks(configuration: Any, endpoint: str, ca_data: str, tokens: EksTokens) -> None:
    """Point a kubernetes Configuration at an EKS cluster (its endpoint and base64 PEM CA, as
    DescribeCluster gives them) with renewed tokens."""
    configuration.host = endpoint.rstrip("/")
    if ca_data:
        configuration.ca_cert_data = base64.b64decode(ca_data).decode()
    tokens.install(configuration)


def describe_eks(client: Any, region: str, name: str, eks_region: str) -> tuple[str, str]:
    """(endpoint, base64 PEM CA) of an EKS cluster, from DescribeCluster.

    Raises:
        StepError: the cluster does not exist, is not active, or cannot be described: one line
            naming the runbook region (and retryable as the AWS error is).
    """
    from botocore.exceptions import BotoCoreError, ClientError

    from activities.errors import aws_error_kind, classify

    where = f"kubernetes.clusters.{region}.eks"
    try:
        cluster = client.describe_cluster(name=name)["cluster"]
    except ClientError as exc:
        err = exc.response.get("Error", {})
        code = str(err.get("Code", ""))
        http = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
        kind, retryable = aws_error_kind(code, http)
        if kind == "NotFound":
            said = f"no EKS cluster {name!r} in {eks_region}"
        else:
            text = " ".join(str(err.get("Message", "")).split())
            said = f"EKS DescribeCluster {name!r} in {eks_region}: {code}: {text}"
        raise StepError(kind, f"Kubernetes in {region}: {said} ({where})", retryable) from None
    except BotoCoreError as exc:  # no credentials, no connection, no answer in time
        got = classify(exc)
        raise StepError(
            got.kind,
            f"Kubernetes in {region}: EKS DescribeCluster {name!r} in {eks_region}: "
            f"{' '.join(got.message.split())} ({where})",
            got.retryable,
        ) from None
    endpoint = str(cluster.get("endpoint") or "")
    status = str(cluster.get("status") or "")
    if not endpoint or status not in ("ACTIVE", "UPDATING"):
        raise StepError(
            "InvalidState",
            f"Kubernetes in {region}: EKS cluster {name!r} in {eks_region} is "
            f"{status or 'not ready'}, with no endpoint to call ({where})",
            retryable=status == "CREATING",
        )
    return endpoint, str((cluster.get("certificateAuthority") or {}).get("data") or "")
