"""`failover validate | schema | steps` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

from activities import registry
from tests.cli import Ran
from tests.cli import failover as run_cli

ROOT = Path(__file__).resolve().parents[2]


def failover(*args: str) -> Ran:
    return run_cli(None, *args)


def test_validate_ok_and_json() -> None:
    proc = failover("validate", str(ROOT / "runbooks/noop-drill.yaml"), "-o", "json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["valid"] and data["levels"][0] == ["prepare-source", "prepare-target"]


def test_validate_bad_runbook_one_line_per_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: failover.dev/v1\nkind: Runbook\nname: x\nregions: [a, b]\n"
        "steps:\n  - id: s\n    type: warp\n"
    )
    proc = failover("validate", str(bad))
    assert proc.returncode == 2
    known = ", ".join(sorted(registry.STEP_TYPES))
    assert proc.stderr.strip() == (
        f"error: {bad}:7:11: steps[0].type: unknown step type 'warp' (known: {known})"
    )
    proc = failover("validate", str(tmp_path / "missing.yaml"))
    assert proc.returncode == 2 and "cannot read" in proc.stderr and "Traceback" not in proc.stderr


def test_schema_and_steps() -> None:
    schema = json.loads(failover("schema").stdout)
    assert schema["title"] == "Runbook" and "steps" in schema["properties"]
    steps = json.loads(failover("steps", "-o", "json").stdout)
    assert {s["type"] for s in steps} == set(registry.STEP_TYPES)
    assert {"approval", "noop", "wait", "http_check", "ssm_parameter"} <= set(registry.STEP_TYPES)
    assert all("properties" in s["params_schema"] for s in steps)


def test_unknown_flag_is_a_usage_error() -> None:
    proc = failover("validate", "--frobnicate")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
