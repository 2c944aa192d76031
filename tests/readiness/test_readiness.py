"""Readiness on the sandbox: the shop runbook is green as seeded; a deleted Auto Scaling group, a
removed Aurora secondary and a denied Kubernetes permission each turn it red, naming what; the
scheduled ReadinessWorkflow notifies the regression (it reaches the sink) and keeps its results;
the command exits 0 green, 6 red, 2 for bad input in one line."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from kubernetes import client as k8s
from temporalio.client import Client

from activities.clients import Clients
from activities.readiness import run_checks
from orchestrator.cli.readiness import create_schedule, history_of
from orchestrator.readiness import ReadinessInput, ReadinessResult
from orchestrator.runbook.loader import load_file
from orchestrator.runbook.resolve import resolve
from orchestrator.sandbox.control import SandboxControl
from orchestrator.sandbox.faults import FaultRule
from orchestrator.sandbox.manager import SandboxEnv
from tests.cli import failover
from tests.sandbox.helpers import aws, kube
from tests.workflows.helpers import ROOT, RUNBOOKS, run, sandbox_config, worker

SHOP = RUNBOOKS / "shop-region-switch.yaml"
EAST, WEST = "us-east-1", "us-west-2"


def _checks(out: str) -> dict[tuple[str, str], dict[str, Any]]:
    data = json.loads(out)
    return {(c["direction"], c["name"]): c for c in data["checks"]}


def _red(out: str) -> dict[tuple[str, str], str]:
    return {k: c["detail"] for k, c in _checks(out).items() if not c["ok"]}


def _renamed(tmp_path: Path) -> Path:
    """The shop runbook under a name of its own (schedules and history are per runbook)."""
    name = f"shop-{uuid.uuid4().hex[:6]}"
    path = tmp_path / f"{name}.yaml"
    path.write_text(SHOP.read_text().replace("name: shop-region-switch", f"name: {name}", 1))
    return path


def test_the_shop_runbook_is_green_on_a_fresh_sandbox(fresh: SandboxEnv) -> None:
    started = time.monotonic()
    ran = subprocess.run(  # the real entry point: exit code and a clean stdout
        [str(ROOT / ".venv" / "bin" / "failover"), "readiness", "check", str(SHOP), "-o", "json"],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "FAILOVER_SANDBOX_HOME": str(fresh.home)},
    )  # fmt: skip
    assert ran.returncode == 0, ran.stdout + ran.stderr
    data = json.loads(ran.stdout)
    assert data["ok"] is True and data["runbook"] == "shop-region-switch"
    assert data["directions"] == [f"{EAST} -> {WEST}", f"{WEST} -> {EAST}"]
    checks = _checks(ran.stdout)
    for d in data["directions"]:
        kinds = {c["kind"] for (direction, _), c in checks.items() if direction == d}
        assert kinds == {"preflight", "lag", "capacity", "health", "permissions"}, (d, kinds)
    lag = checks[(f"{EAST} -> {WEST}", "lag replication-lag")]
    assert "shop-aurora-us-west-2 lag" in lag["detail"]
    back = checks[(f"{WEST} -> {EAST}", "lag replication-lag")]
    assert "is the writer now" in back["detail"]  # no replica to measure toward the writer
    cap = checks[(f"{EAST} -> {WEST}", "capacity scale-up-target-asg")]
    assert "shop-asg in us-west-2: max size 6 >= desired 3" in cap["detail"]
    perms = checks[(f"{EAST} -> {WEST}", "permissions scale-up-target-pods")]
    # get and watch the 3 Deployments, get and patch their scale: each reviewed by name (a Role
    # may list them: `failover rbac` does)
    assert perms["detail"].startswith("12 verb(s) allowed")
    assert time.monotonic() - started < 30


def test_bad_input_is_one_line_and_exit_2(env: SandboxEnv, tmp_path: Path) -> None:
    r = failover(env, "readiness", "check", str(SHOP), "--from", "eu-west-9", "--to", WEST)
    assert r.returncode == 2 and "unknown region 'eu-west-9'" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text(SHOP.read_text().replace("regions: [us-east-1, us-west-2]", "regions: [1"))
    r = failover(env, "readiness", "check", str(bad))
    assert r.returncode == 2 and "bad.yaml:" in r.stderr and "Traceback" not in r.stderr
    r = failover(env, "readiness", "schedule", str(SHOP), "--every", "soon")
    assert r.returncode == 2 and "--every" in r.stderr and "Traceback" not in r.stderr
    r = failover(env, "readiness", "history", "No Such Runbook")
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_one_direction_only(env: SandboxEnv) -> None:
    r = failover(env, "readiness", "check", str(SHOP), "--to", WEST, "-o", "json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["directions"] == [f"{EAST} -> {WEST}"]


async def _triggered(client: Client, sid: str, before: int) -> ReadinessResult:
    """Trigger the schedule; the result of the run it starts."""
    h = client.get_schedule_handle(sid)
    await h.trigger()
    for _ in range(100):
        desc = await h.describe()
        if desc.info.num_actions > before and desc.info.recent_actions:
            wid = getattr(desc.info.recent_actions[-1].action, "workflow_id", "")
            handle = client.get_workflow_handle(wid, result_type=ReadinessResult)
            result: ReadinessResult = await handle.result()
            return result
        await asyncio.sleep(0.1)
    raise AssertionError(f"schedule {sid} started nothing")


def test_a_deleted_target_asg_turns_it_red_and_the_schedule_notifies(
    fresh: SandboxEnv, control: SandboxControl, tmp_path: Path
) -> None:
    path = _renamed(tmp_path)
    rb = load_file(path)
    inp = ReadinessInput(
        runbook=rb.name,
        directions=[
            resolve(rb, EAST, WEST, mode="dry-run", requester="alice"),
            resolve(rb, WEST, EAST, mode="dry-run", requester="alice"),
        ],
        requester="alice",
    )
    since = time.time()

    async def scenario() -> tuple[ReadinessResult, ReadinessResult, list[dict[str, Any]]]:
        async with worker(sandbox_config(fresh)) as (client, queue):
            h = await create_schedule(client, inp, queue, timedelta(hours=1), paused=True)
            try:
                green = await _triggered(client, h.id, 0)
                aws(fresh, "autoscaling", WEST).delete_auto_scaling_group(
                    AutoScalingGroupName="shop-asg", ForceDelete=True
                )
                red = await _triggered(client, h.id, 1)
                for _ in range(100):  # visibility catches up with the second run
                    rows = await history_of(client, rb.name, 10)
                    if len(rows) == 2 and rows[0]["ok"] is not None:
                        return green, red, rows
                    await asyncio.sleep(0.1)
                raise AssertionError(f"history: {rows}")
            finally:
                await h.delete()

    green, red, rows = run(scenario(), timeout=90)
    assert green.ok and green.regressions == [] and green.deliveries == []
    assert not red.ok and red.previous == green.workflow_id
    assert f"{EAST} -> {WEST}: preflight scale-up-target-asg" in red.regressions
    assert f"{EAST} -> {WEST}: capacity scale-up-target-asg" in red.regressions
    cap = next(c for c in red.red if c.name == "capacity scale-up-target-asg"
               and c.direction == f"{EAST} -> {WEST}")  # fmt: skip
    assert cap.detail == "Auto Scaling group shop-asg in us-west-2: not found"
    pre = next(c for c in red.red if c.name == "preflight scale-up-target-asg"
               and c.direction == f"{EAST} -> {WEST}")  # fmt: skip
    assert "autoscaling:us-west-2:shop-asg" in pre.detail and "not found" in pre.detail
    assert all("us-west-2" in c.detail or "us-west-2" in c.resource for c in red.red), red.red
    assert {d.channel for d in red.deliveries if d.ok} >= {"sandbox-webhook", "sandbox-slack"}
    hooks = [n for n in control.notifications(since) if n["kind"] == "webhook"
             and (n.get("body") or {}).get("workflow_id") == red.workflow_id]  # fmt: skip
    assert [n["event"] for n in hooks] == ["readiness_regression"], hooks
    body = hooks[0]["body"]
    assert hooks[0]["signature"] == "valid" and "turned red" in body["summary"]
    assert "shop-asg" in body["detail"]
    assert [r["ok"] for r in rows] == [False, True]  # newest first
    assert rows[0]["regressions"] == red.regressions
    # The command: exit 6, and the same red check in its JSON.
    r = failover(fresh, "readiness", "check", str(path), "-o", "json")
    assert r.returncode == 6, r.stderr
    assert _red(r.stdout)[(f"{EAST} -> {WEST}", "capacity scale-up-target-asg")] == cap.detail
    table = failover(fresh, "readiness", "check", str(path), "--from", EAST, "--to", WEST)
    assert table.returncode == 6 and "RED" in table.stderr and "shop-asg" in table.stdout


def test_a_removed_aurora_secondary_turns_it_red(fresh: SandboxEnv) -> None:
    rds = aws(fresh, "rds", WEST)
    arn = rds.describe_db_clusters(DBClusterIdentifier="shop-aurora-us-west-2")["DBClusters"][0][
        "DBClusterArn"
    ]
    rds.remove_from_global_cluster(GlobalClusterIdentifier="shop-global", DbClusterIdentifier=arn)
    rb = load_file(SHOP)
    inp = ReadinessInput(runbook=rb.name,
                         directions=[resolve(rb, EAST, WEST, mode="dry-run", requester="a")])  # fmt: skip
    result = run_checks(inp, Clients(sandbox_config(fresh)))
    red = {c.name: c.detail for c in result.red}
    assert (
        "shop-aurora-us-west-2 in us-west-2: replicates from nothing" in red["lag replication-lag"]
    )
    assert "has no member in us-west-2" in red["preflight aurora-switchover"]
    assert set(red) == {
        "lag replication-lag",
        "lag aurora-switchover guard 1",
        "preflight aurora-switchover",
    }, red


def test_a_denied_kubernetes_permission_turns_it_red(
    fresh: SandboxEnv, control: SandboxControl
) -> None:
    rule = control.add_fault(FaultRule(target=f"k8s:{WEST}:patch:deployments/scale",
                                       error="Forbidden", count=None))  # fmt: skip
    r = failover(fresh, "readiness", "check", str(SHOP), "--from", EAST, "--to", WEST, "-o", "json")
    assert r.returncode == 6, r.stderr
    red = _red(r.stdout)
    assert list(red) == [(f"{EAST} -> {WEST}", "permissions scale-up-target-pods")], red
    detail = red[(f"{EAST} -> {WEST}", "permissions scale-up-target-pods")]
    assert detail.startswith("denied: patch apps/deployments/scale/checkout in shop (us-west-2)"), (
        detail
    )
    # the pods scaled down in the source (us-east-1) are not denied
    checks = _checks(r.stdout)
    assert checks[(f"{EAST} -> {WEST}", "permissions scale-down-source-pods")]["ok"] is True
    assert next(f for f in control.faults() if f.id == rule.id).hits == 0  # reviews use none up


def test_the_sandbox_answers_access_reviews(env: SandboxEnv, control: SandboxControl) -> None:
    api = k8s.AuthorizationV1Api(kube(env, EAST))

    def review(verb: str, resource: str, sub: str | None = None) -> Any:
        body = k8s.V1SelfSubjectAccessReview(spec=k8s.V1SelfSubjectAccessReviewSpec(
            resource_attributes=k8s.V1ResourceAttributes(
                namespace="shop", verb=verb, group="", resource=resource, subresource=sub)))  # fmt: skip
        return api.create_self_subject_access_review(body).status

    assert review("patch", "configmaps").allowed is True
    control.add_fault(FaultRule(target=f"k8s:{EAST}:patch:configmaps", error="AccessDenied",
                                count=None, message="no patch for you"))  # fmt: skip
    denied = review("patch", "configmaps")
    assert denied.allowed is False and denied.denied is True and denied.reason == "no patch for you"
    assert review("get", "configmaps").allowed is True  # only the verb the rule names
    with_sub = review("patch", "deployments", "scale")
    assert with_sub.allowed is True
    # the call itself gets the 403 the review predicted
    try:
        k8s.CoreV1Api(kube(env, EAST)).patch_namespaced_config_map(
            "shop-flags", "shop", {"data": {"x": "1"}}
        )
        raise AssertionError("the denied patch went through")
    except k8s.ApiException as exc:
        assert exc.status == 403


def _result(**oks: bool) -> ReadinessResult:
    from datetime import UTC, datetime

    from orchestrator.readiness import ReadinessCheck

    checks = [ReadinessCheck(name=n, kind="preflight", direction="a -> b", ok=ok)
              for n, ok in oks.items()]  # fmt: skip
    return ReadinessResult(runbook="rb", directions=["a -> b"], checks=checks,
                           checked_at=datetime.now(UTC))  # fmt: skip


def test_what_counts_as_a_regression_and_a_recovery() -> None:
    from orchestrator.readiness import recoveries, regressions

    assert regressions(None, _result(x=True, y=False)) == ["a -> b: y"]  # first run: every red
    assert regressions(_result(x=True, y=False), _result(x=False, y=False)) == ["a -> b: x"]
    assert regressions(_result(x=True), _result(x=True, new=False)) == ["a -> b: new"]
    assert regressions(_result(x=False), _result(x=False)) == []  # still red: told already
    assert recoveries(_result(x=False, y=False), _result(x=True, y=False)) == ["a -> b: x"]
    assert recoveries(None, _result(x=True)) == []
