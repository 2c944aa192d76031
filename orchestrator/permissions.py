"""Least privilege: the IAM policy and the Kubernetes RBAC a runbook's step types need.

Each step type declares the AWS actions (`actions`) and Kubernetes (group, resource, verb)
triples (`verbs`) it uses; the tests record every call the types really make and check it is
declared, so these documents cannot fall behind the code.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from activities import registry
from activities.base import StepType
from orchestrator.runbook.models import Runbook, Unplanned


def step_types(rb: Runbook | None) -> list[StepType]:
    """The step types a runbook uses: its steps and their guards (and what replaces them in an
    unplanned run), its recovery, every game day's
    fault, detectors and probes, its guard's detectors, and what readiness reads beyond them;
    without one, every registered type and every probe."""
    from activities.gameday import AlarmProbe, DnsProbe
    from activities.readiness import ReadinessProbe

    if rb is None:
        return [*registry.STEP_TYPES.values(), DnsProbe(), AlarmProbe(), ReadinessProbe()]
    steps = [*rb.steps, *rb.recovery]
    names = {s.type for s in steps} | {g.type for s in steps for g in s.guards}
    for s in steps:
        if isinstance(s.unplanned, Unplanned):
            names |= {s.unplanned.replace.type} | {g.type for g in s.unplanned.replace.guards}
    days = [d for d in (rb.gameday, *rb.gamedays.values()) if d is not None]
    for day in days:
        names |= {day.fault.type} | {d.type for d in day.detect}
    if rb.guard is not None:
        names |= {d.type for d in rb.guard.detect}
    types: list[StepType] = [t for n, t in sorted(registry.STEP_TYPES.items()) if n in names]
    if any(day.slo.dns is not None for day in days):
        types.append(DnsProbe())  # the SLO probe reads the weighted record users follow
    if any(c.alarm for day in days for c in day.stop_conditions):
        types.append(AlarmProbe())
    types.append(ReadinessProbe())  # `failover readiness` works for every runbook
    return types


def iam_policy(types: Iterable[StepType]) -> dict[str, Any]:
    """An IAM policy document allowing exactly the actions of these step types."""
    actions = sorted({a for t in types for a in t.actions})
    statements = []
    for service in sorted({a.split(":", 1)[0] for a in actions}):
        statements.append(
            {
                "Sid": "".join(part.capitalize() for part in service.split("-")),
                "Effect": "Allow",
                "Action": [a for a in actions if a.startswith(service + ":")],
                "Resource": "*",
            }
        )
    return {"Version": "2012-10-17", "Statement": statements}


def rbac_role(types: Iterable[StepType], name: str = "failover-orchestrator") -> dict[str, Any]:
    """A Kubernetes ClusterRole with the verbs these step types use, per API group and resource."""
    grouped: dict[tuple[str, str], set[str]] = {}
    for t in types:
        for group, resource, verb in t.verbs:
            grouped.setdefault((group, resource), set()).add(verb)
    rules = [
        {"apiGroups": [group], "resources": [resource], "verbs": sorted(verbs)}
        for (group, resource), verbs in sorted(grouped.items())
    ]
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/name": name}},
        "rules": rules,
    }
