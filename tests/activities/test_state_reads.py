"""How many reads a state step makes on the sandbox: preflight's reading serves the snapshot
(SSM parameter, Auto Scaling group), the decision's reading serves the write (ELB listener), and
verify's reading of a group serves its instance count. Each read saved is one AWS call less per
step, on every step of an evacuation."""

from __future__ import annotations

import pytest

from activities.errors import StepError
from orchestrator.config import from_sandbox
from orchestrator.sandbox.manager import SandboxEnv
from tests.activities.phases import activity, apply, prepare, step
from tests.activities.test_step_types import RecordingClients
from tests.sandbox.helpers import aws


def test_an_ssm_step_reads_its_parameter_once_to_prepare(fresh: SandboxEnv) -> None:
    clients = RecordingClients(from_sandbox(fresh))
    stype, params = step("ssm_parameter", name="/shop/flags/maintenance", value="true",
                          region="us-west-2")  # fmt: skip
    snap = prepare(stype, params, clients)
    assert snap == {"exists": True, "value": "false", "type": "String"}
    assert clients.taken() == {"GetParameter": 1}

    apply(stype, params, clients, snap)
    assert clients.taken() == {"GetParameter": 2, "PutParameter": 1}
    got = aws(fresh, "ssm", "us-west-2").get_parameter(Name="/shop/flags/maintenance")
    assert got["Parameter"]["Value"] == "true"


def test_an_ssm_preflight_still_refuses_a_secret(fresh: SandboxEnv) -> None:
    aws(fresh, "ssm", "us-west-2").put_parameter(
        Name="/shop/secret", Value="x", Type="SecureString", Overwrite=True
    )
    clients = RecordingClients(from_sandbox(fresh))
    stype, params = step("ssm_parameter", name="/shop/secret", value="y", region="us-west-2")
    with pytest.raises(StepError) as err:
        stype.preflight(activity(clients), params)
    assert err.value.kind == "PreflightFailed"


def test_an_asg_step_reads_its_group_once_to_prepare_and_once_a_verify(
    fresh: SandboxEnv,
) -> None:
    clients = RecordingClients(from_sandbox(fresh))
    stype, params = step("asg_capacity", name="shop-asg", desired=1, min=1,
                          region="us-east-1", wait_in_service=False)  # fmt: skip
    snap = prepare(stype, params, clients)
    assert snap == {"desired": 3, "min": 3, "max": 6}
    assert clients.taken() == {"DescribeAutoScalingGroups": 1}

    # the decision reads, then the write, then verify reads (no instance count asked here)
    ctx = activity(clients)
    stype.apply(ctx, params, snap)
    check = stype.verify(ctx, params, snap)
    assert check.ok, check.detail
    assert clients.taken() == {"DescribeAutoScalingGroups": 2, "UpdateAutoScalingGroup": 1}

    counting = stype.Params.model_validate({**params.model_dump(), "wait_in_service": True})
    check = stype.verify(activity(clients), counting, snap)
    assert clients.taken() == {"DescribeAutoScalingGroups": 1}
    group = aws(fresh, "autoscaling", "us-east-1").describe_auto_scaling_groups(
        AutoScalingGroupNames=["shop-asg"]
    )["AutoScalingGroups"][0]
    serving = sum(1 for i in group["Instances"] if i["LifecycleState"] == "InService")
    assert check.ok == (serving == 1), (check.detail, serving)


def test_an_asg_preflight_still_checks_the_size_against_the_group(fresh: SandboxEnv) -> None:
    clients = RecordingClients(from_sandbox(fresh))
    stype, params = step("asg_capacity", name="shop-asg", desired=9, region="us-east-1")
    with pytest.raises(StepError, match=r"outside the group's size 3\.\.6") as err:
        stype.preflight(activity(clients), params)
    assert err.value.kind == "PreflightFailed"


def test_an_elb_step_writes_from_the_listener_it_decided_on(fresh: SandboxEnv) -> None:
    clients = RecordingClients(from_sandbox(fresh))
    stype, params = step("elbv2_weights", load_balancer="shop-alb", region="us-west-2",
                          weights={"shop-local": 100, "shop-peer": 0})  # fmt: skip
    snap = prepare(stype, params, clients)
    clients.taken()

    apply(stype, params, clients, snap)
    calls = clients.taken()
    # the load balancer's ARN and the target groups' names once per activity; the listener read
    # to decide serves the write; verify reads it again
    assert calls == {
        "DescribeLoadBalancers": 1,
        "DescribeListeners": 2,
        "DescribeTargetGroups": 1,
        "ModifyListener": 1,
    }, calls
    ctx = activity(clients)
    assert stype.observe(ctx, params) == {"weights": {"shop-local": 100, "shop-peer": 0}}
