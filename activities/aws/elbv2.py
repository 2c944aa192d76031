"""ELBv2: weights of a listener's weighted forward action between target groups."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from activities.aws.common import call
from activities.base import RegionalParams, State, StateStep, StepContext, StepParams, require


class ElbWeightsParams(RegionalParams):
    load_balancer: str = Field(description="Load balancer name.")
    port: int = Field(default=80, description="Listener port.")
    weights: dict[str, int] = Field(description="Target group name -> weight (0-999).")


class ElbWeights(StateStep):
    """Sets the weights of a listener's default forward action; undo restores them."""

    name = "elbv2_weights"
    traffic = True
    Params = ElbWeightsParams
    actions = (
        "elasticloadbalancing:DescribeLoadBalancers",
        "elasticloadbalancing:DescribeListeners",
        "elasticloadbalancing:DescribeTargetGroups",
        "elasticloadbalancing:ModifyListener",
    )

    def _p(self, params: StepParams) -> ElbWeightsParams:
        assert isinstance(params, ElbWeightsParams)
        return params

    def _elb(self, ctx: StepContext, p: ElbWeightsParams) -> Any:
        return ctx.clients.aws("elbv2", ctx.region_for(p))

    def _listener(self, ctx: StepContext, p: ElbWeightsParams) -> dict[str, Any]:
        elb = self._elb(ctx, p)
        lbs = call(elb.describe_load_balancers, Names=[p.load_balancer])["LoadBalancers"]
        listeners = call(elb.describe_listeners, LoadBalancerArn=lbs[0]["LoadBalancerArn"])
        match = [x for x in listeners["Listeners"] if x["Port"] == p.port]
        require(bool(match), "NotFound", f"{p.load_balancer} has no listener on port {p.port}")
        return dict(match[0])

    def _names(self, ctx: StepContext, p: ElbWeightsParams, arns: list[str]) -> dict[str, str]:
        groups = call(self._elb(ctx, p).describe_target_groups, TargetGroupArns=arns)
        return {g["TargetGroupArn"]: g["TargetGroupName"] for g in groups["TargetGroups"]}

    def _forward(self, listener: dict[str, Any]) -> list[dict[str, Any]]:
        for action in listener.get("DefaultActions", []):
            if action.get("Type") == "forward" and action.get("ForwardConfig"):
                return list(action["ForwardConfig"]["TargetGroups"])
        raise ValueError("no weighted forward action")

    def describe(self, params: StepParams) -> str:
        p = self._p(params)
        weights = ", ".join(f"{k}={v}" for k, v in p.weights.items())
        return f"ELB {p.load_balancer}:{p.port} forward weights -> {weights}"

    def resource(self, ctx: StepContext, params: StepParams) -> str:
        p = self._p(params)
        return f"elbv2:{ctx.region_for(p)}:{p.load_balancer}:{p.port}"

    def observe(self, ctx: StepContext, params: StepParams) -> State:
        p = self._p(params)
        try:
            groups = self._forward(self._listener(ctx, p))
        except ValueError as exc:
            require(False, "PreflightFailed", f"{p.load_balancer}:{p.port}: {exc}")
            raise
        names = self._names(ctx, p, [g["TargetGroupArn"] for g in groups])
        return {"weights": {names[g["TargetGroupArn"]]: g.get("Weight", 1) for g in groups}}

    def desired(self, ctx: StepContext, params: StepParams, current: State) -> State:
        return {"weights": (current.get("weights") or {}) | self._p(params).weights}

    def write(self, ctx: StepContext, params: StepParams, state: State, current: State) -> None:
        p = self._p(params)
        listener = self._listener(ctx, p)
        groups = self._forward(listener)
        names = self._names(ctx, p, [g["TargetGroupArn"] for g in groups])
        weighted = [
            {"TargetGroupArn": g["TargetGroupArn"],
             "Weight": state["weights"].get(names[g["TargetGroupArn"]], g.get("Weight", 1))}
            for g in groups
        ]  # fmt: skip
        call(
            self._elb(ctx, p).modify_listener,
            ListenerArn=listener["ListenerArn"],
            DefaultActions=[{"Type": "forward", "ForwardConfig": {"TargetGroups": weighted}}],
        )
