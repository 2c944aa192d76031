"""Traffic controls beyond DNS records: Global Accelerator dials, Route 53 ARC routing controls,
Route 53 health checks."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from activities.aws.common import call
from activities.aws.route53 import GLOBAL
from activities.base import Check, State, StateStep, StepContext, StepParams, StepType, require
from activities.errors import StepError

GA_REGION = "us-west-2"  # Global Accelerator's API lives in us-west-2


class GaDialParams(StepParams):
    accelerator: str = Field(description="Accelerator name.")
    region: str = Field(description="Endpoint group region (e.g. ${{ to_region }}).")
    dial: float = Field(ge=0, le=100, description="Traffic dial percentage.")


class GaTrafficDial(StateStep):
    """Sets a Global Accelerator endpoint group's traffic dial; waits until DEPLOYED."""

    name = "ga_traffic_dial"
    traffic = True
    Params = GaDialParams
    actions = (
        "globalaccelerator:ListAccelerators",
        "globalaccelerator:ListListeners",
        "globalaccelerator:ListEndpointGroups",
        "globalaccelerator:UpdateEndpointGroup",
        "globalaccelerator:DescribeAccelerator",
    )

    def _p(self, params: StepParams) -> GaDialParams:
        assert isinstance(params, GaDialParams)
        return params

    def _ga(self, ctx: StepContext) -> Any:
        return ctx.clients.aws("globalaccelerator", GA_REGION)

    def _group(self, ctx: StepContext, p: GaDialParams) -> tuple[str, dict[str, Any]]:
        ga = self._ga(ctx)
        accs = [a for a in call(ga.list_accelerators)["Accelerators"] if a["Name"] == p.accelerator]
        require(bool(accs), "NotFound", f"accelerator {p.accelerator} not found")
        acc = accs[0]["AcceleratorArn"]
        for lis in call(ga.list_listeners, AcceleratorArn=acc)["Listeners"]:
            groups = call(ga.list_endpoint_groups, ListenerArn=lis["ListenerArn"])
            for g in groups["EndpointGroups"]:
                if g["EndpointGroupRegion"] == p.region:
                    return acc, dict(g)
        raise StepError("NotFound", f"{p.accelerator} has no endpoint group in {p.region}")

    def describe(self, params: StepParams) -> str:
        p = self._p(params)
        return f"Global Accelerator {p.accelerator}: {p.region} dial -> {p.dial:g}%"

    def resource(self, ctx: StepContext, params: StepParams) -> str:
        p = self._p(params)
        return f"globalaccelerator:{p.accelerator}:{p.region}"

    def observe(self, ctx: StepContext, params: StepParams) -> State:
        _, g = self._group(ctx, self._p(params))
        return {"dial": float(g["TrafficDialPercentage"])}

    def desired(self, ctx: StepContext, params: StepParams, current: State) -> State:
        return {"dial": float(self._p(params).dial)}

    def write(self, ctx: StepContext, params: StepParams, state: State, current: State) -> None:
        _, g = self._group(ctx, self._p(params))
        call(
            self._ga(ctx).update_endpoint_group,
            EndpointGroupArn=g["EndpointGroupArn"],
            TrafficDialPercentage=state["dial"],
        )

    def _check(self, ctx: StepContext, params: StepParams, wanted: State) -> Check:
        check = super()._check(ctx, params, wanted)
        if not check.ok:
            return check
        acc, _ = self._group(ctx, self._p(params))
        status = call(self._ga(ctx).describe_accelerator, AcceleratorArn=acc)["Accelerator"]
        if status["Status"] != "DEPLOYED":
            return Check(ok=False, detail=f"accelerator {status['Status']}")
        return check


class ArcParams(StepParams):
    cluster: str = Field(description="Route 53 ARC cluster name.")
    control_panel: str = Field(description="Control panel name.")
    states: dict[str, Literal["On", "Off"]] = Field(
        description="Routing control name -> On/Off, e.g. {shop-${{ to_region }}: On}."
    )


