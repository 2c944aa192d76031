"""ECS: a service's desired count, waiting for the running count to follow."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from activities.arns import Arns, Grant
from activities.base import Check, RegionalParams, State, StateStep, StepContext, require


class EcsServiceParams(RegionalParams):
    cluster: str
    service: str
    desired: int = Field(ge=0)


class EcsService(StateStep[EcsServiceParams]):
    """Sets an ECS service's desired count and waits until as many tasks run; undo restores."""

    name = "ecs_service"
    actions = ("ecs:DescribeServices", "ecs:UpdateService")

    def _ecs(self, ctx: StepContext, p: EcsServiceParams) -> Any:
        return ctx.clients.aws("ecs", ctx.region_for(p))

    def _service(self, ctx: StepContext, p: EcsServiceParams) -> dict[str, Any]:
        found = self._ecs(ctx, p).describe_services(cluster=p.cluster, services=[p.service])
        services = found["services"]
        require(bool(services), "NotFound", f"ECS service {p.cluster}/{p.service} not found")
        return dict(services[0])

    def describe(self, params: EcsServiceParams) -> str:
        return f"ECS service {params.cluster}/{params.service}: desired {params.desired}"

    def iam_resources(self, params: EcsServiceParams, region: str, arns: Arns) -> list[Grant]:
        service = arns.regional("ecs", region, f"service/{params.cluster}/{params.service}")
        return [Grant(("ecs:DescribeServices", "ecs:UpdateService"), (service,))]

    def resource(self, ctx: StepContext, params: EcsServiceParams) -> str:
        return f"ecs:{ctx.region_for(params)}:{params.cluster}/{params.service}"

    def observe(self, ctx: StepContext, params: EcsServiceParams) -> State:
        return {"desired": self._service(ctx, params)["desiredCount"]}

    def desired(self, ctx: StepContext, params: EcsServiceParams, current: State) -> State:
        return {"desired": params.desired}

    def write(
        self, ctx: StepContext, params: EcsServiceParams, state: State, current: State
    ) -> None:
        self._ecs(ctx, params).update_service(
            cluster=params.cluster, service=params.service, desiredCount=state["desired"]
        )

    def ready(
        self, ctx: StepContext, params: EcsServiceParams, observed: State, wanted: State
    ) -> Check:
        svc = self._service(ctx, params)
        running = svc.get("runningCount", 0)
        ok = running == svc["desiredCount"]
        return Check(ok=ok, detail=f"{running}/{svc['desiredCount']} tasks running")
