"""Reports of runs: written by drill, valid against their schema, honest about rollbacks."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

from orchestrator.report import Report
from orchestrator.runs import RunProgress
from orchestrator.sandbox.control import SandboxControl
from orchestrator.sandbox.faults import FaultRule
from orchestrator.sandbox.manager import SandboxEnv
from tests.cli import Ran
from tests.cli import failover as run_cli
from tests.workflows.helpers import ROOT

SHOP = str(ROOT / "runbooks/shop-region-switch.yaml")


def failover(env: SandboxEnv, reports: Path, *args: str) -> Ran:
    return run_cli(env, *args, FAILOVER_REPORTS=str(reports))


def test_drill_writes_reports_with_rto_rpo_and_valid_json(
    fresh: SandboxEnv, tmp_path: Path
) -> None:
    proc = failover(fresh, tmp_path, "drill", SHOP, "--from", "us-east-1", "--to", "us-west-2",
                    "--auto-approve", "bob")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "RTO: traffic on us-west-2 after" in proc.stderr and "RPO:" in proc.stderr
    files = sorted(tmp_path.iterdir())
    assert [f.suffix for f in files] == [".html", ".json", ".md"]
    data = json.loads(next(f for f in files if f.suffix == ".json").read_text())
    jsonschema.validate(data, Report.model_json_schema())
    assert data["outcome"] == "SUCCEEDED" and data["rolled_back"] == []
    assert 0 < data["rto_traffic_s"] <= data["rto_total_s"]
    assert data["objectives"]["rto"]["met"] is True and data["objectives"]["rpo"]["met"] is True
    assert data["rpo_s"] is not None
    assert [a["approver"] for a in data["approvals"]] == ["bob"]
    page = next(f for f in files if f.suffix == ".html").read_text()
    assert "<svg" in page and page.count("<rect") >= 20 and "aurora-switchover" in page
    # The same report, on demand, and the status JSON against its schema.
    again = failover(fresh, tmp_path, "report", "shop-region-switch", "-f", "json")
    assert json.loads(again.stdout)["steps"] == data["steps"]
    status = failover(fresh, tmp_path, "status", "shop-region-switch", "-o", "json")
    jsonschema.validate(json.loads(status.stdout), RunProgress.model_json_schema())
    # The plan's expected RTO now has a past run to go by.
    plan = failover(fresh, tmp_path, "plan", SHOP, "--from", "us-west-2", "--to", "us-east-1",
                    "-o", "json")  # fmt: skip
    past = json.loads(plan.stdout)
    assert past["past_runs"] >= 1 and past["past_median_s"] > 0


def test_rolled_back_drill_report_shows_the_failure_and_every_undo(
    fresh: SandboxEnv, control: SandboxControl, tmp_path: Path
) -> None:
    control.add_fault(FaultRule(target="aws:rds:SwitchoverGlobalCluster", error="AccessDenied"))
    proc = failover(fresh, tmp_path, "drill", SHOP, "--from", "us-east-1", "--to", "us-west-2",
                    "--auto-approve", "bob")  # fmt: skip
    assert proc.returncode == 3, proc.stderr
    data = json.loads(next(tmp_path.glob("*.json")).read_text())
    jsonschema.validate(data, Report.model_json_schema())
    assert data["outcome"] == "ROLLED_BACK" and "aurora-switchover" in data["reason"]
    steps = {s["id"]: s for s in data["steps"]}
    assert steps["aurora-switchover"]["error"]["kind"] == "AccessDenied"
    applied = [s["id"] for s in data["steps"] if s["undo"] is not None]
    assert set(applied) == set(data["rolled_back"])
    assert {"freeze-writes", "scale-up-target-asg", "scale-up-target-pods"} <= set(applied)
    assert all(steps[i]["state"] == "UNDONE" for i in applied)
    md = next(tmp_path.glob("*.md")).read_text()
    assert "## Rollback" in md and "AccessDenied" in md
