"""Auto Scaling groups: desired/min/max capacity, waiting for the instances to be InService."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

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


class AsgCapacity(StateStep):
    """Sets an Auto Scaling group's desired (and min/max) capacity; undo restores all three."""

    name = "asg_capacity"
    Params = AsgCapacityParams
    actions = ("autoscaling:DescribeAutoScalingGroups", "autoscaling:UpdateAutoScalingGroup")

    def _p(self, params: StepParams) -> AsgCapacityParams:
        assert isinstance(params, AsgCapacityParams)
        return params

    def _asg(self, ctx: StepContext, p: AsgCapacityParams) -> Any:
        return ctx.clients.aws("autoscaling", ctx.region_for(p))

    def _group(self, ctx: StepContext, p: AsgCapacityParams) -> dict[str, Any]:
        groups = call(
            self._asg(ctx, p).describe_auto_scaling_groups, AutoScalingGroupNames=[p.name]
        )["AutoScalingGroups"]
        require(bool(groups), "NotFound", f"Auto Scaling group {p.name} not found")
        return dict(groups[0])

    def describe(self, params: StepParams) -> str:
        p = self._p(params)
        return f"Auto Scaling group {p.name}{p.where}: desired {p.desired}"

    def resource(self, ctx: StepContext, params: StepParams) -> str:
        p = self._p(params)
        return f"autoscaling:{ctx.region_for(p)}:{p.name}"

    def preflight(self, ctx: StepContext, params: StepParams) -> None:
        p = self._p(params)
        g = self._group(ctx, p)
        lo = p.min if p.min is not None else g["MinSize"]
        hi = p.max if p.max is not None else g["MaxSize"]
        require(
            lo <= p.desired <= hi,
            "PreflightFailed",
            f"desired {p.desired} outside the group's size {lo}..{hi}: set min/max",
        )

    def observe(self, ctx: StepContext, params: StepParams) -> State:
        g = self._group(ctx, self._p(params))
        return {"desired": g["DesiredCapacity"], "min": g["MinSize"], "max": g["MaxSize"]}

    def desired(self, ctx: StepContext, params: StepParams, current: State) -> State:
        p = self._p(params)
        return {
            "desired": p.desired,
            "min": p.min if p.min is not None else min(current.get("min", 0), p.desired),
            "max": p.max if p.max is not None else max(current.get("max", 0), p.desired),
        }

    def write(self, ctx: StepContext, params: StepParams, state: State, current: State) -> None:
        p = self._p(params)
        call(
            self._asg(ctx, p).update_auto_scaling_group,
            AutoScalingGroupName=p.name,
            MinSize=state["min"],
            MaxSize=state["max"],
            DesiredCapacity=state["desired"],
        )

    def _check(self, ctx: StepContext, params: StepParams, wanted: State) -> Check:
        check = super()._check(ctx, params, wanted)
        p = self._p(params)
        if not check.ok or not p.wait_in_service:
            return check
        g = self._group(ctx, p)
        serving = sum(1 for i in g.get("Instances", []) if i["LifecycleState"] == "InService")
        if serving != wanted["desired"]:
            return Check(ok=False, detail=f"{serving}/{wanted['desired']} instances InService")
        return Check(ok=True, detail=f"{serving} instances InService", observed=check.observed)
