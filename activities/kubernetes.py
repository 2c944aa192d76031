"""Kubernetes step types, on the official client (one ApiClient per region's context)."""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from pydantic import Field

from activities.base import (
    Change,
    Check,
    RegionalParams,
    State,
    StateStep,
    StepContext,
    StepParams,
    StepType,
)
from activities.errors import StepError, classify


class ConfigMapFlagParams(RegionalParams):
    namespace: str = Field(description="Namespace of the ConfigMap.")
    name: str = Field(description="ConfigMap name.")
    key: str = Field(description="Key in the ConfigMap's data.")
    value: str = Field(description="Value to set.")


class ConfigMapFlag(StateStep):
    """Sets one key of a ConfigMap (a flag the application reads); undo restores or removes it."""

    name = "k8s_configmap_flag"
    Params = ConfigMapFlagParams
    verbs = (("", "configmaps", "get"), ("", "configmaps", "patch"))

    def _p(self, params: StepParams) -> ConfigMapFlagParams:
        assert isinstance(params, ConfigMapFlagParams)
        return params

    def _core(self, ctx: StepContext, p: ConfigMapFlagParams) -> Any:
        from kubernetes import client

        return client.CoreV1Api(ctx.clients.kube(ctx.region_for(p)))

    def describe(self, params: StepParams) -> str:
        p = self._p(params)
        return f"set {p.key}={p.value!r} in ConfigMap {p.namespace}/{p.name}{p.where}"

    def resource(self, ctx: StepContext, params: StepParams) -> str:
        p = self._p(params)
        return f"k8s:{ctx.region_for(p)}:configmap/{p.namespace}/{p.name}#{p.key}"

    def observe(self, ctx: StepContext, params: StepParams) -> State:
        p = self._p(params)
        try:
            cm = self._core(ctx, p).read_namespaced_config_map(p.name, p.namespace)
        except Exception as exc:
            raise classify(exc) from exc
        return {"value": (cm.data or {}).get(p.key)}

    def desired(self, ctx: StepContext, params: StepParams, current: State) -> State:
        return {"value": self._p(params).value}

    def write(self, ctx: StepContext, params: StepParams, state: State, current: State) -> None:
        p = self._p(params)
        # Strategic merge: a null value removes the key (it was absent before).
        body = {"data": {p.key: state.get("value")}}
        try:
            self._core(ctx, p).patch_namespaced_config_map(p.name, p.namespace, body)
        except Exception as exc:
            raise classify(exc) from exc


class K8sScaleParams(RegionalParams):
    kind: Literal["Deployment", "StatefulSet"] = "Deployment"
    names: list[str] = Field(min_length=1, description="Workloads to scale (same namespace).")
    namespace: str
    replicas: int = Field(ge=0)


