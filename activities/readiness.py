"""Readiness checks: what a switch would need of the world now, in each direction. Read-only.

`run_checks` does every check of a readiness run with the real clients; `failover readiness
check` calls it in its own process (no worker needed, like `failover plan`), `ReadinessWorkflow`
through the `readiness.check` activity. `readiness.previous` reads the result of the runbook's
last completed readiness run from Temporal (the workflow compares the two).

What is checked, per direction (`orchestrator.readiness` has the models):

- preflight: every step's preflight and dry run, exactly as `failover plan` runs them
  (`orchestrator.plan.make_plan`): each step checks its own resources exist and are usable;
- lag: each `replica_lag` step and guard (enforced ones), its verify polled for a few seconds,
  where the replica is one now; toward the current writer there is no lag to measure (a
  failback's lag is checked once the writer has moved), and a replica that is missing or no
  longer replicates is red;
- capacity: each Auto Scaling group the runbook sizes: its maximum size (or the max the step
  sets) can take the desired capacity the step sets;
- health: the runbook's read-only health checks (GET/HEAD `http_check` steps expecting a 2xx or
  3xx, `cloudwatch_alarm` and `route53_health_status` steps), their verify polled for a few
  seconds;
- permissions: a Kubernetes SelfSubjectAccessReview for each (group, resource, verb) each
  Kubernetes step needs for its params (`StepType.k8s_rules`, what `failover rbac` grants), on
  each object it names, in the cluster and namespace it acts on.

Left out, and why: AWS IAM policy simulation (`iam:SimulatePrincipalPolicy`; the sandbox's moto
does not implement it, so it could not be tested), Service Quotas (moto answers only VPC quotas,
none of the instance or Auto Scaling quotas a switch needs), ECS capacity (an ECS service has no
maximum to compare with; its step's preflight checks it exists).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.exceptions import ApplicationError

from activities import registry
from activities.base import Check, StepContext, StepParams, StepType
from activities.clients import Clients
from activities.errors import StepError, classify
from activities.heartbeat import Heartbeater
from orchestrator.plan import make_plan
from orchestrator.readiness import (
    WORKFLOW_TYPE,
    CheckKind,
    PreviousCall,
    PreviousResult,
    ReadinessCheck,
    ReadinessInput,
    ReadinessResult,
    direction,
)
from orchestrator.runs import PlannedStep, StepKind, SwitchInput

Beat = Callable[..., None]

#: Step types whose verify is a read-only health check when run as the runbook states it.
HEALTH_TYPES = ("cloudwatch_alarm", "route53_health_status")
#: Seconds between two polls of a lag or health check that is not green yet.
POLL = 1.0


class ReadinessProbe(StepType):
    """Not a step: the calls readiness makes beyond the steps' own (for least-privilege
    policies): which role a replica has, Auto Scaling sizes, Kubernetes access reviews."""

    name = "readiness"
    actions = (
        "autoscaling:DescribeAutoScalingGroups",
        "rds:DescribeDBClusters",
        "rds:DescribeDBInstances",
        "rds:DescribeGlobalClusters",
    )
    verbs = (("authorization.k8s.io", "selfsubjectaccessreviews", "create"),)


# ------------------------------------------------------------------------------- run them
def run_checks(
    inp: ReadinessInput, clients: Clients, beat: Beat = lambda *_: None
) -> ReadinessResult:
    """Every check of every direction (read-only; a check that cannot run is red with why)."""
    started, at = time.monotonic(), datetime.now(UTC)
    reviews: dict[Review, tuple[bool, str]] = {}
    checks: list[ReadinessCheck] = []
    for sw in inp.directions:
        d = direction(sw.from_region, sw.to_region)
        beat("preflight", d)
        checks += preflight_checks(sw, clients)
        beat("lag", d)
        checks += lag_checks(sw, clients, inp.patience_s)
        beat("capacity", d)
        checks += capacity_checks(sw, clients)
        beat("health", d)
        checks += health_checks(sw, clients, inp.patience_s)
        beat("permissions", d)
        checks += permission_checks(sw, clients, reviews)
    result = ReadinessResult(
        runbook=inp.runbook,
        directions=[direction(sw.from_region, sw.to_region) for sw in inp.directions],
        checks=checks,
        checked_at=at,
        duration_s=round(time.monotonic() - started, 3),
    )
    return result


def _context(sw: SwitchInput, step: PlannedStep, clients: Clients, budget: float) -> StepContext:
    return StepContext(
        run_id="readiness",
        step_id=step.id,
        from_region=sw.from_region,
        to_region=sw.to_region,
        region=step.region,
        mode="dry-run",
        clients=clients,
        deadline=time.monotonic() + budget,
        account=step.account,
    )


def _check(
    sw: SwitchInput, kind: CheckKind, name: str, ok: bool, detail: str, step: str = "",
    resource: str = "",
) -> ReadinessCheck:  # fmt: skip
    return ReadinessCheck(
        name=name, kind=kind, direction=direction(sw.from_region, sw.to_region), ok=ok,
        detail=detail, step=step, resource=resource,
    )  # fmt: skip


def _resource(stype: StepType[Any], ctx: StepContext, params: StepParams) -> str:
    try:
        return stype.resource(ctx, params)
    except Exception:  # a resource name that needs the world (none today): the type's name
        return stype.name


def _failed(exc: BaseException) -> str:
    err = classify(exc)
    return f"{err.kind}: {err.message}"


# ------------------------------------------------------------------------------ preflight
def preflight_checks(sw: SwitchInput, clients: Clients) -> list[ReadinessCheck]:
    """Every activity step's preflight and dry run, as `failover plan` runs them."""
    plan = make_plan(sw, clients)
    by_id = {s.id: s for s in sw.steps}
    out = []
    for row in plan.steps:
        if row.preflight == "skipped":  # gates and timers: nothing to check
            continue
        step = by_id[row.id]
        resource = ""
        try:
            stype, params = registry.bind(step.type, step.params)
            resource = _resource(stype, _context(sw, step, clients, 5.0), params)
            described = stype.describe(params)
        except StepError as exc:
            described = exc.message
        if row.error_kind is None:
            detail = f"ok: {described}"
        else:
            detail = (
                f"{resource}: {row.error_kind}: {row.preflight}"
                if resource
                else (f"{row.error_kind}: {row.preflight}")
            )
        out.append(_check(sw, "preflight", f"preflight {row.id}", row.error_kind is None,
                          detail, row.id, resource))  # fmt: skip
    return out


