"""`failover iam` / `failover rbac`, and the ClusterRole shipped in deploy/."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from activities import registry
from orchestrator import permissions

ROOT = Path(__file__).resolve().parents[1]


def test_iam_policy_of_the_shop_runbook_has_every_action_of_its_step_types() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "orchestrator", "iam", str(ROOT / "runbooks/shop-region-switch.yaml")],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    policy = json.loads(out.stdout)
    allowed = {a for st in policy["Statement"] for a in st["Action"]}
    for name in ("route53_weighted", "aurora_global_switchover", "asg_capacity", "replica_lag"):
        assert set(registry.STEP_TYPES[name].actions) <= allowed
    assert "ssm:PutParameter" not in allowed, "the shop runbook uses no SSM step"
    assert all(st["Effect"] == "Allow" for st in policy["Statement"])


def test_deploy_clusterrole_is_the_generated_one() -> None:
    shipped = yaml.safe_load((ROOT / "deploy/kubernetes/base/clusterrole.yaml").read_text())
    assert shipped == permissions.rbac_role(permissions.step_types(None)), (
        "regenerate: failover rbac > deploy/kubernetes/base/clusterrole.yaml"
    )
    verbs = {(r["resources"][0], v) for r in shipped["rules"] for v in r["verbs"]}
    assert ("deployments/scale", "patch") in verbs and ("configmaps", "patch") in verbs


def test_a_runbook_s_permissions_cover_its_disaster_recovery_game_days_and_readiness() -> None:
    from activities.readiness import ReadinessProbe
    from orchestrator.runbook.loader import load_file

    rb = load_file(ROOT / "runbooks/shop-region-switch.yaml")
    types = permissions.step_types(rb)
    names = {t.name for t in types}
    # aurora_global_failover replaces the switchover in an unplanned run; aurora_global_rejoin
    # and write_divergence are the recovery's; region_outage is the disaster game day's fault.
    assert {"aurora_global_failover", "aurora_global_rejoin", "write_divergence",
            "region_outage", "readiness"} <= names  # fmt: skip
    allowed = {a for st in permissions.iam_policy(types)["Statement"] for a in st["Action"]}
    assert {"rds:FailoverGlobalCluster", *ReadinessProbe.actions} <= allowed
    rules = permissions.rbac_role(types)["rules"]
    assert {"apiGroups": ["authorization.k8s.io"], "resources": ["selfsubjectaccessreviews"],
            "verbs": ["create"]} in rules  # fmt: skip
