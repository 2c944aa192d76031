"""The game-day commands as a user runs them: schedules, a game day followed live, history,
report, trends; bad input gets one line and exit 2, nothing created."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from orchestrator.sandbox.manager import SandboxEnv
from tests.cli import failover
from tests.workflows.helpers import ROOT
from tests.workflows.shop import world

SHOP = str(ROOT / "runbooks/shop-region-switch.yaml")


def _one_line_error(proc: object, *words: str) -> None:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)  # type: ignore[attr-defined]
    err = proc.stderr.strip()  # type: ignore[attr-defined]
    assert err.startswith("error:") and len(err.splitlines()) == 1, err
    assert "Traceback" not in err and all(w in err for w in words), err


def test_schedule_lifecycle(env: SandboxEnv) -> None:
    name = f"cli-{uuid.uuid4().hex[:6]}"
    created = failover(env, "gameday", "schedule", "create", name, "--runbook", SHOP,
                       "--from", "us-east-1", "--to", "us-west-2", "--every", "7d",
                       "--jitter", "30m", "--paused", "--note", "quarterly review", "-o", "json")  # fmt: skip
    assert created.returncode == 0, created.stderr
    out = json.loads(created.stdout)
    assert out["schedule_id"] == f"gameday-{name}" and out["paused"] is True
    try:
        again = failover(env, "gameday", "schedule", "create", name, "--runbook", SHOP,
                         "--from", "us-east-1", "--to", "us-west-2", "--cron", "0 10 * * TUE")  # fmt: skip
        _one_line_error(again, "exists")
        listed = json.loads(failover(env, "gameday", "schedule", "list", "-o", "json").stdout)
        mine = next(s for s in listed if s["name"] == name)
        assert mine["paused"] and "7 days" in mine["spec"] and mine["note"] == "quarterly review"
        desc = json.loads(
            failover(env, "gameday", "schedule", "describe", name, "-o", "json").stdout
        )
        assert (desc["runbook"], desc["from"], desc["to"]) == (
            "shop-region-switch",
            "us-east-1",
            "us-west-2",
        )
        assert desc["overlap"] == "SKIP" and desc["catchup_window"] == "0:10:00"
        assert desc["created_by"] == "alice" and desc["runs"] == 0
        assert failover(env, "gameday", "schedule", "unpause", name).returncode == 0
        desc = json.loads(
            failover(env, "gameday", "schedule", "describe", name, "-o", "json").stdout
        )
        assert not desc["paused"] and desc["next"]
        assert (
            failover(env, "gameday", "schedule", "pause", name, "--note", "freeze").returncode == 0
        )
        desc = json.loads(
            failover(env, "gameday", "schedule", "describe", name, "-o", "json").stdout
        )
        assert desc["paused"] and desc["note"] == "freeze"
    finally:
        assert failover(env, "gameday", "schedule", "delete", name).returncode == 0
    _one_line_error(failover(env, "gameday", "schedule", "describe", name), "no game day schedule")


def test_bad_input_is_one_line_and_nothing_is_created(env: SandboxEnv) -> None:
    base = ["gameday", "schedule", "create"]
    where = ["--runbook", SHOP, "--from", "us-east-1", "--to", "us-west-2"]
    _one_line_error(failover(env, *base, "Bad_Name", *where, "--every", "7d"), "NAME")
    _one_line_error(failover(env, *base, "x", *where, "--every", "7d", "--cron", "* * * * *"),
                    "exactly one of --cron or --every")  # fmt: skip
    _one_line_error(failover(env, *base, "x", *where, "--every", "a week"), "--every")
    _one_line_error(failover(env, *base, "x", "--runbook", SHOP, "--from", "us-east-1",
                             "--to", "eu-west-9", "--every", "7d"), "--to", "eu-west-9")  # fmt: skip
    no_section = str(ROOT / "runbooks/dns-only.yaml")
    _one_line_error(failover(env, "gameday", "run", "x", "--runbook", no_section, "--from",
                             "us-east-1", "--to", "us-west-2"), "no gameday section")  # fmt: skip
    _one_line_error(failover(env, "gameday", "run", "x", "--from", "us-east-1"), "--runbook")
    listed = json.loads(failover(env, "gameday", "schedule", "list", "-o", "json").stdout)
    assert not [s for s in listed if s["name"] == "x"]


@pytest.mark.slow
def test_run_follows_a_game_day_then_history_report_and_trends(
    fresh: SandboxEnv, tmp_path: Path
) -> None:
    before = world(fresh)
    name = f"cli-{uuid.uuid4().hex[:6]}"
    proc = failover(fresh, "gameday", "run", name, "--runbook", SHOP, "--from", "us-east-1",
                    "--to", "us-west-2", "-o", "json")  # fmt: skip
    ended = json.loads(proc.stdout) if proc.stdout.startswith("{") else {}
    assert proc.returncode == 0, (proc.stderr, ended.get("outcome"), ended.get("reason"))
    r = json.loads(proc.stdout)
    assert r["outcome"] == "SUCCEEDED" and r["kind"] == "gameday" and r["mttd_s"] is not None
    assert r["switch"]["outcome"] == r["failback"]["outcome"] == "SUCCEEDED"
    assert world(fresh) == before
    written = list((Path(fresh.home) / "reports").glob(f"{r['workflow_id']}-*"))
    assert {p.suffix for p in written} == {".md", ".json", ".html"}
    history = json.loads(failover(fresh, "gameday", "history", name, "-o", "json").stdout)
    assert [(h["workflow_id"], h["outcome"]) for h in history] == [(r["workflow_id"], "SUCCEEDED")]
    md = failover(fresh, "gameday", "report", name)
    assert md.returncode == 0 and "MTTD" in md.stdout and "failback RTO" in md.stdout
    trends = json.loads(failover(fresh, "trends", "shop-region-switch", "--since", "1d",
                                 "--reports", str(tmp_path), "-o", "json").stdout)  # fmt: skip
    kinds = {(p["kind"], p["workflow_id"]) for p in trends["points"]}
    assert ("gameday", r["workflow_id"]) in kinds
    assert ("switch", "switch-shop-region-switch") in kinds  # its two switches
    html = tmp_path / "t.html"
    assert (
        failover(fresh, "trends", "shop-region-switch", "-o", "html", "--out", str(html)).returncode
        == 0
    )
    assert "<svg" in html.read_text()
