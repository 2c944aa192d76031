"""`notify.send` against the sandbox's notification sink and moto's SNS, over real sockets."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from temporalio.testing import ActivityEnvironment

from activities.clients import Clients
from activities.notify import NotifyActivities
from orchestrator.config import Config, ConfigError, NotifyChannel, from_sandbox, load
from orchestrator.logs import configure
from orchestrator.notifications import Delivery, Notice, NotifyCall, NotifyRoute, signature
from orchestrator.sandbox.control import SandboxControl
from orchestrator.sandbox.manager import SandboxEnv

ROUTING_KEY = "sandbox-routing-key"


@pytest.fixture
def sink(env: SandboxEnv) -> Iterator[SandboxControl]:
    ctl = SandboxControl(env)
    yield ctl
    ctl.clear_notify_faults()


def notice(**kw: Any) -> Notice:
    wid = f"test-notify-{uuid.uuid4().hex[:8]}"
    base: dict[str, Any] = {
        "event": "gate_open",
        "runbook": "maintenance-drill",
        "summary": "maintenance-drill: gate approve waits for approval",
        "detail": "Writes are fenced in the source region.",
        "severity": "warning",
        "dedup_key": f"{wid}/run-1",
        "workflow_id": wid,
        "run_id": "run-1",
        "commands": [f"failover approve {wid} --gate approve"],
    }
    return Notice(**{**base, **kw})


def send(config: Config, call: NotifyCall) -> list[Delivery]:
    """Run the activity as Temporal would (activity context, metric meter)."""
    out: list[Delivery] = ActivityEnvironment().run(NotifyActivities(Clients(config)).send, call)
    return out


def arrived(sink: SandboxControl, since: float, key: str) -> list[dict[str, Any]]:
    """What reached the sink for one notice (its dedup key / workflow id), waiting a little for
    SNS (moto delivers to the sink while it answers the publish)."""
    for _ in range(50):
        got = [n for n in sink.notifications(since) if key in json.dumps(n)]
        if got:
            return got
        time.sleep(0.1)
    return []


def test_every_channel_gets_its_shape(
    env: SandboxEnv, sink: SandboxControl, capfd: pytest.CaptureFixture[str]
) -> None:
    # The worker's logging (a CLI test run earlier in this process may have left WARNING).
    configure("console", level=logging.INFO)
    config = from_sandbox(env)
    assert set(config.notify.channels) == {
        "sandbox-slack", "sandbox-pagerduty", "sandbox-webhook", "sandbox-sns",
    }  # fmt: skip
    since = time.time()
    n = notice(event="rollback_failed", severity="critical")  # the sandbox's SNS takes it
    deliveries = send(config, NotifyCall(notice=n))
    assert sorted((d.channel, d.ok) for d in deliveries) == [
        ("sandbox-pagerduty", True), ("sandbox-slack", True), ("sandbox-sns", True),
        ("sandbox-webhook", True),
    ], deliveries  # fmt: skip
    got = {r["kind"]: r for r in arrived(sink, since, n.workflow_id or "")}
    for _ in range(150):  # SNS arrives through moto's HTTP subscription (later when loaded)
        if "sns" in got:
            break
        time.sleep(0.1)
        got = {r["kind"]: r for r in arrived(sink, since, n.workflow_id or "")}
    assert set(got) == {"slack", "pagerduty", "webhook", "sns"}, got
    assert all(r["valid"] for r in got.values()), got

    slack = got["slack"]["body"]
    assert slack["text"].startswith(n.summary) and n.commands[0] in slack["text"]
    assert slack["blocks"][0]["text"]["type"] == "mrkdwn"
    assert got["slack"]["event"] == "rollback_failed"
    link = f"{env.temporal_ui_url}/namespaces/default/workflows/{n.workflow_id}/run-1"
    assert link in slack["text"]

    pd = got["pagerduty"]
    assert pd["action"] == "trigger" and pd["dedup_key"] == n.dedup_key
    assert pd["body"]["payload"]["severity"] == "critical"
    assert pd["body"]["links"] == [{"href": link, "text": "Temporal UI"}]

    hook = got["webhook"]
    assert hook["signature"] == "valid"
    assert hook["body"]["event"] == "rollback_failed" and hook["body"]["link"] == link
    assert hook["body"]["commands"] == n.commands

    sns = got["sns"]
    assert sns["topic"] == env.notify_topic_arn
    assert sns["subject"] == f"[critical] {n.summary}"[:100]
    assert n.commands[0] in sns["text"]

    # The secrets are nowhere: not in the deliveries, not in what the worker logged.
    secret = env.notify_secret or ""
    out = capfd.readouterr()
    shown = json.dumps([d.model_dump(mode="json") for d in deliveries]) + out.out + out.err
    assert secret and secret not in shown
    assert ROUTING_KEY not in shown and "/slack/sandbox-slack" not in shown
    assert "sandbox-slack" in out.out + out.err  # (what was logged: the channel's name)
    assert secret not in json.dumps(config.redacted())
    assert ROUTING_KEY not in json.dumps(config.redacted())


def test_pagerduty_resolves_with_the_runs_dedup_key(env: SandboxEnv, sink: SandboxControl) -> None:
    since = time.time()
    n = notice(event="switch_succeeded", resolve=True, summary="done")
    route = [NotifyRoute(channel="sandbox-pagerduty")]
    deliveries = send(from_sandbox(env), NotifyCall(notice=n, routes=route))
    assert [(d.channel, d.ok) for d in deliveries] == [("sandbox-pagerduty", True)]
    [pd] = arrived(sink, since, n.dedup_key)
    assert pd["action"] == "resolve" and pd["dedup_key"] == n.dedup_key and pd["valid"]


def test_routes_choose_channels_and_events(env: SandboxEnv) -> None:
    config = from_sandbox(env)
    n = notice(event="switch_started")
    routes = [
        NotifyRoute(channel="sandbox-slack", events=["switch_started"]),
        NotifyRoute(channel="sandbox-webhook", events=["gate_open"]),  # not this event
        NotifyRoute(channel="sandbox-sns"),  # its own list: not switch_started
        NotifyRoute(channel="nowhere"),
    ]
    deliveries = send(config, NotifyCall(notice=n, routes=routes))
    assert sorted((d.channel, d.ok) for d in deliveries) == [
        ("nowhere", False),
        ("sandbox-slack", True),
    ]
    assert "no such channel" in next(d for d in deliveries if d.channel == "nowhere").detail
    # No routes: every channel that takes the event (the sandbox's SNS does not take this one).
    everyone = send(config, NotifyCall(notice=n))
    assert sorted(d.channel for d in everyone) == [
        "sandbox-pagerduty", "sandbox-slack", "sandbox-webhook",
    ]  # fmt: skip


def test_a_wrong_webhook_secret_is_refused_by_the_sink(
    env: SandboxEnv, sink: SandboxControl
) -> None:
    config = from_sandbox(env)
    hook = config.notify.channels["sandbox-webhook"]
    config.notify.channels["sandbox-webhook"] = hook.model_copy(
        update={"secret": SecretStr("not-the-sinks-key")}
    )
    since = time.time()
    n = notice()
    [d] = send(config, NotifyCall(notice=n, routes=[NotifyRoute(channel="sandbox-webhook")]))
    assert not d.ok and d.detail.startswith("HTTP 401")
    [rec] = arrived(sink, since, n.workflow_id or "")
    assert rec["signature"] == "invalid"
    assert "not-the-sinks-key" not in d.detail


def test_failing_and_hanging_channels_end_within_their_deadline(
    env: SandboxEnv, sink: SandboxControl
) -> None:
    deadline = 1.5
    config = from_sandbox(env)
    base = env.notify_url
    for name in ("broken", "hanging"):
        config.notify.channels[name] = NotifyChannel(
            type="slack", url=SecretStr(f"{base}/slack/{name}"), deadline=deadline
        )
    config.notify.channels["refused"] = NotifyChannel(
        type="webhook", url=SecretStr("http://127.0.0.1:9/hook"), secret=SecretStr("k"),
        deadline=deadline,
    )  # fmt: skip
    sink.set_notify_fault("broken", "error", status=500)
    sink.set_notify_fault("hanging", "hang", hang=30)
    since = time.time()
    routes = [NotifyRoute(channel=c) for c in ("broken", "hanging", "refused", "sandbox-slack")]
    t0 = time.monotonic()
    deliveries = send(config, NotifyCall(notice=notice(), routes=routes))
    took = time.monotonic() - t0
    by = {d.channel: d for d in deliveries}
    assert took < deadline + 0.5, f"took {took:.2f}s with a {deadline}s deadline"
    assert by["sandbox-slack"].ok
    assert not by["broken"].ok and by["broken"].detail.startswith("HTTP 500")
    assert not by["hanging"].ok and "no answer" in by["hanging"].detail
    assert not by["refused"].ok and "connect" in by["refused"].detail
    # The 500 was retried within the deadline; the hanging one was tried once.
    tries = [n["channel"] for n in sink.notifications(since) if n.get("fault")]
    assert tries.count("broken") >= 2 and tries.count("hanging") == 1
    print(f"measured: a hanging channel with a {deadline}s deadline cost {took:.2f}s")


def test_bad_notify_config_is_one_line(tmp_path: Path) -> None:
    cases = {
        "notify: {channels: {ops: {type: slack}}}": "a slack channel needs url",
        "notify: {channels: {ops: {type: webhook, url: 'http://x'}}}": "needs secret",
        "notify: {channels: {ops: {type: sns, topic_arn: nope}}}": "not an SNS topic ARN",
        "notify: {channels: {ops: {type: teams, url: 'http://x'}}}": "notify.channels.ops.type",
        "notify: {channels: {Ops: {type: slack, url: 'http://x'}}}": "channel name 'Ops'",
        "notify: {channels: {ops: {type: slack, url: 'http://x', events: [nope]}}}": "events",
        "notify: {channels: {ops: {type: slack, url: 'http://x', deadline: 99}}}": "deadline",
    }
    for text, expected in cases.items():
        path = tmp_path / "config.yaml"
        path.write_text(text)
        with pytest.raises(ConfigError) as err:
            load(path)
        message = str(err.value)
        assert expected in message and "\n" not in message, message
    path.write_text(
        "notify: {channels: {pd: {type: pagerduty, routing_key: R-SECRET},"
        " topic: {type: sns, topic_arn: 'arn:aws:sns:eu-west-1:123456789012:ops'},"
        " hook: {type: webhook, url: 'https://h.example/x', secret: H-SECRET,"
        " events: [gate_open]}}}"
    )
    cfg = load(path)
    pd, topic = cfg.notify.channels["pd"], cfg.notify.channels["topic"]
    assert pd.url is not None
    assert pd.url.get_secret_value() == "https://events.pagerduty.com/v2/enqueue"
    assert topic.region == "eu-west-1"
    assert cfg.notify.channels["hook"].takes("gate_open")
    assert not cfg.notify.channels["hook"].takes("switch_started")
    shown = json.dumps(cfg.redacted())
    assert "R-SECRET" not in shown and "H-SECRET" not in shown and "h.example" not in shown


def test_signature_is_hmac_sha256_of_the_body() -> None:
    import hashlib
    import hmac

    body = b'{"a": 1}'
    assert signature("k", body) == "sha256=" + hmac.new(b"k", body, hashlib.sha256).hexdigest()
