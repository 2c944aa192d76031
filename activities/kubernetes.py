"""Kubernetes step types, on the official client (one ApiClient per region's context)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from activities.base import State, StateStep, StepContext, StepParams
from activities.errors import classify


class ConfigMapFlagParams(StepParams):
    namespace: str = Field(description="Namespace of the ConfigMap.")
    name: str = Field(description="ConfigMap name.")
    key: str = Field(description="Key in the ConfigMap's data.")
    value: str = Field(description="Value to set.")
    region: str | None = Field(default=None, description="Region (default: the step's).")


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

        return client.CoreV1Api(ctx.clients.kube(p.region or ctx.scope))

    def describe(self, params: StepParams) -> str:
        p = self._p(params)
        where = f" in {p.region}" if p.region else ""
        return f"set {p.key}={p.value!r} in ConfigMap {p.namespace}/{p.name}{where}"

    def resource(self, ctx: StepContext, params: StepParams) -> str:
        p = self._p(params)
        return f"k8s:{p.region or ctx.scope}:configmap/{p.namespace}/{p.name}#{p.key}"

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