# ------------------------------------------------------------------------------------ lag
def _with_guards(sw: SwitchInput) -> list[tuple[PlannedStep, str, str, dict[str, Any]]]:
    """(step, check name, type, params) of each step and each of its guards."""
    out = []
    for step in sw.steps:
        out.append((step, step.id, step.type, step.params))
        for i, g in enumerate(step.guards):
            out.append((step, f"{step.id} guard {i + 1}", g.type, g.params))
    return out


def replica_role(ctx: StepContext, params: Any) -> str:
    """What the replica a `replica_lag` check measures is now: "replica", "writer" (it took
    over: nothing replicates to it), "detached" (exists, replicates from nothing) or
    "missing"."""
    rds = ctx.clients.aws("rds", ctx.region_for(params))
    if params.kind == "aurora_global":
        try:
            rds.describe_db_clusters(DBClusterIdentifier=params.identifier)
        except Exception as exc:
            if classify(exc).kind == "NotFound":
                return "missing"
            raise
        suffix = f":cluster:{params.identifier}"
        for gc in rds.describe_global_clusters().get("GlobalClusters", []):
            for m in gc.get("GlobalClusterMembers", []):
                if str(m.get("DBClusterArn", "")).endswith(suffix):
                    return "writer" if m.get("IsWriter") else "replica"
        return "detached"
    try:
        found = rds.describe_db_instances(DBInstanceIdentifier=params.identifier)["DBInstances"]
    except Exception as exc:
        if classify(exc).kind == "NotFound":
            return "missing"
        raise
    if not found:
        return "missing"
    return "replica" if found[0].get("ReadReplicaSourceDBInstanceIdentifier") else "writer"


def _poll(stype: StepType[Any], ctx: StepContext, params: StepParams, patience: float) -> Check:
    """A read-only type's verify polled until it holds, for at most `patience` seconds (its last
    answer)."""
    deadline = time.monotonic() + patience
    while True:
        result: Check = stype.verify(ctx, params, {})
        if result.ok or time.monotonic() + POLL > deadline:
            return result
        time.sleep(POLL)


