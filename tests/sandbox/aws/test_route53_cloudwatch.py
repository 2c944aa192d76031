"""Route 53 change propagation and real health checks; replication-lag metrics."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.sandbox.control import SandboxControl
from orchestrator.sandbox.manager import SandboxEnv
from tests.sandbox.helpers import assert_response_shape, aws, slower, wait_for


def test_hosted_zone_ids_look_like_aws(fresh: SandboxEnv) -> None:
    r53 = aws(fresh, "route53")
    made = r53.create_hosted_zone(Name="other.example.", CallerReference="zone-id-shape")
    for zid in (fresh.topology["zone_id"], made["HostedZone"]["Id"].rsplit("/", 1)[-1]):
        assert re.fullmatch(r"Z[A-Z0-9]{20}", zid), zid
        assert r53.get_hosted_zone(Id=zid)["HostedZone"]["Id"] == f"/hostedzone/{zid}"


def test_a_change_batch_is_one_transaction(fresh: SandboxEnv) -> None:
    r53, zone = aws(fresh, "route53"), fresh.topology["zone_id"]

    def upsert(name: str) -> dict[str, object]:
        return {"Action": "UPSERT", "ResourceRecordSet": {
            "Name": name, "Type": "CNAME", "TTL": 60, "ResourceRecords": [{"Value": "x."}]}}  # fmt: skip

    refused = r53.exceptions.InvalidChangeBatch
    with pytest.raises(refused, match="not permitted in zone"):
        r53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={
            "Changes": [upsert("kept-out.shop.example."), upsert("x.other.example.")]})  # fmt: skip
    names = {
        r["Name"] for r in r53.list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"]
    }
    assert "kept-out.shop.example." not in names  # none of the batch applied
    r53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={
        "Changes": [upsert("kept-out.shop.example.")]})  # fmt: skip
    names = {
        r["Name"] for r in r53.list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"]
    }
    assert "kept-out.shop.example." in names


def test_change_is_pending_then_insync_with_its_own_id(
    fresh: SandboxEnv, control: SandboxControl
) -> None:
    # 3 s at the test time scale: still PENDING when asked, even on a loaded machine.
    with slower(control, dns_propagation=300.0):
        r53 = aws(fresh, "route53")
        ids = []
        for weight in (0, 100):
            resp = r53.change_resource_record_sets(
                HostedZoneId=fresh.topology["zone_id"],
                ChangeBatch={
                    "Changes": [
                        {
                            "Action": "UPSERT",
                            "ResourceRecordSet": {
                                "Name": "api.shop.example.",
                                "Type": "CNAME",
                                "SetIdentifier": "us-east-1",
                                "Weight": weight,
                                "TTL": 60,
                                "ResourceRecords": [
                                    {
                                        "Value": fresh.topology["regions"]["us-east-1"][
                                            "load_balancer_dns"
                                        ]
                                    }
                                ],
                            },
                        }
                    ]
                },
            )
            assert_response_shape("route53", "ChangeResourceRecordSets", resp)
            assert resp["ChangeInfo"]["Status"] == "PENDING"
            ids.append(resp["ChangeInfo"]["Id"])
        assert ids[0] != ids[1]
        assert r53.get_change(Id=ids[1])["ChangeInfo"]["Status"] == "PENDING"
        wait_for(lambda: r53.get_change(Id=ids[1])["ChangeInfo"]["Status"] == "INSYNC", timeout=15)
        resp = r53.get_change(Id=ids[1])
        assert_response_shape("route53", "GetChange", resp)


def test_health_check_follows_region_health(env: SandboxEnv, control: SandboxControl) -> None:
    r53 = aws(env, "route53")
    hc = env.topology["regions"]["us-west-2"]["health_check_id"]

    def status() -> str:
        resp = r53.get_health_check_status(HealthCheckId=hc)
        assert_response_shape("route53", "GetHealthCheckStatus", resp)
        return str(resp["HealthCheckObservations"][0]["StatusReport"]["Status"])

    assert status().startswith("Success")
    control.set_region_health("us-west-2", False)
    assert status().startswith("Failure: HTTP Status Code 503")
    control.set_region_health("us-west-2", True)
    assert status().startswith("Success")


def test_inverted_health_check(env: SandboxEnv) -> None:
    r53 = aws(env, "route53")
    hc = r53.create_health_check(
        CallerReference="inverted-test",
        HealthCheckConfig={
            "Type": "HTTP",
            "IPAddress": "127.0.0.1",
            "Port": int(env.regions["us-east-1"].app_url.rsplit(":", 1)[1]),
            "ResourcePath": "/health",
            "Inverted": True,
        },
    )["HealthCheck"]["Id"]
    status = r53.get_health_check_status(HealthCheckId=hc)["HealthCheckObservations"][0]
    assert status["StatusReport"]["Status"].startswith("Failure")


def _lag_points(env: SandboxEnv, region: str, metric: str, dimension: str, name: str) -> list:
    now = datetime.now(UTC)
    return list(
        aws(env, "cloudwatch", region).get_metric_statistics(
            Namespace="AWS/RDS",
            MetricName=metric,
            Dimensions=[{"Name": dimension, "Value": name}],
            StartTime=now - timedelta(seconds=30),
            EndTime=now + timedelta(seconds=5),
            Period=1,
            Statistics=["Maximum"],
        )["Datapoints"]
    )


def test_replication_lag_metrics_follow_the_sandbox_value(
    fresh: SandboxEnv, control: SandboxControl
) -> None:
    control.set_lag(7.5, "shop-db-replica")

    def latest() -> float | None:
        points = _lag_points(
            fresh, "us-west-2", "ReplicaLag", "DBInstanceIdentifier", "shop-db-replica"
        )
        return max((p["Maximum"] for p in points), default=None)

    wait_for(lambda: latest() == 7.5, timeout=10)
    control.set_lag(0.05, "shop-db-replica")
    aurora = _lag_points(
        fresh,
        "us-west-2",
        "AuroraGlobalDBReplicationLag",
        "DBClusterIdentifier",
        "shop-aurora-us-west-2",
    )
    assert aurora and aurora[0]["Unit"] == "Milliseconds" and aurora[0]["Maximum"] == 50.0


def test_record_sets_page_inside_one_name_and_type_by_set_identifier(fresh: SandboxEnv) -> None:
    """ListResourceRecordSets continues a page cut inside one name and type from its
    NextRecordIdentifier (moto alone has neither that nor StartRecordIdentifier)."""
    r53, zone = aws(fresh, "route53"), fresh.topology["zone_id"]
    name = "paged.shop.example."
    sets = [f"set-{i:02d}" for i in range(7)]
    r53.change_resource_record_sets(
        HostedZoneId=zone,
        ChangeBatch={
            "Changes": [
                {
                    "Action": "UPSERT",
                    "ResourceRecordSet": {
                        "Name": name, "Type": "CNAME", "SetIdentifier": sid, "Weight": 1,
                        "TTL": 60, "ResourceRecords": [{"Value": f"{sid}.example."}],
                    },
                }
                for sid in reversed(sets)
            ]
        },
    )  # fmt: skip
    seen: list[str] = []
    page: dict[str, str] = {"StartRecordName": name, "StartRecordType": "CNAME"}
    for _ in range(4):
        resp = r53.list_resource_record_sets(HostedZoneId=zone, MaxItems="3", **page)
        assert_response_shape("route53", "ListResourceRecordSets", resp)
        seen += [r["SetIdentifier"] for r in resp["ResourceRecordSets"] if r["Name"] == name]
        if resp.get("NextRecordName") != name:
            break
        page = {
            "StartRecordName": name,
            "StartRecordType": "CNAME",
            "StartRecordIdentifier": resp["NextRecordIdentifier"],
        }
    assert seen == sets  # each once, in identifier order, over three pages
    assert resp["IsTruncated"] is False or resp.get("NextRecordName") != name
