"""Seed the demo topology of service "shop" on the sandbox's AWS server, through real boto3 calls.

Active in the first region, standby in each of the others (two regions by default, any number
with `failover sandbox up --regions a,b,c`): Route 53 weighted and failover records with a health
check per region (probing that region's shop app), an Aurora global cluster with a member per
region and an RDS instance with a cross-region read replica in each standby, an ALB per region
with a weighted forward listener, an Auto Scaling group per region (reduced in the standbys), SSM
feature flags, Route 53 ARC routing controls with a safety rule (each region's control is the
health check of its weighted `api` record: On in the active region only), a Global Accelerator
with an endpoint group per region, and an EKS cluster per region (`shop-<region>`, served by that
region's Kubernetes stand-in).
"""

from __future__ import annotations

import functools
import json
from typing import Any

import boto3
from botocore.config import Config

ZONE = "shop.example."
EKS_ROLE = "shop-eks-cluster"


def eks_cluster_name(region: str) -> str:
    """The name of the EKS cluster the sandbox seeds in a region."""
    return f"shop-{region}"


SANDBOX_CREDENTIALS = {"aws_access_key_id": "sandbox", "aws_secret_access_key": "sandbox"}


@functools.lru_cache(maxsize=256)
def client(endpoint: str, service: str, region: str) -> Any:
    """A boto3 client for the sandbox (dummy credentials, endpoint override, validation on); made
    once per endpoint, service and region (a reset seeds again through the same clients: making
    one costs tens of milliseconds, boto3 clients are thread-safe)."""
    return boto3.client(
        service,
        region_name=region,
        endpoint_url=endpoint,
        config=Config(retries={"max_attempts": 2, "mode": "standard"}, parameter_validation=True),
        **SANDBOX_CREDENTIALS,
    )