class ArcRoutingControls(StateStep):
    """Sets Route 53 ARC routing control states through the cluster's data-plane endpoints,
    trying each endpoint in turn (as AWS advises); safety rules are enforced by ARC itself."""

    name = "arc_routing_controls"
    traffic = True
    Params = ArcParams
    actions = (
        "route53-recovery-control-config:ListClusters",
        "route53-recovery-control-config:ListControlPanels",
        "route53-recovery-cluster:ListRoutingControls",
        "route53-recovery-cluster:UpdateRoutingControlStates",
    )

    def _p(self, params: StepParams) -> ArcParams:
        assert isinstance(params, ArcParams)
        return params

    def _cluster(self, ctx: StepContext, p: ArcParams) -> dict[str, Any]:
        cfg = ctx.clients.aws("route53-recovery-control-config", GA_REGION)
        clusters = [c for c in call(cfg.list_clusters)["Clusters"] if c["Name"] == p.cluster]
        require(bool(clusters), "NotFound", f"ARC cluster {p.cluster} not found")
        return dict(clusters[0])

    def _panel_arn(self, ctx: StepContext, p: ArcParams, cluster_arn: str) -> str:
        cfg = ctx.clients.aws("route53-recovery-control-config", GA_REGION)
        panels = call(cfg.list_control_panels, ClusterArn=cluster_arn)["ControlPanels"]
        match = [x for x in panels if x["Name"] == p.control_panel]
        require(bool(match), "NotFound", f"control panel {p.control_panel} not found")
        return str(match[0]["ControlPanelArn"])

    def _on_endpoints(self, ctx: StepContext, p: ArcParams, fn: Any) -> Any:
        """Run fn(client) on each cluster endpoint in turn until one answers."""
        cluster = self._cluster(ctx, p)
        errors = []
        for ep in cluster["ClusterEndpoints"]:
            data = ctx.clients.aws_at("route53-recovery-cluster", ep["Region"], ep["Endpoint"])
            try:
                return fn(data, cluster)
            except StepError as exc:
                if not exc.retryable:
                    raise
                errors.append(f"{ep['Region']}: {exc.kind}")
        raise StepError(
            "ServiceUnavailable", "no ARC cluster endpoint answered: " + "; ".join(errors)
        )

    def describe(self, params: StepParams) -> str:
        p = self._p(params)
        states = ", ".join(f"{k}={v}" for k, v in p.states.items())
        return f"Route 53 ARC routing controls: {states}"

    def resource(self, ctx: StepContext, params: StepParams) -> str:
        p = self._p(params)
        return f"arc:{p.cluster}/{p.control_panel}"

    def _controls(self, ctx: StepContext, p: ArcParams) -> dict[str, dict[str, Any]]:
        def list_all(data: Any, cluster: dict[str, Any]) -> dict[str, dict[str, Any]]:
            panel = self._panel_arn(ctx, p, cluster["ClusterArn"])
            out = call(data.list_routing_controls, ControlPanelArn=panel)
            return {c["RoutingControlName"]: c for c in out["RoutingControls"]}

        controls: dict[str, dict[str, Any]] = self._on_endpoints(ctx, p, list_all)
        return controls

    def preflight(self, ctx: StepContext, params: StepParams) -> None:
        p = self._p(params)
        missing = sorted(set(p.states) - set(self._controls(ctx, p)))
        require(not missing, "PreflightFailed", f"no routing control {', '.join(missing)}")

    def observe(self, ctx: StepContext, params: StepParams) -> State:
        p = self._p(params)
        controls = self._controls(ctx, p)
        return {
            "states": {n: controls[n]["RoutingControlState"] for n in p.states if n in controls}
        }

    def desired(self, ctx: StepContext, params: StepParams, current: State) -> State:
        return {"states": dict(self._p(params).states)}

    def write(self, ctx: StepContext, params: StepParams, state: State, current: State) -> None:
        p = self._p(params)
        controls = self._controls(ctx, p)
        entries = [
            {"RoutingControlArn": controls[n]["RoutingControlArn"], "RoutingControlState": s}
            for n, s in state["states"].items()
        ]

        def update(data: Any, cluster: dict[str, Any]) -> None:
            call(data.update_routing_control_states, UpdateRoutingControlStateEntries=entries)

        self._on_endpoints(ctx, p, update)


class HealthCheckParams(StepParams):
    name: str = Field(description="The health check's Name tag (or its id).")
    inverted: bool | None = None
    disabled: bool | None = None

    @model_validator(mode="after")
    def _something(self) -> HealthCheckParams:
        if self.inverted is None and self.disabled is None:
            raise ValueError("set inverted and/or disabled")
        return self


