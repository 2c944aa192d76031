"""Chaos Mesh: a game day's fault on Kubernetes, as a Chaos Mesh custom object.

apply creates the object (HTTPChaos, NetworkChaos, PodChaos, ... in `chaos-mesh.org/v1alpha1`),
named per run and step so a retried or repeated create finds it; verify waits for Chaos Mesh's
`AllInjected` condition. undo deletes it and verify_undo waits until it is *gone*: Chaos Mesh
recovers the targets in a finalizer before the object disappears, and a recovery that fails leaves
the object (and the fault) behind (chaos-mesh/chaos-mesh#2449). Not seeing it gone is a failed
removal, never a success.
"""

from __future__ import annotations

import hashlib
from typing import Any

from pydantic import Field, field_validator

from activities.arns import K8sRule
from activities.base import Change, Check, RegionalParams, State, StepContext
from activities.errors import StepError, missing_ok
from activities.kubernetes import RunObject

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


class ChaosMeshFault(RunObject[ChaosMeshParams]):
    """Creates a Chaos Mesh object and waits until it is injected; deletes it on undo and waits
    until it is gone (the targets recovered)."""

    name = "chaos_mesh"
    fault = True
    poll_interval = 0.5
    verbs = tuple(
        (GROUP, plural, verb) for plural in PLURALS.values() for verb in ("get", "create", "delete")
    )

    def _api(self, ctx: StepContext, p: ChaosMeshParams) -> Any:
        from kubernetes import client

        return client.CustomObjectsApi(ctx.clients.kube(ctx.region_for(p)))

    @staticmethod
    def object_name(ctx: StepContext, p: ChaosMeshParams) -> str:
        digest = hashlib.sha1(f"{ctx.run_id}/{ctx.step_id}".encode()).hexdigest()[:8]
        return f"{p.name}-{digest}"[:63]

    def describe(self, params: ChaosMeshParams) -> str:
        return f"Chaos Mesh {params.kind} {params.namespace}/{params.name}{params.where}"

    def k8s_rules(self, params: ChaosMeshParams) -> list[K8sRule]:
        # objects named from the run: any of that kind in the namespace
        return [K8sRule(params.namespace, GROUP, PLURALS[params.kind],
                        ("get", "create", "delete"))]  # fmt: skip

    def resource(self, ctx: StepContext, params: ChaosMeshParams) -> str:
        p = params
        return f"k8s:{ctx.region_for(p)}:{PLURALS[p.kind]}/{p.namespace}/{self.object_name(ctx, p)}"

    def observe(self, ctx: StepContext, params: ChaosMeshParams) -> State:
        api, name = self._api(ctx, params), self.object_name(ctx, params)
        obj = missing_ok(lambda: api.get_namespaced_custom_object(
            GROUP, VERSION, params.namespace, PLURALS[params.kind], name))  # fmt: skip
        if obj is None:
            return {"object": "absent"}
        if obj["metadata"].get("deletionTimestamp"):
            return {"object": "deleting", "name": name}
        conditions = {c.get("type"): c.get("status") for c in
                      (obj.get("status") or {}).get("conditions") or []}  # fmt: skip
        return {"object": "present", "name": name, "conditions": conditions}

    def transition(self, observed: State) -> str:
        return f"{observed['name']} being deleted (recovering)"

    def dead_end(self, observed: State, wanted: State) -> StepError | None:
        conditions = observed.get("conditions") or {}
        if (
            wanted.get("object") == "present"
            and conditions.get("AllRecovered") == "True"
            and conditions.get("AllInjected") != "True"
        ):
            return StepError("FaultEnded", f"{observed['name']} already recovered (its duration?)")
        return None

    def write(
        self, ctx: StepContext, params: ChaosMeshParams, state: State, current: State
    ) -> None:
        api, name = self._api(ctx, params), self.object_name(ctx, params)
        plural = PLURALS[params.kind]
        if state["object"] == "absent":
            api.delete_namespaced_custom_object(GROUP, VERSION, params.namespace, plural, name)
            return
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": params.kind,
            "metadata": {
                "name": name,
                "namespace": params.namespace,
                "labels": {"failover/step": ctx.step_id},
            },
            "spec": params.spec,
        }
        api.create_namespaced_custom_object(GROUP, VERSION, params.namespace, plural, body)

    def ready(
        self, ctx: StepContext, params: ChaosMeshParams, observed: State, wanted: State
    ) -> Check:
        if wanted.get("object") != "present":
            return Check(ok=True, detail=f"{params.kind} deleted: targets recovered")
        injected = observed["conditions"].get("AllInjected") == "True"
        return Check(
            ok=injected,
            detail=f"{params.kind} {observed['name']} "
            f"{'injected' if injected else 'not injected yet'}",
        )

    def dry_run(self, ctx: StepContext, params: ChaosMeshParams) -> list[Change]:
        return [Change(resource=self.resource(ctx, params), before=None,
                       after={"spec": params.spec})]  # fmt: skip
