"""Chaos Mesh: a game day's fault on Kubernetes, as a Chaos Mesh custom object.

apply creates the object (HTTPChaos, NetworkChaos, PodChaos, ... in `chaos-mesh.org/v1alpha1`),
named per run and step so a retried apply finds it; verify waits for Chaos Mesh's `AllInjected`
condition. undo deletes it and verify_undo waits until it is *gone*: Chaos Mesh recovers the
targets in a finalizer before the object disappears, and a recovery that fails leaves the object
(and the fault) behind (chaos-mesh/chaos-mesh#2449). Not seeing it gone is a failed removal, never
a success.
"""

from __future__ import annotations

import hashlib
from typing import Any

from pydantic import Field, field_validator

from activities.base import Change, Check, RegionalParams, State, StepContext, StepParams, StepType
from activities.errors import StepError, classify

GROUP, VERSION = "chaos-mesh.org", "v1alpha1"
PLURALS = {
    "PodChaos": "podchaos",
    "NetworkChaos": "networkchaos",
    "HTTPChaos": "httpchaos",
    "StressChaos": "stresschaos",
    "IOChaos": "iochaos",
    "TimeChaos": "timechaos",
    "DNSChaos": "dnschaos",
}


class ChaosMeshParams(RegionalParams):
    kind: str = Field(description=f"The chaos kind: {', '.join(PLURALS)}.")
    namespace: str
    name: str = Field(description="Name prefix; the run's step gets its own object.")
    spec: dict[str, Any] = Field(description="The chaos object's spec, as Chaos Mesh documents it.")

    @field_validator("kind")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in PLURALS:
            raise ValueError(f"kind must be one of {', '.join(PLURALS)} (got {v!r})")
        return v


class ChaosMeshFault(StepType):
    """Creates a Chaos Mesh object and waits until it is injected; deletes it on undo and waits
    until it is gone (the targets recovered)."""

    name = "chaos_mesh"
    mutating = True
    fault = True
    Params = ChaosMeshParams
    poll_interval = 0.5
    verbs = tuple(
        (GROUP, plural, verb) for plural in PLURALS.values() for verb in ("get", "create", "delete")
    )

    def _p(self, params: StepParams) -> ChaosMeshParams:
        assert isinstance(params, ChaosMeshParams)
        return params

    def _api(self, ctx: StepContext, p: ChaosMeshParams) -> Any:
        from kubernetes import client

        return client.CustomObjectsApi(ctx.clients.kube(ctx.region_for(p)))

    @staticmethod
    def object_name(ctx: StepContext, p: ChaosMeshParams) -> str:
        digest = hashlib.sha1(f"{ctx.run_id}/{ctx.step_id}".encode()).hexdigest()[:8]
        return f"{p.name}-{digest}"[:63]

    def describe(self, params: StepParams) -> str:
        p = self._p(params)
        return f"Chaos Mesh {p.kind} {p.namespace}/{p.name}{p.where}"

    def _read(self, ctx: StepContext, p: ChaosMeshParams) -> dict[str, Any] | None:
        try:
            obj: dict[str, Any] = self._api(ctx, p).get_namespaced_custom_object(
                GROUP, VERSION, p.namespace, PLURALS[p.kind], self.object_name(ctx, p)
            )
            return obj
        except Exception as exc:
            err = classify(exc)
            if err.kind == "NotFound":
                return None
            raise err from exc

    def snapshot(self, ctx: StepContext, params: StepParams) -> State:
        return {}

    def apply(self, ctx: StepContext, params: StepParams, snapshot: State) -> None:
        p = self._p(params)
        if self._read(ctx, p) is not None:
            return
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": p.kind,
            "metadata": {
                "name": self.object_name(ctx, p),
                "namespace": p.namespace,
                "labels": {"failover/step": ctx.step_id},
            },
            "spec": p.spec,
        }
        try:
            self._api(ctx, p).create_namespaced_custom_object(
                GROUP, VERSION, p.namespace, PLURALS[p.kind], body
            )
        except Exception as exc:
            raise classify(exc) from exc

    def verify(self, ctx: StepContext, params: StepParams, snapshot: State) -> Check:
        p = self._p(params)
        obj = self._read(ctx, p)
        if obj is None:
            return Check(ok=False, detail="not created yet")
        conditions = {c.get("type"): c.get("status") for c in
                      (obj.get("status") or {}).get("conditions") or []}  # fmt: skip
        name = obj["metadata"]["name"]
        if conditions.get("AllRecovered") == "True" and conditions.get("AllInjected") != "True":
            raise StepError("FaultEnded", f"{p.kind} {name} already recovered (its duration?)")
        injected = conditions.get("AllInjected") == "True"
        return Check(
            ok=injected,
            detail=f"{p.kind} {name} {'injected' if injected else 'not injected yet'}",
            observed={"object": name, "conditions": conditions},
        )

    def undo(self, ctx: StepContext, params: StepParams, snapshot: State) -> None:
        p = self._p(params)
        if self._read(ctx, p) is None:
            return
        try:
            self._api(ctx, p).delete_namespaced_custom_object(
                GROUP, VERSION, p.namespace, PLURALS[p.kind], self.object_name(ctx, p)
            )
        except Exception as exc:
            err = classify(exc)
            if err.kind != "NotFound":
                raise err from exc

    def verify_undo(self, ctx: StepContext, params: StepParams, snapshot: State) -> Check:
        p = self._p(params)
        obj = self._read(ctx, p)
        if obj is None:
            return Check(ok=True, detail=f"{p.kind} deleted: targets recovered")
        deleting = "being deleted (recovering)" if obj["metadata"].get(
            "deletionTimestamp") else "still there"  # fmt: skip
        return Check(ok=False, detail=f"{p.kind} {obj['metadata']['name']} {deleting}")

    def dry_run(self, ctx: StepContext, params: StepParams) -> list[Change]:
        p = self._p(params)
        return [Change(resource=f"k8s:{p.kind}/{p.namespace}/{self.object_name(ctx, p)}",
                       before=None, after={"spec": p.spec})]  # fmt: skip
