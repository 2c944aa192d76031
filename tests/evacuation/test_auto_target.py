"""`failover evacuate PLAN --from R --to auto` on the three-region sandbox (tests/conftest.py):
each service's target chosen on its own by `orchestrator.targets` (its runbook's regions but the
source, the first whose capacity and health checks are green), shown by `failover plan` and a dry
run, recorded in the report; one real evacuation checked with boto3; and the refusal, before
anything starts, when no region can take a service.

The services: `big` needs 3 instances of its target's Auto Scaling group (a capacity check) and a
healthy app there (a health check); `small` needs only the healthy app and sets its flag in its
target; `plain` has no readiness check at all (its first other region qualifies, and says so).
us-west-2 comes first in every runbook; its group cannot grow past 2 in these tests.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from orchestrator.sandbox.manager import Sandbox, SandboxEnv
from tests.cli import failover
from tests.conftest import THREE_REGIONS as REGIONS
from tests.evacuation.helpers import write_plan
from tests.sandbox.helpers import aws

HEALTHY = {"id": "healthy", "type": "http_check",
           "params": {"endpoint": "app", "path": "/health", "region": "${{ to_region }}",
                      "requests": 1}}  # fmt: skip


@pytest.fixture
def env3(three_regions: Sandbox) -> SandboxEnv:
    """The three-region sandbox back in its seeded state, us-west-2's group capped at 2."""
    env = three_regions.reset()
    _max_size(env, "us-west-2", 2)
    return env


def _max_size(env: SandboxEnv, region: str, size: int) -> None:
    aws(env, "autoscaling", region).update_auto_scaling_group(
        AutoScalingGroupName="shop-asg", MinSize=1, MaxSize=size, DesiredCapacity=1
    )


def _runbook(name: str, steps: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": "failover.dev/v1", "kind": "Runbook", "name": name,
            "regions": list(REGIONS), "approvers": ["bob"], "steps": steps}  # fmt: skip


def _plan(folder: Path, name: str) -> Path:
    big = _runbook("big", [
        HEALTHY,
        {"id": "size", "type": "asg_capacity", "depends_on": ["healthy"],
         "params": {"name": "shop-asg", "region": "${{ to_region }}", "desired": 3, "min": 3}},
    ])  # fmt: skip
    small = _runbook("small", [
        HEALTHY,
        {"id": "flag", "type": "ssm_parameter", "depends_on": ["healthy"],
         "params": {"name": "/evac/small", "value": "${{ to_region }}",
                    "region": "${{ to_region }}"}},
    ])  # fmt: skip
    plain = _runbook("plain", [{"id": "work", "type": "noop", "params": {"duration": "50ms"}}])
    services = [
        {"name": "big", "runbook": "big"},
        {"name": "small", "runbook": "small", "depends_on": ["big"]},
        {"name": "plain", "runbook": "plain", "tier": 2},
    ]
    return write_plan(folder, services, {"big": big, "small": small, "plain": plain}, name=name)


def _chosen(row: dict[str, Any]) -> tuple[str, list[tuple[str, bool]]]:
    choice = row["target_choice"]
    assert choice is not None, row
    assert row["to_region"] == choice["chosen"]
    return choice["chosen"], [(c["region"], c["ok"]) for c in choice["candidates"]]


def _check_choices(rows: list[dict[str, Any]]) -> None:
    by = {r["service"] if "service" in r else r["name"]: r for r in rows}
    assert _chosen(by["big"]) == ("eu-west-1", [("us-west-2", False), ("eu-west-1", True)])
    west = by["big"]["target_choice"]["candidates"][0]["reasons"]
    assert (
        "capacity size: Auto Scaling group shop-asg in us-west-2: max size 2 < desired 3" in west[0]
    )
    eu = by["big"]["target_choice"]["candidates"][1]["reasons"]
    assert sorted(r.split(" ", 1)[0] for r in eu) == ["capacity", "health"]
    assert _chosen(by["small"]) == ("us-west-2", [("us-west-2", True), ("eu-west-1", True)])
    assert _chosen(by["plain"]) == ("us-west-2", [("us-west-2", True), ("eu-west-1", True)])
    assert by["plain"]["target_choice"]["candidates"][0]["reasons"] == [
        "no capacity or health check in the runbook for this direction"
    ]


