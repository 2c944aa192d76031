"""Three regions: a sandbox of its own (us-east-1 active, us-west-2 and eu-west-1 standby), the
shop runbook listing the three, `failover drill` to the third region and on, and `--to auto`
choosing the region with capacity (and refusing when none has it). The world is read with real
clients (boto3, the Kubernetes client, DNS queries, the apps over HTTP)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from orchestrator.sandbox.control import SandboxControl
from orchestrator.sandbox.manager import Sandbox, SandboxEnv, http_json
from tests.cli import failover
from tests.conftest import THREE_REGIONS as REGIONS
from tests.sandbox.helpers import aws, kube
from tests.workflows.shop import world

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def env3(three_regions: Sandbox) -> SandboxEnv:
    """The three-region sandbox back in its seeded state."""
    return three_regions.reset()


@pytest.fixture(scope="module")
def runbook(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The example shop runbook with the third region added to its `regions:`, nothing else."""
    text = (ROOT / "runbooks" / "shop-region-switch.yaml").read_text()
    line = "regions: [us-east-1, us-west-2]\n"
    assert text.count(line) == 1
    path = tmp_path_factory.mktemp("runbooks") / "shop-three.yaml"
    path.write_text(text.replace(line, f"regions: [{', '.join(REGIONS)}]\n"))
    return str(path)


def _max_size(env: SandboxEnv, region: str, size: int) -> None:
    """Take capacity away in a region: its Auto Scaling group cannot grow past `size`."""
    asg = aws(env, "autoscaling", region)
    asg.update_auto_scaling_group(AutoScalingGroupName="shop-asg", MinSize=1, MaxSize=size,
                                  DesiredCapacity=1)  # fmt: skip


def _report(env: SandboxEnv) -> dict[str, Any]:
    """The JSON report of the latest run (written under the sandbox's home by the drill)."""
    files = sorted((Path(env.home) / "reports").glob("*.json"), key=lambda p: p.stat().st_mtime)
    assert files, "no report written"
    loaded: dict[str, Any] = json.loads(files[-1].read_text())
    return loaded


def _drill(env: SandboxEnv, runbook: str, frm: str, to: str) -> str:
    ran = failover(env, "drill", runbook, "--from", frm, "--to", to, "--auto-approve", "bob")
    assert ran.returncode == 0, ran.stderr[-3000:]
    return ran.stderr


def test_the_sandbox_seeds_every_region(env3: SandboxEnv) -> None:
    assert list(env3.regions) == list(REGIONS)
    w = world(env3)
    assert w["aurora_writer"] == "us-east-1"
    assert w["aurora_members"] == sorted(REGIONS)  # one member in each region
    assert w["api_weights"] == {"us-east-1": 100, "us-west-2": 0, "eu-west-1": 0}
    assert w["www_primary"] == ["us-east-1"]
    assert w["arc"] == {"shop-us-east-1": "On", "shop-us-west-2": "Off", "shop-eu-west-1": "Off"}
    assert w["dns_api"] == {"us-east-1": 20}
    for region in REGIONS:
        active = region == "us-east-1"
        r = w[region]
        assert r["asg"] == ((3, 3, 6) if active else (1, 1, 6))
        assert r["alb"] == ({"shop-local": 100, "shop-peer": 0} if active
                            else {"shop-local": 0, "shop-peer": 100})  # fmt: skip
        assert r["replicas"] == dict.fromkeys(("checkout", "cart", "catalog"), 3 if active else 0)
        assert r["db_primary"] == "shop-db-us-east-1" and r["db_replica"] is (not active)
        db = k8s.CustomObjectsApi(kube(env3, region)).get_namespaced_custom_object(
            "postgresql.cnpg.io", "v1", "shop", "clusters", "shop-db"
        )
        assert {c["name"] for c in db["spec"]["externalClusters"]} == {
            f"shop-db-{x}" for x in REGIONS
        }
        eks = aws(env3, "eks", region).describe_cluster(name=f"shop-{region}")["cluster"]
        assert eks["endpoint"] == env3.kube_secure[region]
        rds = aws(env3, "rds", region).describe_db_instances()["DBInstances"]
        assert [d["DBInstanceIdentifier"] for d in rds] == ["shop-db" if active
                                                           else "shop-db-replica"]  # fmt: skip
        assert http_json(f"{env3.regions[region].app_url}/health")["status"] == "ok"


