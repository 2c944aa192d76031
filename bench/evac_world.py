"""The evacuation benchmark's world: each service's own resources created on the sandbox before a
run (with boto3 and the kubernetes client), and the plain sequential script that makes the same
calls as the engine's steps, one after the other, and waits for the same conditions.

Before a run, in the source region (`REGIONS[0]`) a service is active, in the target standby:
its Deployment has 2 ready replicas in the source and 0 in the target; its ConfigMap's `active`
is "true" in the source; its weighted record sends everything to the source and the source's
failover record is PRIMARY; its ALB forwards to the local target group in the source and to the
peer in the target; its Auto Scaling group has 2 instances in the source and 0 in the target.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

import boto3
from botocore.config import Config as BotoConfig

from bench.evac_plan import NAMESPACE, REGIONS, ZONE, ServiceSpec
from orchestrator.runs import SwitchInput
from orchestrator.sandbox.manager import SandboxEnv

CREDENTIALS = {"aws_access_key_id": "sandbox", "aws_secret_access_key": "sandbox"}
#: The script's pause between two polls of a condition (a tight loop: fair to the script).
POLL = 0.05
WAIT_TIMEOUT = 600.0


class World:
    """Clients to one sandbox: boto3 per service and region, kubernetes per region."""

    def __init__(self, env: SandboxEnv) -> None:
        self.env = env
        self._kube: dict[str, Any] = {}

    @cache  # noqa: B019 - one World per sandbox, kept for the benchmark's life
    def aws(self, service: str, region: str) -> Any:
        endpoint = self.env.aws_endpoints.get(region) or self.env.aws_endpoint_url
        return boto3.client(
            service,
            region_name=region,
            endpoint_url=endpoint,
            config=BotoConfig(retries={"max_attempts": 3, "mode": "standard"}),
            **CREDENTIALS,
        )

    def kube(self, region: str) -> Any:
        if region not in self._kube:
            from kubernetes import config

            self._kube[region] = config.new_client_from_config(
                config_file=self.env.kubeconfig, context=self.env.regions[region].kube_context
            )
        return self._kube[region]

    def apps(self, region: str) -> Any:
        from kubernetes import client

        return client.AppsV1Api(self.kube(region))

    def core(self, region: str) -> Any:
        from kubernetes import client

        return client.CoreV1Api(self.kube(region))


# ---------------------------------------------------------------------------------- seeding
def seed(world: World, services: Sequence[ServiceSpec], progress: Callable[[str], None]) -> None:
    """Create every service's resources in both regions (after a sandbox reset), and wait until
    the source's Deployments are ready."""
    active = REGIONS[0]
    t0 = time.monotonic()
    for region in REGIONS:
        _seed_kube(world, region, services, region == active)
    progress(f"kubernetes objects: {time.monotonic() - t0:.1f}s")
    for region in REGIONS:
        _seed_region_aws(world, region, services, region == active)
    progress(f"SSM, Auto Scaling, ALBs: {time.monotonic() - t0:.1f}s")
    _seed_route53(world, services, active)
    progress(f"Route 53: {time.monotonic() - t0:.1f}s")
    _wait(
        "source Deployments ready",
        lambda: _all_ready(world, active, [s.deployment for s in services], 2),
        poll=0.2,
    )
    progress(f"ready: {time.monotonic() - t0:.1f}s")


def _seed_kube(world: World, region: str, services: Sequence[ServiceSpec], active: bool) -> None:
    from kubernetes.client.exceptions import ApiException

    core, apps = world.core(region), world.apps(region)
    try:
        core.create_namespace({"metadata": {"name": NAMESPACE}})
    except ApiException as exc:
        if exc.status != 409:
            raise
    for s in services:
        labels = {"app": s.deployment, "part-of": "bench"}
        apps.create_namespaced_deployment(
            NAMESPACE,
            {
                "metadata": {"name": s.deployment, "labels": labels},
                "spec": {
                    "replicas": 2 if active else 0,
                    "selector": {"matchLabels": {"app": s.deployment}},
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {"containers": [{"name": "app", "image": "bench/app:1"}]},
                    },
                },
            },
        )
        core.create_namespaced_config_map(
            NAMESPACE,
            {"metadata": {"name": s.configmap}, "data": {"active": str(active).lower()}},
        )


