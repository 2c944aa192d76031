"""Aurora global switchover/failover, replica promotion and global-cluster removal (moto gaps)."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from orchestrator.sandbox.control import SandboxControl
from orchestrator.sandbox.manager import SandboxEnv
from tests.sandbox.helpers import assert_response_shape, aws, slower, wait_for


def _writer(env: SandboxEnv, region: str = "us-west-2") -> str:
    gc = aws(env, "rds", region).describe_global_clusters(GlobalClusterIdentifier="shop-global")
    members = gc["GlobalClusters"][0]["GlobalClusterMembers"]
    writers = [m["DBClusterArn"] for m in members if m["IsWriter"]]
    assert len(writers) == 1
    return writers[0].split(":")[3]  # the region of the writer's ARN


def test_describe_shows_writer_in_us_east_1_from_any_region(fresh: SandboxEnv) -> None:
    for region in fresh.regions:
        resp = aws(fresh, "rds", region).describe_global_clusters()
        assert_response_shape("rds", "DescribeGlobalClusters", resp)
        assert _writer(fresh, region) == "us-east-1"


def test_switchover_swaps_the_writer_after_its_transition(
    fresh: SandboxEnv, control: SandboxControl
) -> None:
    # 3 s at the test time scale: still switching when asked, even on a loaded machine.
    with slower(control, aurora_switchover=300.0):
        _switch_over_and_wait(fresh)


def _switch_over_and_wait(fresh: SandboxEnv) -> None:
    rds = aws(fresh, "rds", "us-west-2")
    target = fresh.topology["regions"]["us-west-2"]["aurora_cluster_arn"]
    resp = rds.switchover_global_cluster(
        GlobalClusterIdentifier="shop-global", TargetDbClusterIdentifier=target
    )
    assert_response_shape("rds", "SwitchoverGlobalCluster", resp)
    gc = resp["GlobalCluster"]
    assert gc["Status"] == "switching-over"
    assert gc["FailoverState"]["ToDbClusterArn"] == target
    assert gc["FailoverState"]["IsDataLossAllowed"] is False
    assert _writer(fresh) == "us-east-1"  # not yet: the switch takes time
    # A second switch while one is in flight is refused.
    with pytest.raises(ClientError) as err:
        rds.switchover_global_cluster(
            GlobalClusterIdentifier="shop-global", TargetDbClusterIdentifier=target
        )
    assert err.value.response["Error"]["Code"] == "InvalidGlobalClusterStateFault"
    wait_for(lambda: _writer(fresh) == "us-west-2")
    after = rds.describe_global_clusters(GlobalClusterIdentifier="shop-global")["GlobalClusters"][0]
    assert after["Status"] == "available" and "FailoverState" not in after


def test_switchover_to_current_writer_is_refused(fresh: SandboxEnv) -> None:
    rds = aws(fresh, "rds", "us-east-1")
    with pytest.raises(ClientError) as err:
        rds.switchover_global_cluster(
            GlobalClusterIdentifier="shop-global",
            TargetDbClusterIdentifier=fresh.topology["regions"]["us-east-1"]["aurora_cluster_arn"],
        )
    assert err.value.response["Error"]["Code"] == "InvalidDBClusterStateFault"


def test_failover_with_data_loss_and_parameter_rules(fresh: SandboxEnv) -> None:
    rds = aws(fresh, "rds", "us-west-2")
    target = fresh.topology["regions"]["us-west-2"]["aurora_cluster_arn"]
    with pytest.raises(ClientError) as err:
        rds.failover_global_cluster(
            GlobalClusterIdentifier="shop-global", TargetDbClusterIdentifier=target
        )
    assert err.value.response["Error"]["Code"] == "InvalidParameterCombination"
    resp = rds.failover_global_cluster(
        GlobalClusterIdentifier="shop-global", TargetDbClusterIdentifier=target, AllowDataLoss=True
    )
    assert_response_shape("rds", "FailoverGlobalCluster", resp)
    assert resp["GlobalCluster"]["Status"] == "failing-over"
    assert resp["GlobalCluster"]["FailoverState"]["IsDataLossAllowed"] is True
    wait_for(lambda: _writer(fresh) == "us-west-2")


def test_unknown_global_cluster_is_not_found(env: SandboxEnv) -> None:
    with pytest.raises(ClientError) as err:
        aws(env, "rds").switchover_global_cluster(
            GlobalClusterIdentifier="nope", TargetDbClusterIdentifier="x"
        )
    assert err.value.response["Error"]["Code"] == "GlobalClusterNotFoundFault"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_promote_read_replica_detaches_it(fresh: SandboxEnv) -> None:
    # x0.01: 3 s under way, long enough to be seen modifying on a loaded machine.
    with slower(SandboxControl(fresh), replica_promotion=300.0):
        _promote_and_detach(fresh)


def _promote_and_detach(fresh: SandboxEnv) -> None:
    west, east = aws(fresh, "rds", "us-west-2"), aws(fresh, "rds", "us-east-1")
    replica = west.describe_db_instances(DBInstanceIdentifier="shop-db-replica")["DBInstances"][0]
    assert replica["ReadReplicaSourceDBInstanceIdentifier"].endswith(":db:shop-db")
    source = east.describe_db_instances(DBInstanceIdentifier="shop-db")["DBInstances"][0]
    assert source["ReadReplicaDBInstanceIdentifiers"]
    resp = west.promote_read_replica(DBInstanceIdentifier="shop-db-replica")
    assert_response_shape("rds", "PromoteReadReplica", resp)
    # The promotion takes time, as on RDS: the instance is modifying, still a replica, and a
    # second PromoteReadReplica meanwhile is refused.
    replica = west.describe_db_instances(DBInstanceIdentifier="shop-db-replica")["DBInstances"][0]
    assert replica["DBInstanceStatus"] == "modifying"
    with pytest.raises(ClientError) as busy:
        west.promote_read_replica(DBInstanceIdentifier="shop-db-replica")
    assert busy.value.response["Error"]["Code"] == "InvalidDBInstanceState"

    def promoted() -> dict[str, Any] | None:
        db = west.describe_db_instances(DBInstanceIdentifier="shop-db-replica")["DBInstances"][0]
        return db if db["DBInstanceStatus"] == "available" else None

    replica = wait_for(promoted, timeout=10)
    assert "ReadReplicaSourceDBInstanceIdentifier" not in replica
    source = east.describe_db_instances(DBInstanceIdentifier="shop-db")["DBInstances"][0]
    assert not source.get("ReadReplicaDBInstanceIdentifiers")
    with pytest.raises(ClientError) as err:  # promoting again: it is no longer a replica
        west.promote_read_replica(DBInstanceIdentifier="shop-db-replica")
    assert err.value.response["Error"]["Code"] == "InvalidDBInstanceState"


def test_remove_secondary_then_primary_from_global_cluster(fresh: SandboxEnv) -> None:
    west = aws(fresh, "rds", "us-west-2")
    secondary = fresh.topology["regions"]["us-west-2"]["aurora_cluster_arn"]
    primary = fresh.topology["regions"]["us-east-1"]["aurora_cluster_arn"]
    with pytest.raises(ClientError) as err:  # the writer cannot leave while others remain
        west.remove_from_global_cluster(
            GlobalClusterIdentifier="shop-global", DbClusterIdentifier=primary
        )
    assert err.value.response["Error"]["Code"] == "InvalidGlobalClusterStateFault"
    resp = west.remove_from_global_cluster(
        GlobalClusterIdentifier="shop-global", DbClusterIdentifier=secondary
    )
    assert_response_shape("rds", "RemoveFromGlobalCluster", resp)
    members = resp["GlobalCluster"]["GlobalClusterMembers"]
    assert [m["DBClusterArn"] for m in members] == [primary]
    detached = west.describe_db_clusters(DBClusterIdentifier="shop-aurora-us-west-2")["DBClusters"][
        0
    ]
    assert not detached.get("GlobalClusterIdentifier")
