"""What the shop runbook touches, read independently of the step types (and of the sandbox's
regions' health: everything is read through endpoints that stay up)."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import dns.message
import dns.query
from kubernetes import client as k8s

from orchestrator.sandbox.manager import SandboxEnv
from tests.sandbox.helpers import aws, kube

REGION = re.compile(r"(us|eu|ap)-[a-z]+-\d")


def arc_states(env: SandboxEnv) -> dict[str, str]:
    """Routing control name -> On/Off (ARC's data plane, through the always-up main endpoint)."""
    data = aws(env, "route53-recovery-cluster", "eu-west-1")
    controls = data.list_routing_controls()["RoutingControls"]
    return {c["RoutingControlName"]: c["RoutingControlState"] for c in controls}


def dns_answers(env: SandboxEnv, record: str, queries: int = 20) -> dict[str, int]:
    """Region -> how many of `queries` DNS answers for the record point there."""
    assert env.dns_server is not None
    host, port = env.dns_server.rsplit(":", 1)
    seen: Counter[str] = Counter()
    for _ in range(queries):
        reply = dns.query.udp(dns.message.make_query(record, "CNAME"), host, port=int(port),
                              timeout=2)  # fmt: skip
        for rrset in reply.answer:
            for rr in rrset:
                m = REGION.search(str(rr))
                seen[m.group(0) if m else str(rr)] += 1
    return dict(seen)


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
        "aurora_members": sorted(m["DBClusterArn"].split(":")[3]
                                 for m in gc["GlobalClusters"][0]["GlobalClusterMembers"]),
        "arc": arc_states(env),
        "dns_api": dns_answers(env, "api.shop.example."),
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
            "db_primary": db["spec"]["replica"]["primary"],
            "db_replica": db["status"]["replicaCluster"],
            "asg": (asg["DesiredCapacity"], asg["MinSize"], asg["MaxSize"]),
        }
    return out