def _seed_region_aws(
    world: World, region: str, services: Sequence[ServiceSpec], active: bool
) -> None:
    ssm = world.aws("ssm", region)
    for s in services:
        for leaf in ("writes-frozen", "active", "queue-region"):
            value = {"writes-frozen": "false", "active": str(active).lower()}.get(leaf, REGIONS[0])
            ssm.put_parameter(Name=s.ssm(leaf), Value=value, Type="String", Overwrite=True)
    ec2 = world.aws("ec2", region)
    vpc = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])
    subnet_ids = [s["SubnetId"] for s in subnets["Subnets"][:2]]
    if any(s.shape != "web" for s in services):
        images = ec2.describe_images(
            Filters=[{"Name": "name", "Values": ["amzn2-ami-hvm-2.0.*-x86_64-gp2"]}]
        )["Images"]
        ec2.create_launch_template(
            LaunchTemplateName="bench-lt",
            LaunchTemplateData={"ImageId": images[0]["ImageId"], "InstanceType": "t3.small"},
        )
    asg, elb = world.aws("autoscaling", region), world.aws("elbv2", region)
    for s in services:
        if s.shape == "web":
            lb = elb.create_load_balancer(Name=s.alb, Subnets=subnet_ids, Type="application")
            tgs = {
                side: elb.create_target_group(
                    Name=f"{s.name}-{side}", Protocol="HTTP", Port=80, VpcId=vpc["VpcId"],
                    TargetType="ip",
                )["TargetGroups"][0]["TargetGroupArn"]
                for side in ("local", "peer")
            }  # fmt: skip
            local = 100 if active else 0
            elb.create_listener(
                LoadBalancerArn=lb["LoadBalancers"][0]["LoadBalancerArn"],
                Protocol="HTTP",
                Port=80,
                DefaultActions=[{"Type": "forward", "ForwardConfig": {"TargetGroups": [
                    {"TargetGroupArn": tgs["local"], "Weight": local},
                    {"TargetGroupArn": tgs["peer"], "Weight": 100 - local},
                ]}}],
            )  # fmt: skip
        else:
            desired = 2 if active else 0
            asg.create_auto_scaling_group(
                AutoScalingGroupName=s.asg,
                LaunchTemplate={"LaunchTemplateName": "bench-lt", "Version": "$Latest"},
                MinSize=desired,
                MaxSize=4,
                DesiredCapacity=desired,
                VPCZoneIdentifier=",".join(subnet_ids),
            )


def _seed_route53(world: World, services: Sequence[ServiceSpec], active: str) -> None:
    r53 = world.aws("route53", "us-east-1")
    zone = r53.create_hosted_zone(Name=ZONE, CallerReference=f"bench-{time.time_ns()}")
    zone_id = zone["HostedZone"]["Id"].rsplit("/", 1)[-1]
    changes = []
    for s in services:
        if s.shape == "worker":
            continue
        for region in REGIONS:
            target = {"ResourceRecords": [{"Value": f"{s.name}.{region}.lb.example"}], "TTL": 60}
            changes.append(
                {
                    "Action": "CREATE",
                    "ResourceRecordSet": {
                        "Name": s.record,
                        "Type": "CNAME",
                        "SetIdentifier": region,
                        "Weight": 100 if region == active else 0,
                        **target,
                    },
                }
            )
            changes.append({"Action": "CREATE", "ResourceRecordSet": {
                "Name": s.failover_record, "Type": "CNAME", "SetIdentifier": region,
                "Failover": "PRIMARY" if region == active else "SECONDARY", **target}})  # fmt: skip
    for i in range(0, len(changes), 500):
        r53.change_resource_record_sets(
            HostedZoneId=zone_id, ChangeBatch={"Changes": changes[i : i + 500]}
        )


def _all_ready(world: World, region: str, names: list[str], replicas: int) -> bool:
    found = world.apps(region).list_namespaced_deployment(NAMESPACE).items
    ready = {d.metadata.name: int(d.status.ready_replicas or 0) for d in found}
    return all(ready.get(n) == replicas for n in names)


def _wait(what: str, check: Callable[[], bool], poll: float = POLL) -> None:
    deadline = time.monotonic() + WAIT_TIMEOUT
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(poll)


# ------------------------------------------------------------------------ sequential script
def sequential(world: World, switches: Sequence[SwitchInput]) -> float:
    """Run every switch's steps one after the other (services in plan order, steps in runbook
    order, which follows their dependencies) with plain client calls; returns the seconds taken."""
    t0 = time.monotonic()
    for sw in switches:
        for step in sw.steps:
            region = step.region or sw.to_region
            STEPS[step.type](world, region, dict(step.params))
    return time.monotonic() - t0


def _ssm_parameter(world: World, region: str, p: dict[str, Any]) -> None:
    world.aws("ssm", region).put_parameter(
        Name=p["name"], Value=p["value"], Type="String", Overwrite=True
    )


def _k8s_scale(world: World, region: str, p: dict[str, Any]) -> None:
    apps, ns, replicas = world.apps(region), p["namespace"], int(p["replicas"])
    for name in p["names"]:
        apps.patch_namespaced_deployment_scale(name, ns, {"spec": {"replicas": replicas}})

    def ready() -> bool:
        for name in p["names"]:
            d = apps.read_namespaced_deployment(name, ns)
            st = d.status
            fresh = (st.observed_generation or 0) >= (d.metadata.generation or 0)
            available = replicas == 0 or any(
                c.type == "Available" and c.status == "True" for c in st.conditions or []
            )
            if not (fresh and int(st.ready_replicas or 0) == replicas and available):
                return False
        return True

    _wait(f"{p['names']} ready", ready)