class K8sScale(StateStep):
    """Scales Deployments/StatefulSets and waits until they are ready (observedGeneration,
    readyReplicas, Available); undo restores each one's replicas and waits again."""

    name = "k8s_scale"
    Params = K8sScaleParams
    poll_interval = 0.5
    verbs = (
        ("apps", "deployments", "get"),
        ("apps", "deployments/scale", "get"),
        ("apps", "deployments/scale", "patch"),
        ("apps", "statefulsets", "get"),
        ("apps", "statefulsets/scale", "get"),
        ("apps", "statefulsets/scale", "patch"),
    )

    def _p(self, params: StepParams) -> K8sScaleParams:
        assert isinstance(params, K8sScaleParams)
        return params

    def _apps(self, ctx: StepContext, p: K8sScaleParams) -> Any:
        from kubernetes import client

        return client.AppsV1Api(ctx.clients.kube(ctx.region_for(p)))

    def _kind(self, p: K8sScaleParams) -> str:
        return "deployment" if p.kind == "Deployment" else "stateful_set"

    def describe(self, params: StepParams) -> str:
        p = self._p(params)
        return f"scale {p.kind} {', '.join(p.names)} ({p.namespace}){p.where} to {p.replicas}"

    def resource(self, ctx: StepContext, params: StepParams) -> str:
        p = self._p(params)
        return f"k8s:{ctx.region_for(p)}:{p.kind.lower()}/{p.namespace}/{','.join(p.names)}"

    def observe(self, ctx: StepContext, params: StepParams) -> State:
        p = self._p(params)
        read = getattr(self._apps(ctx, p), f"read_namespaced_{self._kind(p)}_scale")
        replicas: dict[str, int] = {}
        for name in p.names:
            try:
                replicas[name] = int(read(name, p.namespace).spec.replicas or 0)
            except Exception as exc:
                raise classify(exc) from exc
        return {"replicas": replicas}

    def desired(self, ctx: StepContext, params: StepParams, current: State) -> State:
        p = self._p(params)
        return {"replicas": dict.fromkeys(p.names, p.replicas)}

    def write(self, ctx: StepContext, params: StepParams, state: State, current: State) -> None:
        p = self._p(params)
        patch = getattr(self._apps(ctx, p), f"patch_namespaced_{self._kind(p)}_scale")
        for name, replicas in state["replicas"].items():
            if (current.get("replicas") or {}).get(name) == replicas:
                continue
            try:
                patch(name, p.namespace, {"spec": {"replicas": replicas}})
            except Exception as exc:
                raise classify(exc) from exc

    def _check(self, ctx: StepContext, params: StepParams, wanted: State) -> Check:
        check = super()._check(ctx, params, wanted)
        if not check.ok:
            return check
        p = self._p(params)
        read = getattr(self._apps(ctx, p), f"read_namespaced_{self._kind(p)}")
        waiting = []
        for name, replicas in wanted["replicas"].items():
            try:
                obj = read(name, p.namespace)
            except Exception as exc:
                raise classify(exc) from exc
            status = obj.status
            ready = int(status.ready_replicas or 0)
            fresh = (status.observed_generation or 0) >= (obj.metadata.generation or 0)
            available = replicas == 0 or any(
                c.type == "Available" and c.status == "True" for c in status.conditions or []
            )
            if p.kind == "StatefulSet":
                available = True
            if not (fresh and ready == replicas and available):
                waiting.append(f"{name} {ready}/{replicas} ready")
        if waiting:
            return Check(ok=False, detail=", ".join(waiting))
        return Check(ok=True, detail="ready", observed=check.observed)


class CnpgRoleParams(RegionalParams):
    namespace: str
    name: str = Field(description="The CloudNativePG Cluster.")
    role: Literal["primary", "replica"] = Field(
        description="primary: promote this cluster; replica: demote it (its old primary "
        "publishes a demotion token)."
    )


