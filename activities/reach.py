"""`switch.reach`: does a region answer? A planned switch asks it of its source region before it
changes anything, so that a switch away from a region that is down fails in seconds with the way
out (an unplanned run) instead of fencing, timing out and rolling back.

It asks the endpoints the run would use there: the region's Kubernetes API (its /version) when a
step acts on Kubernetes there, its AWS endpoint (STS GetCallerIdentity, the cheapest signed call)
when a step calls AWS there; with short timeouts and no retry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from temporalio import activity

from activities.clients import Clients
from activities.errors import classify
from orchestrator.runs import ReachCall

CONNECT, READ = 2.0, 3.0


class ReachActivities:
    """The region probe of one worker, sharing its clients' configuration."""

    def __init__(self, clients: Clients) -> None:
        self.clients = clients

    def all(self) -> list[Callable[..., Any]]:
        return [self.reach]

    @activity.defn(name="switch.reach")
    def reach(self, call: ReachCall) -> list[str]:
        """What does not answer in the region ([] when everything the run needs does)."""
        problems = []
        if call.kubernetes:
            try:
                from kubernetes import client

                client.VersionApi(self.clients.kube_probe(call.region)).get_code(
                    _request_timeout=(CONNECT, READ)
                )
            except Exception as exc:
                problems.append(f"its Kubernetes API: {_short(exc)}")
        if call.aws:
            try:
                sts = self.clients.aws_probe("sts", call.region, CONNECT, READ)
                sts.get_caller_identity()
            except Exception as exc:
                problems.append(f"its AWS endpoint: {_short(exc)}")
        return problems


def _short(exc: BaseException) -> str:
    """What went wrong, in a few words (a refused connection, no answer in time, ...)."""
    err = classify(exc)
    text = err.message.lower()
    if "refused" in text:
        return "connection refused"
    if err.kind == "Timeout" or "timed out" in text or "timeout" in text:
        return f"no answer within {CONNECT + READ:g}s"
    first = err.message.splitlines()[0] if err.message else err.kind
    return first if len(first) <= 120 else first[:117] + "..."
