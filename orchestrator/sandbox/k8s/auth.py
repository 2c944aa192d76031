"""Authentication on the Kubernetes stand-in's secure (HTTPS) port, as an API server does it.

A bearer token is one of:

- a static token (`--token-auth-file`): the sandbox kubeconfig's;
- a ServiceAccount token (what a pod's projected token is): accepted while it is listed, so a
  rotation is a new token listed and the old one dropped;
- an EKS token (`k8s-aws-v1.` + base64url of a presigned STS GetCallerIdentity URL), checked as
  EKS's authenticator (aws-iam-authenticator) checks it: size, prefix, encoding, an STS host it
  knows, path `/`, only the query parameters a presigned GetCallerIdentity has, each once, the
  action, `x-k8s-aws-id` among the signed headers, `X-Amz-Expires` within 0..900, and no more
  than 15 minutes since `X-Amz-Date`. Then what STS would check when the authenticator calls the
  URL with `x-k8s-aws-id: <this cluster>`: the SigV4 signature, recomputed with the key of the
  access key id it names (moto's STS answers any signature, so the check is made here). A token
  made for another cluster, or altered, fails there.

No token: anonymous, which may read /version, /healthz, /livez and /readyz only (403 elsewhere);
a token that does not authenticate: 401 everywhere, as kube-apiserver answers. The plain HTTP
port (the old insecure port) takes every request as it always did. Every decision is kept (the
last 200: who, how, or why not) for `GET /_sandbox/auth`; tokens themselves never are.
"""

from __future__ import annotations

import base64
import binascii
import collections
import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

from aiohttp import web
from pydantic import BaseModel, Field

TOKEN_PREFIX = "k8s-aws-v1."
CLUSTER_ID_HEADER = "x-k8s-aws-id"
MAX_TOKEN_BYTES = 4096
TOKEN_LIFETIME = 15 * 60  # seconds after X-Amz-Date (STS ignores X-Amz-Expires for this call)
PUBLIC_PATHS = frozenset({"/version", "/healthz", "/livez", "/readyz"})
ALLOWED_PARAMS = frozenset(
    {
        "action",
        "version",
        "x-amz-algorithm",
        "x-amz-credential",
        "x-amz-date",
        "x-amz-expires",
        "x-amz-security-token",
        "x-amz-signature",
        "x-amz-signedheaders",
    }
)
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_AMZ_DATE = "%Y%m%dT%H%M%SZ"
#: What the sandbox's AWS identity is called in EKS (moto's default account).
ACCOUNT = "123456789012"


class Refused(Exception):
    """A token that does not authenticate; the message says why (kept, never answered)."""


class AuthConfig(BaseModel):
    """Who the secure port lets in (`PUT /_sandbox/auth` replaces the fields it names)."""

    #: token -> user name (the static token file).
    static_tokens: dict[str, str] = Field(default_factory=dict)
    #: token -> system:serviceaccount:NAMESPACE:NAME.
    service_account_tokens: dict[str, str] = Field(default_factory=dict)
    #: The EKS cluster names this API server is (the `x-k8s-aws-id` a token must be signed with).
    eks_clusters: list[str] = Field(default_factory=list)
    #: STS endpoints a token's URL may point at (scheme://host[:port]).
    sts_endpoints: list[str] = Field(default_factory=list)
    #: Access key id -> secret key: the keys STS knows (to check signatures with).
    aws_credentials: dict[str, str] = Field(default_factory=dict)


def _encode(text: str) -> str:
    return quote(text, safe="-_.~")


def _host(scheme: str, netloc: str) -> str:
    """host[:port] as SigV4 signs it (the scheme's default port left out)."""
    parts = urlsplit(f"{scheme}://{netloc}")
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    default = {"http": 80, "https": 443}.get(scheme)
    return host if parts.port in (None, default) else f"{host}:{parts.port}"


