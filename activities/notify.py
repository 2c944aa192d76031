"""Notifications: the `notify.send` activity (channels: Slack, PagerDuty, SNS, webhook).

One call sends a `Notice` to every channel that takes its event (the runbook's routes, else every
configured channel that takes it), all channels at once, each within its own deadline (retries
included): a channel that answers errors or hangs costs that channel's deadline, never more, and
is reported as a `Delivery` with `ok=False` and the reason. The activity itself does not fail for
a channel: a notification that cannot be delivered must never fail or slow a switch.

Shapes:
- Slack: an incoming webhook's JSON (`text` and `blocks`);
- PagerDuty: Events API v2 (`trigger`, or `resolve` for a notice that resolves), the notice's
  dedup key (one per run), severity, the Temporal UI link;
- SNS: Publish (subject and text) with the worker's real boto3 client (`Clients`);
- webhook: the notice as JSON, signed: `X-Failover-Signature: sha256=<HMAC-SHA256 of the body>`,
  with `X-Failover-Event` and `X-Failover-Delivery` (the same on a retried activity: receivers can
  drop a duplicate).

Secrets (URLs, routing keys, HMAC keys) come from the configuration; they are never logged and
never put in a Delivery (its detail is the HTTP status or the error's kind).
"""

from __future__ import annotations

import concurrent.futures
import http.client
import json
import time
import urllib.parse
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import structlog
from temporalio import activity

from activities.clients import Clients
from orchestrator.config import NotifyChannel
from orchestrator.notifications import Delivery, Notice, NotifyCall, signature

log = structlog.get_logger()

METRIC = "failover_notifications_total"
ATTEMPTS = 3  # per channel, within its deadline
BACKOFF = 0.25  # seconds before the second attempt, doubled after each
SOURCE = "failover-orchestrator"


class _Failed(Exception):
    """A channel's attempt failed; `retry`: worth another attempt within the deadline."""

    def __init__(self, detail: str, retry: bool) -> None:
        super().__init__(detail)
        self.retry = retry


class NotifyActivities:
    """The notification activities, bound to the worker's clients and configuration."""

    def __init__(self, clients: Clients) -> None:
        self.clients = clients
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=16, thread_name_prefix="notify"
        )

    def all(self) -> list[Callable[..., Any]]:
        return [self.send]

    @activity.defn(name="notify.send")
    def send(self, call: NotifyCall) -> list[Delivery]:
        """Send the notice to every matching channel; one Delivery per channel (never raises for
        a channel that fails)."""
        info = activity.info()
        delivery_id = f"{info.workflow_id}/{info.workflow_run_id}/{info.activity_id}"
        deliveries = self.deliver(call, delivery_id)
        count(deliveries)
        return deliveries

    def deliver(self, call: NotifyCall, delivery_id: str) -> list[Delivery]:
        """The work of `notify.send` (callable outside an activity)."""
        notice = call.notice
        targets, refused = self.targets(call)
        link = self.link(notice)
        started = time.monotonic()
        futures = {
            name: self._pool.submit(
                _attempts, name, ch, notice, link, delivery_id, started + ch.deadline, self
            )
            for name, ch in targets.items()
        }
        out = list(refused)
        for name, future in futures.items():
            ch = targets[name]
            left = max(0.0, started + ch.deadline - time.monotonic())
            try:
                ok, detail = future.result(timeout=left + 0.05)
            except concurrent.futures.TimeoutError:
                ok, detail = False, f"no answer within its deadline ({ch.deadline:g}s)"
            except Exception as exc:  # a bug in a channel must not fail the others
                ok, detail = False, f"internal error: {type(exc).__name__}"
            out.append(Delivery(channel=name, event=notice.event, ok=ok, detail=detail, at=_now()))
            log.info(
                "notification",
                channel=name,
                type=ch.type,
                notice_event=notice.event,
                runbook=notice.runbook,
                ok=ok,
                detail=detail,
                took_s=round(time.monotonic() - started, 3),
            )
        return out

    def targets(self, call: NotifyCall) -> tuple[dict[str, NotifyChannel], list[Delivery]]:
        """The channels the notice goes to, and a failed Delivery for each route that names a
        channel the configuration does not have."""
        channels = self.clients.config.notify.channels
        event = call.notice.event
        if not call.routes:
            return {n: c for n, c in channels.items() if c.takes(event)}, []
        chosen: dict[str, NotifyChannel] = {}
        refused: list[Delivery] = []
        for route in call.routes:
            ch = channels.get(route.channel)
            if ch is None:
                refused.append(
                    Delivery(
                        channel=route.channel,
                        event=event,
                        ok=False,
                        detail="no such channel in the configuration (notify.channels)",
                        at=_now(),
                    )
                )
                continue
            events = route.events if route.events is not None else ch.events
            if event in events:
                chosen[route.channel] = ch
        return chosen, refused

    def link(self, notice: Notice) -> str:
        """The run's page in the Temporal UI ("" without a UI or a workflow)."""
        t = self.clients.config.temporal
        if not t.ui_url or not notice.workflow_id:
            return ""
        wid = urllib.parse.quote(notice.workflow_id, safe="")
        tail = f"/{urllib.parse.quote(notice.run_id, safe='')}" if notice.run_id else ""
        return f"{t.ui_url.rstrip('/')}/namespaces/{t.namespace}/workflows/{wid}{tail}"

    def sns(self, ch: NotifyChannel, connect: float, read: float) -> Any:
        """The boto3 SNS client of a channel's region (one attempt per call: retries are ours)."""
        assert ch.region is not None
        return self.clients.aws_probe("sns", ch.region, connect, read)


