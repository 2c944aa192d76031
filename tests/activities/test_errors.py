"""Error classification: what retrying can fix, and what it cannot."""

from __future__ import annotations

import pytest
import urllib3.exceptions as u3
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    ParamValidationError,
    ReadTimeoutError,
)
from kubernetes.client.exceptions import ApiException

from activities.errors import classify


def client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "PutParameter",
    )


@pytest.mark.parametrize(
    ("exc", "kind", "retryable"),
    [
        (client_error("ThrottlingException", 400), "Throttling", True),
        (client_error("Throttling", 400), "Throttling", True),
        (client_error("RequestLimitExceeded", 503), "Throttling", True),
        (client_error("ServiceUnavailable", 503), "ServiceUnavailable", True),
        (client_error("InternalFailure", 500), "ServiceUnavailable", True),
        (client_error("AccessDeniedException", 400), "AccessDenied", False),
        (client_error("AccessDenied", 403), "AccessDenied", False),
        (client_error("ParameterNotFound", 400), "NotFound", False),
        (client_error("DBClusterNotFoundFault", 404), "NotFound", False),
        (client_error("InvalidDBClusterStateFault", 400), "InvalidState", False),
        (client_error("ValidationException", 400), "Validation", False),
        (ParamValidationError(report="Missing required parameter"), "Validation", False),
        (EndpointConnectionError(endpoint_url="http://x"), "ConnectionError", True),
        (ApiException(status=429, reason="TooManyRequests"), "Throttling", True),
        (ApiException(status=503, reason="ServiceUnavailable"), "ServiceUnavailable", True),
        (ApiException(status=409, reason="Conflict"), "Conflict", True),
        (ApiException(status=403, reason="Forbidden"), "AccessDenied", False),
        (ApiException(status=404, reason="NotFound"), "NotFound", False),
        (ApiException(status=422, reason="Invalid"), "Validation", False),
        (client_error("InvalidGlobalClusterStateFault", 400), "Conflict", True),
        (ConnectionClosedError(endpoint_url="http://x"), "ConnectionError", True),
        (ReadTimeoutError(endpoint_url="http://x"), "Timeout", True),
        (u3.ReadTimeoutError(None, "/api", "read timed out"), "Timeout", True),  # type: ignore[arg-type]
        (
            u3.MaxRetryError(None, "/api", u3.NewConnectionError(None, "refused")),
            "ConnectionError",
            True,
        ),  # type: ignore[arg-type]
        (u3.ProtocolError("Connection aborted."), "ConnectionError", True),
        (TimeoutError("read"), "Timeout", True),
        (ConnectionRefusedError("refused"), "ConnectionError", True),
        (KeyError("bug"), "InternalError", False),
    ],
)
def test_classification(exc: BaseException, kind: str, retryable: bool) -> None:
    err = classify(exc)
    assert (err.kind, err.retryable) == (kind, retryable)


def test_boto3_calls_are_validated_against_botocore_models_before_sending() -> None:
    """A call that would be wrong for AWS fails here, classified, with nothing sent (port 9)."""
    from botocore.exceptions import ParamValidationError
    from pydantic import SecretStr

    from activities.clients import Clients
    from orchestrator.config import AWSConfig, Config

    clients = Clients(
        Config(aws=AWSConfig(endpoint_url="http://127.0.0.1:9", access_key_id=SecretStr("k"),
                             secret_access_key=SecretStr("s")))
    )  # fmt: skip
    ssm = clients.aws("ssm", "us-east-1")
    with pytest.raises(ParamValidationError) as exc:
        ssm.put_parameter(Name="/shop/flags/x")  # Value is required by the model
    err = classify(exc.value)  # as the engine's activity boundary classifies it
    assert (err.kind, err.retryable) == ("Validation", False)
    assert "Value" in err.message
