"""API request quotas on the sandbox's AWS: past a service's rate, calls are answered `Throttling`
in the service's protocol (Route 53: HTTP 400, "Rate exceeded"), per account, as AWS does."""

from __future__ import annotations

import time
import urllib.error
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from orchestrator.sandbox.aws.seed import SANDBOX_CREDENTIALS
from orchestrator.sandbox.control import SandboxControl
from orchestrator.sandbox.manager import SandboxEnv


def no_retry(env: SandboxEnv, service: str) -> Any:
    return boto3.client(
        service, region_name="us-east-1", endpoint_url=env.aws_endpoint_url,
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
        **SANDBOX_CREDENTIALS,
    )  # fmt: skip


def test_past_its_rate_a_service_answers_throttling_and_its_bucket_refills(
    fresh: SandboxEnv, control: SandboxControl
) -> None:
    r53, ssm = no_retry(fresh, "route53"), no_retry(fresh, "ssm")
    control.set_quota("route53", rate=5, burst=5)
    served, refused = 0, []
    started = time.monotonic()
    for _ in range(15):
        try:
            r53.list_hosted_zones()
            served += 1
        except ClientError as exc:
            refused.append(exc.response)
    took = time.monotonic() - started
    # the burst of 5, plus what the bucket refilled while the calls ran (5 a second)
    assert 5 <= served <= 5 + int(took * 5) + 1, (served, took)
    assert refused and len(refused) == 15 - served
    error = refused[0]
    assert error["Error"]["Code"] == "Throttling" and error["Error"]["Message"] == "Rate exceeded"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    # other services have no quota; Route 53's refills
    for _ in range(10):
        ssm.describe_parameters()
    time.sleep(0.5)
    r53.list_hosted_zones()
    state = control.quotas()["route53"]
    assert state["rate"] == 5 and state["burst"] == 5
    assert state["throttled"] == len(refused) and state["served"] == served + 1

    control.set_quota("route53", rate=0)  # no quota
    assert control.quotas() == {}
    for _ in range(10):
        r53.list_hosted_zones()


def test_a_quota_is_checked(control: SandboxControl) -> None:
    with pytest.raises(urllib.error.HTTPError) as err:
        control.set_quota("route53", rate=-1)
    assert err.value.code == 400 and "rate must be 0 or more" in err.value.read().decode()


def test_a_throttled_write_is_in_the_call_log_with_its_code(
    fresh: SandboxEnv, control: SandboxControl
) -> None:
    ssm = no_retry(fresh, "ssm")
    control.set_quota("ssm", rate=1, burst=1)
    try:
        ssm.put_parameter(Name="/quota/a", Value="1", Type="String", Overwrite=True)
        with pytest.raises(ClientError) as err:
            ssm.put_parameter(Name="/quota/a", Value="2", Type="String", Overwrite=True)
    finally:
        control.set_quota("ssm", rate=0)
    assert err.value.response["Error"]["Code"] == "ThrottlingException"  # a JSON protocol's
    puts = [c for c in control.calls() if c.operation == "ssm:PutParameter"]
    assert [(c.status, c.fault) for c in puts[-2:]] == [(200, None), (400, "ThrottlingException")]
    assert ssm.get_parameter(Name="/quota/a")["Parameter"]["Value"] == "1"  # it did not land
