"""Least privilege: the IAM policy and the Kubernetes RBAC a runbook's step types need.

Each step type declares the AWS actions (`actions`) and Kubernetes (group, resource, verb)
triples (`verbs`) it uses; the tests record every call the types really make and check it is
declared, so these documents cannot fall behind the code.

A runbook whose steps name AWS accounts (`account:`) needs one policy per principal: each
account's role gets the actions of the steps acting in it, the worker's own credentials those of
the steps that act in none, plus `sts:AssumeRole` on the roles it assumes; each role's trust
policy must let its assumer in (with the external id). `account_documents` writes them all.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from activities import registry
from activities.base import StepType
from orchestrator.config import CHAINED_MAX_S, AWSConfig
from orchestrator.runbook.models import Action, Runbook, Step, Unplanned

#: Placeholders for what the configuration does not know (the worker's own role ARN).
WORKER_ROLE = "<the worker's role ARN>"


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


# ------------------------------------------------------------------------------- accounts
@dataclass
class AccountUse:
    """One place of a runbook that names (or defaults to) an account, and its step types."""

    where: str
    account: str | None
    types: list[str]


def account_uses(rb: Runbook) -> list[AccountUse]:
    """Where the runbook's AWS calls are made, with the account each names (None: none): its
    steps and guards, what replaces them in unplanned runs, its recovery, every game day's
    fault and detectors, its guard's detectors."""
    out: list[AccountUse] = []

    def step(where: str, s: Step) -> None:
        out.append(AccountUse(where, s.account, [s.type, *(g.type for g in s.guards)]))
        if isinstance(s.unplanned, Unplanned):
            r = s.unplanned.replace
            account = r.account if r.account is not None else s.account
            out.append(AccountUse(f"{where}.unplanned", account,
                                  [r.type, *(g.type for g in r.guards)]))  # fmt: skip

    def actions(where: str, items: Iterable[Action]) -> None:
        for i, a in enumerate(items):
            out.append(AccountUse(f"{where}[{i}]", a.account, [a.type]))

    for section in ("steps", "recovery"):
        for s in getattr(rb, section):
            step(f"step {s.id}", s)
    days = {"gameday": rb.gameday, **{f"gamedays.{k}": v for k, v in rb.gamedays.items()}}
    for name, day in days.items():
        if day is not None:
            actions(f"{name}.fault", [day.fault])
            actions(f"{name}.detect", day.detect)
    if rb.guard is not None:
        actions("guard.detect", rb.guard.detect)
    return out


def names_accounts(rb: Runbook) -> bool:
    """Whether any step (or action) of the runbook names an account."""
    return any(u.account is not None for u in account_uses(rb))


def check_accounts(rb: Runbook, aws: AWSConfig, source: str = "") -> None:
    """ValueError (one line) for the first place naming an account `aws.accounts` lacks."""
    for use in account_uses(rb):
        if use.account is not None and use.account not in aws.accounts:
            known = ", ".join(sorted(aws.accounts)) or "none"
            of = f" of {source}" if source else ""
            raise ValueError(f"{use.where}: account {use.account!r} is not defined in "
                             f"aws.accounts{of} (defined: {known})")  # fmt: skip


def types_by_account(rb: Runbook, default_account: str | None) -> dict[str | None, list[StepType]]:
    """The step types whose calls act in each account (None: the worker's own credentials):
    a place naming no account acts in `default_account`. The game day's probes act in the
    default account too; what readiness reads beyond the steps, in every account steps use."""
    from activities.gameday import AlarmProbe, DnsProbe
    from activities.readiness import ReadinessProbe

    names: dict[str | None, set[str]] = {}
    for use in account_uses(rb):
        names.setdefault(use.account or default_account, set()).update(use.types)
    out: dict[str | None, list[StepType]] = {
        who: [t for n, t in sorted(registry.STEP_TYPES.items()) if n in found]
        for who, found in names.items()
    }
    days = [d for d in (rb.gameday, *rb.gamedays.values()) if d is not None]
    probes: list[StepType] = []
    if any(day.slo.dns is not None for day in days):
        probes.append(DnsProbe())
    if any(c.alarm for day in days for c in day.stop_conditions):
        probes.append(AlarmProbe())
    if probes:
        out.setdefault(default_account, []).extend(probes)
    for types in out.values():
        types.append(ReadinessProbe())
    return out


def trust_policy(principal: str, external_id: bool, name: str) -> dict[str, Any]:
    """The trust policy a role needs so `principal` may assume it (with the external id)."""
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"AWS": principal},
        "Action": "sts:AssumeRole",
    }
    if external_id:  # the value is a secret: named, never printed
        statement["Condition"] = {
            "StringEquals": {"sts:ExternalId": f"<aws.accounts.{name}.external_id>"}
        }
    return {"Version": "2012-10-17", "Statement": [statement]}


def _assume(policy: dict[str, Any], roles: list[str]) -> dict[str, Any]:
    if roles:
        policy["Statement"].append(
            {
                "Sid": "AssumeAccountRoles",
                "Effect": "Allow",
                "Action": ["sts:AssumeRole"],
                "Resource": sorted(roles),
            }
        )
    return policy


def account_documents(
    rb: Runbook, aws: AWSConfig, worker_role: str | None = None
) -> dict[str, Any]:
    """Every IAM document a runbook that names accounts needs: the worker's own policy (the
    steps acting in no account, and assuming the roles), each account role's policy and trust
    policy, and (for accounts assumed from a profile) each profile's policy. Every account
    named must be defined (`check_accounts`)."""
    by_account = types_by_account(rb, aws.default_account)
    used: list[str] = []
    todo = sorted(a for a in by_account if a is not None)
    while todo:  # the accounts named, and those they are assumed from (role chaining)
        name = todo.pop(0)
        if name not in used:
            used.append(name)
            base = aws.accounts[name].base
            if base is not None:
                todo.append(base)
    assumes: dict[tuple[str, str | None], list[str]] = {}  # (kind, name) -> roles it assumes
    assumer: tuple[str, str | None]
    accounts: dict[str, Any] = {}
    for name in sorted(used):
        spec = aws.accounts[name]
        if spec.base is not None:
            assumer, principal = ("account", spec.base), aws.accounts[spec.base].role_arn
            by = f"account {spec.base}"
        elif spec.profile is not None:
            assumer, principal = ("profile", spec.profile), f"<profile {spec.profile}'s ARN>"
            by = f"profile {spec.profile}"
        else:
            assumer, principal, by = ("worker", None), worker_role or WORKER_ROLE, "worker"
        assumes.setdefault(assumer, []).append(spec.role_arn)
        doc: dict[str, Any] = {
            "role_arn": spec.role_arn,
            "assumed_by": by,
            "policy": iam_policy(by_account.get(name, [])),
            "trust_policy": trust_policy(principal, spec.external_id is not None, name),
        }
        if spec.duration_s > CHAINED_MAX_S:
            doc["max_session_duration"] = spec.duration_s  # the role's MaxSessionDuration
        accounts[name] = doc
    for name, doc in accounts.items():
        _assume(doc["policy"], assumes.get(("account", name), []))
    worker = _assume(iam_policy(by_account.get(None, [])), assumes.get(("worker", None), []))
    out: dict[str, Any] = {
        "worker": {"role_arn": worker_role or WORKER_ROLE, "policy": worker},
        "accounts": accounts,
    }
    profiles = {p: {"policy": _assume(iam_policy([]), roles)}
                for (kind, p), roles in sorted(assumes.items(), key=str)
                if kind == "profile" and p is not None}  # fmt: skip
    if profiles:
        out["profiles"] = profiles
    return out