def test_drill_to_the_third_region_then_on_to_the_second(env3: SandboxEnv, runbook: str) -> None:
    out = _drill(env3, runbook, "us-east-1", "eu-west-1")
    assert "repoint-other-dbs-us-west-2: SUCCEEDED" in out
    w = world(env3)
    assert w["aurora_writer"] == "eu-west-1"
    assert w["api_weights"] == {"us-east-1": 0, "us-west-2": 0, "eu-west-1": 100}
    assert w["dns_api"] == {"eu-west-1": 20}
    assert w["www_primary"] == ["eu-west-1"]
    assert w["arc"] == {"shop-us-east-1": "Off", "shop-us-west-2": "Off", "shop-eu-west-1": "On"}
    eu, east, west = w["eu-west-1"], w["us-east-1"], w["us-west-2"]
    assert eu["ready"] == dict.fromkeys(("checkout", "cart", "catalog"), 3)
    assert east["replicas"] == west["replicas"] == dict.fromkeys(("checkout", "cart", "catalog"), 0)
    assert eu["db_replica"] is False and east["db_replica"] is west["db_replica"] is True
    # Every replica follows the new primary, the bystander too.
    assert {w[r]["db_primary"] for r in REGIONS} == {"shop-db-eu-west-1"}
    assert eu["asg"][:2] == (3, 3) and east["asg"][:2] == (1, 1) and west["asg"][:2] == (1, 1)
    # An order taken in eu-west-1 reaches both replicas (the bystander replicates from it).
    order = http_json(f"{env3.regions['eu-west-1'].app_url}/api/orders", "POST", {})
    assert order["accepted"] is True, order
    oid = order["id"]
    deadline = time.monotonic() + 15
    while True:
        got = {r: {o["id"] for o in http_json(f"{env3.regions[r].app_url}/_orders")["replicated"]}
               for r in ("us-east-1", "us-west-2")}  # fmt: skip
        if all(oid in ids for ids in got.values()) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert all(oid in ids for ids in got.values()), got
    # On to us-west-2: its promotion carries eu-west-1's demotion token (the primary it follows).
    _drill(env3, runbook, "eu-west-1", "us-west-2")
    w = world(env3)
    assert w["aurora_writer"] == "us-west-2"
    assert w["dns_api"] == {"us-west-2": 20}
    assert {w[r]["db_primary"] for r in REGIONS} == {"shop-db-us-west-2"}
    assert w["us-west-2"]["db_replica"] is False


def test_to_auto_picks_the_region_with_capacity_and_refuses_when_none_has_it(
    env3: SandboxEnv, runbook: str
) -> None:
    # us-west-2 comes first in the runbook, but its Auto Scaling group cannot take 3 instances.
    _max_size(env3, "us-west-2", 2)
    planned = failover(env3, "plan", runbook, "--from", "us-east-1", "--to", "auto", "-o", "json")
    assert planned.returncode == 0, planned.stderr
    plan = json.loads(planned.stdout)
    assert plan["to_region"] == "eu-west-1"
    choice = plan["target_choice"]
    assert choice["chosen"] == "eu-west-1"
    west, eu = choice["candidates"]
    assert (west["region"], west["ok"], eu["region"], eu["ok"]) == (
        "us-west-2", False, "eu-west-1", True)  # fmt: skip
    assert "max size 2 < desired 3" in west["reasons"][0]
    table = failover(env3, "plan", runbook, "--from", "us-east-1", "--to", "auto")
    assert "--to auto chose eu-west-1" in table.stderr
    assert "us-west-2: capacity scale-up-target-asg" in table.stderr

    out = _drill(env3, runbook, "us-east-1", "auto")
    assert "--to auto chose eu-west-1" in out
    assert world(env3)["aurora_writer"] == "eu-west-1"
    report = _report(env3)
    assert report["to_region"] == "eu-west-1"
    assert report["target_choice"]["chosen"] == "eu-west-1"
    assert [c["ok"] for c in report["target_choice"]["candidates"]] == [False, True]
    assert (
        "Target chosen (--to auto)"
        in Path(
            str(
                sorted((Path(env3.home) / "reports").glob("*.md"), key=lambda p: p.stat().st_mtime)[
                    -1
                ]
            )
        ).read_text()
    )

    # From eu-west-1 now: us-east-1 lacks capacity, and us-west-2 has it back but its app is
    # down: no region qualifies.
    _max_size(env3, "us-east-1", 2)
    _max_size(env3, "us-west-2", 6)
    SandboxControl(env3).set_outage("us-west-2", "app")
    try:
        refused = failover(env3, "drill", runbook, "--from", "eu-west-1", "--to", "auto",
                           "--auto-approve", "bob")  # fmt: skip
    finally:
        SandboxControl(env3).set_outage("us-west-2", None)
    assert refused.returncode == 6, refused.stderr
    line = refused.stderr.strip()
    assert len(line.splitlines()) == 1 and "Traceback" not in line
    assert line.startswith("error: --to auto: no region can take the service from eu-west-1")
    assert "us-east-1: capacity scale-up-target-asg" in line and "max size 2 < desired 3" in line
    assert "us-west-2: health target-healthy-at-half" in line and "503" in line
    assert world(env3)["aurora_writer"] == "eu-west-1"  # nothing started
