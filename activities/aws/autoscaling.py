"""Auto Scaling groups: desired/min/max capacity, waiting for the instances to be InService."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from activities.arns import Arns, Grant
from activities.base import Check, RegionalParams, State, StateStep, StepContext, require


class AsgCapacityParams(RegionalParams):
    name: str = Field(description="Auto Scaling group name.")
    desired: int = Field(ge=0, description="Desired capacity.")
    min: int | None = Field(default=None, ge=0, description="Minimum size (default: kept).")
    max: int | None = Field(default=None, ge=0, description="Maximum size (default: kept).")
    wait_in_service: bool = Field(default=True, description="Verify counts InService instances.")

    @model_validator(mode="after")
    def _bounds(self) -> AsgCapacityParams:
        if self.min is not None and self.min > self.desired:
            raise ValueError("min must be <= desired")
        if self.max is not None and self.max < self.desired:
            raise ValueError("max must be >= desired")
        return self


class AsgCapacity(StateStep[AsgCapacityParams]):
    """Sets an Auto Scaling group's desired (and min/max) capacity; undo restores all three."""

    name = "asg_capacity"
    actions = ("autoscaling:DescribeAutoScalingGroups", "autoscaling:UpdateAutoScalingGroup")

    def _asg(self, ctx: StepContext, p: AsgCapacityParams) -> Any:
        return ctx.clients.aws("autoscaling", ctx.region_for(p))

    def _group(self, ctx: StepContext, p: AsgCapacityParams) -> dict[str, Any]:
        groups = self._asg(ctx, p).describe_auto_scaling_groups(AutoScalingGroupNames=[p.name])
        found = groups["AutoScalingGroups"]
        require(bool(found), "NotFound", f"Auto Scaling group {p.name} not found")
        return dict(found[0])

    def describe(self, params: AsgCapacityParams) -> str:
        return f"Auto Scaling group {params.name}{params.where}: desired {params.desired}"

    def iam_resources(self, params: AsgCapacityParams, region: str, arns: Arns) -> list[Grant]:
        group = f"autoScalingGroup:*:autoScalingGroupName/{params.name}"
        return [
            Grant(("autoscaling:UpdateAutoScalingGroup",),
                  (arns.regional("autoscaling", region, group),)),
        ]  # fmt: skip

    def resource(self, ctx: StepContext, params: AsgCapacityParams) -> str:
        return f"autoscaling:{ctx.region_for(params)}:{params.name}"

    def preflight(self, ctx: StepContext, params: AsgCapacityParams) -> None:
        g = self.preflight_state(ctx, params)
        lo = params.min if params.min is not None else g["min"]
        hi = params.max if params.max is not None else g["max"]
        require(
            lo <= params.desired <= hi,
            "PreflightFailed",
            f"desired {params.desired} outside the group's size {lo}..{hi}: set min/max",
        )

    def observe(self, ctx: StepContext, params: AsgCapacityParams) -> State:
        g = self._group(ctx, params)
        # `holds` asks `ready` right after observing: it counts the instances of this reading.
        ctx.pass_on(("asg:group", params.name), g)
        return {"desired": g["DesiredCapacity"], "min": g["MinSize"], "max": g["MaxSize"]}

    def desired(self, ctx: StepContext, params: AsgCapacityParams, current: State) -> State:
        p = params
        return {
            "desired": p.desired,
            "min": p.min if p.min is not None else min(current.get("min", 0), p.desired),
            "max": p.max if p.max is not None else max(current.get("max", 0), p.desired),
        }

    def write(
        self, ctx: StepContext, params: AsgCapacityParams, state: State, current: State
    ) -> None:
        self._asg(ctx, params).update_auto_scaling_group(
            AutoScalingGroupName=params.name,
            MinSize=state["min"],
            MaxSize=state["max"],
            DesiredCapacity=state["desired"],
        )

    def ready(
        self, ctx: StepContext, params: AsgCapacityParams, observed: State, wanted: State
    ) -> Check:
        if not params.wait_in_service:
            return Check(ok=True)
        g = ctx.take(("asg:group", params.name)) or self._group(ctx, params)
        serving = sum(1 for i in g.get("Instances", []) if i["LifecycleState"] == "InService")
        if serving != wanted["desired"]:
            return Check(ok=False, detail=f"{serving}/{wanted['desired']} instances InService")
        return Check(ok=True, detail=f"{serving} instances InService")
