"""Kubernetes step types, on the official client (one ApiClient per region's context)."""

from __future__ import annotations

import hashlib
import time
from typing import Any, Literal, TypeVar

import structlog
from pydantic import Field, model_validator

from activities.arns import K8sRule
from activities.base import (
    Change,
    Check,
    RegionalParams,
    State,
    StateStep,
    StepContext,
    StepParams,
)
from activities.errors import StepError, missing_ok

log = structlog.get_logger("failover.step")


class ConfigMapFlagParams(RegionalParams):
    namespace: str = Field(description="Namespace of the ConfigMap.")
    name: str = Field(description="ConfigMap name.")
    key: str = Field(description="Key in the ConfigMap's data.")
    value: str = Field(description="Value to set.")


class ConfigMapFlag(StateStep[ConfigMapFlagParams]):
    """Sets one key of a ConfigMap (a flag the application reads); undo restores or removes it."""

    name = "k8s_configmap_flag"
    verbs = (("", "configmaps", "get"), ("", "configmaps", "patch"))

    def _core(self, ctx: StepContext, p: ConfigMapFlagParams) -> Any:
        from kubernetes import client

        return client.CoreV1Api(ctx.clients.kube(ctx.region_for(p)))

    def describe(self, params: ConfigMapFlagParams) -> str:
        p = params
        return f"set {p.key}={p.value!r} in ConfigMap {p.namespace}/{p.name}{p.where}"

    def k8s_rules(self, params: ConfigMapFlagParams) -> list[K8sRule]:
        return [K8sRule(params.namespace, "", "configmaps", ("get", "patch"), (params.name,))]

    def resource(self, ctx: StepContext, params: ConfigMapFlagParams) -> str:
        p = params
        return f"k8s:{ctx.region_for(p)}:configmap/{p.namespace}/{p.name}#{p.key}"

    def observe(self, ctx: StepContext, params: ConfigMapFlagParams) -> State:
        cm = self._core(ctx, params).read_namespaced_config_map(params.name, params.namespace)
        return {"value": (cm.data or {}).get(params.key)}

    def desired(self, ctx: StepContext, params: ConfigMapFlagParams, current: State) -> State:
        return {"value": params.value}

    def write(
        self, ctx: StepContext, params: ConfigMapFlagParams, state: State, current: State
    ) -> None:
        # Strategic merge: a null value removes the key (it was absent before).
        body = {"data": {params.key: state.get("value")}}
        self._core(ctx, params).patch_namespaced_config_map(params.name, params.namespace, body)


#: The longest a rollout's verification waits on a watch of the workload before it reads again
#: anyway (a watch's timeout is in whole seconds).
WATCH_SECONDS = 2


class K8sScaleParams(RegionalParams):
    kind: Literal["Deployment", "StatefulSet"] = "Deployment"
    names: list[str] = Field(min_length=1, description="Workloads to scale (same namespace).")
    namespace: str
    replicas: int = Field(ge=0)


