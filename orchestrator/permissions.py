"""Least privilege: the IAM policy and the Kubernetes RBAC a runbook needs.

Each step type declares the AWS actions (`actions`) and Kubernetes (group, resource, verb)
triples (`verbs`) it uses; the tests record every call the types really make and check it is
declared, so these documents cannot fall behind the code. For one runbook, every step it can run
is resolved in every direction (planned, unplanned and recovery runs, its game days' faults,
detectors and switches, its guard's detectors), and each step says what its params make it touch:

- IAM (`iam_policy`): the ARNs of each action (`StepType.iam_resources`: hosted zones, the global
  cluster, the Auto Scaling group, the listeners of a named load balancer, ...), "*" only where
  AWS has no resource-level permission for the action (List*, most Describe*, GetMetricData) or
  a type does not know its resources; statements grouped by the resources they allow. The
  configuration adds the report bucket (S3) and the SNS topics the runbook's notices go to.
- RBAC (`rbac_objects`): one Role and RoleBinding per namespace with the kinds, verbs and
  object names the steps need (`StepType.k8s_rules`), a ClusterRole only for cluster-scoped
  resources (SelfSubjectAccessReviews, for `failover readiness`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from activities import registry
from activities.arns import Arns, Grant, K8sRule
from activities.base import StepParams, StepType
from orchestrator.config import Config
from orchestrator.gameday.models import GameDayInput
from orchestrator.gameday.resolve import resolve_gameday
from orchestrator.runbook.models import Runbook, Unplanned
from orchestrator.runbook.resolve import context_for, plan_actions, resolve
from orchestrator.runs import PlannedStep, SwitchInput

NAME = "failover-orchestrator"
RBAC_API = "rbac.authorization.k8s.io/v1"
#: The default game day: `resolve_gameday` falls back to `gameday` for a name not in `gamedays`.
_DEFAULT_GAMEDAY = ""


def step_types(rb: Runbook | None) -> list[StepType[Any]]:
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
    types: list[StepType[Any]] = [t for n, t in sorted(registry.STEP_TYPES.items()) if n in names]
    if any(day.slo.dns is not None for day in days):
        types.append(DnsProbe())  # the SLO probe reads the weighted record users follow
    if any(c.alarm for day in days for c in day.stop_conditions):
        types.append(AlarmProbe())
    types.append(ReadinessProbe())  # `failover readiness` works for every runbook
    return types


# ------------------------------------------------------------------------------- uses
@dataclass(frozen=True)
class Use:
    """One step a worker may run for the runbook: its type, its params (rendered, parsed) and
    the region it acts in (its params' region, else the step's, else the target region)."""

    stype: StepType[Any]
    params: StepParams
    region: str


def uses(rb: Runbook, params: dict[str, Any] | None = None) -> list[Use]:
    """Every step (and guard) of every run the runbook can make, in every direction: its
    planned, unplanned and recovery runs, its game days (fault, detectors, switches), its guard's
    detectors. ResolveError if a template cannot be rendered (a parameter with no value)."""
    out: list[Use] = []
    for frm, to in _directions(rb):
        for sw in _switches(rb, frm, to, params):
            out += [u for step in sw.steps for u in _step_uses(step, to)]
        for gd in _game_days(rb, frm, to, params):
            for step in (gd.fault, *gd.detect):
                out += _step_uses(step, to)
            for run in (gd.switch, gd.failback, gd.recovery):
                if run is not None:
                    out += [u for step in run.steps for u in _step_uses(step, run.to_region)]
        if rb.guard is not None:
            context = context_for(rb, frm, to, params or {})
            for step in plan_actions(rb.guard.detect, "detect", "guard.detect", rb, context):
                out += _step_uses(step, to)
    return out


def _directions(rb: Runbook) -> Iterator[tuple[str, str]]:
    for frm in rb.regions:
        for to in rb.regions:
            if frm != to:
                yield frm, to


def _switches(
    rb: Runbook, frm: str, to: str, params: dict[str, Any] | None
) -> Iterator[SwitchInput]:
    yield resolve(rb, frm, to, requester="failover iam", params=params)
    if rb.has_unplanned:
        yield resolve(rb, frm, to, requester="failover iam", params=params, kind="unplanned")
    if rb.recovery or any(s.unplanned == "defer" for s in rb.steps):
        yield resolve(rb, frm, to, requester="failover iam", params=params, kind="recovery")


def _game_days(
    rb: Runbook, frm: str, to: str, params: dict[str, Any] | None
) -> Iterator[GameDayInput]:
    names = [*([_DEFAULT_GAMEDAY] if rb.gameday is not None else []), *rb.gamedays]
    for name in names:
        yield resolve_gameday(rb, name, frm, to, requester="failover iam", params=params)


def _step_uses(step: PlannedStep, to_region: str) -> list[Use]:
    out = []
    region = step.region or to_region
    for type_name, raw in [(step.type, step.params), *((g.type, g.params) for g in step.guards)]:
        stype = registry.get(type_name)
        if stype is None:
            continue
        parsed = stype.parse(raw)
        out.append(Use(stype, parsed, getattr(parsed, "region", None) or region))
    return out


# -------------------------------------------------------------------------------- IAM
def runbook_grants(rb: Runbook, arns: Arns, params: dict[str, Any] | None = None) -> list[Grant]:
    """What a worker does in AWS for the runbook, action by action and resource by resource:
    each step's grants for its params, "*" for the actions it does not scope; the game days'
    probes (the record users follow, the stop conditions' alarms); what readiness reads."""
    from activities.gameday import AlarmProbe, DnsProbe
    from activities.readiness import ReadinessProbe

    out: list[Grant] = []
    for use in uses(rb, params):
        scoped = use.stype.iam_resources(use.params, use.region, arns)
        out += scoped
        left = tuple(a for a in use.stype.actions if not any(a in g.actions for g in scoped))
        if left:
            out.append(Grant(left, ("*",)))
    for frm, to in _directions(rb):
        for gd in _game_days(rb, frm, to, params):
            if gd.slo.dns_zone:
                out.append(Grant(DnsProbe.actions[:1], ("*",)))
                out.append(Grant(DnsProbe.actions[1:], (arns.hosted_zone(gd.slo.dns_zone),)))
            for rule in gd.stop_conditions:
                if rule.alarm and rule.alarm_region:
                    alarm = arns.regional("cloudwatch", rule.alarm_region, f"alarm:{rule.alarm}")
                    out.append(Grant(AlarmProbe.actions, (alarm,)))
    out.append(Grant(ReadinessProbe.actions, ("*",)))  # lists global clusters, groups: reads
    return out


def config_grants(config: Config, rb: Runbook | None, arns: Arns) -> list[Grant]:
    """What the configuration adds: the report bucket (reports written when a run ends, read
    back by `failover report`) and the SNS topics the runbook's notices go to (its routes'
    channels, else every channel)."""
    out: list[Grant] = []
    reports = config.reports
    if reports.s3_bucket:
        bucket = f"arn:{arns.partition}:s3:::{reports.s3_bucket}"
        out.append(Grant(("s3:PutObject", "s3:GetObject"), (f"{bucket}/{reports.s3_prefix}*",)))
        prefix = {"StringLike": {"s3:prefix": (f"{reports.s3_prefix}*",)}}
        out.append(Grant(("s3:ListBucket",), (bucket,), prefix))
    routed = {r.channel for r in rb.notify} if rb is not None and rb.notify else None
    topics = sorted(
        ch.topic_arn
        for name, ch in config.notify.channels.items()
        if ch.type == "sns" and ch.topic_arn and (routed is None or name in routed)
    )
    if topics:
        out.append(Grant(("sns:Publish",), tuple(topics)))
    return out


def iam_policy(grants: Iterable[Grant]) -> dict[str, Any]:
    """An IAM policy document allowing exactly these grants: per action, its resources (any
    "*" wins); conditions on the same keys merged; one statement per set of resources (and
    condition), with every action that is allowed on exactly that set."""
    per_action: dict[str, dict[str, dict[tuple[str, str], set[str]] | None]] = {}
    for g in grants:
        for action in g.actions:
            resources = per_action.setdefault(action, {})
            for arn in g.resources:
                _allow(resources, arn, g)
    groups: dict[tuple[tuple[str, ...], str], list[str]] = {}
    for action, resources in per_action.items():
        if resources.get("*", {}) is None:  # "*" without a condition: nothing narrower matters
            resources = {"*": None}
        by_condition: dict[str, list[str]] = {}
        for arn, cond in resources.items():
            by_condition.setdefault(_condition_json(cond), []).append(arn)
        for cond_json, where in by_condition.items():
            groups.setdefault((tuple(sorted(where)), cond_json), []).append(action)
    statements = []
    sids: dict[str, int] = {}
    for (arns, cond_json), actions in sorted(groups.items(), key=_statement_order):
        statement: dict[str, Any] = {
            "Sid": _sid(sorted(actions), arns, sids),
            "Effect": "Allow",
            "Action": sorted(actions),
            "Resource": arns[0] if len(arns) == 1 else list(arns),
        }
        if cond_json:
            statement["Condition"] = json.loads(cond_json)
        statements.append(statement)
    return {"Version": "2012-10-17", "Statement": statements}


def _allow(
    resources: dict[str, dict[tuple[str, str], set[str]] | None], arn: str, g: Grant
) -> None:
    """Add one (resource, condition) to an action's: unconditional wins; conditions on the same
    keys merge their values; on different keys, the resource is allowed unconditionally."""
    if arn in resources and resources[arn] is None:
        return
    if g.condition is None:
        resources[arn] = None
        return
    new = {
        (op, key): set(values) for op, keys in g.condition.items() for key, values in keys.items()
    }
    old = resources.get(arn)
    if old is None:
        resources[arn] = new
    elif set(old) == set(new):
        for k, values in new.items():
            old[k] |= values
    else:  # different keys: no one condition says both; never deny what a step needs
        resources[arn] = None


def _condition_json(cond: dict[tuple[str, str], set[str]] | None) -> str:
    if not cond:
        return ""
    block: dict[str, dict[str, list[str]]] = {}
    for (op, key), values in sorted(cond.items()):
        block.setdefault(op, {})[key] = sorted(values)
    return json.dumps(block, sort_keys=True)


def _statement_order(item: tuple[tuple[tuple[str, ...], str], list[str]]) -> tuple[Any, ...]:
    (arns, cond), actions = item
    return (arns != ("*",), min(actions), arns, cond)  # "*" first, then by service


def _sid(actions: list[str], arns: tuple[str, ...], seen: dict[str, int]) -> str:
    """A statement id from what it allows: Route53ChangeResourceRecordSets (one action),
    RdsCluster (several, on clusters), Route53Unscoped, Unscoped (several services on "*")."""
    services = dict.fromkeys(a.split(":", 1)[0] for a in actions)
    name = "".join(_camel(s) for s in services)
    if arns == ("*",):
        name = "Unscoped" if len(services) > 2 else name + "Unscoped"
    elif len(actions) == 1:
        name += actions[0].split(":", 1)[1]
    else:
        name += _camel(_resource_kind(arns[0]))
    name = name[:100]
    seen[name] = seen.get(name, 0) + 1
    return name if seen[name] == 1 else f"{name}{seen[name]}"


def _resource_kind(arn: str) -> str:
    """The resource type of an ARN (hostedzone, cluster, parameter, ...)."""
    resource = arn.split(":", 5)[-1]
    return resource.replace(":", "/").split("/", 1)[0] or "resource"


def _camel(text: str) -> str:
    return "".join(p.capitalize() for p in text.replace("_", "-").split("-") if p.isalnum())


# ------------------------------------------------------------------------------- RBAC
def runbook_rules(rb: Runbook, params: dict[str, Any] | None = None) -> list[K8sRule]:
    """The Kubernetes access a worker needs for the runbook: each Kubernetes step's rules for
    its params (in every direction and kind of run), and readiness' access reviews."""
    from activities.readiness import ReadinessProbe

    out = [
        r for use in uses(rb, params) if use.stype.verbs for r in use.stype.k8s_rules(use.params)
    ]
    return out + [K8sRule(None, g, r, (v,)) for g, r, v in ReadinessProbe.verbs]


def rbac_objects(
    rules: Iterable[K8sRule],
    service_account: str = NAME,
    sa_namespace: str = "failover",
    name: str = NAME,
) -> list[dict[str, Any]]:
    """A Role and RoleBinding per namespace the rules use, and a ClusterRole and
    ClusterRoleBinding for the cluster-scoped ones (none when there are none), bound to the
    worker's ServiceAccount. Per (group, resource, object names): the verbs needed; a verb
    needed on any object of a kind drops the names for it."""
    scoped: dict[str | None, dict[tuple[str, str, str], set[str] | None]] = {}
    for rule in rules:
        grants = scoped.setdefault(rule.namespace, {})
        for verb in rule.verbs:
            key = (rule.group, rule.resource, verb)
            names = None if verb in ("create", "list", "watch") else rule.names
            if names is None or (key in grants and grants[key] is None):
                grants[key] = None
            else:
                grants[key] = (grants.get(key) or set()) | set(names)
    labels = {"app.kubernetes.io/name": name}
    subject = {"kind": "ServiceAccount", "name": service_account, "namespace": sa_namespace}
    out: list[dict[str, Any]] = []
    for namespace in sorted(scoped, key=lambda n: (n is not None, n or "")):
        kind = "ClusterRole" if namespace is None else "Role"
        meta: dict[str, Any] = {"name": name, "labels": labels}
        if namespace is not None:
            meta = {"name": name, "namespace": namespace, "labels": labels}
        out.append({"apiVersion": RBAC_API, "kind": kind, "metadata": meta,
                    "rules": _rules(scoped[namespace])})  # fmt: skip
        out.append({
            "apiVersion": RBAC_API,
            "kind": f"{kind}Binding",
            "metadata": dict(meta),
            "roleRef": {"apiGroup": RBAC_API.split("/")[0], "kind": kind, "name": name},
            "subjects": [subject],
        })  # fmt: skip
    return out


def _rules(grants: dict[tuple[str, str, str], set[str] | None]) -> list[dict[str, Any]]:
    rows: dict[tuple[str, str, tuple[str, ...]], set[str]] = {}
    for (group, resource, verb), names in grants.items():
        rows.setdefault((group, resource, tuple(sorted(names or ()))), set()).add(verb)
    out = []
    for (group, resource, objects), verbs in sorted(rows.items()):
        rule: dict[str, Any] = {"apiGroups": [group], "resources": [resource]}
        if objects:
            rule["resourceNames"] = list(objects)
        rule["verbs"] = sorted(verbs)
        out.append(rule)
    return out


def rbac_role(types: Iterable[StepType[Any]], name: str = NAME) -> dict[str, Any]:
    """A ClusterRole with every verb these step types may use, per API group and resource, on
    anything (`failover rbac` with no runbook: a worker for runbooks not known yet)."""
    grouped: dict[tuple[str, str], set[str]] = {}
    for t in types:
        for group, resource, verb in t.verbs:
            grouped.setdefault((group, resource), set()).add(verb)
    rules = [
        {"apiGroups": [group], "resources": [resource], "verbs": sorted(verbs)}
        for (group, resource), verbs in sorted(grouped.items())
    ]
    return {
        "apiVersion": RBAC_API,
        "kind": "ClusterRole",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/name": name}},
        "rules": rules,
    }


# ----------------------------------------------------------------------------- lookups
class AwsLookupError(RuntimeError):
    """AWS could not answer a lookup (one line for the user)."""


def looked_up(config: Config, account: str | None, partition: str = "aws") -> Arns:
    """ARNs whose ids are asked of AWS (read-only): a hosted zone's id from its name
    (route53:ListHostedZonesByName), a health check's from its Name tag (ListHealthChecks,
    ListTagsForResources), and the account (sts:GetCallerIdentity) unless given. Each name is
    asked once; one that AWS does not know keeps its wildcard."""
    from activities.clients import Clients

    clients = Clients(config)
    zones: dict[str, str | None] = {}
    checks: dict[str, str] = {}

    def ask(what: str, call: Any) -> Any:
        try:
            return call()
        except Exception as exc:  # boto3's errors: no credentials, no endpoint, denied, ...
            raise AwsLookupError(f"looking up {what}: {type(exc).__name__}: {exc}") from None

    def zone_id(name: str) -> str | None:
        if name not in zones:
            r53 = clients.aws("route53", "us-east-1")
            found = ask(f"hosted zone {name}", lambda: r53.list_hosted_zones_by_name(DNSName=name))
            match = [z for z in found["HostedZones"] if z["Name"] == name]
            zones[name] = str(match[0]["Id"]).rsplit("/", 1)[-1] if match else None
        return zones[name]

    def health_check_id(name: str) -> str | None:
        if not checks:
            r53 = clients.aws("route53", "us-east-1")
            pages = ask("health checks", lambda: list(
                r53.get_paginator("list_health_checks").paginate()))  # fmt: skip
            ids = [h["Id"] for page in pages for h in page["HealthChecks"]]
            for i in range(0, len(ids), 10):  # ListTagsForResources takes 10 ids at a time
                tags = ask("health check tags", lambda i=i: r53.list_tags_for_resources(
                    ResourceType="healthcheck", ResourceIds=ids[i:i + 10]))  # fmt: skip
                for rts in tags["ResourceTagSets"]:
                    for t in rts.get("Tags", []):
                        if t["Key"] == "Name":
                            checks.setdefault(t["Value"], rts["ResourceId"])
            checks.setdefault("", "")  # asked: not again
        return checks.get(name) or None

    if account is None:
        sts = clients.aws("sts", "us-east-1")
        account = str(ask("the account", sts.get_caller_identity)["Account"])
    return Arns(account=account, partition=partition, zone_id=zone_id,
                health_check_id=health_check_id)  # fmt: skip
