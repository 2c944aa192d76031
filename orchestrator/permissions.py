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

A runbook whose steps name AWS accounts (`account:`) needs one policy per principal: each
account's role gets the grants of the steps acting in it, the worker's own credentials those of
the steps that act in none, plus `sts:AssumeRole` on the roles it assumes; each role's trust
policy must let its assumer in (with the external id). `account_documents` writes them all.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from activities import registry
from activities.arns import Arns, Grant, K8sRule
from activities.base import StepParams, StepType
from orchestrator.config import CHAINED_MAX_S, AWSConfig, Config
from orchestrator.gameday.models import GameDayInput
from orchestrator.gameday.resolve import resolve_gameday
from orchestrator.runbook.models import Action, Runbook, Step, Unplanned
from orchestrator.runbook.resolve import context_for, plan_actions, resolve
from orchestrator.runs import PlannedStep, SwitchInput

NAME = "failover-orchestrator"
RBAC_API = "rbac.authorization.k8s.io/v1"
#: Placeholders for what the configuration does not know (the worker's own role ARN).
WORKER_ROLE = "<the worker's role ARN>"
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
    #: The account it acts in as the step names it (None: the default account, else the
    #: worker's own credentials).
    account: str | None = None


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
        out.append(Use(stype, parsed, getattr(parsed, "region", None) or region, step.account))
    return out


# -------------------------------------------------------------------------------- IAM
def runbook_grants(
    rb: Runbook,
    arns: Arns,
    params: dict[str, Any] | None = None,
    accounts: Callable[[str | None], bool] | None = None,
    probes: bool = True,
) -> list[Grant]:
    """What a worker does in AWS for the runbook, action by action and resource by resource:
    each step's grants for its params, "*" for the actions it does not scope; the game days'
    probes (the record users follow, the stop conditions' alarms: `probes`); what readiness
    reads. `accounts`: only the steps whose account (as they name it) it accepts."""
    from activities.gameday import AlarmProbe, DnsProbe
    from activities.readiness import ReadinessProbe

    out: list[Grant] = []
    for use in uses(rb, params):
        if accounts is not None and not accounts(use.account):
            continue
        scoped = use.stype.iam_resources(use.params, use.region, arns)
        out += scoped
        left = tuple(a for a in use.stype.actions if not any(a in g.actions for g in scoped))
        if left:
            out.append(Grant(left, ("*",)))
    for frm, to in _directions(rb) if probes else ():
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
    channels, else every channel), and the EKS clusters Kubernetes is reached through."""
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
    clusters = sorted(
        arns.regional("eks", c.eks.region or region, f"cluster/{c.eks.name}")
        for region, c in config.kubernetes.clusters.items()
        if c.eks is not None
    )
    if clusters:  # endpoint and CA (the tokens themselves need no permission)
        out.append(Grant(("eks:DescribeCluster",), tuple(clusters)))
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
    groups: Iterable[str] = (),
) -> list[dict[str, Any]]:
    """A Role and RoleBinding per namespace the rules use, and a ClusterRole and
    ClusterRoleBinding for the cluster-scoped ones (none when there are none), bound to the
    `groups` (how an EKS access entry maps the worker's IAM role in) and the worker's
    ServiceAccount (a region reached in-cluster). Per (group, resource, object names): the verbs
    needed; a verb needed on any object of a kind drops the names for it."""
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
    subjects: list[dict[str, str]] = [
        {"kind": "Group", "name": g, "apiGroup": RBAC_API.split("/")[0]} for g in groups
    ]
    subjects.append({"kind": "ServiceAccount", "name": service_account, "namespace": sa_namespace})
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
            "subjects": [dict(x) for x in subjects],
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
    rb: Runbook,
    aws: AWSConfig,
    worker_role: str | None = None,
    arns: Arns | None = None,
    params: dict[str, Any] | None = None,
    extra: Iterable[Grant] = (),
) -> dict[str, Any]:
    """Every IAM document a runbook that names accounts needs: the worker's own policy (the
    steps acting in no account, the configuration's `extra` grants, and assuming the roles),
    each account role's policy (its steps' grants, scoped as `runbook_grants` scopes them) and
    trust policy, and (for accounts assumed from a profile) each profile's policy. Every account
    named must be defined (`check_accounts`). A place naming no account acts in
    `aws.default_account`, and so do the game days' probes."""
    arns = arns or Arns()
    default = aws.default_account

    def grants(who: str | None) -> list[Grant]:
        return runbook_grants(rb, arns, params, lambda a: (a or default) == who,
                              probes=who == default)  # fmt: skip

    named = {u.account or default for u in account_uses(rb)}
    used: list[str] = []
    todo = sorted(a for a in named if a is not None)
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
            "policy": iam_policy(grants(name) if name in named else []),  # (or it only assumes)
            "trust_policy": trust_policy(principal, spec.external_id is not None, name),
        }
        if spec.duration_s > CHAINED_MAX_S:
            doc["max_session_duration"] = spec.duration_s  # the role's MaxSessionDuration
        accounts[name] = doc
    for name, doc in accounts.items():
        _assume(doc["policy"], assumes.get(("account", name), []))
    own = grants(None) if default is None else []
    worker = _assume(iam_policy([*own, *extra]), assumes.get(("worker", None), []))
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