class K8sScale(StateStep[K8sScaleParams]):
    """Scales Deployments/StatefulSets and waits until they are ready (observedGeneration,
    readyReplicas, Available); undo restores each one's replicas and waits again.

    Between two reads of a rollout that is not ready yet it watches the first workload still
    waiting, from the version it read: a change (a Pod ready, the status updated) is seen at once,
    and nothing is read meanwhile. A watch that is refused (no `watch` permission), expired or cut
    falls back to the polls' pause."""

    name = "k8s_scale"
    poll_interval = 0.5
    verbs = (
        ("apps", "deployments", "get"),
        ("apps", "deployments", "watch"),
        ("apps", "deployments/scale", "get"),
        ("apps", "deployments/scale", "patch"),
        ("apps", "statefulsets", "get"),
        ("apps", "statefulsets", "watch"),
        ("apps", "statefulsets/scale", "get"),
        ("apps", "statefulsets/scale", "patch"),
    )

    def _apps(self, ctx: StepContext, p: K8sScaleParams) -> Any:
        from kubernetes import client

        return client.AppsV1Api(ctx.clients.kube(ctx.region_for(p)))

    @staticmethod
    def _kind(p: K8sScaleParams) -> str:
        return "deployment" if p.kind == "Deployment" else "stateful_set"

    def describe(self, params: K8sScaleParams) -> str:
        p = params
        return f"scale {p.kind} {', '.join(p.names)} ({p.namespace}){p.where} to {p.replicas}"

    def k8s_rules(self, params: K8sScaleParams) -> list[K8sRule]:
        plural = "deployments" if params.kind == "Deployment" else "statefulsets"
        names, ns = tuple(params.names), params.namespace
        return [
            K8sRule(ns, "apps", plural, ("get", "watch"), names),
            K8sRule(ns, "apps", f"{plural}/scale", ("get", "patch"), names),
        ]

    def resource(self, ctx: StepContext, params: K8sScaleParams) -> str:
        p = params
        return f"k8s:{ctx.region_for(p)}:{p.kind.lower()}/{p.namespace}/{','.join(p.names)}"

    def observe(self, ctx: StepContext, params: K8sScaleParams) -> State:
        read = getattr(self._apps(ctx, params), f"read_namespaced_{self._kind(params)}_scale")
        return {
            "replicas": {
                name: int(read(name, params.namespace).spec.replicas or 0) for name in params.names
            }
        }

    def desired(self, ctx: StepContext, params: K8sScaleParams, current: State) -> State:
        return {"replicas": dict.fromkeys(params.names, params.replicas)}

    def write(self, ctx: StepContext, params: K8sScaleParams, state: State, current: State) -> None:
        patch = getattr(self._apps(ctx, params), f"patch_namespaced_{self._kind(params)}_scale")
        for name, replicas in state["replicas"].items():
            if (current.get("replicas") or {}).get(name) != replicas:
                patch(name, params.namespace, {"spec": {"replicas": replicas}})

    def ready(
        self, ctx: StepContext, params: K8sScaleParams, observed: State, wanted: State
    ) -> Check:
        read = getattr(self._apps(ctx, params), f"read_namespaced_{self._kind(params)}")
        waiting = []
        cursor: dict[str, str] | None = None  # the first one waiting: what `pause` watches
        for name, replicas in wanted["replicas"].items():
            obj = read(name, params.namespace)
            status = obj.status
            ready = int(status.ready_replicas or 0)
            fresh = (status.observed_generation or 0) >= (obj.metadata.generation or 0)
            available = (
                params.kind == "StatefulSet"
                or replicas == 0
                or any(
                    c.type == "Available" and c.status == "True" for c in status.conditions or []
                )
            )
            if not (fresh and ready == replicas and available):
                waiting.append(f"{name} {ready}/{replicas} ready")
                if cursor is None and obj.metadata.resource_version:
                    cursor = {"name": name, "resource_version": obj.metadata.resource_version}
        if waiting:
            return Check(ok=False, detail=", ".join(waiting), observed={"watch": cursor})
        return Check(ok=True, detail="ready")

    def pause(
        self, ctx: StepContext, params: K8sScaleParams, last: Check, seconds: float, until: float
    ) -> None:
        cursor = last.observed.get("watch")
        window = min(WATCH_SECONDS, int(until - time.monotonic()))
        refused = ("k8s_scale: watch refused", ctx.region_for(params))
        if not cursor or window < 1 or refused in ctx.memo:
            super().pause(ctx, params, last, seconds, until)
            return
        from kubernetes import watch

        lister = getattr(self._apps(ctx, params), f"list_namespaced_{self._kind(params)}")
        w = watch.Watch()
        try:
            for _ in w.stream(
                lister,
                params.namespace,
                field_selector=f"metadata.name={cursor['name']}",
                resource_version=cursor["resource_version"],
                timeout_seconds=window,
                _request_timeout=(5.0, window + 5.0),
            ):
                break  # it changed: read again
        except Exception as exc:  # refused, expired (410) or cut: the polls' pause instead
            status = getattr(exc, "status", None)
            if status in (401, 403, 404, 405):  # not allowed here: polled from now on
                ctx.memo[refused] = True
                log.info("watch refused: polling", step_id=ctx.step_id, status=status)
            time.sleep(seconds)
        finally:
            w.stop()


class CnpgRoleParams(RegionalParams):
    namespace: str
    name: str = Field(description="The CloudNativePG Cluster (in the step's region).")
    role: Literal["primary", "replica"] = Field(
        description="primary: promote this cluster; replica: demote it (it then publishes a "
        "demotion token)."
    )
    primary: str = Field(
        description="The topology name (spec.replica.self) of the cluster that is the primary "
        "after the step, e.g. shop-db-${{ to_region }}."
    )
    token_from: str | None = Field(
        default=None,
        description="role primary: the region of the demoted primary whose status.demotionToken "
        "the promotion carries (no data loss). None: promote without a token (an unplanned "
        "promotion, which may lose writes: mark the step irreversible, behind a gate).",
    )

    @model_validator(mode="after")
    def _token_for_promotion(self) -> CnpgRoleParams:
        if self.token_from is not None and self.role != "primary":
            raise ValueError("token_from goes with role: primary")
        return self


