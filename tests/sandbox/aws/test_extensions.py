"""Route 53 ARC (control config + cluster endpoints, safety rules) and Global Accelerator."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from orchestrator.sandbox.aws.seed import SANDBOX_CREDENTIALS
from orchestrator.sandbox.control import SandboxControl
from orchestrator.sandbox.faults import FaultRule
from orchestrator.sandbox.manager import SandboxEnv
from tests.sandbox.helpers import assert_response_shape, aws, wait_for


def _cluster_clients(env: SandboxEnv) -> list[Any]:
    cfg = aws(env, "route53-recovery-control-config", "us-west-2")
    resp = cfg.describe_cluster(ClusterArn=env.topology["arc"]["cluster_arn"])
    assert_response_shape("route53-recovery-control-config", "DescribeCluster", resp)
    return [
        boto3.client(
            "route53-recovery-cluster",
            region_name=ep["Region"],
            endpoint_url=ep["Endpoint"],
            **SANDBOX_CREDENTIALS,
        )
        for ep in resp["Cluster"]["ClusterEndpoints"]
    ]


def test_routing_control_states_and_safety_rule(fresh: SandboxEnv) -> None:
    controls = fresh.topology["arc"]["controls"]
    data = _cluster_clients(fresh)[0]
    state = data.get_routing_control_state(RoutingControlArn=controls["us-east-1"])
    assert_response_shape("route53-recovery-cluster", "GetRoutingControlState", state)
    assert state["RoutingControlState"] == "On"
    # Turning the only On cell off violates the "at least one cell on" assertion rule.
    with pytest.raises(ClientError) as err:
        data.update_routing_control_state(
            RoutingControlArn=controls["us-east-1"], RoutingControlState="Off"
        )
    assert err.value.response["Error"]["Code"] == "ConflictException"
    # Both in one batch: west on, east off, is allowed.
    data.update_routing_control_states(
        UpdateRoutingControlStateEntries=[
            {"RoutingControlArn": controls["us-west-2"], "RoutingControlState": "On"},
            {"RoutingControlArn": controls["us-east-1"], "RoutingControlState": "Off"},
        ]
    )
    listed = data.list_routing_controls(ControlPanelArn=fresh.topology["arc"]["control_panel_arn"])
    assert_response_shape("route53-recovery-cluster", "ListRoutingControls", listed)
    states = {c["RoutingControlName"]: c["RoutingControlState"] for c in listed["RoutingControls"]}
    assert states == {"shop-us-east-1": "Off", "shop-us-west-2": "On"}


def test_safety_rule_override(fresh: SandboxEnv) -> None:
    controls = fresh.topology["arc"]["controls"]
    cfg = aws(fresh, "route53-recovery-control-config", "us-west-2")
    rules = cfg.list_safety_rules(ControlPanelArn=fresh.topology["arc"]["control_panel_arn"])
    assert_response_shape("route53-recovery-control-config", "ListSafetyRules", rules)
    rule_arn = rules["SafetyRules"][0]["ASSERTION"]["SafetyRuleArn"]
    data = _cluster_clients(fresh)[1]
    data.update_routing_control_state(
        RoutingControlArn=controls["us-east-1"],
        RoutingControlState="Off",
        SafetyRulesToOverride=[rule_arn],
    )
    assert (
        data.get_routing_control_state(RoutingControlArn=controls["us-east-1"])[
            "RoutingControlState"
        ]
        == "Off"
    )


def test_a_down_cluster_endpoint_fails_and_the_next_one_answers(
    fresh: SandboxEnv, control: SandboxControl
) -> None:
    clients = _cluster_clients(fresh)
    region = clients[0].meta.region_name
    control.add_fault(
        FaultRule(
            target="aws:route53-recovery-cluster:*",
            error="EndpointTemporarilyUnavailableException",
            count=None,
            region=region,
        )
    )
    arn = fresh.topology["arc"]["controls"]["us-east-1"]
    with pytest.raises(ClientError):
        clients[0].get_routing_control_state(RoutingControlArn=arn)
    assert (
        clients[1].get_routing_control_state(RoutingControlArn=arn)["RoutingControlState"] == "On"
    )


def test_global_accelerator_traffic_dial(fresh: SandboxEnv) -> None:
    ga = aws(fresh, "globalaccelerator", "us-west-2")
    groups = fresh.topology["global_accelerator"]["groups"]
    resp = ga.describe_endpoint_group(EndpointGroupArn=groups["us-west-2"])
    assert_response_shape("globalaccelerator", "DescribeEndpointGroup", resp)
    assert resp["EndpointGroup"]["TrafficDialPercentage"] == 0.0
    updated = ga.update_endpoint_group(
        EndpointGroupArn=groups["us-west-2"], TrafficDialPercentage=100.0
    )
    assert_response_shape("globalaccelerator", "UpdateEndpointGroup", updated)
    acc = fresh.topology["global_accelerator"]["accelerator_arn"]
    assert ga.describe_accelerator(AcceleratorArn=acc)["Accelerator"]["Status"] == "IN_PROGRESS"
    wait_for(
        lambda: ga.describe_accelerator(AcceleratorArn=acc)["Accelerator"]["Status"] == "DEPLOYED"
    )
    assert (
        ga.describe_endpoint_group(EndpointGroupArn=groups["us-west-2"])["EndpointGroup"][
            "TrafficDialPercentage"
        ]
        == 100.0
    )
    with pytest.raises(ClientError) as err:
        ga.update_endpoint_group(EndpointGroupArn=groups["us-west-2"], TrafficDialPercentage=101.0)
    assert err.value.response["Error"]["Code"] == "InvalidArgumentException"
