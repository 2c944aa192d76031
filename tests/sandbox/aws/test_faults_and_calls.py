"""Fault injection in the AWS server (real error responses) and the call log."""

from __future__ import annotations

import time

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from orchestrator.sandbox.aws.seed import SANDBOX_CREDENTIALS
from orchestrator.sandbox.control import SandboxControl
from orchestrator.sandbox.faults import FaultRule
from orchestrator.sandbox.manager import SandboxEnv
from tests.sandbox.helpers import aws


def _no_retry_ssm(env: SandboxEnv) -> object:
    import boto3

    return boto3.client(
        "ssm",
        region_name="us-east-1",
        endpoint_url=env.aws_endpoint_url,
        config=Config(retries={"total_max_attempts": 1}),
        **SANDBOX_CREDENTIALS,
    )


@pytest.mark.parametrize(
    ("error", "status"),
    [
        ("ThrottlingException", 400),
        # SSM models AccessDeniedException with no HTTP status: JSON services answer 400.
        ("AccessDeniedException", 400),
        ("AccessDenied", 403),
        ("ServiceUnavailable", 503),
    ],
)
def test_fault_fails_exactly_n_calls_with_the_code(
    env: SandboxEnv, control: SandboxControl, error: str, status: int
) -> None:
    ssm = _no_retry_ssm(env)
    control.add_fault(FaultRule(target="aws:ssm:PutParameter", error=error, count=2))
    outcomes = []
    for i in range(4):
        try:
            ssm.put_parameter(Name=f"/t/{error}/{i}", Value="v", Type="String")  # type: ignore[attr-defined]
            outcomes.append("ok")
        except ClientError as exc:
            outcomes.append(exc.response["Error"]["Code"])
            assert exc.response["ResponseMetadata"]["HTTPStatusCode"] == status
    assert outcomes == [error, error, "ok", "ok"]
    # Nothing was applied by the failed calls.
    names = [p["Name"] for p in ssm.describe_parameters()["Parameters"]]  # type: ignore[attr-defined]
    assert f"/t/{error}/0" not in names and f"/t/{error}/2" in names


def test_throttling_is_retried_by_boto3_and_succeeds(
    env: SandboxEnv, control: SandboxControl
) -> None:
    control.add_fault(
        FaultRule(target="aws:ssm:GetParameter", error="ThrottlingException", count=1)
    )
    value = aws(env, "ssm").get_parameter(Name="/shop/flags/writes-frozen")["Parameter"]["Value"]
    assert value == "false"
    assert control.faults()[0].hits == 1


def test_fault_scoped_to_a_region(env: SandboxEnv, control: SandboxControl) -> None:
    control.add_fault(
        FaultRule(
            target="aws:ssm:GetParameter",
            error="AccessDeniedException",
            count=None,
            region="us-west-2",
        )
    )
    assert aws(env, "ssm", "us-east-1").get_parameter(Name="/shop/flags/maintenance")
    with pytest.raises(ClientError) as err:
        aws(env, "ssm", "us-west-2").get_parameter(Name="/shop/flags/maintenance")
    assert err.value.response["Error"]["Code"] == "AccessDeniedException"


def test_after_commit_fault_applies_the_change_and_returns_an_error(
    env: SandboxEnv, control: SandboxControl
) -> None:
    ssm = _no_retry_ssm(env)
    control.add_fault(FaultRule(target="aws:ssm:PutParameter", error="InternalError", when="after"))
    with pytest.raises(ClientError) as err:
        ssm.put_parameter(Name="/t/after", Value="landed", Type="String")  # type: ignore[attr-defined]
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert ssm.get_parameter(Name="/t/after")["Parameter"]["Value"] == "landed"  # type: ignore[attr-defined]


def test_fault_in_json_rest_xml_and_query_protocols(
    env: SandboxEnv, control: SandboxControl
) -> None:
    cases = [
        ("aws:route53:ListHostedZones", lambda: aws(env, "route53").list_hosted_zones()),
        ("aws:rds:DescribeGlobalClusters", lambda: aws(env, "rds").describe_global_clusters()),
        (
            "aws:globalaccelerator:ListAccelerators",
            lambda: aws(env, "globalaccelerator", "us-west-2").list_accelerators(),
        ),
    ]
    for target, call in cases:
        control.add_fault(FaultRule(target=target, error="AccessDenied", count=1))
        with pytest.raises(ClientError) as err:
            call()
        assert err.value.response["Error"]["Code"] == "AccessDenied", target
        assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403, target


def test_call_log_records_mutations_once_with_secrets_redacted(
    env: SandboxEnv, control: SandboxControl
) -> None:
    since = time.time()
    aws(env, "ssm").put_parameter(Name="/t/log", Value="x", Type="String", Overwrite=True)
    aws(env, "ssm").get_parameter(Name="/t/log")
    aws(env, "rds").create_db_instance(
        DBInstanceIdentifier="logged-db",
        Engine="postgres",
        DBInstanceClass="db.t3.micro",
        AllocatedStorage=20,
        MasterUsername="admin",
        MasterUserPassword="hunter2-secret",
    )
    calls = [c for c in control.calls(since) if c.source == "aws"]
    ops = [c.operation for c in calls]
    assert ops == ["ssm:PutParameter", "rds:CreateDBInstance"]
    assert calls[0].params["Name"] == "/t/log" and calls[0].region == "us-east-1"
    assert calls[1].params["MasterUserPassword"] == "***"
    assert "hunter2-secret" not in str([c.model_dump() for c in control.calls()])