class CnpgRole(StateStep[CnpgRoleParams]):
    """Promotes or demotes a CloudNativePG cluster of a distributed topology (1.24+) through
    spec.replica.primary, and waits for a healthy status. A planned promotion carries the
    demoted primary's demotion token (CloudNativePG then promotes without data loss); without
    one it is an unplanned promotion."""

    name = "cnpg_role"
    poll_interval = 0.5
    verbs = (("postgresql.cnpg.io", "clusters", "get"), ("postgresql.cnpg.io", "clusters", "patch"))
    GROUP, VERSION, PLURAL = "postgresql.cnpg.io", "v1", "clusters"
    HEALTHY = "Cluster in healthy state"

    def _api(self, ctx: StepContext, region: str) -> Any:
        from kubernetes import client

        return client.CustomObjectsApi(ctx.clients.kube(region))

    def _cluster(self, ctx: StepContext, p: CnpgRoleParams, region: str) -> dict[str, Any]:
        obj: dict[str, Any] = self._api(ctx, region).get_namespaced_custom_object(
            self.GROUP, self.VERSION, p.namespace, self.PLURAL, p.name
        )
        return obj

    def describe(self, params: CnpgRoleParams) -> str:
        verb = "promote" if params.role == "primary" else "demote"
        how = f" with {params.token_from}'s demotion token" if params.token_from else ""
        if params.role == "primary" and not params.token_from:
            how = " WITHOUT a demotion token (writes not replicated are lost)"
        return f"{verb} CloudNativePG cluster {params.namespace}/{params.name}{params.where}{how}"

    def k8s_rules(self, params: CnpgRoleParams) -> list[K8sRule]:
        # its Cluster (and, promoting with a token, the same Cluster in the token's region)
        return [K8sRule(params.namespace, self.GROUP, self.PLURAL, ("get", "patch"),
                        (params.name,))]  # fmt: skip

    def resource(self, ctx: StepContext, params: CnpgRoleParams) -> str:
        p = params
        return f"k8s:{ctx.region_for(p)}:clusters.postgresql.cnpg.io/{p.namespace}/{p.name}"

    def observe(self, ctx: StepContext, params: CnpgRoleParams) -> State:
        obj = self._cluster(ctx, params, ctx.region_for(params))
        topology = (obj.get("spec") or {}).get("replica") or {}
        status = obj.get("status") or {}
        return {
            "primary": topology.get("primary"),
            "self": topology.get("self"),
            "status_replica": bool(status.get("replicaCluster")),
            "phase": status.get("phase"),
        }

    def snapshot(self, ctx: StepContext, params: CnpgRoleParams) -> State:
        return {"primary": self.settled(ctx, params)["primary"]}

    def desired(self, ctx: StepContext, params: CnpgRoleParams, current: State) -> State:
        return {"primary": params.primary}

    def in_transition(self, observed: State) -> bool:
        """The operator has not caught up with the spec (promotion or demotion under way)."""
        replica = observed.get("primary") != observed.get("self")
        refused = str(observed.get("phase") or "").startswith("Promotion refused")
        return bool(observed.get("status_replica") != replica) and not refused

    def heading_to(self, observed: State, wanted: State) -> bool:
        return bool(observed.get("primary") == wanted.get("primary"))

    def dead_end(self, observed: State, wanted: State) -> StepError | None:
        phase = str(observed.get("phase") or "")
        if phase.startswith("Promotion refused") and observed.get("primary") == wanted["primary"]:
            return StepError("InvalidState", f"CloudNativePG: {phase}", retryable=False)
        return None

    def write(self, ctx: StepContext, params: CnpgRoleParams, state: State, current: State) -> None:
        topology: dict[str, Any] = {"primary": state["primary"], "promotionToken": None}
        promoting = state["primary"] == current.get("self")
        if promoting and params.token_from and state["primary"] == params.primary:
            topology["promotionToken"] = self._demotion_token(ctx, params)
        self._api(ctx, ctx.region_for(params)).patch_namespaced_custom_object(
            self.GROUP, self.VERSION, params.namespace, self.PLURAL, params.name,
            {"spec": {"replica": topology}},
        )  # fmt: skip

    def _demotion_token(self, ctx: StepContext, p: CnpgRoleParams) -> str:
        """The demoted primary's token (waited for: it is published once the demotion is
        done)."""
        assert p.token_from is not None
        seen: dict[str, str] = {}

        def published() -> tuple[bool, str]:
            status = self._cluster(ctx, p, p.token_from or "").get("status") or {}
            seen["token"] = status.get("demotionToken") or ""
            return bool(seen["token"]), f"no demotion token in {p.token_from} yet"

        ctx.wait("demotion token", published, self.poll_interval)
        return seen["token"]

    def ready(
        self, ctx: StepContext, params: CnpgRoleParams, observed: State, wanted: State
    ) -> Check:
        ok = observed.get("phase") == self.HEALTHY
        role = "replica" if observed.get("status_replica") else "primary"
        return Check(ok=ok, detail=f"{role}, phase {observed.get('phase')!r}")


