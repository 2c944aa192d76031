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
from orchestrator.runbook.models import Runbook


def step_types(rb: Runbook | None) -> list[StepType]:
    """The step types a runbook uses (steps, guards, its game day's fault and detectors); all
    registered types without one."""
    if rb is None:
        return list(registry.STEP_TYPES.values())
    names = {s.type for s in rb.steps} | {g.type for s in rb.steps for g in s.guards}
    if rb.gameday is not None:
        names |= {rb.gameday.fault.type} | {d.type for d in rb.gameday.detect}
    types = [t for n, t in sorted(registry.STEP_TYPES.items()) if n in names]
    if rb.gameday is not None:
        from activities.gameday import AlarmProbe, DnsProbe

        if rb.gameday.slo.dns is not None:
            types.append(DnsProbe())  # the SLO probe reads the weighted record users follow
        if any(c.alarm for c in rb.gameday.stop_conditions):
            types.append(AlarmProbe())
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
