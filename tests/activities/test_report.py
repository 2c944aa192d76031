"""`report.switch_end`: a switch's last notice and its report in one activity, against the
sandbox's notification sink over real sockets."""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from temporalio.testing import ActivityEnvironment

from activities.clients import Clients
from activities.report import ReportActivities
from orchestrator.config import ReportsConfig, from_sandbox
from orchestrator.notifications import Delivery, Notice, NotifyCall
from orchestrator.runs import RunEnd, RunEnded, RunProgress, RunState
from orchestrator.sandbox.control import SandboxControl
from orchestrator.sandbox.manager import SandboxEnv


def _end(wid: str) -> RunEnd:
    notice = Notice(
        event="switch_succeeded",
        runbook="maintenance-drill",
        summary="maintenance-drill: drill us-east-1 -> us-west-2 succeeded",
        detail="took 12.0s",
        dedup_key=f"{wid}/run-1",
        resolve=True,
        workflow_id=wid,
        run_id="run-1",
    )
    progress = RunProgress(
        runbook="maintenance-drill",
        from_region="us-east-1",
        to_region="us-west-2",
        mode="drill",
        requester="alice",
        state=RunState.SUCCEEDED,
        started_at=datetime(2026, 11, 29, 8, 0, tzinfo=UTC),
        steps=[],
    )
    return RunEnd(notice=NotifyCall(notice=notice), progress=progress)


def _arrived(ctl: SandboxControl, since: float, wid: str) -> list[dict[str, Any]]:
    time.sleep(0.3)  # SNS delivers to the sink while it answers the publish
    return [n for n in ctl.notifications(since) if wid in json.dumps(n)]


def _run(env: SandboxEnv, tmp_path: Path, act_env: ActivityEnvironment, end: RunEnd) -> RunEnded:
    config = from_sandbox(env).model_copy(
        update={"reports": ReportsConfig(directory=str(tmp_path))}
    )
    out: RunEnded = act_env.run(ReportActivities(Clients(config)).end_switch, end)
    return out


def test_the_last_notice_is_sent_then_the_report_lists_its_deliveries(
    env: SandboxEnv, tmp_path: Path
) -> None:
    wid = f"test-end-{uuid.uuid4().hex[:8]}"
    beats: list[Any] = []
    act_env = ActivityEnvironment()
    act_env.on_heartbeat = lambda *details: beats.extend(details)
    since = time.time()
    out = _run(env, tmp_path, act_env, _end(wid))

    sent = {(d.channel, d.ok) for d in out.deliveries}
    assert sent and all(ok for _, ok in sent), out.deliveries
    arrived = _arrived(SandboxControl(env), since, wid)
    assert sorted(n["channel"] for n in arrived) == sorted(c for c, _ in sent)
    # The deliveries were recorded before the report was written (a retry sends nothing).
    assert [RunEnded.model_validate(b).deliveries for b in beats] == [out.deliveries]
    report = json.loads(
        next(p for p in map(Path, out.report_files) if p.suffix == ".json").read_text()
    )
    assert {(d["channel"], d["event"]) for d in report["notifications"]} == {
        (c, "switch_succeeded") for c, _ in sent
    }


def test_an_attempt_after_the_notice_went_out_does_not_send_it_again(
    env: SandboxEnv, tmp_path: Path
) -> None:
    wid = f"test-end-{uuid.uuid4().hex[:8]}"
    earlier = [
        Delivery(channel="sandbox-slack", event="switch_succeeded", ok=True, detail="200",
                 at=datetime(2026, 11, 29, 8, 1, tzinfo=UTC)),
    ]  # fmt: skip
    act_env = ActivityEnvironment()
    act_env.info = dataclasses.replace(
        act_env.info,
        attempt=2,
        heartbeat_details=[RunEnded(deliveries=earlier).model_dump(mode="json")],
    )
    since = time.time()
    out = _run(env, tmp_path, act_env, _end(wid))

    assert out.deliveries == earlier
    assert _arrived(SandboxControl(env), since, wid) == []
    md = next(p for p in map(Path, out.report_files) if p.suffix == ".md").read_text()
    assert "sandbox-slack" in md
