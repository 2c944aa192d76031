"""Identify AWS requests and render AWS responses, from botocore's own service models.

The sandbox's AWS server sees raw HTTP. To record calls, inject faults, and serve the services
moto lacks, it needs each request's service, region, operation and input, in every protocol the
clients use (query, json, rest-json, rest-xml), and it needs to answer in the shape the real
service would. Both come from botocore's models, so shapes cannot drift from AWS.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from botocore.model import OperationModel, ServiceModel
from moto.core.serialize import get_serializer_class
from moto.core.utils import get_service_model

from orchestrator.sandbox.aws.errors import SandboxError

# The services the sandbox knows by name. The signing name in the request's credential scope
# tells which one a request is for (elb and elbv2 share one and differ by API version).
KNOWN_SERVICES = (
    "rds",
    "route53",
    "elbv2",
    "elb",
    "autoscaling",
    "ssm",
    "sns",
    "ecs",
    "eks",
    "cloudwatch",
    "secretsmanager",
    "ec2",
    "sts",
    "iam",
    "fis",
    "route53-recovery-cluster",
    "route53-recovery-control-config",
    "globalaccelerator",
)
PROTOCOL_PREFERENCE = ("json", "rest-json", "rest-xml", "query", "ec2")
READ_PREFIXES = ("Describe", "Get", "List", "Search", "Lookup", "Check", "Validate", "Test")

_SCOPE = re.compile(
    r"Credential=(?P<akid>[^/]+)/\d{8}/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request"
)

# Error code -> HTTP status for codes the service model does not define itself.
ERROR_STATUS = {
    "Throttling": 400,
    "ThrottlingException": 400,
    "RequestLimitExceeded": 400,
    "TooManyRequestsException": 429,
    "AccessDenied": 403,
    "AccessDeniedException": 403,
    "UnauthorizedOperation": 403,
    "ServiceUnavailable": 503,
    "ServiceUnavailableException": 503,
    "InternalFailure": 500,
    "InternalError": 500,
    "InternalServerError": 500,
    "RequestTimeout": 408,
}


@cache
def service_model(name: str) -> ServiceModel:
    """The botocore model of one service, as moto's serializers want it (cached)."""
    return get_service_model(name)


def protocol_of(model: ServiceModel) -> str:
    """The protocol botocore clients use for this service (its first supported one)."""
    protocols = model.metadata.get("protocols") or [model.metadata["protocol"]]
    for p in PROTOCOL_PREFERENCE:
        if p in protocols:
            return p
    return str(model.metadata["protocol"])


@cache
def _signing_names() -> dict[str, list[str]]:
    names: dict[str, list[str]] = {}
    for svc in KNOWN_SERVICES:
        md = service_model(svc).metadata
        names.setdefault(md.get("signingName") or md["endpointPrefix"], []).append(svc)
    return names


@cache
def _rest_routes(name: str) -> list[tuple[str, re.Pattern[str], str]]:
    """(method, path regex, operation) for a rest-* service, most specific first."""
    model = service_model(name)
    routes = []
    for op_name in model.operation_names:
        http = model.operation_model(op_name).http
        uri = http["requestUri"].split("?")[0]
        pattern = re.sub(
            r"\{(\w+)(\+?)\}",
            lambda m: f"(?P<{m.group(1)}>.+)" if m.group(2) else f"(?P<{m.group(1)}>[^/]+)",
            uri.rstrip("/") or "/",
        )
        routes.append((http["method"], re.compile(f"^{pattern}/?$"), op_name))
    # Literal segments beat placeholders: sort by number of placeholders, then by length.
    routes.sort(key=lambda r: (r[1].pattern.count("(?P<"), -len(r[1].pattern)))
    return routes


@dataclass
class AWSRequest:
    """What a raw HTTP request is, in AWS terms."""

    service: str
    region: str
    operation: str
    protocol: str
    params: dict[str, Any] = field(default_factory=dict)
    #: The access key id the request was signed with.
    access_key_id: str | None = None

    @property
    def key(self) -> str:
        """The fault-target key: aws:<service>:<Operation>."""
        return f"aws:{self.service}:{self.operation}"

    @property
    def mutating(self) -> bool:
        return not self.operation.startswith(READ_PREFIXES)

    @property
    def operation_model(self) -> OperationModel:
        return service_model(self.service).operation_model(self.operation)


