"""Worker logs: JSON lines with run, step, region and attempt bound; no secrets, ever."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import yaml

from orchestrator.config import load
from orchestrator.logs import _redact
from orchestrator.runs import RunState
from orchestrator.sandbox.manager import SandboxEnv
from tests.workflows.helpers import ROOT, drive, plan, run, sandbox_config, start

KEY_ID, SECRET = "AKIAEXAMPLEKEY7777", "wJalrXUtnFEMI-K7MDENG-example-secret-9999"


def test_worker_json_logs_carry_context_and_no_secret(fresh: SandboxEnv, tmp_path: Path) -> None:
    cfg = sandbox_config(fresh).model_dump(mode="json")
    cfg["aws"] |= {"access_key_id": KEY_ID, "secret_access_key": SECRET}  # the sandbox takes any
    cfg.pop("source", None)
    cfg.pop("notify", None)  # (its addresses are secrets: dumped masked, not reloadable)
    config_file = tmp_path / "failover.yaml"
    config_file.write_text(yaml.safe_dump(cfg))
    assert load(config_file).aws.secret_access_key.get_secret_value() == SECRET  # type: ignore[union-attr]
    queue, log = f"logs-{uuid.uuid4().hex[:6]}", tmp_path / "worker.log"
    with open(log, "wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "orchestrator", "worker", "--config", str(config_file),
             "--task-queue", queue, "--log-format", "json"],
            stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
        )  # fmt: skip
        try:

            async def scenario() -> object:
                from orchestrator.client import connect

                client = await connect(load(config_file).temporal)
                return await drive(await start(client, queue, plan("maintenance-drill.yaml")))

            assert run(scenario()).state == RunState.SUCCEEDED  # type: ignore[attr-defined]
        finally:
            worker.terminate()
            worker.wait(timeout=20)
    text = log.read_text()
    assert KEY_ID not in text and SECRET not in text
    steps = [json.loads(line) for line in text.splitlines() if '"step activity' in line]
    assert len(steps) >= 2 * 9  # started + done for every activity
    for line in steps:
        assert {"run_id", "step_id", "region", "attempt", "phase", "timestamp"} <= set(line)
    assert {line["step_id"] for line in steps} >= {"freeze-writes", "target-maintenance-flag"}


def test_secret_looking_keys_are_redacted_in_any_log_line() -> None:
    event = {"event": "x", "password": "p", "nested": {"SecretAccessKey": "k"}, "ok": "v"}
    assert _redact(None, "info", event) == {
        "event": "x", "password": "***", "nested": {"SecretAccessKey": "***"}, "ok": "v"
    }  # fmt: skip