class Authenticator:
    """The secure port's authentication: a config, its decisions, an aiohttp middleware."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.config = AuthConfig()
        self.clock = clock
        self.decisions: collections.deque[dict[str, Any]] = collections.deque(maxlen=200)

    # ------------------------------------------------------------------------ configuration
    def configure(self, data: dict[str, Any]) -> None:
        """Replace the fields `data` names (validated first: nothing changes if one is bad)."""
        merged = AuthConfig.model_validate({**self.config.model_dump(), **data})
        self.config = merged

    def describe(self) -> dict[str, Any]:
        """The configuration without its secrets, and the recent decisions."""
        c = self.config
        return {
            "static_users": sorted(set(c.static_tokens.values())),
            "service_accounts": sorted(set(c.service_account_tokens.values())),
            "eks_clusters": list(c.eks_clusters),
            "sts_endpoints": list(c.sts_endpoints),
            "aws_access_keys": sorted(c.aws_credentials),
            "decisions": list(self.decisions),
        }

    # ------------------------------------------------------------------------ authentication
    def authenticate(self, token: str) -> tuple[str, str]:
        """(user, method) for a bearer token.

        Raises:
            Refused: the token does not authenticate (the message says why).
        """
        c = self.config
        if token in c.static_tokens:
            return c.static_tokens[token], "static"
        if token in c.service_account_tokens:
            return c.service_account_tokens[token], "serviceaccount"
        if token.startswith(TOKEN_PREFIX):
            return self.eks_user(token), "eks"
        raise Refused("not a known token")

    def eks_user(self, token: str) -> str:
        """The AWS identity that signed an EKS token for one of this server's clusters.

        Raises:
            Refused: as EKS refuses it (the message is the authenticator's or STS's reason).
        """
        if len(token) > MAX_TOKEN_BYTES:
            raise Refused("token is too large")
        body = token[len(TOKEN_PREFIX) :]
        try:
            padded = (body + "=" * (-len(body) % 4)).encode()
            url = base64.b64decode(padded, altchars=b"-_", validate=True).decode()
        except (binascii.Error, ValueError) as exc:  # (UnicodeDecodeError too)
            raise Refused(f"token is not base64url: {exc}") from None
        parts = urlsplit(url)
        known = {(p.scheme, p.netloc.lower()) for p in map(urlsplit, self.config.sts_endpoints)}
        if (parts.scheme, parts.netloc.lower()) not in known:
            raise Refused(f"unexpected STS endpoint {parts.scheme}://{parts.netloc} in the URL")
        if parts.path != "/":
            raise Refused("unexpected path in the presigned URL")
        query: dict[str, str] = {}
        raw = parse_qsl(parts.query, keep_blank_values=True)
        for key, value in raw:
            lower = key.lower()
            if lower not in ALLOWED_PARAMS:
                raise Refused(f"query parameter {key!r} is not allowed")
            if lower in query:
                raise Refused("a query parameter is given more than once")
            query[lower] = value
        if query.get("action") != "GetCallerIdentity":
            raise Refused("the presigned URL is not sts:GetCallerIdentity")
        signed = query.get("x-amz-signedheaders", "").lower().split(";")
        if CLUSTER_ID_HEADER not in signed:
            raise Refused(f"the {CLUSTER_ID_HEADER} header is not signed")
        try:
            expires = int(query.get("x-amz-expires", ""))
        except ValueError:
            expires = -1
        if not 0 <= expires <= 900:
            raise Refused("X-Amz-Expires is not within 0..900")
        try:
            date = datetime.strptime(query.get("x-amz-date", ""), _AMZ_DATE).replace(tzinfo=UTC)
        except ValueError:
            raise Refused("X-Amz-Date is missing or malformed") from None
        now = self.clock()
        age = now - date.timestamp()
        if age > TOKEN_LIFETIME:
            raise Refused(f"the token expired {age - TOKEN_LIFETIME:.0f}s ago (X-Amz-Date {date})")
        if age < -TOKEN_LIFETIME:
            raise Refused("X-Amz-Date is in the future (signature not yet current)")
        return self._sts_check(parts.scheme, parts.netloc, raw, query, signed)

    def _sts_check(
        self,
        scheme: str,
        netloc: str,
        raw: list[tuple[str, str]],
        query: dict[str, str],
        signed: list[str],
    ) -> str:
        """STS's part: the signature, as STS recomputes it for a GET that carries this server's
        `x-k8s-aws-id` (and the host), with the key of the access key id named."""
        if query.get("x-amz-algorithm") != "AWS4-HMAC-SHA256":
            raise Refused("unsupported signature algorithm")
        credential = query.get("x-amz-credential", "").split("/")
        if len(credential) != 5 or credential[3:] != ["sts", "aws4_request"]:
            raise Refused("malformed X-Amz-Credential")
        access_key, day, region = credential[:3]
        if day != query.get("x-amz-date", "")[:8]:
            raise Refused("X-Amz-Credential's date is not X-Amz-Date's")
        secret = self.config.aws_credentials.get(access_key)
        if secret is None:
            raise Refused("InvalidClientTokenId: the access key id is not known to STS")
        if set(signed) - {"host", CLUSTER_ID_HEADER} or signed != sorted(signed):
            raise Refused("SignatureDoesNotMatch: signed headers the verifier does not send")
        canonical_query = "&".join(
            f"{k}={v}"
            for k, v in sorted(
                (_encode(k), _encode(v)) for k, v in raw if k.lower() != "x-amz-signature"
            )
        )
        key = hmac.new(f"AWS4{secret}".encode(), day.encode(), hashlib.sha256).digest()
        for part in (region, "sts", "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        given = query.get("x-amz-signature", "")
        for cluster in self.config.eks_clusters:
            values = {"host": _host(scheme, netloc), CLUSTER_ID_HEADER: cluster}
            canonical = "\n".join(
                [
                    "GET",
                    "/",
                    canonical_query,
                    "".join(f"{h}:{values[h]}\n" for h in signed),
                    ";".join(signed),
                    _EMPTY_SHA256,
                ]
            )
            to_sign = "\n".join(
                [
                    "AWS4-HMAC-SHA256",
                    query["x-amz-date"],
                    f"{day}/{region}/sts/aws4_request",
                    hashlib.sha256(canonical.encode()).hexdigest(),
                ]
            )
            expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
            if hmac.compare_digest(expected, given):
                return f"arn:aws:iam::{ACCOUNT}:user/{access_key}"
        raise Refused(
            "SignatureDoesNotMatch: not signed for this cluster "
            f"({', '.join(self.config.eks_clusters) or 'no EKS cluster name is configured'})"
        )

    # ------------------------------------------------------------------------------ HTTP
    def _decide(
        self, request: web.Request, user: str | None, method: str, status: int, why: str = ""
    ) -> None:
        self.decisions.append(
            {
                "at": round(time.time(), 3),
                "path": request.path,
                "user": user,
                "method": method,
                "status": status,
                "reason": why,
            }
        )

    @web.middleware
    async def middleware(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        """Authenticate requests that came over TLS (the secure port)."""
        if not request.secure or request.path.startswith("/_sandbox/"):
            return await handler(request)
        header = request.headers.get("Authorization", "").strip()
        if not header:
            if request.path.rstrip("/") in PUBLIC_PATHS:
                self._decide(request, "system:anonymous", "anonymous", 200)
                return await handler(request)
            self._decide(request, "system:anonymous", "anonymous", 403, "no credentials")
            return _status(
                403,
                "Forbidden",
                f'forbidden: User "system:anonymous" cannot {request.method.lower()} path '
                f'"{request.path}"',
            )
        scheme, _, token = header.partition(" ")
        try:
            if scheme.lower() != "bearer" or not token.strip():
                raise Refused("not a bearer token")
            user, method = self.authenticate(token.strip())
        except Refused as exc:
            self._decide(request, None, "bearer", 401, str(exc))
            return _status(401, "Unauthorized", "Unauthorized")
        self._decide(request, user, method, 200)
        return await handler(request)


def _status(code: int, reason: str, message: str) -> web.Response:
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    return web.Response(
        body=json.dumps(body).encode(), status=code, content_type="application/json"
    )