def lag_checks(sw: SwitchInput, clients: Clients, patience: float) -> list[ReadinessCheck]:
    """Each enforced `replica_lag` step and guard, read-only."""
    out = []
    for step, name, type_name, raw in _with_guards(sw):
        if type_name != "replica_lag":
            continue
        stype, bound = registry.bind(type_name, raw)
        params: Any = bound
        if not getattr(params, "enforce", True):
            continue  # measure-only (an unplanned run's record of the RPO at risk)
        ctx = _context(sw, step, clients, patience + 10)
        what = f"{params.identifier} in {ctx.region_for(params)}"
        try:
            role = replica_role(ctx, params)
            if role == "missing":
                ok, detail = False, f"{what}: not found (the replica the runbook relies on)"
            elif role == "detached":
                ok, detail = False, f"{what}: replicates from nothing (no longer a secondary)"
            elif role == "writer":
                ok, detail = True, (f"{what} is the writer now: no lag to measure in this "
                                    "direction until it is a replica again")  # fmt: skip
            else:
                got = _poll(stype, ctx, params, patience)
                ok, detail = got.ok, got.detail
        except Exception as exc:
            ok, detail = False, f"{what}: {_failed(exc)}"
        out.append(_check(sw, "lag", f"lag {name}", ok, detail, step.id, what))
    return out


# ------------------------------------------------------------------------------- capacity
def capacity_checks(sw: SwitchInput, clients: Clients) -> list[ReadinessCheck]:
    """Each `asg_capacity` step: the group's maximum (or the one the step sets) takes the
    desired capacity the step sets."""
    out = []
    for step in sw.steps:
        if step.type != "asg_capacity":
            continue
        stype, params = registry.bind(step.type, step.params)
        p: Any = params
        ctx = _context(sw, step, clients, 10.0)
        region = ctx.region_for(params)
        what = f"Auto Scaling group {p.name} in {region}"
        try:
            found = ctx.clients.aws("autoscaling", region).describe_auto_scaling_groups(
                AutoScalingGroupNames=[p.name]
            )["AutoScalingGroups"]
            if not found:
                ok, detail = False, f"{what}: not found"
            else:
                g = found[0]
                hi = p.max if p.max is not None else g["MaxSize"]
                ok = p.desired <= hi
                source = "the step sets max" if p.max is not None else "max size"
                detail = (f"{what}: {source} {hi} {'>=' if ok else '<'} desired {p.desired} "
                          f"(now desired {g['DesiredCapacity']}, "
                          f"{len(g.get('Instances', []))} instances)")  # fmt: skip
        except Exception as exc:
            ok, detail = False, f"{what}: {_failed(exc)}"
        out.append(_check(sw, "capacity", f"capacity {step.id}", ok, detail, step.id,
                          _resource(stype, ctx, params)))  # fmt: skip
    return out


# --------------------------------------------------------------------------------- health
def _is_health(type_name: str, params: Any) -> bool:
    if type_name in HEALTH_TYPES:
        return True
    if type_name != "http_check":
        return False
    healthy = all(200 <= s < 400 for s in params.expect_status)
    return params.method in ("GET", "HEAD") and healthy


def health_checks(sw: SwitchInput, clients: Clients, patience: float) -> list[ReadinessCheck]:
    """The runbook's read-only health checks, as its steps state them."""
    out = []
    for step, name, type_name, raw in _with_guards(sw):
        if step.kind == StepKind.GATE or step.kind == StepKind.WAIT:
            continue
        stype, params = registry.bind(type_name, raw)
        if not _is_health(type_name, params):
            continue
        ctx = _context(sw, step, clients, patience + 10)
        try:
            got = _poll(stype, ctx, params, patience)
            ok, detail = got.ok, got.detail
        except Exception as exc:
            ok, detail = False, _failed(exc)
        out.append(_check(sw, "health", f"health {name}", ok, detail or stype.describe(params),
                          step.id, stype.describe(params)))  # fmt: skip
    return out


# ---------------------------------------------------------------------------- permissions
#: (region, namespace, group, resource, verb, name): name "" for any object.
Review = tuple[str, str, str, str, str, str]


def access_review(clients: Clients, review: Review) -> tuple[bool, str]:
    """A Kubernetes SelfSubjectAccessReview: whether this identity may do it, and why not."""
    from kubernetes import client as k8s

    region, namespace, group, resource, verb, name = review
    plural, _, sub = resource.partition("/")
    body = k8s.V1SelfSubjectAccessReview(
        spec=k8s.V1SelfSubjectAccessReviewSpec(
            resource_attributes=k8s.V1ResourceAttributes(
                namespace=namespace or None, group=group, resource=plural,
                subresource=sub or None, verb=verb, name=name or None,
            )
        )
    )  # fmt: skip
    answer = k8s.AuthorizationV1Api(clients.kube(region)).create_self_subject_access_review(body)
    status = answer.status
    return bool(status and status.allowed), (status.reason or "") if status else ""