def seed(endpoint: str, regions: list[str], app_ports: dict[str, int]) -> dict[str, Any]:
    """Create the topology; returns the identifiers of what was created, per region."""
    active, standbys = regions[0], regions[1:]
    topo: dict[str, Any] = {"zone": ZONE, "regions": {r: {} for r in regions}}

    # --- per-region compute, load balancing, flags
    for region in regions:
        out = topo["regions"][region]
        ec2 = client(endpoint, "ec2", region)
        vpc = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]
        subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])[
            "Subnets"
        ]
        subnet_ids = [s["SubnetId"] for s in subnets[:2]]
        elb = client(endpoint, "elbv2", region)
        lb = elb.create_load_balancer(Name="shop-alb", Subnets=subnet_ids, Type="application")[
            "LoadBalancers"
        ][0]
        tgs = {}
        for name in ("shop-local", "shop-peer"):
            tgs[name] = elb.create_target_group(
                Name=name, Protocol="HTTP", Port=80, VpcId=vpc["VpcId"], TargetType="ip"
            )["TargetGroups"][0]["TargetGroupArn"]
        listener = elb.create_listener(
            LoadBalancerArn=lb["LoadBalancerArn"],
            Protocol="HTTP",
            Port=80,
            DefaultActions=[
                {
                    "Type": "forward",
                    "ForwardConfig": {
                        "TargetGroups": [
                            # A standby has no serving capacity: its ALB forwards to the peer.
                            {
                                "TargetGroupArn": tgs["shop-local"],
                                "Weight": 100 if region == active else 0,
                            },
                            {
                                "TargetGroupArn": tgs["shop-peer"],
                                "Weight": 0 if region == active else 100,
                            },
                        ]
                    },
                }
            ],
        )["Listeners"][0]
        out.update(
            load_balancer_arn=lb["LoadBalancerArn"],
            load_balancer_dns=lb["DNSName"],
            listener_arn=listener["ListenerArn"],
            target_groups=tgs,
        )
        # One named image family: listing every image moto knows takes a second per region.
        images = (
            ec2.describe_images(
                Filters=[{"Name": "name", "Values": ["amzn2-ami-hvm-2.0.*-x86_64-gp2"]}]
            )["Images"]
            or ec2.describe_images()["Images"]
        )
        image = images[0]["ImageId"]
        ec2.create_launch_template(
            LaunchTemplateName="shop-lt",
            LaunchTemplateData={"ImageId": image, "InstanceType": "t3.small"},
        )
        asg = client(endpoint, "autoscaling", region)
        desired = 3 if region == active else 1
        asg.create_auto_scaling_group(
            AutoScalingGroupName="shop-asg",
            LaunchTemplate={"LaunchTemplateName": "shop-lt", "Version": "$Latest"},
            MinSize=desired,
            MaxSize=6,
            DesiredCapacity=desired,
            VPCZoneIdentifier=",".join(subnet_ids),
        )
        out["asg"] = "shop-asg"
        ssm = client(endpoint, "ssm", region)
        flags = {"/shop/flags/writes-frozen": "false", "/shop/flags/maintenance": "false"}
        for name, value in flags.items():
            ssm.put_parameter(Name=name, Value=value, Type="String", Overwrite=True)
        out["ssm_flags"] = sorted(flags)
        out["subnets"] = subnet_ids

    # --- EKS: one cluster per region (its endpoint: the region's Kubernetes stand-in)
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "eks.amazonaws.com"},
                       "Action": "sts:AssumeRole"}],
    }  # fmt: skip
    role = client(endpoint, "iam", active).create_role(
        RoleName=EKS_ROLE, AssumeRolePolicyDocument=json.dumps(trust)
    )["Role"]["Arn"]
    for region in regions:
        cluster = client(endpoint, "eks", region).create_cluster(
            name=eks_cluster_name(region),
            roleArn=role,
            resourcesVpcConfig={"subnetIds": topo["regions"][region]["subnets"]},
        )["cluster"]
        topo["regions"][region]["eks_cluster"] = cluster["name"]

    # --- Route 53 ARC: a cluster, a control panel, one routing control per region, a safety rule
    arc = client(endpoint, "route53-recovery-control-config", "us-west-2")
    cluster_arn = arc.create_cluster(ClusterName="shop-arc")["Cluster"]["ClusterArn"]
    panel = arc.create_control_panel(ClusterArn=cluster_arn, ControlPanelName="shop")[
        "ControlPanel"
    ]["ControlPanelArn"]
    controls = {}
    for region in regions:
        controls[region] = arc.create_routing_control(
            ClusterArn=cluster_arn, ControlPanelArn=panel, RoutingControlName=f"shop-{region}"
        )["RoutingControl"]["RoutingControlArn"]
    arc.create_safety_rule(
        AssertionRule={
            "AssertedControls": list(controls.values()),
            "ControlPanelArn": panel,
            "Name": "at-least-one-cell-on",
            "RuleConfig": {"Inverted": False, "Threshold": 1, "Type": "ATLEAST"},
            "WaitPeriodMs": 5000,
        }
    )
    endpoints = arc.describe_cluster(ClusterArn=cluster_arn)["Cluster"]["ClusterEndpoints"]
    ep = endpoints[0]
    data = boto3.client(
        "route53-recovery-cluster",
        region_name=ep["Region"],
        endpoint_url=ep["Endpoint"],
        **SANDBOX_CREDENTIALS,
    )
    data.update_routing_control_state(RoutingControlArn=controls[active], RoutingControlState="On")
    topo["arc"] = {
        "cluster": "shop-arc",
        "cluster_arn": cluster_arn,
        "control_panel_arn": panel,
        "controls": controls,
        "endpoints": endpoints,
    }

    # --- Route 53: weighted and failover records, one health check per region
    r53 = client(endpoint, "route53", "us-east-1")
    zone_id = r53.create_hosted_zone(Name=ZONE, CallerReference="shop-sandbox")["HostedZone"][
        "Id"
    ].rsplit("/", 1)[-1]
    topo["zone_id"] = zone_id
    changes = []
    for region in regions:
        hc = r53.create_health_check(
            CallerReference=f"shop-{region}",
            HealthCheckConfig={
                "Type": "HTTP",
                "IPAddress": "127.0.0.1",
                "Port": app_ports[region],
                "ResourcePath": "/health",
                "RequestInterval": 10,
                "FailureThreshold": 1,
            },
        )["HealthCheck"]["Id"]
        r53.change_tags_for_resource(
            ResourceType="healthcheck", ResourceId=hc, AddTags=[{"Key": "Name", "Value": region}]
        )
        topo["regions"][region]["health_check_id"] = hc
        # ARC's routing control for the region, as a health check on its `api` record: turning a
        # region's control Off takes it out of the answers without Route 53's API (us-east-1).
        arc_hc = r53.create_health_check(
            CallerReference=f"shop-arc-{region}",
            HealthCheckConfig={"Type": "RECOVERY_CONTROL", "RoutingControlArn": controls[region]},
        )["HealthCheck"]["Id"]
        topo["regions"][region]["arc_health_check_id"] = arc_hc
        target = topo["regions"][region]["load_balancer_dns"]
        changes.append(
            {
                "Action": "CREATE",
                "ResourceRecordSet": {
                    "Name": f"api.{ZONE}",
                    "Type": "CNAME",
                    "SetIdentifier": region,
                    "Weight": 100 if region == active else 0,
                    "HealthCheckId": arc_hc,
                    "TTL": 60,
                    "ResourceRecords": [{"Value": target}],
                },
            }
        )
        changes.append(
            {
                "Action": "CREATE",
                "ResourceRecordSet": {
                    "Name": f"www.{ZONE}",
                    "Type": "CNAME",
                    "SetIdentifier": region,
                    "Failover": "PRIMARY" if region == active else "SECONDARY",
                    "HealthCheckId": hc,
                    "TTL": 60,
                    "ResourceRecords": [{"Value": target}],
                },
            }
        )
    r53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": changes})

    # --- Aurora global cluster: writer in the active region, secondary in the standby
    rds_a = client(endpoint, "rds", active)
    rds_a.create_global_cluster(
        GlobalClusterIdentifier="shop-global", Engine="aurora-postgresql", EngineVersion="15.4"
    )
    for region in regions:
        rds = client(endpoint, "rds", region)
        extra: dict[str, Any] = {}
        if region == active:
            extra = {"MasterUsername": "shop", "ManageMasterUserPassword": True}
        cluster = rds.create_db_cluster(
            DBClusterIdentifier=f"shop-aurora-{region}",
            Engine="aurora-postgresql",
            EngineVersion="15.4",
            GlobalClusterIdentifier="shop-global",
            **extra,
        )["DBCluster"]
        topo["regions"][region]["aurora_cluster_arn"] = cluster["DBClusterArn"]
        topo["regions"][region]["aurora_cluster_id"] = cluster["DBClusterIdentifier"]
    topo["global_cluster"] = "shop-global"

    # --- RDS instance with a cross-region read replica
    src = rds_a.create_db_instance(
        DBInstanceIdentifier="shop-db",
        Engine="postgres",
        DBInstanceClass="db.t3.micro",
        AllocatedStorage=20,
        MasterUsername="shop",
        ManageMasterUserPassword=True,
    )["DBInstance"]
    topo["regions"][active]["db_instance"] = "shop-db"
    for standby in standbys:
        client(endpoint, "rds", standby).create_db_instance_read_replica(
            DBInstanceIdentifier="shop-db-replica",
            SourceDBInstanceIdentifier=src["DBInstanceArn"],
            DBInstanceClass="db.t3.micro",
        )
        topo["regions"][standby]["db_instance"] = "shop-db-replica"

    # --- Global Accelerator: one endpoint group per region, dial 100 active / 0 standby
    ga = client(endpoint, "globalaccelerator", "us-west-2")
    acc = ga.create_accelerator(Name="shop-ga", IpAddressType="IPV4", Enabled=True)["Accelerator"][
        "AcceleratorArn"
    ]
    lis = ga.create_listener(
        AcceleratorArn=acc, PortRanges=[{"FromPort": 443, "ToPort": 443}], Protocol="TCP"
    )["Listener"]["ListenerArn"]
    groups = {}
    for region in regions:
        groups[region] = ga.create_endpoint_group(
            ListenerArn=lis,
            EndpointGroupRegion=region,
            TrafficDialPercentage=100.0 if region == active else 0.0,
            EndpointConfigurations=[
                {"EndpointId": topo["regions"][region]["load_balancer_arn"], "Weight": 128}
            ],
        )["EndpointGroup"]["EndpointGroupArn"]
    topo["global_accelerator"] = {"accelerator_arn": acc, "listener_arn": lis, "groups": groups}
    return topo
