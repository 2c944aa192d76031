"""Step errors, classified: retryable (throttling, 5xx, timeouts) or not (validation, access denied,
guard failed). The engine turns a non-retryable error into a non-retryable activity failure, so a
step that cannot succeed by trying again fails at once, with its reason.
"""

from __future__ import annotations

import socket
from typing import Any

RETRYABLE_KINDS = frozenset(
    {
        "Throttling",
        "ServiceUnavailable",
        "InternalError",
        "Timeout",
        "ConnectionError",
        "Conflict",
        "VerifyTimeout",
    }
)
NON_RETRYABLE_KINDS = frozenset(
    {
        "AccessDenied",
        "Validation",
        "NotFound",
        "GuardFailed",
        "PreflightFailed",
        "InvalidState",
        "CheckFailed",
    }
)

_THROTTLING = {
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "PriorRequestNotComplete",
    "RequestThrottled",
    "RequestThrottledException",
    "SlowDown",
    "ProvisionedThroughputExceededException",
}
_ACCESS = {
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "ExpiredToken",
    "ExpiredTokenException",
    "AuthFailure",
    "Forbidden",
}
_NOT_FOUND_SUFFIXES = ("NotFound", "NotFoundFault", "NotFoundException", "NoSuchHostedZone")


class StepError(Exception):
    """A step failed; `kind` says why, in a word the engine and the reports use."""

    def __init__(self, kind: str, message: str, retryable: bool | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.retryable = kind in RETRYABLE_KINDS if retryable is None else retryable

    def __str__(self) -> str:
        return self.message


def classify(exc: BaseException) -> StepError:
    """Map any exception a client raised to a StepError (retryable or not)."""
    if isinstance(exc, StepError):
        return exc
    aws = _classify_botocore(exc)
    if aws is not None:
        return aws
    k8s = _classify_kubernetes(exc)
    if k8s is not None:
        return k8s
    if isinstance(exc, TimeoutError | socket.timeout):
        return StepError("Timeout", f"timed out: {exc}")
    if isinstance(exc, ConnectionError | OSError):
        return StepError("ConnectionError", f"could not connect: {exc}")
    return StepError("InternalError", f"{type(exc).__name__}: {exc}", retryable=False)


def aws_error_kind(code: str, status: int) -> tuple[str, bool]:
    """The kind of an AWS error code and whether retrying can help."""
    if code in _THROTTLING:
        return "Throttling", True
    if code in _ACCESS or status in (401, 403):
        return "AccessDenied", False
    if code.endswith(_NOT_FOUND_SUFFIXES) or status == 404:
        return "NotFound", False
    if status >= 500 or code in ("ServiceUnavailable", "InternalError", "InternalFailure"):
        return "ServiceUnavailable", True
    if code in ("RequestTimeout", "RequestTimeoutException"):
        return "Timeout", True
    if code in ("InvalidDBClusterStateFault", "InvalidDBInstanceState", "IncorrectState"):
        return "InvalidState", False
    return "Validation", False


def _classify_botocore(exc: BaseException) -> StepError | None:
    try:
        from botocore.exceptions import (
            ClientError,
            ConnectTimeoutError,
            EndpointConnectionError,
            ParamValidationError,
            ReadTimeoutError,
        )
    except ImportError:  # pragma: no cover - botocore is a dependency
        return None
    if isinstance(exc, ClientError):
        err: dict[str, Any] = exc.response.get("Error", {})
        code = str(err.get("Code", "Unknown"))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        kind, retryable = aws_error_kind(code, status)
        op = getattr(exc, "operation_name", "call")
        return StepError(kind, f"{op}: {code}: {err.get('Message', '')}".strip(), retryable)
    if isinstance(exc, ParamValidationError):
        return StepError("Validation", str(exc).replace("\n", " "), retryable=False)
    if isinstance(exc, ReadTimeoutError | ConnectTimeoutError):
        return StepError("Timeout", str(exc))
    if isinstance(exc, EndpointConnectionError):
        return StepError("ConnectionError", str(exc))
    return None


def _classify_kubernetes(exc: BaseException) -> StepError | None:
    try:
        from kubernetes.client.exceptions import ApiException
    except ImportError:  # pragma: no cover - kubernetes is a dependency
        return None
    if not isinstance(exc, ApiException):
        return None
    status = int(exc.status or 0)
    reason = exc.reason or ""
    if status == 429:
        return StepError("Throttling", f"Kubernetes API: {status} {reason}")
    if status in (401, 403):
        return StepError("AccessDenied", f"Kubernetes API: {status} {reason}")
    if status == 404:
        return StepError("NotFound", f"Kubernetes API: {status} {reason}")
    if status == 409:
        return StepError("Conflict", f"Kubernetes API: {status} {reason}")
    if status >= 500 or status == 0:
        return StepError("ServiceUnavailable", f"Kubernetes API: {status} {reason}")
    return StepError("Validation", f"Kubernetes API: {status} {reason}", retryable=False)