def _configmap_flag(world: World, region: str, p: dict[str, Any]) -> None:
    world.core(region).patch_namespaced_config_map(
        p["name"], p["namespace"], {"data": {p["key"]: p["value"]}}
    )


def _asg_capacity(world: World, region: str, p: dict[str, Any]) -> None:
    asg = world.aws("autoscaling", region)
    g = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[p["name"]])["AutoScalingGroups"][0]
    desired = int(p["desired"])
    lo = p["min"] if p.get("min") is not None else min(g["MinSize"], desired)
    hi = p["max"] if p.get("max") is not None else max(g["MaxSize"], desired)
    asg.update_auto_scaling_group(
        AutoScalingGroupName=p["name"], MinSize=lo, MaxSize=hi, DesiredCapacity=desired
    )

    def in_service() -> bool:
        g = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[p["name"]])
        instances = g["AutoScalingGroups"][0].get("Instances", [])
        return sum(1 for i in instances if i["LifecycleState"] == "InService") == desired

    if p.get("wait_in_service", True):
        _wait(f"{p['name']} InService", in_service)


def _elbv2_weights(world: World, region: str, p: dict[str, Any]) -> None:
    elb = world.aws("elbv2", region)
    lb = elb.describe_load_balancers(Names=[p["load_balancer"]])["LoadBalancers"][0]
    listener = next(
        x
        for x in elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
        if x["Port"] == p.get("port", 80)
    )
    groups = elb.describe_target_groups(LoadBalancerArn=lb["LoadBalancerArn"])["TargetGroups"]
    weighted = [
        {"TargetGroupArn": g["TargetGroupArn"], "Weight": p["weights"][g["TargetGroupName"]]}
        for g in groups
        if g["TargetGroupName"] in p["weights"]
    ]
    elb.modify_listener(
        ListenerArn=listener["ListenerArn"],
        DefaultActions=[{"Type": "forward", "ForwardConfig": {"TargetGroups": weighted}}],
    )


def _records(world: World, p: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    r53 = world.aws("route53", "us-east-1")
    zone = r53.list_hosted_zones_by_name(DNSName=p["zone"])["HostedZones"][0]
    zone_id = zone["Id"].rsplit("/", 1)[-1]
    name, rtype = p["record"], p.get("type", "CNAME")
    sets = r53.list_resource_record_sets(
        HostedZoneId=zone_id, StartRecordName=name, StartRecordType=rtype, MaxItems="100"
    )["ResourceRecordSets"]
    return zone_id, [r for r in sets if r["Name"] == name and r["Type"] == rtype]


def _upsert(world: World, zone_id: str, records: list[dict[str, Any]]) -> None:
    r53 = world.aws("route53", "us-east-1")
    change = r53.change_resource_record_sets(
        HostedZoneId=zone_id,
        ChangeBatch={"Changes": [{"Action": "UPSERT", "ResourceRecordSet": r} for r in records]},
    )["ChangeInfo"]["Id"]
    _wait(
        f"change {change} INSYNC",
        lambda: r53.get_change(Id=change)["ChangeInfo"]["Status"] == "INSYNC",
    )


def _route53_weighted(world: World, region: str, p: dict[str, Any]) -> None:
    increments = int(p.get("increments", 1))
    zone_id, sets = _records(world, p)
    start = {r["SetIdentifier"]: r["Weight"] for r in sets if "Weight" in r}
    goal = p["weights"]
    for i in range(1, increments + 1):
        step = {k: round(start.get(k, w) + (w - start.get(k, w)) * i / increments)
                for k, w in goal.items()}  # fmt: skip
        zone_id, sets = _records(world, p)
        _upsert(world, zone_id, [r | {"Weight": step[r["SetIdentifier"]]} for r in sets
                                 if r.get("SetIdentifier") in step])  # fmt: skip


def _route53_failover(world: World, region: str, p: dict[str, Any]) -> None:
    zone_id, sets = _records(world, p)
    _upsert(world, zone_id, [
        r | {"Failover": "PRIMARY" if r["SetIdentifier"] == p["primary"] else "SECONDARY"}
        for r in sets if "Failover" in r
    ])  # fmt: skip


STEPS: dict[str, Callable[[World, str, dict[str, Any]], None]] = {
    "ssm_parameter": _ssm_parameter,
    "k8s_scale": _k8s_scale,
    "k8s_configmap_flag": _configmap_flag,
    "asg_capacity": _asg_capacity,
    "elbv2_weights": _elbv2_weights,
    "route53_weighted": _route53_weighted,
    "route53_failover": _route53_failover,
}