def test_plan_and_dry_run_choose_each_services_target(env3: SandboxEnv, tmp_path: Path) -> None:
    plan = str(_plan(tmp_path, "auto-plan"))
    ran = failover(env3, "plan", plan, "--from", "us-east-1", "--to", "auto", "-o", "json")
    assert ran.returncode == 0, ran.stderr
    out = json.loads(ran.stdout)
    assert out["to_auto"] is True and out["ok"] is True
    _check_choices(out["services"])
    # each service writes where it goes: big the group in eu-west-1, small its flag in us-west-2
    writes = {r["service"]: r["resources"] for r in out["services"]}
    assert any("eu-west-1" in w and "shop-asg" in w for w in writes["big"]), writes
    assert any("us-west-2" in w and "/evac/small" in w for w in writes["small"]), writes

    table = failover(env3, "plan", plan, "--from", "us-east-1", "--to", "auto")
    assert table.returncode == 0, table.stderr
    assert "big: --to auto chose eu-west-1 (2 check(s) green); us-west-2: capacity size" in (
        table.stderr
    )
    assert "small: --to auto chose us-west-2 (1 check(s) green); eu-west-1: also qualified" in (
        table.stderr
    )
    assert (
        "plain: --to auto chose us-west-2 (no capacity or health check in the runbook for this "
        "direction); eu-west-1: also qualified" in table.stderr
    )
    assert "-> auto" in table.stdout and "eu-west-1" in table.stdout

    dry = failover(env3, "evacuate", plan, "--from", "us-east-1", "--to", "auto", "--dry-run",
                   "-o", "json")  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    report = json.loads(dry.stdout)
    assert report["mode"] == "dry-run" and report["to_auto"] is True
    assert [s["outcome"] for s in report["services"]] == ["SUCCEEDED"] * 3
    _check_choices(report["services"])
    # a dry run changed nothing
    groups = aws(env3, "autoscaling", "eu-west-1").describe_auto_scaling_groups(
        AutoScalingGroupNames=["shop-asg"]
    )["AutoScalingGroups"]
    assert groups[0]["DesiredCapacity"] == 1
    assert not aws(env3, "ssm", "us-west-2").get_parameters(Names=["/evac/small"])["Parameters"]


def test_an_evacuation_moves_each_service_to_its_chosen_region(
    env3: SandboxEnv, tmp_path: Path
) -> None:
    plan = str(_plan(tmp_path, "auto-real"))
    ran = failover(env3, "evacuate", plan, "--from", "us-east-1", "--to", "auto",
                   "--auto-approve", "bob", "-o", "json")  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    report = json.loads(ran.stdout)
    assert report["outcome"] == "SUCCEEDED", report["reason"]
    _check_choices(report["services"])

    # The world, read with boto3: big's capacity in eu-west-1, small's flag in us-west-2.
    def group(region: str) -> dict[str, Any]:
        found: dict[str, Any] = aws(env3, "autoscaling", region).describe_auto_scaling_groups(
            AutoScalingGroupNames=["shop-asg"]
        )["AutoScalingGroups"][0]
        return found

    eu, west = group("eu-west-1"), group("us-west-2")
    assert (eu["DesiredCapacity"], eu["MinSize"]) == (3, 3)
    assert (west["DesiredCapacity"], west["MaxSize"]) == (1, 2)
    flag = aws(env3, "ssm", "us-west-2").get_parameter(Name="/evac/small")["Parameter"]
    assert flag["Value"] == "us-west-2"
    assert not aws(env3, "ssm", "eu-west-1").get_parameters(Names=["/evac/small"])["Parameters"]
    # Each service's own switch went there (its child's report says so too).
    children = {s["name"]: s["workflow_id"] for s in report["services"]}
    status = failover(env3, "status", children["big"], "-o", "json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["to_region"] == "eu-west-1"
    table = failover(env3, "status", report["workflow_id"])
    assert table.returncode == 0, table.stderr
    title = " ".join(table.stdout.split())  # (the title wraps at the console's width)
    assert "-> auto (big: eu-west-1, small: us-west-2, plain: us-west-2)" in title, title
    # The evacuation's report: a row per service with its target and why.
    md = failover(env3, "report", report["workflow_id"])
    assert md.returncode == 0, md.stderr
    assert "## Targets chosen (--to auto)" in md.stdout
    rows = [line for line in md.stdout.splitlines() if line.startswith("| big | eu-west-1 |")]
    assert len(rows) == 1 and "us-west-2: not chosen (capacity size:" in rows[0], md.stdout
    assert "| plain | us-west-2 | us-west-2: no capacity or health check" in md.stdout


def test_no_region_for_a_service_refuses_the_evacuation_before_it_starts(
    env3: SandboxEnv, tmp_path: Path
) -> None:
    _max_size(env3, "eu-west-1", 2)  # big fits nowhere now; small and plain still would
    plan = str(_plan(tmp_path, "auto-refused"))
    ran = failover(env3, "evacuate", plan, "--from", "us-east-1", "--to", "auto",
                   "--auto-approve", "bob")  # fmt: skip
    assert ran.returncode == 6, ran.stderr
    line = ran.stderr.strip()
    assert len(line.splitlines()) == 1 and "Traceback" not in line, line
    assert line.startswith(
        "error: service big (big.yaml): --to auto: no region can take the service from us-east-1"
    ), line
    assert "us-west-2: capacity size: Auto Scaling group shop-asg in us-west-2: max size 2" in line
    assert "eu-west-1: capacity size: Auto Scaling group shop-asg in eu-west-1: max size 2" in line
    assert "small" not in line and "plain" not in line
    # Nothing started: no evacuation of the plan, nothing written.
    status = failover(env3, "status", "evacuation-auto-refused")
    assert status.returncode != 0 and "evacuation-auto-refused" in status.stderr, status.stderr
    assert not aws(env3, "ssm", "us-west-2").get_parameters(Names=["/evac/small"])["Parameters"]
    plan_run = failover(env3, "plan", plan, "--from", "us-east-1", "--to", "auto")
    assert plan_run.returncode == 6 and "service big (big.yaml)" in plan_run.stderr