P = TypeVar("P", bound=StepParams)


class RunObject(StateStep[P]):
    """A step whose state is whether one object of this run exists (a Job, a Chaos Mesh
    object), named from the run and the step so that a repeated create finds it: `absent`,
    `present` (with what the type reports of it) or `deleting`. Apply creates it, undo deletes it
    and waits until it is gone."""

    def snapshot(self, ctx: StepContext, params: P) -> State:
        return {"object": "absent"}

    def desired(self, ctx: StepContext, params: P, current: State) -> State:
        return {"object": "present"}

    def matches(self, observed: State, wanted: State) -> bool:
        return bool(observed["object"] == wanted.get("object", "absent"))

    def in_transition(self, observed: State) -> bool:
        return bool(observed["object"] == "deleting")

    def heading_to(self, observed: State, wanted: State) -> bool:
        return wanted.get("object", "absent") == "absent"


class K8sJobParams(RegionalParams):
    namespace: str
    name: str = Field(description="Job name prefix; the run's step gets its own Job.")
    image: str
    command: list[str] = Field(default_factory=list)
    backoff_limit: int = Field(default=0, ge=0)
    annotations: dict[str, str] = Field(default_factory=dict, description="Pod annotations.")


class K8sJob(RunObject[K8sJobParams]):
    """Runs a Job (a smoke test) and waits for it to succeed; a failed Job fails the step with
    its reason. Undo deletes the Job."""

    name = "k8s_job"
    idempotent_write = False
    poll_interval = 0.5
    verbs = (("batch", "jobs", "get"), ("batch", "jobs", "create"), ("batch", "jobs", "delete"))

    def _batch(self, ctx: StepContext, p: K8sJobParams) -> Any:
        from kubernetes import client

        return client.BatchV1Api(ctx.clients.kube(ctx.region_for(p)))

    def job_name(self, ctx: StepContext, p: K8sJobParams) -> str:
        """One Job per run and step: a retried apply finds it instead of starting another."""
        digest = hashlib.sha1(f"{ctx.run_id}/{ctx.step_id}".encode()).hexdigest()[:8]
        return f"{p.name}-{digest}"[:63]

    def describe(self, params: K8sJobParams) -> str:
        return f"run Job {params.namespace}/{params.name} ({params.image}) and wait for success"

    def resource(self, ctx: StepContext, params: K8sJobParams) -> str:
        return f"k8s:{ctx.region_for(params)}:job/{params.namespace}/{self.job_name(ctx, params)}"

    def observe(self, ctx: StepContext, params: K8sJobParams) -> State:
        name = self.job_name(ctx, params)
        job = missing_ok(lambda: self._batch(ctx, params).read_namespaced_job(
            name, params.namespace))  # fmt: skip
        if job is None:
            return {"object": "absent"}
        if job.metadata.deletion_timestamp:
            return {"object": "deleting"}
        failed = [c for c in job.status.conditions or []
                  if c.type == "Failed" and c.status == "True"]  # fmt: skip
        return {
            "object": "present",
            "succeeded": bool(job.status.succeeded),
            "failed": f"{failed[0].reason}: {failed[0].message}" if failed else None,
        }

    def dead_end(self, observed: State, wanted: State) -> StepError | None:
        if wanted.get("object") == "present" and observed.get("failed"):
            return StepError("CheckFailed", f"Job failed: {observed['failed']}")
        return None

    def write(self, ctx: StepContext, params: K8sJobParams, state: State, current: State) -> None:
        batch, name = self._batch(ctx, params), self.job_name(ctx, params)
        if state["object"] == "absent":
            batch.delete_namespaced_job(name, params.namespace, propagation_policy="Background")
            return
        batch.create_namespaced_job(params.namespace, {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": name, "labels": {"failover/step": ctx.step_id}},
            "spec": {
                "backoffLimit": params.backoff_limit,
                "template": {
                    "metadata": {"annotations": params.annotations},
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [
                            {"name": "job", "image": params.image, "command": params.command}
                        ],
                    },
                },
            },
        })  # fmt: skip

    def ready(
        self, ctx: StepContext, params: K8sJobParams, observed: State, wanted: State
    ) -> Check:
        name = self.job_name(ctx, params)
        if wanted.get("object") != "present":
            return Check(ok=True, detail=f"Job {name} deleted")
        if observed.get("succeeded"):
            return Check(ok=True, detail=f"Job {name} succeeded")
        return Check(ok=False, detail=f"Job {name} running")

    def dry_run(self, ctx: StepContext, params: K8sJobParams) -> list[Change]:
        return [Change(resource=self.resource(ctx, params), before=None,
                       after={"image": params.image})]  # fmt: skip


