"""The notification sink on its own: a real HTTP server on a free loopback port, real requests."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from orchestrator.notifications import signature
from orchestrator.sandbox.notify_sink import Sink, serve

SECRET = "sink-test-secret"


@pytest.fixture
def sink() -> Iterator[tuple[Sink, str]]:
    box = Sink(SECRET)
    server = serve("127.0.0.1", 0, box)
    try:
        yield box, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def post(url: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    req = urllib.request.Request(url, data=body, method="POST", headers=headers or {})
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            raw = resp.read()
            return resp.status, raw.decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_webhook_signatures_are_checked_and_recorded(sink: tuple[Sink, str]) -> None:
    box, base = sink
    body = json.dumps({"event": "gate_open", "summary": "gate approve waits"}).encode()
    ok = post(f"{base}/webhook/ops", body, {"X-Failover-Signature": signature(SECRET, body)})
    bad = post(f"{base}/webhook/ops", body, {"X-Failover-Signature": signature("wrong", body)})
    tampered = post(
        f"{base}/webhook/ops", body + b" ", {"X-Failover-Signature": signature(SECRET, body)}
    )
    unsigned = post(f"{base}/webhook/ops", body)
    assert [ok[0], bad[0], tampered[0], unsigned[0]] == [200, 401, 401, 401]
    assert [r["signature"] for r in box.arrived()] == ["valid", "invalid", "invalid", "missing"]
    assert box.arrived()[0]["event"] == "gate_open"


def test_pagerduty_events_are_validated_and_keys_not_kept(sink: tuple[Sink, str]) -> None:
    box, base = sink
    url = f"{base}/pagerduty/pd/v2/enqueue"
    trigger = {
        "routing_key": "R0UTINGKEY-abcd",
        "event_action": "trigger",
        "dedup_key": "switch-x/1",
        "payload": {"summary": "s", "source": "src", "severity": "critical", "class": "e"},
    }
    status, answer = post(url, json.dumps(trigger).encode())
    assert status == 202 and json.loads(answer)["dedup_key"] == "switch-x/1"
    status, answer = post(url, json.dumps({**trigger, "payload": {"summary": "s"}}).encode())
    assert status == 400
    assert "payload.source is missing" in json.loads(answer)["errors"]
    status, _ = post(url, json.dumps({"routing_key": "k", "event_action": "resolve"}).encode())
    assert status == 400  # a resolve needs its dedup key
    assert "R0UTINGKEY" not in json.dumps(box.arrived())
    assert box.arrived()[0]["body"]["routing_key"] == "...abcd"


def test_faults_answer_errors_or_hang_per_channel(sink: tuple[Sink, str]) -> None:
    box, base = sink
    payload = json.dumps({"text": "hello"}).encode()
    urllib.request.urlopen(
        urllib.request.Request(
            f"{base}/_sandbox/notify/fault",
            data=json.dumps({"channel": "broken", "mode": "error", "status": 503}).encode(),
            method="PUT",
        ),
        timeout=5,
    ).close()
    assert post(f"{base}/slack/broken", payload)[0] == 503
    assert post(f"{base}/slack/fine", payload) == (200, "ok")
    box.set_fault({"channel": "slow", "mode": "hang", "hang": 0.5})
    since, t0 = time.time(), time.monotonic()
    assert post(f"{base}/slack/slow", payload)[0] == 504
    assert time.monotonic() - t0 >= 0.5
    box.set_fault({"channel": "broken", "mode": "ok"})
    assert post(f"{base}/slack/broken", payload)[0] == 200
    kinds = [(r["channel"], r.get("fault")) for r in box.arrived()]
    assert kinds == [("broken", "error"), ("fine", None), ("slow", "hang"), ("broken", None)]
    with urllib.request.urlopen(f"{base}/_sandbox/notifications?since={since}", timeout=5) as resp:
        assert [r["channel"] for r in json.loads(resp.read())] == ["slow", "broken"]
