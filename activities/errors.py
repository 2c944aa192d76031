"""Step errors, classified: retryable (throttling, 5xx, timeouts, conflicts) or not (validation,
access denied, not found, guard failed). The engine turns a non-retryable error into a
non-retryable activity failure, so a step that cannot succeed by trying again fails at once, with
its reason. Classification happens once, where a step activity ends (and where a plan or a
detector calls a type directly): step types let client errors propagate.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any, TypeVar

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
#: The resource is in the middle of another operation: retrying later can succeed.
_BUSY = {"InvalidGlobalClusterStateFault"}
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


class StepCancelled(BaseException):
    """The step's activity was cancelled (Temporal asked, or no longer knows this attempt); raised
    where the step heartbeats, between two client calls, never inside one.

    A BaseException, as asyncio's CancelledError: no `except Exception` (of a step type, of
    `StateStep.drive`, of a client library) takes it for the failure of a call.
    """


def classify(exc: BaseException) -> StepError:
    """Map any exception a client raised to a StepError (retryable or not)."""
    if isinstance(exc, StepError):
        return exc
    aws = _classify_botocore(exc)
    if aws is not None:
        return aws
    k8s = _classify_kubernetes(exc) or _classify_urllib3(exc)
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
    if code in _BUSY:
        return "Conflict", True
    if code in ("InvalidDBClusterStateFault", "InvalidDBInstanceState", "IncorrectState"):
        return "InvalidState", False
    return "Validation", False


def _classify_botocore(exc: BaseException) -> StepError | None:
    try:
        from botocore.exceptions import (
            ClientError,
            ConnectTimeoutError,
            HTTPClientError,
            ParamValidationError,
            ReadTimeoutError,
        )
        from botocore.exceptions import ConnectionError as BotoConnectionError
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
    if isinstance(exc, BotoConnectionError | HTTPClientError):  # refused, reset, closed
        return StepError("ConnectionError", str(exc))
    return None


def _classify_urllib3(exc: BaseException) -> StepError | None:
    """What the Kubernetes client raises when no HTTP answer came (timeouts, resets)."""
    import urllib3.exceptions as u3

    cause = exc.reason if isinstance(exc, u3.MaxRetryError) else exc
    # (NewConnectionError derives from ConnectTimeoutError: a refusal is no timeout.)
    if isinstance(cause, u3.TimeoutError) and not isinstance(cause, u3.NewConnectionError):
        return StepError("Timeout", f"timed out: {exc}")
    if isinstance(exc, u3.HTTPError):
        return StepError("ConnectionError", f"no answer: {exc}")
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


T = TypeVar("T")


def missing_ok(fn: Callable[[], T]) -> T | None:
    """fn(), or None when what it reads does not exist (its error classifies as NotFound)."""
    try:
        return fn()
    except Exception as exc:
        if classify(exc).kind == "NotFound":
            return None
        raise