# ------------------------------------------------------------------------------ sending
def _attempts(
    name: str,
    ch: NotifyChannel,
    notice: Notice,
    link: str,
    delivery_id: str,
    deadline_at: float,
    acts: NotifyActivities,
) -> tuple[bool, str]:
    """Send on one channel, retrying what is worth it while its deadline allows."""
    backoff = BACKOFF
    last = ""
    for attempt in range(1, ATTEMPTS + 1):
        left = deadline_at - time.monotonic()
        if left <= 0.05:
            break
        try:
            return True, _send_once(ch, notice, link, delivery_id, left, acts)
        except _Failed as exc:
            last = str(exc)
            if not exc.retry:
                return False, last
        if attempt < ATTEMPTS and deadline_at - time.monotonic() > backoff + 0.2:
            time.sleep(backoff)
            backoff *= 2
        else:
            break
    return False, last or f"no answer within its deadline ({ch.deadline:g}s)"


def _send_once(
    ch: NotifyChannel,
    notice: Notice,
    link: str,
    delivery_id: str,
    left: float,
    acts: NotifyActivities,
) -> str:
    connect = min(ch.connect_timeout, left)
    if ch.type == "sns":
        return _sns(ch, notice, link, acts, connect, left)
    assert ch.url is not None
    url = ch.url.get_secret_value()
    headers = {"Content-Type": "application/json", "User-Agent": SOURCE}
    if ch.type == "slack":
        body = json.dumps(slack_payload(notice, link)).encode()
    elif ch.type == "pagerduty":
        assert ch.routing_key is not None
        key = ch.routing_key.get_secret_value()
        body = json.dumps(pagerduty_payload(notice, link, key)).encode()
    else:
        assert ch.secret is not None
        body = json.dumps(webhook_payload(notice, link, delivery_id)).encode()
        headers["X-Failover-Signature"] = signature(ch.secret.get_secret_value(), body)
        headers["X-Failover-Event"] = notice.event
        headers["X-Failover-Delivery"] = delivery_id
    status, answer = _post(url, body, headers, connect, left)
    if 200 <= status < 300:
        return f"HTTP {status}"
    retry = status == 429 or status >= 500
    snippet = answer[:120].decode(errors="replace").strip()
    raise _Failed(f"HTTP {status}" + (f": {snippet}" if snippet else ""), retry)