def identify(
    method: str, path: str, query: str, headers: dict[str, str], body: bytes
) -> AWSRequest | None:
    """Work out service, region, operation and input of a request; None if not an AWS call."""
    m = _SCOPE.search(headers.get("authorization", ""))
    if not m:
        return None
    region, signing, akid = m.group("region"), m.group("service"), m.group("akid")
    candidates = _signing_names().get(signing, [])
    if not candidates:
        return None
    form: dict[str, list[str]] = {}
    ctype = headers.get("content-type", "")
    if "x-www-form-urlencoded" in ctype:
        form = urllib.parse.parse_qs(body.decode(), keep_blank_values=True)
    elif method == "GET" and query:
        form = urllib.parse.parse_qs(query, keep_blank_values=True)
    service = candidates[0]
    if len(candidates) > 1:  # elb / elbv2
        version = (form.get("Version") or [""])[0]
        service = next(
            (c for c in candidates if service_model(c).api_version == version), candidates[0]
        )
    model = service_model(service)
    protocol = protocol_of(model)
    if protocol in ("query", "ec2"):
        action = (form.get("Action") or [""])[0]
        params = {k: v[0] for k, v in form.items() if k not in ("Action", "Version")}
        return AWSRequest(service, region, action, protocol, params, akid) if action else None
    if protocol == "json":
        target = headers.get("x-amz-target", "")
        operation = target.rsplit(".", 1)[-1]
        try:
            params = json.loads(body or b"{}")
        except ValueError:
            params = {}
        return AWSRequest(service, region, operation, protocol, params, akid) if operation else None
    # rest-json / rest-xml
    for verb, pattern, op_name in _rest_routes(service):
        if verb != method:
            continue
        pm = pattern.match(path)  # raw (still percent-encoded): ARNs in labels hold '/'
        if pm:
            groups = {k: urllib.parse.unquote(v) for k, v in pm.groupdict().items()}
            params = _rest_input(model.operation_model(op_name), groups, query, body)
            return AWSRequest(service, region, op_name, protocol, params, akid)
    return None


def _rest_input(
    op: OperationModel, path_params: dict[str, str], query: str, body: bytes
) -> dict[str, Any]:
    """Assemble a rest request's input by member location (uri, querystring, body)."""
    shape = op.input_shape
    params: dict[str, Any] = {}
    if shape is None:
        return params
    qs = urllib.parse.parse_qs(query, keep_blank_values=True)
    decoded: dict[str, Any] = {}
    if body and op.service_model.metadata["protocol"] == "rest-json":
        try:
            decoded = json.loads(body)
        except ValueError:
            decoded = {}
    for member, mshape in shape.members.items():
        loc = mshape.serialization.get("location")
        wire = mshape.serialization.get("name", member)
        if loc == "uri" and wire in path_params:
            params[member] = path_params[wire]
        elif loc == "querystring" and wire in qs:
            raw = qs[wire][0]
            params[member] = int(raw) if mshape.type_name in ("integer", "long") else raw
        elif loc is None and member in decoded:
            params[member] = decoded[member]
    if body and not decoded and op.service_model.metadata["protocol"] == "rest-xml":
        params["_body"] = body.decode(errors="replace")
    return params


def render_result(req: AWSRequest, result: Any) -> tuple[int, dict[str, str], bytes]:
    """Serialize a result dict as the real service would answer this operation."""
    serializer = get_serializer_class(req.service, req.protocol)(req.operation_model)
    out = serializer.serialize(result)
    body = out["body"]
    return (
        int(out["status_code"]),
        dict(out["headers"]),
        body.encode() if isinstance(body, str) else body,
    )


def render_error(
    req: AWSRequest, code: str, message: str, exc: SandboxError | None = None
) -> tuple[int, dict[str, str], bytes]:
    """An error response in the service's own protocol (status from the model or ERROR_STATUS)."""
    exc = exc or SandboxError(code, message)
    status, headers, body = render_result(req, exc)
    modelled = any(s.name == code for s in req.operation_model.service_model.error_shapes)
    if not modelled:
        status = ERROR_STATUS.get(code, 400 if status < 400 else status)
    headers.setdefault("x-amzn-ErrorType", code)
    return status, headers, body