def _k8s_regions(ctx: StepContext, params: Any) -> list[str]:
    """The clusters a Kubernetes step acts on: its own, and the one it reads a promotion token
    from (CloudNativePG)."""
    regions = [ctx.region_for(params)]
    token_from = getattr(params, "token_from", None)
    if token_from and token_from not in regions:
        regions.append(token_from)
    return regions


def permission_checks(
    sw: SwitchInput, clients: Clients, cache: dict[Review, tuple[bool, str]]
) -> list[ReadinessCheck]:
    """For each Kubernetes step (and guard), what its type needs for its params (`k8s_rules`:
    `failover rbac` grants exactly that), reviewed where it acts: each verb on each object the
    step names (a Role may list them), else on any object of the kind."""
    out = []
    for step, name, type_name, raw in _with_guards(sw):
        stype, params = registry.bind(type_name, raw)
        asks = [(r.namespace or "", r.group, r.resource, verb, obj)
                for r in stype.k8s_rules(params) if "*" not in (r.group, r.resource)
                for verb in r.verbs for obj in (r.names or ("",))]  # fmt: skip
        if not asks:
            continue
        ctx = _context(sw, step, clients, 10.0)
        denied, asked, error = [], 0, ""
        for region in _k8s_regions(ctx, params):
            for namespace, group, resource, verb, obj in asks:
                key: Review = (region, namespace, group, resource, verb, obj)
                try:
                    if key not in cache:
                        cache[key] = access_review(clients, key)
                except Exception as exc:
                    error = f"access review in {region}: {_failed(exc)}"
                    break
                asked += 1
                allowed, why = cache[key]
                if not allowed:
                    where = f" in {namespace}" if namespace else ""
                    api = f"{group}/" if group else ""
                    what = f"{api}{resource}/{obj}" if obj else f"{api}{resource}"
                    denied.append(f"{verb} {what}{where} ({region})"
                                  + (f": {why}" if why else ""))  # fmt: skip
        if error:
            ok, detail = False, error
        elif denied:
            ok, detail = False, "denied: " + "; ".join(denied)
        else:
            ok, detail = True, f"{asked} verb(s) allowed ({', '.join(_k8s_regions(ctx, params))})"
        out.append(_check(sw, "permissions", f"permissions {name}", ok, detail, step.id,
                          _resource(stype, ctx, params)))  # fmt: skip
    return out


# ----------------------------------------------------------------------------- activities
class ReadinessActivities:
    """The readiness activities of one worker, sharing its clients (and its Temporal client,
    for the previous result)."""

    def __init__(self, clients: Clients, temporal: Client | None = None) -> None:
        self.clients = clients
        self.temporal = temporal

    def all(self) -> list[Callable[..., Any]]:
        """Every activity, for the worker's registration."""
        return [self.check, self.previous]

    @activity.defn(name="readiness.check")
    def check(self, inp: ReadinessInput) -> ReadinessResult:
        """Every check of every direction (read-only)."""
        with Heartbeater() as heart:
            return run_checks(inp, self.clients, heart.beat)

    @activity.defn(name="readiness.previous")
    async def previous(self, call: PreviousCall) -> PreviousResult:
        """The result of the runbook's last completed readiness run (none: an empty answer)."""
        if self.temporal is None:
            raise ApplicationError("this worker has no Temporal client", non_retryable=True)
        me = activity.info().workflow_id
        query = (
            f"WorkflowType = '{WORKFLOW_TYPE}' AND FailoverRunbook = '{call.runbook}' "
            "AND ExecutionStatus = 'Completed'"
        )
        ended = [
            wf
            async for wf in self.temporal.list_workflows(query, limit=10)
            if wf.id != me and wf.status == WorkflowExecutionStatus.COMPLETED and wf.close_time
        ]
        if not ended:
            return PreviousResult()
        last = max(ended, key=lambda wf: wf.close_time or wf.start_time)  # the newest
        handle = self.temporal.get_workflow_handle(
            last.id, run_id=last.run_id, result_type=ReadinessResult
        )
        result: ReadinessResult = await handle.result()
        return PreviousResult(workflow_id=last.id, run_id=last.run_id, result=result)