def _post(
    url: str, body: bytes, headers: dict[str, str], connect: float, left: float
) -> tuple[int, bytes]:
    """POST with a connect timeout, then the rest of the deadline for the answer."""
    started = time.monotonic()
    parts = urllib.parse.urlsplit(url)
    conn_cls = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    conn = conn_cls(parts.hostname or "", parts.port, timeout=connect)
    path = parts.path or "/"
    if parts.query:
        path += f"?{parts.query}"
    try:
        try:
            conn.connect()
        except TimeoutError:
            raise _Failed(f"no connection within {connect:g}s", True) from None
        except OSError as exc:
            raise _Failed(f"cannot connect: {exc.strerror or type(exc).__name__}", True) from None
        read = max(0.05, left - (time.monotonic() - started))
        assert conn.sock is not None
        conn.sock.settimeout(read)
        try:
            conn.request("POST", path, body=body, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.read(4096)
        except TimeoutError:
            raise _Failed(f"no answer within {read:.3g}s", False) from None
        except (OSError, http.client.HTTPException) as exc:
            raise _Failed(f"connection lost: {type(exc).__name__}", True) from None
    finally:
        conn.close()


def _sns(
    ch: NotifyChannel,
    notice: Notice,
    link: str,
    acts: NotifyActivities,
    connect: float,
    left: float,
) -> str:
    from botocore.exceptions import ClientError, ConnectTimeoutError, ReadTimeoutError

    subject, message = sns_message(notice, link)
    try:
        out = acts.sns(ch, connect, left).publish(
            TopicArn=ch.topic_arn,
            Subject=subject,
            Message=message,
            MessageAttributes={
                "event": {"DataType": "String", "StringValue": notice.event},
                "severity": {"DataType": "String", "StringValue": notice.severity},
                "runbook": {"DataType": "String", "StringValue": notice.runbook},
            },
        )
    except ClientError as exc:
        err = exc.response.get("Error", {})
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        retry = status >= 500 or status == 429 or "Throttl" in str(err.get("Code", ""))
        raise _Failed(f"SNS {err.get('Code', 'error')}: {err.get('Message', '')}", retry) from None
    except (ConnectTimeoutError, ReadTimeoutError):
        raise _Failed("SNS: no answer in time", False) from None
    except Exception as exc:  # connection refused, lost, ...
        raise _Failed(f"SNS: {type(exc).__name__}", True) from None
    return f"SNS message {out.get('MessageId', '')}".strip()


# ------------------------------------------------------------------------------ shapes
_EMOJI = {"info": ":information_source:", "warning": ":warning:", "critical": ":rotating_light:"}


def text_of(notice: Notice, link: str) -> str:
    """The notice as plain text (SNS, and Slack's fallback text)."""
    lines = [notice.summary]
    if notice.detail:
        lines.append(notice.detail)
    lines += [f"  {c}" for c in notice.commands]
    if link:
        lines.append(f"Temporal UI: {link}")
    return "\n".join(lines)


def slack_payload(notice: Notice, link: str) -> dict[str, Any]:
    """A Slack incoming webhook's message: `text` (notifications, fallback) and `blocks`."""
    blocks: list[dict[str, Any]] = [
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": f"{_EMOJI[notice.severity]} *{notice.summary}*"},
        }
    ]
    if notice.detail:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": notice.detail}})
    if notice.commands:
        code = "\n".join(notice.commands)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"```{code}```"}})
    context = f"`{notice.event}` · runbook `{notice.runbook}`"
    if link:
        context += f" · <{link}|Temporal UI>"
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]})
    return {"text": text_of(notice, link), "blocks": blocks}


def pagerduty_payload(notice: Notice, link: str, routing_key: str) -> dict[str, Any]:
    """A PagerDuty Events API v2 event: trigger (or resolve) with the run's dedup key."""
    if notice.resolve:
        return {
            "routing_key": routing_key,
            "event_action": "resolve",
            "dedup_key": notice.dedup_key,
        }
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": notice.dedup_key,
        "payload": {
            "summary": notice.summary[:1024],
            "source": SOURCE,
            "severity": notice.severity,
            "component": notice.runbook,
            "group": "failover",
            "class": notice.event,
            "custom_details": {
                "detail": notice.detail,
                "commands": notice.commands,
                "workflow_id": notice.workflow_id,
                "run_id": notice.run_id,
            },
        },
        "client": SOURCE,
    }
    if link:
        event["links"] = [{"href": link, "text": "Temporal UI"}]
        event["client_url"] = link
    return event


def webhook_payload(notice: Notice, link: str, delivery_id: str) -> dict[str, Any]:
    """The generic webhook's JSON: the notice, its Temporal UI link and the delivery id."""
    return {**notice.model_dump(mode="json"), "link": link or None, "delivery": delivery_id}


def sns_message(notice: Notice, link: str) -> tuple[str, str]:
    """SNS's subject (at most 100 printable characters, one line) and message."""
    subject = " ".join(f"[{notice.severity}] {notice.summary}".split())
    subject = "".join(c for c in subject if c.isprintable())[:100]
    return subject, text_of(notice, link)


# ------------------------------------------------------------------------------ helpers
def count(deliveries: list[Delivery]) -> None:
    """`failover_notifications_total{channel, event, outcome}` (a no-op without metrics)."""
    try:
        counter = activity.metric_meter().create_counter(
            METRIC, "Notifications by channel, event and outcome (sent or failed)."
        )
    except RuntimeError:  # not in an activity
        return
    for d in deliveries:
        counter.add(
            1, {"channel": d.channel, "event": d.event, "outcome": "sent" if d.ok else "failed"}
        )


def _now() -> datetime:
    return datetime.now(UTC)
