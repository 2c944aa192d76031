"""The step types of disaster mode against the sandbox, without Temporal: what an unplanned
failover and the recovery of the failed region are made of."""

from __future__ import annotations

import base64
import json
import time
import urllib.request
from typing import Any

import pytest
from kubernetes import client as k8s

from activities import registry
from activities.base import StateStep, StepContext
from activities.clients import Clients
from activities.errors import StepError
from orchestrator.config import from_sandbox
from orchestrator.sandbox.control import SandboxControl
from orchestrator.sandbox.manager import SandboxEnv
from tests.activities.test_step_types import ctx, params, until
from tests.sandbox.helpers import aws, kube, wait_for

CNPG = ("postgresql.cnpg.io", "v1", "shop", "clusters", "shop-db")


def _members(env: SandboxEnv) -> dict[str, bool]:
    gc = aws(env, "rds").describe_global_clusters(GlobalClusterIdentifier="shop-global")
    members = gc["GlobalClusters"][0]["GlobalClusterMembers"]
    return {m["DBClusterArn"].split(":")[3]: m["IsWriter"] for m in members}


def _fail_over(env: SandboxEnv, c: StepContext) -> None:
    """An unplanned Aurora failover to us-west-2 (the old writer is left out)."""
    stype, p = params("aurora_global_failover", global_cluster="shop-global",
                      target_region="us-west-2")  # fmt: skip
    stype.apply(c, p, stype.snapshot(c, p))
    until(lambda: stype.verify(c, p, {}))
    wait_for(lambda: _members(env) == {"us-west-2": True})


def test_aurora_rejoin_keeps_the_old_writer_in_a_snapshot_and_makes_it_a_secondary(
    fresh: SandboxEnv, control: SandboxControl
) -> None:
    c = ctx(fresh)
    _fail_over(fresh, c)
    stype, p = params("aurora_global_rejoin", global_cluster="shop-global",
                      cluster="shop-aurora-us-east-1", region="us-east-1")  # fmt: skip
    assert not stype.reversible and stype.mutating
    snap = stype.snapshot(c, p)
    assert snap == {"member": False}
    assert [ch.after for ch in stype.dry_run(c, p)] == [{"member": True}]
    t0 = time.time()
    stype.apply(c, p, snap)
    until(lambda: stype.verify(c, p, snap))
    assert _members(fresh) == {"us-west-2": True, "us-east-1": False}
    rds = aws(fresh, "rds", "us-east-1")
    kept = rds.describe_db_cluster_snapshots(DBClusterIdentifier="shop-aurora-us-east-1",
                                             SnapshotType="manual")["DBClusterSnapshots"]  # fmt: skip
    assert [s["DBClusterSnapshotIdentifier"].startswith("shop-aurora-us-east-1-before-rejoin-")
            for s in kept] == [True], "the old writer's data is kept"  # fmt: skip
    # Applied again (a retried activity): it is ours, nothing is deleted or created twice.
    stype.apply(c, p, snap)
    writes = [x.operation for x in control.calls(t0) if x.operation.startswith("rds:")]
    assert writes.count("rds:CreateDBCluster") == writes.count("rds:DeleteDBCluster") == 1
    assert stype.dry_run(c, p) == []
    with pytest.raises(StepError) as refused:  # never taken out again
        stype.undo(c, p, snap)
    assert not refused.value.retryable


def test_write_divergence_counts_the_writes_the_failed_region_never_replicated(
    fresh: SandboxEnv, control: SandboxControl
) -> None:
    east = fresh.regions["us-east-1"].app_url
    for _ in range(3):  # replicated (no lag yet)
        _post(f"{east}/api/orders")
    wait_for(lambda: len(_orders(fresh, "us-west-2")["replicated"]) == 3, timeout=15)
    control.set_replication_lag("us-west-2", 3600)
    for _ in range(4):  # never replicated
        _post(f"{east}/api/orders")
    stype = registry.get("write_divergence")
    assert stype is not None and not stype.mutating
    p = stype.Params.model_validate({"failed_region": "us-east-1", "kept_region": "us-west-2"})
    check = stype.verify(ctx(fresh), p, {})
    assert check.ok
    assert check.observed["lost_writes"] == 4
    assert 0 < check.observed["lost_writes_rpo_s"] < 60
    assert "4 write(s) us-east-1 accepted never reached us-west-2" in check.detail
    back = p.model_copy(update={"failed_region": "us-west-2", "kept_region": "us-east-1"})
    assert stype.verify(ctx(fresh), back, {}).observed["lost_writes"] == 0


def test_dns_answer_reads_what_resolvers_are_told_and_follows_arc(
    fresh: SandboxEnv, control: SandboxControl
) -> None:
    stype = registry.get("dns_answer")
    assert stype is not None and not stype.mutating
    c = ctx(fresh)

    def answer(expect: list[str], record: str = "api.shop.example.") -> Any:
        return stype.verify(c, stype.Params.model_validate({"record": record, "expect": expect,
                                                            "queries": 10}), {})  # fmt: skip

    assert answer(["us-east-1"]).ok
    wrong = answer(["us-west-2"])
    assert not wrong.ok and wrong.observed["dns_answers"] == {"us-east-1": 10}
    # Route 53's API down (us-east-1), ARC's data plane moves the answers all the same.
    control.set_outage("us-east-1", "full")
    arc, ap = params("arc_routing_controls", cluster="shop-arc", control_panel="shop",
                     states={"shop-us-west-2": "On", "shop-us-east-1": "Off"})  # fmt: skip
    arc.apply(c, ap, arc.snapshot(c, ap))
    until(lambda: answer(["us-west-2"]))
    refused = answer(["us-west-2"], record="api.elsewhere.example.")
    assert not refused.ok and refused.observed["dns_answers"] == {"REFUSED": 10}


