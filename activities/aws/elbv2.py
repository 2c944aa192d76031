"""ELBv2: weights of a listener's weighted forward action between target groups."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from activities.arns import Arns, Grant
from activities.base import RegionalParams, State, StateStep, StepContext, require
from activities.errors import StepError


class ElbWeightsParams(RegionalParams):
    load_balancer: str = Field(description="Load balancer name.")
    port: int = Field(default=80, description="Listener port.")
    weights: dict[str, int] = Field(description="Target group name -> weight (0-999).")


class ElbWeights(StateStep[ElbWeightsParams]):
    """Sets the weights of a listener's default forward action; undo restores them."""

    name = "elbv2_weights"
    traffic = True
    actions = (
        "elasticloadbalancing:DescribeLoadBalancers",
        "elasticloadbalancing:DescribeListeners",
        "elasticloadbalancing:DescribeTargetGroups",
        "elasticloadbalancing:ModifyListener",
    )

    def _elb(self, ctx: StepContext, p: ElbWeightsParams) -> Any:
        return ctx.clients.aws("elbv2", ctx.region_for(p))

    def _listener(self, ctx: StepContext, p: ElbWeightsParams) -> dict[str, Any]:
        elb = self._elb(ctx, p)

        def arn() -> str:  # a name's ARN: looked up once per activity
            lbs = elb.describe_load_balancers(Names=[p.load_balancer])["LoadBalancers"]
            return str(lbs[0]["LoadBalancerArn"])

        lb_arn = ctx.remember(("elbv2:lb", ctx.region_for(p), p.load_balancer), arn)
        listeners = elb.describe_listeners(LoadBalancerArn=lb_arn)
        match = [x for x in listeners["Listeners"] if x["Port"] == p.port]
        require(bool(match), "NotFound", f"{p.load_balancer} has no listener on port {p.port}")
        return dict(match[0])

    def _names(self, ctx: StepContext, p: ElbWeightsParams, arns: list[str]) -> dict[str, str]:
        """Target group names by ARN (looked up once per activity)."""

        def names() -> dict[str, str]:
            groups = self._elb(ctx, p).describe_target_groups(TargetGroupArns=arns)
            return {g["TargetGroupArn"]: g["TargetGroupName"] for g in groups["TargetGroups"]}

        return ctx.remember(("elbv2:tg", ctx.region_for(p), tuple(sorted(arns))), names)

    def _forward(self, p: ElbWeightsParams, listener: dict[str, Any]) -> list[dict[str, Any]]:
        for action in listener.get("DefaultActions", []):
            if action.get("Type") == "forward" and action.get("ForwardConfig"):
                return list(action["ForwardConfig"]["TargetGroups"])
        raise StepError(
            "PreflightFailed", f"{p.load_balancer}:{p.port}: no weighted forward action"
        )

    def describe(self, params: ElbWeightsParams) -> str:
        weights = ", ".join(f"{k}={v}" for k, v in params.weights.items())
        return f"ELB {params.load_balancer}:{params.port} forward weights -> {weights}"

    def iam_resources(self, params: ElbWeightsParams, region: str, arns: Arns) -> list[Grant]:
        # its listeners (load balancer and listener ids are not in the runbook)
        listeners = f"listener/app/{params.load_balancer}/*"
        return [
            Grant(("elasticloadbalancing:ModifyListener",),
                  (arns.regional("elasticloadbalancing", region, listeners),)),
        ]  # fmt: skip

    def resource(self, ctx: StepContext, params: ElbWeightsParams) -> str:
        return f"elbv2:{ctx.region_for(params)}:{params.load_balancer}:{params.port}"

    def observe(self, ctx: StepContext, params: ElbWeightsParams) -> State:
        listener = self._listener(ctx, params)
        # A write follows the decision's observation at once: it writes from this reading.
        ctx.pass_on(("elbv2:listener", params.load_balancer, params.port), listener)
        groups = self._forward(params, listener)
        names = self._names(ctx, params, [g["TargetGroupArn"] for g in groups])
        return {"weights": {names[g["TargetGroupArn"]]: g.get("Weight", 1) for g in groups}}

    def desired(self, ctx: StepContext, params: ElbWeightsParams, current: State) -> State:
        return {"weights": (current.get("weights") or {}) | params.weights}

    def write(
        self, ctx: StepContext, params: ElbWeightsParams, state: State, current: State
    ) -> None:
        listener = ctx.take(("elbv2:listener", params.load_balancer, params.port))
        listener = listener or self._listener(ctx, params)
        groups = self._forward(params, listener)
        names = self._names(ctx, params, [g["TargetGroupArn"] for g in groups])
        weighted = [
            {"TargetGroupArn": g["TargetGroupArn"],
             "Weight": state["weights"].get(names[g["TargetGroupArn"]], g.get("Weight", 1))}
            for g in groups
        ]  # fmt: skip
        self._elb(ctx, params).modify_listener(
            ListenerArn=listener["ListenerArn"],
            DefaultActions=[{"Type": "forward", "ForwardConfig": {"TargetGroups": weighted}}],
        )
