"""The switch commands as a user runs them: drill, status, list, approve, reject, watch, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.sandbox.control import SandboxControl
from orchestrator.sandbox.faults import FaultRule
from orchestrator.sandbox.manager import SandboxEnv
from tests.cli import Ran, failover
from tests.workflows.helpers import ROOT, observe

RUNBOOK = str(ROOT / "runbooks/maintenance-drill.yaml")


def failover_process(env: SandboxEnv, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m orchestrator ARGS` in its own process: the real entry point."""
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, FAILOVER_SANDBOX_HOME=env.home, FAILOVER_USER="alice",
                 FAILOVER_REPORTS=str(Path(env.home) / "reports"), PYTHONPATH=str(ROOT)),
        cwd=ROOT,
    )  # fmt: skip


def test_drill_with_auto_approve_succeeds_and_reports_json(fresh: SandboxEnv) -> None:
    proc = failover(fresh, "drill", RUNBOOK, "--from", "us-east-1", "--to", "us-west-2",
                    "--auto-approve", "bob", "-o", "json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["state"] == "SUCCEEDED" and result["requester"] == "alice"
    assert [a["approver"] for a in result["approvals"]] == ["bob"]
    assert observe(fresh)["us-west-2:configmap"]["maintenance"] == "true"
    listed = json.loads(
        failover(fresh, "list", "--runbook", "maintenance-drill", "-o", "json").stdout
    )
    assert listed[0]["state"] == "SUCCEEDED" and listed[0]["from"] == "us-east-1"


def test_drill_that_rolls_back_exits_3(fresh: SandboxEnv, control: SandboxControl) -> None:
    """Through the real entry point (its own process, which ends with os._exit)."""
    control.add_fault(FaultRule(target="aws:ssm:PutParameter", region="us-west-2",
                                error="AccessDenied"))  # fmt: skip
    before = observe(fresh)
    proc = failover_process(fresh, "drill", RUNBOOK, "--from", "us-east-1", "--to", "us-west-2",
                    "--auto-approve", "bob")  # fmt: skip
    assert proc.returncode == 3, proc.stderr
    assert "ROLLED_BACK" in proc.stderr and "AccessDenied" in proc.stderr
    assert observe(fresh) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "eu-west-9", "--to", "us-west-2"],
         "error: --from: unknown region 'eu-west-9' (runbook 'maintenance-drill' switches "
         "between us-east-1, us-west-2)"),
        (["--from", "us-east-1", "--to", "us-east-1"],
         "error: --from and --to are both 'us-east-1': nothing to switch"),
        (["--from", "us-east-1", "--to", "us-west-2", "--param", "nope=1"],
         "error: --param nope: unknown parameter (runbook has: settle)"),
        (["--from", "us-east-1", "--to", "us-west-2", "--auto-approve", "alice"],
         "error: --auto-approve alice: the requester cannot approve (two-person rule)"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_exit_2_and_starts_nothing(
    env: SandboxEnv, args: list[str], message: str
) -> None:
    proc = failover(env, "drill", RUNBOOK, *args)
    assert proc.returncode == 2
    assert proc.stderr.strip() == message
    assert "Traceback" not in proc.stderr


def test_approve_and_reject_from_the_cli(fresh: SandboxEnv, worker_process: None) -> None:
    started = failover(fresh, "drill", RUNBOOK, "--from", "us-east-1", "--to", "us-west-2",
                       "--detach", "-o", "json")  # fmt: skip
    assert started.returncode == 0, started.stderr
    wid = json.loads(started.stdout)["workflow_id"]
    try:
        _approve_and_reject(fresh, wid)
    finally:  # never leave the runbook's switch running for the next test
        failover(fresh, "abort", wid, "--reason", "test cleanup")


def _approve_and_reject(fresh: SandboxEnv, wid: str) -> None:
    assert wid == "switch-maintenance-drill"
    for _ in range(100):
        st = json.loads(failover(fresh, "status", "maintenance-drill", "-o", "json").stdout)
        if st["state"] == "WAITING_APPROVAL":
            break
    assert st["open_gates"] == ["approve"]
    own = failover(fresh, "approve", wid)  # FAILOVER_USER=alice requested it
    assert own.returncode == 2
    assert "alice requested this switch and cannot approve it (two-person rule)" in own.stderr
    stranger = failover(fresh, "approve", wid, "--as", "mallory")
    assert stranger.returncode == 2 and "mallory may not decide gate approve" in stranger.stderr
    rejected = failover(fresh, "reject", wid, "--as", "bob", "--reason", "not today")
    assert rejected.returncode == 0, rejected.stderr
    watched = failover(fresh, "watch", wid, "-o", "json")
    assert watched.returncode == 3
    assert (
        json.loads(watched.stdout)["reason"]
        == "step approve failed: Rejected: rejected by bob: not today"
    )
    late = failover(fresh, "abort", wid, "--reason", "late")
    assert late.returncode == 2 and "has already ended" in late.stderr


def test_status_of_an_unknown_run(env: SandboxEnv) -> None:
    proc = failover(env, "status", "no-such-runbook")
    assert proc.returncode == 2 and "no such run" in proc.stderr and "Traceback" not in proc.stderr


def test_sandbox_active_follows_the_aurora_writer(fresh: SandboxEnv) -> None:
    before = json.loads(failover(fresh, "sandbox", "active", "-o", "json").stdout)
    assert before == {"active": "us-east-1", "standby": ["us-west-2"]}
    proc = failover(fresh, "drill", str(ROOT / "runbooks/aurora-only.yaml"), "--from", "us-east-1",
                    "--to", "us-west-2", "--auto-approve", "bob")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    after = json.loads(failover(fresh, "sandbox", "active", "-o", "json").stdout)
    assert after == {"active": "us-west-2", "standby": ["us-east-1"]}


def test_plan_shows_groups_path_and_diff_and_mutates_nothing(
    fresh: SandboxEnv, control: SandboxControl, tmp_path: Path
) -> None:
    t0 = time.time()
    proc = failover(fresh, "plan", str(ROOT / "runbooks/shop-region-switch.yaml"),
                    "--from", "us-east-1", "--to", "us-west-2", "-o", "json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)
    assert plan["levels"][0] == ["freeze-writes", "scale-up-target-asg", "scale-up-target-pods",
                                 "replication-lag"]  # fmt: skip
    assert "approve" in plan["critical_path"] and plan["gates"] == ["approve"]
    rows = {r["id"]: r for r in plan["steps"]}
    assert rows["aurora-switchover"]["changes"] == [
        {"resource": "rds:global-cluster/shop-global",
         "before": {"writer_region": "us-east-1"}, "after": {"writer_region": "us-west-2"}}
    ]  # fmt: skip
    assert rows["approve"]["preflight"] == "skipped"
    assert plan["past_runs"] == 0 or plan["past_median_s"] > 0
    assert [c for c in control.calls(t0)] == [], "a plan makes no mutating call"
    # A preflight that fails now fails the plan (exit 6), naming the step and why.
    bad = tmp_path / "bad.yaml"
    bad.write_text((ROOT / "runbooks/dns-only.yaml").read_text().replace(
        "record: api.shop.example.,\n             weights: {\"${{ to_region }}\": 50",
        "record: nope.shop.example.,\n             weights: {\"${{ to_region }}\": 50"))  # fmt: skip
    proc = failover(fresh, "plan", str(bad), "--from", "us-east-1", "--to", "us-west-2",
                    "-o", "json")  # fmt: skip
    assert proc.returncode == 6
    failed = [r for r in json.loads(proc.stdout)["steps"] if r["error_kind"]]
    assert [r["id"] for r in failed] == ["api-half"]
    assert "nope.shop.example. has no weighted CNAME record" in failed[0]["preflight"]


def test_config_show_redacts_secrets(env: SandboxEnv) -> None:
    proc = failover(env, "config", "show")
    assert proc.returncode == 0, proc.stderr
    assert "secret_access_key: '**********'" in proc.stdout
    assert "sandbox" not in proc.stdout.split("secret_access_key")[1].splitlines()[0]


def test_temporal_env_config_wins_and_unreachable_temporal_is_exit_5(env: SandboxEnv) -> None:
    def run_with(*args: str) -> Ran:
        return failover(env, *args, TEMPORAL_ADDRESS="127.0.0.1:9", TEMPORAL_NAMESPACE="payments")

    shown = run_with("config", "show")
    assert "address: 127.0.0.1:9" in shown.stdout and "namespace: payments" in shown.stdout
    down = run_with("status", "shop-region-switch")
    assert down.returncode == 5
    assert down.stderr.startswith("error: could not reach Temporal at 127.0.0.1:9")
    assert "Traceback" not in down.stderr


def test_state_reads_every_touched_resource_and_changes_nothing(
    fresh: SandboxEnv, control: SandboxControl
) -> None:
    t0 = time.time()
    proc = failover(fresh, "state", str(ROOT / "runbooks/shop-region-switch.yaml"),
                    "--region", "us-east-1", "-o", "json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = {r["step"]: r for r in json.loads(proc.stdout)}
    assert rows["aurora-switchover"]["state"] == {"writer_region": "us-east-1"}
    assert rows["dns-full"]["state"] == {"weights": {"us-east-1": 100, "us-west-2": 0}}
    assert rows["scale-up-target-pods"]["resource"].startswith("k8s:us-west-2:deployment/shop/")
    assert "approve" not in rows and "writes-fenced" not in rows  # read-only steps touch nothing
    assert control.calls(t0) == []
    bad = failover(fresh, "state", str(ROOT / "runbooks/shop-region-switch.yaml"),
                   "--region", "eu-west-9")  # fmt: skip
    assert bad.returncode == 2 and "unknown region 'eu-west-9'" in bad.stderr