class CnpgRole(StateStep):
    """Promotes or demotes a CloudNativePG replica cluster and waits for a healthy status."""

    name = "cnpg_role"
    Params = CnpgRoleParams
    poll_interval = 0.5
    verbs = (("postgresql.cnpg.io", "clusters", "get"), ("postgresql.cnpg.io", "clusters", "patch"))
    GROUP, VERSION, PLURAL = "postgresql.cnpg.io", "v1", "clusters"
    HEALTHY = "Cluster in healthy state"

    def _p(self, params: StepParams) -> CnpgRoleParams:
        assert isinstance(params, CnpgRoleParams)
        return params

    def _api(self, ctx: StepContext, p: CnpgRoleParams) -> Any:
        from kubernetes import client

        return client.CustomObjectsApi(ctx.clients.kube(ctx.region_for(p)))

    def _get(self, ctx: StepContext, p: CnpgRoleParams) -> dict[str, Any]:
        try:
            return dict(
                self._api(ctx, p).get_namespaced_custom_object(
                    self.GROUP, self.VERSION, p.namespace, self.PLURAL, p.name
                )
            )
        except Exception as exc:
            raise classify(exc) from exc

    def describe(self, params: StepParams) -> str:
        p = self._p(params)
        verb = "promote" if p.role == "primary" else "demote"
        return f"{verb} CloudNativePG cluster {p.namespace}/{p.name}{p.where}"

    def resource(self, ctx: StepContext, params: StepParams) -> str:
        p = self._p(params)
        return f"k8s:{ctx.region_for(p)}:clusters.postgresql.cnpg.io/{p.namespace}/{p.name}"

    def observe(self, ctx: StepContext, params: StepParams) -> State:
        obj = self._get(ctx, self._p(params))
        return {"replica": bool(((obj.get("spec") or {}).get("replica") or {}).get("enabled"))}

    def desired(self, ctx: StepContext, params: StepParams, current: State) -> State:
        return {"replica": self._p(params).role == "replica"}

    def write(self, ctx: StepContext, params: StepParams, state: State, current: State) -> None:
        p = self._p(params)
        try:
            self._api(ctx, p).patch_namespaced_custom_object(
                self.GROUP, self.VERSION, p.namespace, self.PLURAL, p.name,
                {"spec": {"replica": {"enabled": state["replica"]}}},
            )  # fmt: skip
        except Exception as exc:
            raise classify(exc) from exc

    def _check(self, ctx: StepContext, params: StepParams, wanted: State) -> Check:
        obj = self._get(ctx, self._p(params))
        spec_replica = bool(((obj.get("spec") or {}).get("replica") or {}).get("enabled"))
        status = obj.get("status") or {}
        ok = (
            spec_replica == wanted["replica"]
            and status.get("replicaCluster") == wanted["replica"]
            and status.get("phase") == self.HEALTHY
        )
        detail = f"replica={status.get('replicaCluster')}, phase {status.get('phase')!r}"
        return Check(ok=ok, detail=detail, observed={"replica": spec_replica} if ok else {})


class K8sJobParams(RegionalParams):
    namespace: str
    name: str = Field(description="Job name prefix; the run's step gets its own Job.")
    image: str
    command: list[str] = Field(default_factory=list)
    backoff_limit: int = Field(default=0, ge=0)
    annotations: dict[str, str] = Field(default_factory=dict, description="Pod annotations.")


class K8sJob(StepType):
    """Runs a Job (a smoke test) and waits for it to succeed; a failed Job fails the step with
    its reason. Undo deletes the Job."""

    name = "k8s_job"
    Params = K8sJobParams
    mutating = True
    poll_interval = 0.5
    verbs = (("batch", "jobs", "get"), ("batch", "jobs", "create"), ("batch", "jobs", "delete"))

    def _p(self, params: StepParams) -> K8sJobParams:
        assert isinstance(params, K8sJobParams)
        return params

    def _batch(self, ctx: StepContext, p: K8sJobParams) -> Any:
        from kubernetes import client

        return client.BatchV1Api(ctx.clients.kube(ctx.region_for(p)))

    def job_name(self, ctx: StepContext, p: K8sJobParams) -> str:
        """One Job per run and step: a retried apply finds it instead of starting another."""
        digest = hashlib.sha1(f"{ctx.run_id}/{ctx.step_id}".encode()).hexdigest()[:8]
        return f"{p.name}-{digest}"[:63]

    def describe(self, params: StepParams) -> str:
        p = self._p(params)
        return f"run Job {p.namespace}/{p.name} ({p.image}) and wait for success"

    def _read(self, ctx: StepContext, p: K8sJobParams) -> Any:
        try:
            return self._batch(ctx, p).read_namespaced_job(self.job_name(ctx, p), p.namespace)
        except Exception as exc:
            err = classify(exc)
            if err.kind == "NotFound":
                return None
            raise err from exc

    def apply(self, ctx: StepContext, params: StepParams, snapshot: State) -> None:
        p = self._p(params)
        if self._read(ctx, p) is not None:
            return
        body = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": self.job_name(ctx, p), "labels": {"failover/step": ctx.step_id}},
            "spec": {
                "backoffLimit": p.backoff_limit,
                "template": {
                    "metadata": {"annotations": p.annotations},
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [{"name": "job", "image": p.image, "command": p.command}],
                    },
                },
            },
        }
        try:
            self._batch(ctx, p).create_namespaced_job(p.namespace, body)
        except Exception as exc:
            raise classify(exc) from exc

    def verify(self, ctx: StepContext, params: StepParams, snapshot: State) -> Check:
        p = self._p(params)
        job = self._read(ctx, p)
        if job is None:
            return Check(ok=False, detail="job not found")
        status = job.status
        for cond in status.conditions or []:
            if cond.type == "Failed" and cond.status == "True":
                raise StepError(
                    "CheckFailed", f"Job {job.metadata.name} failed: {cond.reason}: {cond.message}"
                )
        if status.succeeded:
            return Check(ok=True, detail=f"Job {job.metadata.name} succeeded")
        return Check(ok=False, detail=f"Job {job.metadata.name} running")

    def undo(self, ctx: StepContext, params: StepParams, snapshot: State) -> None:
        p = self._p(params)
        if self._read(ctx, p) is None:
            return
        try:
            self._batch(ctx, p).delete_namespaced_job(
                self.job_name(ctx, p), p.namespace, propagation_policy="Background"
            )
        except Exception as exc:
            err = classify(exc)
            if err.kind != "NotFound":
                raise err from exc

    def verify_undo(self, ctx: StepContext, params: StepParams, snapshot: State) -> Check:
        gone = self._read(ctx, self._p(params)) is None
        return Check(ok=gone, detail="job deleted" if gone else "job still there")

    def dry_run(self, ctx: StepContext, params: StepParams) -> list[Change]:
        p = self._p(params)
        return [Change(resource=f"k8s:job/{p.namespace}/{self.job_name(ctx, p)}",
                       before=None, after={"image": p.image})]  # fmt: skip


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


