"""Notifications from real runs on the sandbox: what reaches the sink, what the progress and the
report record, and that a channel that hangs does not hold the switch."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

from pydantic import SecretStr

from orchestrator import report, switch
from orchestrator.config import Config, NotifyChannel
from orchestrator.runs import Decision, RunProgress, RunState
from orchestrator.sandbox.control import SandboxControl
from orchestrator.sandbox.faults import FaultRule
from orchestrator.sandbox.manager import SandboxEnv
from tests.workflows.helpers import drive, plan, run, sandbox_config, start, wait_for, worker

SSM_WEST = FaultRule(target="aws:ssm:PutParameter", region="us-west-2", error="AccessDenied")


def webhook_events(control: SandboxControl, since: float, wid: str) -> list[dict[str, Any]]:
    """The signed webhooks the sink received for one run, oldest first."""
    return [
        n
        for n in control.notifications(since)
        if n["kind"] == "webhook" and (n.get("body") or {}).get("workflow_id") == wid
    ]


def sent(p: RunProgress) -> set[tuple[str, str, bool]]:
    return {(d.channel, d.event, d.ok) for d in p.notifications}


def test_a_drill_tells_its_start_its_gate_and_its_success(
    fresh: SandboxEnv, control: SandboxControl
) -> None:
    since = time.time()

    async def scenario() -> tuple[RunProgress, list[dict[str, Any]], str]:
        async with worker(sandbox_config(fresh)) as (client, queue):
            h = await start(client, queue, plan("maintenance-drill.yaml"))
            await wait_for(h, lambda p: p.state == RunState.WAITING_APPROVAL)
            for _ in range(50):  # the gate's notice is sent in the background
                at_gate = webhook_events(control, since, h.id)
                if any(n["event"] == "gate_open" for n in at_gate):
                    break
                await asyncio.sleep(0.1)
            await switch.approve(h, Decision(approver="bob"))
            result: RunProgress = await h.result()
            return result, at_gate, h.id

    result, at_gate, wid = run(scenario())
    assert result.state == RunState.SUCCEEDED
    gate = next(n for n in at_gate if n["event"] == "gate_open")
    assert gate["signature"] == "valid"
    assert f"failover approve {wid} --gate approve" in gate["body"]["commands"]
    assert gate["body"]["link"].endswith(f"/workflows/{wid}/{gate['body']['run_id']}")
    assert "gate approve" in gate["body"]["summary"]
    events = [n["event"] for n in webhook_events(control, since, wid)]
    assert events == ["switch_started", "gate_open", "switch_succeeded"]
    pd = [
        n for n in control.notifications(since)
        if n["kind"] == "pagerduty" and str(n.get("dedup_key", "")).startswith(wid)
    ]  # fmt: skip
    assert [n["action"] for n in pd] == ["trigger", "trigger", "resolve"]
    assert len({n["dedup_key"] for n in pd}) == 1  # one incident per run, resolved at the end
    for event in ("switch_started", "gate_open", "switch_succeeded"):
        for channel in ("sandbox-slack", "sandbox-pagerduty", "sandbox-webhook"):
            assert (channel, event, True) in sent(result), sent(result)
    assert not any(d.channel == "sandbox-sns" for d in result.notifications)  # not its events
    md = report.markdown(report.build(result, wid))
    assert "## Notifications" in md and "| gate_open | sandbox-webhook | yes |" in md
    assert report.build(result, wid).model_dump(mode="json")["notifications"]


def test_a_run_that_rolls_back_says_so(fresh: SandboxEnv, control: SandboxControl) -> None:
    since = time.time()
    control.add_fault(SSM_WEST)

    async def scenario() -> tuple[RunProgress, str]:
        async with worker(sandbox_config(fresh)) as (client, queue):
            h = await start(client, queue, plan("maintenance-drill.yaml"))
            return await drive(h), h.id

    result, wid = run(scenario())
    assert result.state == RunState.ROLLED_BACK
    events = [n["event"] for n in webhook_events(control, since, wid)]
    assert events[0] == "switch_started" and events[-1] == "switch_rolled_back"
    last = webhook_events(control, since, wid)[-1]["body"]
    assert last["severity"] == "warning" and "target-maintenance-flag" in last["detail"]
    assert ("sandbox-slack", "switch_rolled_back", True) in sent(result)


def test_a_dry_run_tells_no_one(fresh: SandboxEnv, control: SandboxControl) -> None:
    since = time.time()

    async def scenario() -> tuple[RunProgress, str]:
        async with worker(sandbox_config(fresh)) as (client, queue):
            h = await start(client, queue, plan("maintenance-drill.yaml", mode="dry-run"))
            return await drive(h), h.id

    result, wid = run(scenario())
    assert result.state == RunState.SUCCEEDED
    assert result.notifications == [] and webhook_events(control, since, wid) == []


def hanging_config(env: SandboxEnv, deadline: float) -> Config:
    cfg = sandbox_config(env)
    cfg.notify.channels["sandbox-slack"] = NotifyChannel(
        type="slack", url=SecretStr(f"{env.notify_url}/slack/sandbox-slack"), deadline=deadline
    )
    return cfg


def test_a_hanging_channel_does_not_hold_the_switch(
    fresh: SandboxEnv, control: SandboxControl
) -> None:
    deadline = 3.0
    control.set_notify_fault("sandbox-slack", "hang", hang=60)
    try:

        async def scenario() -> tuple[RunProgress, float]:
            async with worker(hanging_config(fresh, deadline)) as (client, queue):
                h = await start(client, queue, plan("maintenance-drill.yaml"))
                result = await drive(h)
                return result, time.time()

        result, returned_at = run(scenario())
    finally:
        control.clear_notify_faults()
    assert result.state == RunState.SUCCEEDED
    assert result.ended_at is not None
    first = min(s.started_at for s in result.steps if s.started_at is not None)
    start_delay = (first - result.started_at).total_seconds()
    tail = returned_at - result.ended_at.timestamp()
    gate = result.step("approve")
    assert gate.started_at is not None
    # The first step started at once, although switch_started's Slack hangs for 60 s: well
    # within the channel's deadline (a loaded machine takes a second to start a step).
    assert start_delay < deadline, start_delay
    # The run ended, then waited for its last notices at most the channel's deadline.
    assert tail < deadline + 2.0, tail
    slack = {d.event: d for d in result.notifications if d.channel == "sandbox-slack"}
    assert set(slack) == {"switch_started", "gate_open", "switch_succeeded"}
    assert not any(d.ok for d in slack.values())
    assert all("no answer" in d.detail for d in slack.values())
    assert ("sandbox-webhook", "switch_succeeded", True) in sent(result)
    took = (result.ended_at - result.started_at).total_seconds()
    print(
        f"measured: slack hanging ({deadline:g}s deadline): first step after {start_delay:.2f}s, "
        f"run {took:.2f}s, ended -> result {tail:.2f}s"
    )
    assert datetime.now(UTC) > result.ended_at


def test_a_report_that_cannot_be_written_does_not_send_the_last_notice_again(
    fresh: SandboxEnv, control: SandboxControl
) -> None:
    """The last notice and the report are one activity (`report.switch_end`): when the report's
    store refuses every attempt, the notice still went out once, not once per attempt."""
    from orchestrator.config import ReportsConfig

    text = (
        "apiVersion: failover.dev/v1\nkind: Runbook\nname: one-noop\n"
        "regions: [us-east-1, us-west-2]\nsteps:\n  - {id: only, type: noop}\n"
    )
    config = sandbox_config(fresh).model_copy(
        update={"reports": ReportsConfig(s3_bucket="no-such-bucket", s3_region="us-east-1")}
    )
    since = time.time()

    async def scenario() -> tuple[RunProgress, str]:
        async with worker(config) as (client, queue):
            h = await start(client, queue, plan("", text=text))
            result: RunProgress = await h.result()
            return result, h.id

    result, wid = run(scenario())
    assert result.state == RunState.SUCCEEDED
    assert result.report_files == []  # every attempt to write it failed
    assert ("*", "switch_succeeded", False) in sent(result), sent(result)
    events = [n["event"] for n in webhook_events(control, since, wid)]
    assert events == ["switch_started", "switch_succeeded"], events  # sent once in 3 attempts