class Route53HealthCheck(StateStep):
    """Inverts or disables a Route 53 health check (to force or stop a DNS failover)."""

    name = "route53_health_check"
    traffic = True
    Params = HealthCheckParams
    actions = (
        "route53:ListHealthChecks",
        "route53:ListTagsForResources",
        "route53:GetHealthCheck",
        "route53:UpdateHealthCheck",
    )

    def _p(self, params: StepParams) -> HealthCheckParams:
        assert isinstance(params, HealthCheckParams)
        return params

    def _id(self, ctx: StepContext, p: HealthCheckParams) -> str:
        return health_check_id(ctx, p.name)

    def describe(self, params: StepParams) -> str:
        p = self._p(params)
        what = [f"{k}={v}" for k, v in (("inverted", p.inverted), ("disabled", p.disabled))
                if v is not None]  # fmt: skip
        return f"Route 53 health check {p.name}: {', '.join(what)}"

    def resource(self, ctx: StepContext, params: StepParams) -> str:
        return f"route53:healthcheck/{self._p(params).name}"

    def observe(self, ctx: StepContext, params: StepParams) -> State:
        p = self._p(params)
        hc = call(
            ctx.clients.aws("route53", GLOBAL).get_health_check, HealthCheckId=self._id(ctx, p)
        )
        config = hc["HealthCheck"]["HealthCheckConfig"]
        return {"inverted": bool(config.get("Inverted")), "disabled": bool(config.get("Disabled"))}

    def desired(self, ctx: StepContext, params: StepParams, current: State) -> State:
        p = self._p(params)
        return {k: v for k, v in (("inverted", p.inverted), ("disabled", p.disabled))
                if v is not None}  # fmt: skip

    def write(self, ctx: StepContext, params: StepParams, state: State, current: State) -> None:
        p = self._p(params)
        update: dict[str, Any] = {"HealthCheckId": self._id(ctx, p)}
        if "inverted" in state:
            update["Inverted"] = state["inverted"]
        if "disabled" in state:
            update["Disabled"] = state["disabled"]
        call(ctx.clients.aws("route53", GLOBAL).update_health_check, **update)


def health_check_id(ctx: StepContext, name: str) -> str:
    """A health check's id from its Name tag (or its id)."""
    r53 = ctx.clients.aws("route53", GLOBAL)
    ids = [h["Id"] for h in call(r53.list_health_checks)["HealthChecks"]]
    if name in ids:
        return name
    if ids:
        tags = call(r53.list_tags_for_resources, ResourceType="healthcheck", ResourceIds=ids)
        for entry in tags["ResourceTagSets"]:
            if {"Key": "Name", "Value": name} in entry.get("Tags", []):
                return str(entry["ResourceId"])
    raise StepError("NotFound", f"no health check named {name}")


class HealthStatusParams(StepParams):
    name: str = Field(description="The health check's Name tag (or its id).")
    expect: Literal["healthy", "unhealthy"] = "healthy"


class Route53HealthStatus(StepType):
    """Read-only: what Route 53's checkers report for a health check (healthy when most of
    them report success). A game day's detector: it fails once the check turns red."""

    name = "route53_health_status"
    Params = HealthStatusParams
    poll_interval = 1.0
    actions = (
        "route53:ListHealthChecks",
        "route53:ListTagsForResources",
        "route53:GetHealthCheckStatus",
    )

    def describe(self, params: StepParams) -> str:
        assert isinstance(params, HealthStatusParams)
        return f"Route 53 health check {params.name} is {params.expect}"

    def verify(self, ctx: StepContext, params: StepParams, snapshot: dict[str, Any]) -> Check:
        assert isinstance(params, HealthStatusParams)
        r53 = ctx.clients.aws("route53", GLOBAL)
        hc_id = health_check_id(ctx, params.name)
        obs = call(r53.get_health_check_status, HealthCheckId=hc_id)["HealthCheckObservations"]
        good = sum(1 for o in obs if o["StatusReport"]["Status"].startswith("Success"))
        healthy = bool(obs) and good * 2 > len(obs)
        status = "healthy" if healthy else "unhealthy"
        detail = f"health check {params.name}: {status} ({good}/{len(obs)} checkers report success)"
        observed = {"health_check": params.name, "healthy": healthy}
        return Check(ok=status == params.expect, detail=detail, observed=observed)