class K8sPatch(StateStep):
    """Patches any object (JSON merge patch); the snapshot is exactly the fields it touches, so
    undo puts them back (and removes the ones that were absent)."""

    name = "k8s_patch"
    Params = K8sPatchParams
    verbs = (("*", "*", "get"), ("*", "*", "patch"))

    def _p(self, params: StepParams) -> K8sPatchParams:
        assert isinstance(params, K8sPatchParams)
        return params

    def _api(self, ctx: StepContext, p: K8sPatchParams) -> tuple[Any, Any]:
        from kubernetes import dynamic

        try:
            dyn = dynamic.DynamicClient(ctx.clients.kube(ctx.region_for(p)))
            return dyn, dyn.resources.get(api_version=p.api_version, kind=p.kind)
        except Exception as exc:
            raise classify(exc) from exc

    def describe(self, params: StepParams) -> str:
        p = self._p(params)
        fields = ", ".join(".".join(k) for k in _leaves(p.patch))
        return f"patch {p.kind} {p.namespace}/{p.name}: {fields}"

    def resource(self, ctx: StepContext, params: StepParams) -> str:
        p = self._p(params)
        return f"k8s:{ctx.region_for(p)}:{p.kind.lower()}/{p.namespace}/{p.name}"

    def observe(self, ctx: StepContext, params: StepParams) -> State:
        p = self._p(params)
        dyn, res = self._api(ctx, p)
        try:
            obj = dyn.get(resource=res, name=p.name, namespace=p.namespace).to_dict()
        except Exception as exc:
            raise classify(exc) from exc
        state: State = {}
        for path in _leaves(p.patch):
            cur: Any = obj
            for key in path:
                cur = cur.get(key) if isinstance(cur, dict) else None
            state[_pointer(path)] = cur
        return state

    def desired(self, ctx: StepContext, params: StepParams, current: State) -> State:
        return {_pointer(k): v for k, v in _leaves(self._p(params).patch).items()}

    def write(self, ctx: StepContext, params: StepParams, state: State, current: State) -> None:
        p = self._p(params)
        body: dict[str, Any] = {}
        for path, value in state.items():
            node = body
            *parents, last = [k.replace("~1", "/").replace("~0", "~") for k in path.split("/")]
            for key in parents:
                node = node.setdefault(key, {})
            node[last] = value
        dyn, res = self._api(ctx, p)
        try:
            dyn.patch(resource=res, name=p.name, namespace=p.namespace, body=body,
                      content_type="application/merge-patch+json")  # fmt: skip
        except Exception as exc:
            raise classify(exc) from exc
