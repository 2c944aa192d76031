"""Helpers shared by the AWS step types: classified calls and waiting on Route 53 changes."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from activities.base import StepContext
from activities.errors import StepError, classify

T = TypeVar("T")


def call(fn: Callable[..., T], **kwargs: Any) -> T:
    """A boto3 call whose errors come out classified (retryable or not)."""
    try:
        return fn(**kwargs)
    except StepError:
        raise
    except Exception as exc:
        raise classify(exc) from exc


def wait_until(
    ctx: StepContext,
    what: str,
    check: Callable[[], tuple[bool, str]],
    timeout: float,
    interval: float = 0.5,
) -> None:
    """Poll check until it holds, heartbeating; VerifyTimeout after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        ok, detail = check()
        if ok:
            return
        ctx.heartbeat(what, detail)
        if time.monotonic() > deadline:
            raise StepError("VerifyTimeout", f"{what}: still {detail} after {timeout:g}s")
        time.sleep(interval)


def region_of_arn(arn: str) -> str:
    """The region field of an ARN (arn:aws:service:REGION:account:...)."""
    parts = arn.split(":")
    return parts[3] if len(parts) > 3 else ""
