"""runbooks/shop-region-switch.yaml end to end on the sandbox: the switch, the failback, rollbacks."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client as k8s

from orchestrator.runs import RunState, StepState
from orchestrator.sandbox.control import SandboxControl
from orchestrator.sandbox.faults import FaultRule
from orchestrator.sandbox.manager import SandboxEnv
from tests.sandbox.helpers import aws, kube
from tests.workflows.helpers import drive, plan, run, sandbox_config, start, worker

RUNBOOK = "shop-region-switch.yaml"


def world(env: SandboxEnv) -> dict[str, Any]:
    """Everything the runbook touches, read independently of the step types."""
    r53 = aws(env, "route53")
    zone = r53.list_hosted_zones_by_name(DNSName="shop.example.")["HostedZones"][0]["Id"]
    records = r53.list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"]
    gc = aws(env, "rds").describe_global_clusters(GlobalClusterIdentifier="shop-global")
    writer = [m for m in gc["GlobalClusters"][0]["GlobalClusterMembers"] if m["IsWriter"]]
    out: dict[str, Any] = {
        "aurora_writer": writer[0]["DBClusterArn"].split(":")[3],
        "api_weights": {r["SetIdentifier"]: r["Weight"] for r in records
                        if r["Name"] == "api.shop.example." and "Weight" in r},
        "www_primary": [r["SetIdentifier"] for r in records
                        if r["Name"] == "www.shop.example." and r.get("Failover") == "PRIMARY"],
    }  # fmt: skip
    for region in env.regions:
        api = kube(env, region)
        deploys = k8s.AppsV1Api(api).list_namespaced_deployment("shop").items
        cm = k8s.CoreV1Api(api).read_namespaced_config_map("shop-flags", "shop")
        db = k8s.CustomObjectsApi(api).get_namespaced_custom_object(
            "postgresql.cnpg.io", "v1", "shop", "clusters", "shop-db"
        )
        asg = aws(env, "autoscaling", region).describe_auto_scaling_groups(
            AutoScalingGroupNames=["shop-asg"]
        )["AutoScalingGroups"][0]
        elb = aws(env, "elbv2", region)
        lb = elb.describe_load_balancers(Names=["shop-alb"])["LoadBalancers"][0]
        listener = elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"][0]
        groups = listener["DefaultActions"][0]["ForwardConfig"]["TargetGroups"]
        names = {
            g["TargetGroupArn"]: g["TargetGroupName"]
            for g in elb.describe_target_groups(
                TargetGroupArns=[g["TargetGroupArn"] for g in groups]
            )["TargetGroups"]
        }
        out[region] = {
            "alb": {names[g["TargetGroupArn"]]: g["Weight"] for g in groups},
            "replicas": {d.metadata.name: d.spec.replicas for d in deploys},
            "ready": {d.metadata.name: d.status.ready_replicas or 0 for d in deploys},
            "flags": dict(cm.data or {}),
            "db_replica": db["spec"]["replica"]["enabled"],
            "asg": (asg["DesiredCapacity"], asg["MinSize"], asg["MaxSize"]),
        }
    return out


async def _switch(env: SandboxEnv, frm: str, to: str) -> Any:
    async with worker(sandbox_config(env)) as (client, queue):
        return await drive(await start(client, queue, plan(RUNBOOK, frm, to)), timeout=120)


def test_switch_to_us_west_2_then_fail_back(fresh: SandboxEnv, control: SandboxControl) -> None:
    before = world(fresh)
    control.set_lag(0.75)  # seconds of replication lag the sandbox publishes
    result = run(_switch(fresh, "us-east-1", "us-west-2"))
    assert result.state == RunState.SUCCEEDED, result.reason
    # The lag measured right before the writer moved (the switchover's guard) is the RPO.
    assert result.rpo_seconds == pytest.approx(0.75)
    assert result.step("aurora-switchover").observed["lag_seconds"] == pytest.approx(0.75)
    after = world(fresh)
    assert after["aurora_writer"] == "us-west-2"
    assert after["api_weights"] == {"us-east-1": 0, "us-west-2": 100}
    assert after["www_primary"] == ["us-west-2"]
    west, east = after["us-west-2"], after["us-east-1"]
    assert west["replicas"] == west["ready"] == {"checkout": 3, "cart": 3, "catalog": 3}
    assert east["replicas"] == {"checkout": 0, "cart": 0, "catalog": 0}
    assert west["db_replica"] is False and east["db_replica"] is True
    assert west["flags"]["writes-frozen"] == east["flags"]["writes-frozen"] == "false"
    assert west["asg"][:2] == (3, 3) and east["asg"][:2] == (1, 1)
    assert west["alb"] == {"shop-local": 100, "shop-peer": 0}
    assert east["alb"] == {"shop-local": 0, "shop-peer": 100}

    back = run(_switch(fresh, "us-west-2", "us-east-1"))
    assert back.state == RunState.SUCCEEDED, back.reason
    assert world(fresh) == before


@pytest.mark.parametrize(
    ("failing", "fault"),
    [
        ("freeze-writes", FaultRule(target="k8s:us-east-1:patch:configmaps", error="Forbidden")),
        ("aurora-switchover",
         FaultRule(target="aws:rds:SwitchoverGlobalCluster", error="AccessDenied")),
        ("scale-down-source-asg",
         FaultRule(target="aws:autoscaling:UpdateAutoScalingGroup", region="us-east-1",
                   error="AccessDenied")),
    ],
)  # fmt: skip
def test_a_failure_rolls_the_whole_switch_back(
    fresh: SandboxEnv, control: SandboxControl, failing: str, fault: FaultRule
) -> None:
    before = world(fresh)
    control.add_fault(fault)
    result = run(_switch(fresh, "us-east-1", "us-west-2"))
    assert result.state == RunState.ROLLED_BACK
    assert result.step(failing).state in (StepState.FAILED, StepState.UNDONE)
    assert result.step(failing).error is not None
    undone = [s.id for s in result.steps if s.state == StepState.UNDONE]
    assert all(s.state != StepState.UNDO_FAILED for s in result.steps)
    if failing == "scale-down-source-asg":
        assert {"aurora-switchover", "dns-full", "promote-target-db"} <= set(undone)
    assert world(fresh) == before