def test_arc_uses_the_configured_endpoints_without_the_control_plane(
    fresh: SandboxEnv, control: SandboxControl
) -> None:
    """ARC's control plane lives in us-west-2: down, it must not stop a failover to us-east-1
    when the cluster's endpoints are configured; without them, the error says what to do."""
    control.set_outage("us-west-2", "full")
    arc, p = params("arc_routing_controls", cluster="shop-arc", control_panel="shop",
                    states={"shop-us-east-1": "On", "shop-us-west-2": "Off"})  # fmt: skip
    c = ctx(fresh)
    arc.apply(c, p, arc.snapshot(c, p))
    until(lambda: arc.verify(c, p, {}))
    bare = from_sandbox(fresh).model_copy(deep=True)
    bare.aws.arc_clusters = {}
    bare.aws.connect_timeout = bare.aws.read_timeout = 1.0
    unconfigured = StepContext(run_id="t", step_id="s", from_region="us-west-2",
                               to_region="us-east-1", region=None, mode="drill",
                               clients=Clients(bare))  # fmt: skip
    with pytest.raises(StepError) as failed:
        arc.observe(unconfigured, p)
    assert "aws.arc_clusters" in str(failed.value)


def _cnpg(env: SandboxEnv, region: str) -> dict[str, Any]:
    obj: dict[str, Any] = k8s.CustomObjectsApi(kube(env, region)).get_namespaced_custom_object(
        *CNPG
    )
    return obj


def test_cnpg_planned_promotion_carries_the_demotion_token(fresh: SandboxEnv) -> None:
    demote, dp = params("cnpg_role", namespace="shop", name="shop-db", role="replica",
                        primary="shop-db-us-west-2")  # fmt: skip
    promote, pp = params("cnpg_role", namespace="shop", name="shop-db", role="primary",
                         primary="shop-db-us-west-2", token_from="us-east-1")  # fmt: skip
    east, west = ctx(fresh, "us-east-1"), ctx(fresh, "us-west-2")
    timeline = _cnpg(fresh, "us-west-2")["status"].get("timelineID", 1)
    demote.apply(east, dp, demote.snapshot(east, dp))
    promote.apply(west, pp, promote.snapshot(west, pp))  # waits for the token itself
    until(lambda: promote.verify(west, pp, {}))
    db = _cnpg(fresh, "us-west-2")
    token = json.loads(base64.b64decode(db["spec"]["replica"]["promotionToken"]))
    assert token["cluster"] == "shop-db-us-east-1"
    assert db["status"]["replicaCluster"] is False
    assert db["status"]["timelineID"] == timeline + 1


def test_cnpg_refuses_a_token_that_is_not_its_sources(fresh: SandboxEnv) -> None:
    """A promotion token from another cluster is refused (CloudNativePG checks it): the step
    ends at once, not retried until its timeout."""
    foreign = base64.b64encode(json.dumps({"cluster": "shop-db-eu-west-1", "timelineID": 1,
                                           "lsn": "0/AB"}).encode()).decode()  # fmt: skip
    api = k8s.CustomObjectsApi(kube(fresh, "us-west-2"))
    api.patch_namespaced_custom_object(
        *CNPG, {"spec": {"replica": {"primary": "shop-db-us-west-2", "promotionToken": foreign}}}
    )
    phase = wait_for(lambda: _cnpg(fresh, "us-west-2")["status"]["phase"].startswith(
        "Promotion refused") and _cnpg(fresh, "us-west-2")["status"]["phase"])  # fmt: skip
    assert "shop-db-eu-west-1" in phase
    assert _cnpg(fresh, "us-west-2")["status"]["replicaCluster"] is True
    stype = registry.get("cnpg_role")
    assert isinstance(stype, StateStep)
    c = ctx(fresh, "us-west-2")
    p = stype.Params.model_validate({"namespace": "shop", "name": "shop-db", "role": "primary",
                                     "primary": "shop-db-us-west-2"})  # fmt: skip
    wanted = stype.desired(c, p, stype.observe(c, p))
    dead = stype.dead_end(stype.observe(c, p), wanted)
    assert dead is not None and not dead.retryable and "refused" in dead.message


def test_replica_lag_measured_only_when_not_enforced(
    fresh: SandboxEnv, control: SandboxControl
) -> None:
    stype = registry.get("replica_lag")
    assert stype is not None
    c = ctx(fresh)
    control.set_lag(30.0)

    def check(**extra: Any) -> Any:
        p = stype.Params.model_validate({"identifier": "shop-aurora-us-west-2",
                                         "region": "us-west-2", "max_lag": "5s", **extra})  # fmt: skip
        return stype.verify(c, p, {})

    wait_for(lambda: check(enforce=False).observed.get("lag_seconds") == 30.0, timeout=20)
    enforced, measured = check(), check(enforce=False)
    assert not enforced.ok and measured.ok
    assert measured.observed["lag_seconds"] == pytest.approx(30.0)
    assert "over the RPO" in measured.detail
    unknown = check(enforce=False, identifier="no-such-cluster")
    assert unknown.ok and "unknown" in unknown.detail
    assert not check(identifier="no-such-cluster").ok


def _post(url: str) -> int:
    req = urllib.request.Request(url, method="POST", data=b"{}")
    with urllib.request.urlopen(req, timeout=5) as resp:
        return int(resp.status)


def _orders(env: SandboxEnv, region: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{env.regions[region].app_url}/_orders", timeout=5) as resp:
        data: dict[str, Any] = json.loads(resp.read())
    return data
