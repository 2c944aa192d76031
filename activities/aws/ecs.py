"""ECS: a service's desired count, waiting for the running count to follow."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from activities.aws.common import call
from activities.base import (
    Check,
    RegionalParams,
    State,
    StateStep,
    StepContext,
    StepParams,
    require,
)


class EcsServiceParams(RegionalParams):
    cluster: str
    service: str
    desired: int = Field(ge=0)


class EcsService(StateStep):
    """Sets an ECS service's desired count and waits until as many tasks run; undo restores."""

    name = "ecs_service"
    Params = EcsServiceParams
    actions = ("ecs:DescribeServices", "ecs:UpdateService")

    def _p(self, params: StepParams) -> EcsServiceParams:
        assert isinstance(params, EcsServiceParams)
        return params

    def _service(self, ctx: StepContext, p: EcsServiceParams) -> dict[str, Any]:
        ecs = ctx.clients.aws("ecs", ctx.region_for(p))
        found = call(ecs.describe_services, cluster=p.cluster, services=[p.service])["services"]
        require(bool(found), "NotFound", f"ECS service {p.cluster}/{p.service} not found")
        return dict(found[0])

    def describe(self, params: StepParams) -> str:
        p = self._p(params)
        return f"ECS service {p.cluster}/{p.service}: desired {p.desired}"

    def resource(self, ctx: StepContext, params: StepParams) -> str:
        p = self._p(params)
        return f"ecs:{ctx.region_for(p)}:{p.cluster}/{p.service}"

    def observe(self, ctx: StepContext, params: StepParams) -> State:
        return {"desired": self._service(ctx, self._p(params))["desiredCount"]}

    def desired(self, ctx: StepContext, params: StepParams, current: State) -> State:
        return {"desired": self._p(params).desired}

    def write(self, ctx: StepContext, params: StepParams, state: State, current: State) -> None:
        p = self._p(params)
        ecs = ctx.clients.aws("ecs", ctx.region_for(p))
        call(ecs.update_service, cluster=p.cluster, service=p.service,
             desiredCount=state["desired"])  # fmt: skip

    def _check(self, ctx: StepContext, params: StepParams, wanted: State) -> Check:
        svc = self._service(ctx, self._p(params))
        running, desired = svc.get("runningCount", 0), svc["desiredCount"]
        ok = desired == wanted["desired"] and running == desired
        return Check(ok=ok, detail=f"{running}/{desired} tasks running",
                     observed={"desired": desired} if ok else {})  # fmt: skip