class K8sPatchParams(RegionalParams):
    api_version: str = Field(description="e.g. v1, apps/v1, postgresql.cnpg.io/v1")
    kind: str = Field(description="e.g. Deployment")
    namespace: str
    name: str
    patch: dict[str, Any] = Field(description="A JSON merge patch (RFC 7386); null removes.")


def _leaves(value: dict[str, Any], prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    """The leaf paths a merge patch sets (lists and nulls are leaves: a merge patch replaces)."""
    out: dict[tuple[str, ...], Any] = {}
    for key, v in value.items():
        if isinstance(v, dict) and v:
            out |= _leaves(v, (*prefix, key))
        else:
            out[(*prefix, key)] = v
    return out


def _pointer(path: tuple[str, ...]) -> str:
    """A JSON-pointer-like key (annotation keys contain '/')."""
    return "/".join(k.replace("~", "~0").replace("/", "~1") for k in path)


def guess_plural(kind: str) -> str:
    """A kind's resource name as Kubernetes itself guesses it (`meta.UnsafeGuessKindToResource`):
    lowercase; -s gets -es, a -y after a consonant becomes -ies, else -s."""
    k = kind.lower()
    if not k:
        return k
    if k.endswith("s"):
        return k + "es"
    if k.endswith("y") and k[-2:-1] not in ("a", "e", "i", "o", "u"):
        return k[:-1] + "ies"
    return k + "s"


class K8sPatch(StateStep[K8sPatchParams]):
    """Patches any object (JSON merge patch); the snapshot is exactly the fields it touches, so
    undo puts them back (and removes the ones that were absent)."""

    name = "k8s_patch"
    verbs = (("*", "*", "get"), ("*", "*", "patch"))

    def _api(self, ctx: StepContext, p: K8sPatchParams) -> tuple[Any, Any]:
        from kubernetes import dynamic

        dyn = dynamic.DynamicClient(ctx.clients.kube(ctx.region_for(p)))
        return dyn, dyn.resources.get(api_version=p.api_version, kind=p.kind)

    def describe(self, params: K8sPatchParams) -> str:
        fields = ", ".join(".".join(k) for k in _leaves(params.patch))
        return f"patch {params.kind} {params.namespace}/{params.name}: {fields}"

    def k8s_rules(self, params: K8sPatchParams) -> list[K8sRule]:
        group = params.api_version.rpartition("/")[0]  # "v1": the core group ""
        return [K8sRule(params.namespace, group, guess_plural(params.kind), ("get", "patch"),
                        (params.name,))]  # fmt: skip

    def resource(self, ctx: StepContext, params: K8sPatchParams) -> str:
        p = params
        return f"k8s:{ctx.region_for(p)}:{p.kind.lower()}/{p.namespace}/{p.name}"

    def observe(self, ctx: StepContext, params: K8sPatchParams) -> State:
        dyn, res = self._api(ctx, params)
        obj = dyn.get(resource=res, name=params.name, namespace=params.namespace).to_dict()
        state: State = {}
        for path in _leaves(params.patch):
            cur: Any = obj
            for key in path:
                cur = cur.get(key) if isinstance(cur, dict) else None
            state[_pointer(path)] = cur
        return state

    def desired(self, ctx: StepContext, params: K8sPatchParams, current: State) -> State:
        return {_pointer(k): v for k, v in _leaves(params.patch).items()}

    def write(self, ctx: StepContext, params: K8sPatchParams, state: State, current: State) -> None:
        body: dict[str, Any] = {}
        for path, value in state.items():
            node = body
            *parents, last = [k.replace("~1", "/").replace("~0", "~") for k in path.split("/")]
            for key in parents:
                node = node.setdefault(key, {})
            node[last] = value
        dyn, res = self._api(ctx, params)
        dyn.patch(resource=res, name=params.name, namespace=params.namespace, body=body,
                  content_type="application/merge-patch+json")  # fmt: skip
