"""What a notification says and what became of it: pure pydantic models, no I/O.

A workflow builds a `Notice` (what happened, never a secret: channels' addresses and keys live
in the worker's configuration) and runs the `notify.send` activity with a `NotifyCall`; the
activity sends it to every matching channel and answers one `Delivery` per channel. Workflow code
imports this module (through `workflow.unsafe.imports_passed_through()`).
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

#: What can be notified: a gate waiting for an approval (with the approve command and the UI link);
#: a switch started, succeeded, rolled back; `rollback_failed` (a page: a switch stopped half
#: undone, a person must decide); the guard's confirmed outage and its decision; a game day's
#: result; a readiness check that turned red; an evacuation started, and its result (its services'
#: switches then tell only their gates and rollbacks).
NotifyEvent = Literal[
    "gate_open",
    "switch_started",
    "switch_succeeded",
    "switch_rolled_back",
    "rollback_failed",
    "guard_detected",
    "guard_decision",
    "gameday_result",
    "readiness_regression",
    "evacuation_started",
    "evacuation_result",
]
NOTIFY_EVENTS: tuple[str, ...] = get_args(NotifyEvent)


class NotifyRoute(BaseModel):
    """Which events of this runbook go to a notification channel of the configuration (the
    channel's address and secrets live there, never in the runbook or a workflow's input)."""

    model_config = ConfigDict(extra="forbid")

    channel: str = Field(description="A channel named in the configuration's `notify.channels`.")
    events: list[NotifyEvent] | None = Field(
        default=None, description="The events it gets (default: the channel's own list)."
    )


__all__ = [
    "NOTIFY_EVENTS",
    "SIGNATURE_HEADER",
    "Delivery",
    "Notice",
    "NotifyCall",
    "NotifyEvent",
    "NotifyRoute",
    "signature",
    "signature_valid",
]

#: The generic webhook's signature header: `sha256=<hex HMAC-SHA256 of the body>`.
SIGNATURE_HEADER = "X-Failover-Signature"

Severity = Literal["info", "warning", "critical"]


class Notice(BaseModel):
    """What happened (no secrets)."""

    event: NotifyEvent
    runbook: str
    #: One line.
    summary: str
    detail: str = ""
    severity: Severity = "info"
    #: PagerDuty's dedup key: one per run (its workflow id), so trigger and resolve meet.
    dedup_key: str
    #: PagerDuty: resolve the incident with this dedup key (instead of triggering one).
    resolve: bool = False
    workflow_id: str | None = None
    run_id: str | None = None
    #: Commands to paste, e.g. the approve command of an open gate.
    commands: list[str] = Field(default_factory=list)


class NotifyCall(BaseModel):
    """The input of `notify.send`."""

    notice: Notice
    #: The runbook's routes (channel and events); empty: every configured channel that takes
    #: the event.
    routes: list[NotifyRoute] = Field(default_factory=list)


class Delivery(BaseModel):
    """What became of a notice on one channel."""

    channel: str
    event: str
    ok: bool
    #: Why not (or the channel's answer); never a secret.
    detail: str = ""
    at: datetime


def signature(secret: str, body: bytes) -> str:
    """The value of the webhook's `X-Failover-Signature` header for `body`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_valid(secret: str, body: bytes, header: str | None) -> bool:
    """Whether `header` is the signature of `body` with `secret` (constant-time compare)."""
    return header is not None and hmac.compare_digest(signature(secret, body), header)
