"""`failover guard ...` from the command line, and the runbook's `guard:` section validated: bad
input is one line with a non-zero exit, nothing started; a guard started, read and stopped."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import yaml

from orchestrator.client import connect
from orchestrator.runbook.loader import RunbookError, load_text
from orchestrator.sandbox.manager import SandboxEnv
from tests.cli import failover
from tests.workflows.helpers import RUNBOOKS, sandbox_config

SHOP = (RUNBOOKS / "shop-region-switch.yaml").read_text()


def _problems(text: str) -> list[str]:
    try:
        load_text(text, "rb.yaml")
    except RunbookError as exc:
        return [str(p) for p in exc.problems]
    return []


def test_the_shop_guard_section_is_valid() -> None:
    assert _problems(SHOP) == []


def test_a_detector_must_be_read_only_with_valid_params() -> None:
    text = SHOP.replace(
        "    - type: http_check\n      description: the active region's app (a synthetic",
        "    - type: ssm_parameter\n      description: the active region's app (a synthetic",
    )
    got = _problems(text)
    assert any("guard.detect[0].type: a detector must be a read-only check" in p for p in got), got
    assert all(p.startswith("rb.yaml:") for p in got)


def test_confirm_failures_cannot_exceed_the_window() -> None:
    got = _problems(SHOP.replace("confirm: {failures: 3, of: 4, for: 10s}",
                                 "confirm: {failures: 5, of: 4, for: 10s}"))  # fmt: skip
    assert len(got) == 1 and "guard.confirm" in got[0] and "cannot exceed" in got[0], got


def test_an_unknown_guard_field_is_named_with_its_place() -> None:
    got = _problems(SHOP.replace("  cooldown: 30m\n", "  cooldwn: 30m\n"))
    assert len(got) == 1 and "guard.cooldwn" in got[0], got


def test_start_refuses_an_unknown_region_in_one_line(env: SandboxEnv) -> None:
    r = failover(env, "guard", "start", str(RUNBOOKS / "shop-region-switch.yaml"),
                 "--active", "eu-west-9")  # fmt: skip
    assert r.returncode == 2 and "unknown region 'eu-west-9'" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_a_runbook_without_guard_section_says_so(env: SandboxEnv, tmp_path: Path) -> None:
    r = failover(env, "guard", "start", str(RUNBOOKS / "maintenance-drill.yaml"))
    assert r.returncode == 2 and "has no guard section" in r.stderr


def test_status_of_no_guard_is_one_line(env: SandboxEnv) -> None:
    r = failover(env, "guard", "status", f"nothing-{uuid.uuid4().hex[:6]}")
    assert r.returncode == 2 and "has no guard" in r.stderr and "Traceback" not in r.stderr


def test_start_json_refuses_a_second_and_says_when_no_worker_answers(
    env: SandboxEnv, tmp_path: Path
) -> None:
    name = f"shop-{uuid.uuid4().hex[:6]}"
    rb = tmp_path / "rb.yaml"
    rb.write_text(SHOP.replace("name: shop-region-switch", f"name: {name}", 1))
    # A task queue of its own: the sandbox's default one is polled by other tests' workers, and
    # the server remembers a poller for minutes after it stopped.
    cfg = sandbox_config(env).model_dump(mode="json", exclude={"source", "notify"})
    cfg["temporal"]["task_queue"] = f"nobody-{uuid.uuid4().hex[:6]}"
    config = tmp_path / "failover.yaml"
    config.write_text(yaml.safe_dump(cfg))
    started = failover(env, "guard", "start", str(rb), "-o", "json", "--config", str(config))
    assert started.returncode == 0, started.stderr
    data = json.loads(started.stdout)
    assert data["workflow_id"] == f"guard-{name}" and data["active"] == "us-east-1"
    assert data["confirm"] == "3 of 4 for 10s" and data["mode"] == "unplanned"
    again = failover(env, "guard", "start", str(rb), "--config", str(config))
    assert again.returncode == 2 and "already running" in again.stderr
    # No worker polls the guard's queue: said at once, in one line (exit 5).
    queue = cfg["temporal"]["task_queue"]
    try:
        for args in (("status", name), ("stop", name, "--reason", "test")):
            r = failover(env, "guard", *args, "--config", str(config))
            assert r.returncode == 5, r.stderr
            assert f"no worker polls its task queue '{queue}'" in r.stderr, r.stderr
            assert len(r.stderr.strip().splitlines()) == 1
    finally:  # it would wait for a worker for ever

        async def terminate() -> None:
            client = await connect(sandbox_config(env).temporal)
            await client.get_workflow_handle(data["workflow_id"]).terminate("test cleanup")

        asyncio.run(terminate())
