"""Traffic controls beyond DNS records: Global Accelerator dials, Route 53 ARC routing controls,
Route 53 health checks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, TypeVar

from pydantic import Field, model_validator

from activities.arns import Arns, Grant
from activities.aws.route53 import GLOBAL
from activities.base import Check, State, StateStep, StepContext, StepParams, StepType, require
from activities.errors import StepError, classify

GA_REGION = "us-west-2"  # Global Accelerator's API lives in us-west-2
T = TypeVar("T")


class GaDialParams(StepParams):
    accelerator: str = Field(description="Accelerator name.")
    region: str = Field(description="Endpoint group region (e.g. ${{ to_region }}).")
    dial: float = Field(ge=0, le=100, description="Traffic dial percentage.")


class GaTrafficDial(StateStep[GaDialParams]):
    """Sets a Global Accelerator endpoint group's traffic dial; waits until DEPLOYED."""

    name = "ga_traffic_dial"
    traffic = True
    actions = (
        "globalaccelerator:ListAccelerators",
        "globalaccelerator:ListListeners",
        "globalaccelerator:ListEndpointGroups",
        "globalaccelerator:UpdateEndpointGroup",
        "globalaccelerator:DescribeAccelerator",
    )

    def _ga(self, ctx: StepContext) -> Any:
        return ctx.clients.aws("globalaccelerator", GA_REGION)

    def _group(self, ctx: StepContext, p: GaDialParams) -> tuple[dict[str, Any], dict[str, Any]]:
        """The accelerator and the endpoint group of the params' region."""
        ga = self._ga(ctx)
        accs = [a for a in ga.list_accelerators()["Accelerators"] if a["Name"] == p.accelerator]
        require(bool(accs), "NotFound", f"accelerator {p.accelerator} not found")
        acc = accs[0]
        for lis in ga.list_listeners(AcceleratorArn=acc["AcceleratorArn"])["Listeners"]:
            groups = ga.list_endpoint_groups(ListenerArn=lis["ListenerArn"])["EndpointGroups"]
            for g in groups:
                if g["EndpointGroupRegion"] == p.region:
                    return dict(acc), dict(g)
        raise StepError("NotFound", f"{p.accelerator} has no endpoint group in {p.region}")

    def regions_used(self, params: GaDialParams, step_region: str | None) -> set[str]:
        return {GA_REGION}  # Global Accelerator's API is served from us-west-2

    def iam_resources(self, params: GaDialParams, region: str, arns: Arns) -> list[Grant]:
        # found by name: any accelerator of the account, its listeners and endpoint groups
        acc = "accelerator/*"
        return [
            Grant(("globalaccelerator:DescribeAccelerator", "globalaccelerator:ListListeners"),
                  (arns.account_wide("globalaccelerator", acc),)),
            Grant(("globalaccelerator:ListEndpointGroups",),
                  (arns.account_wide("globalaccelerator", f"{acc}/listener/*"),)),
            Grant(("globalaccelerator:UpdateEndpointGroup",),
                  (arns.account_wide("globalaccelerator", f"{acc}/listener/*/endpoint-group/*"),)),
        ]  # fmt: skip

    def describe(self, params: GaDialParams) -> str:
        return f"Global Accelerator {params.accelerator}: {params.region} dial -> {params.dial:g}%"

    def resource(self, ctx: StepContext, params: GaDialParams) -> str:
        return f"globalaccelerator:{params.accelerator}:{params.region}"

    def observe(self, ctx: StepContext, params: GaDialParams) -> State:
        acc, g = self._group(ctx, params)
        status = self._ga(ctx).describe_accelerator(AcceleratorArn=acc["AcceleratorArn"])
        return {
            "dial": float(g["TrafficDialPercentage"]),
            "deployed": status["Accelerator"]["Status"] == "DEPLOYED",
        }

    def desired(self, ctx: StepContext, params: GaDialParams, current: State) -> State:
        return {"dial": float(params.dial)}

    def in_transition(self, observed: State) -> bool:
        return not observed.get("deployed", True)

    def heading_to(self, observed: State, wanted: State) -> bool:
        return bool(observed.get("dial") == wanted.get("dial"))

    def write(self, ctx: StepContext, params: GaDialParams, state: State, current: State) -> None:
        _, g = self._group(ctx, params)
        self._ga(ctx).update_endpoint_group(
            EndpointGroupArn=g["EndpointGroupArn"], TrafficDialPercentage=state["dial"]
        )

    def snapshot(self, ctx: StepContext, params: GaDialParams) -> State:
        return {"dial": self.settled(ctx, params)["dial"]}


class ArcParams(StepParams):
    cluster: str = Field(description="Route 53 ARC cluster name.")
    control_panel: str = Field(description="Control panel name.")
    states: dict[str, Literal["On", "Off"]] = Field(
        description="Routing control name -> On/Off, e.g. {shop-${{ to_region }}: On}."
    )


class ArcRoutingControls(StateStep[ArcParams]):
    """Sets Route 53 ARC routing control states through the cluster's data-plane endpoints,
    trying each endpoint in turn (as AWS advises); safety rules are enforced by ARC itself."""

    name = "arc_routing_controls"
    traffic = True
    actions = (
        "route53-recovery-control-config:ListClusters",
        "route53-recovery-control-config:ListControlPanels",
        "route53-recovery-cluster:ListRoutingControls",
        "route53-recovery-cluster:UpdateRoutingControlStates",
    )

    def _config(self, ctx: StepContext) -> Any:
        return ctx.clients.aws("route53-recovery-control-config", GA_REGION)

    def _endpoints(self, ctx: StepContext, p: ArcParams) -> list[dict[str, str]]:
        """The cluster's data-plane endpoints: from the configuration when it lists them (no
        control-plane call: it lives in us-west-2 alone), else from the control plane."""
        known = ctx.clients.config.aws.arc_clusters.get(p.cluster)
        if known:
            return known
        try:
            clusters = self._config(ctx).list_clusters()["Clusters"]
        except Exception as exc:
            err = classify(exc)
            raise StepError(
                err.kind,
                f"ARC's control plane ({GA_REGION}) did not answer ({err.message}); list the "
                f"endpoints of cluster {p.cluster} under aws.arc_clusters in the configuration "
                "so that routing controls can be set without it",
                retryable=err.retryable,
            ) from exc
        match = [c for c in clusters if c["Name"] == p.cluster]
        require(bool(match), "NotFound", f"ARC cluster {p.cluster} not found")
        return list(match[0]["ClusterEndpoints"])

    def _on_endpoints(self, ctx: StepContext, p: ArcParams, fn: Callable[[Any], T]) -> T:
        """Run fn(client) on each cluster endpoint in turn until one answers."""
        errors = []
        # The failed region's endpoint last (an unplanned run leaves it): the others first.
        for ep in sorted(self._endpoints(ctx, p), key=lambda e: e["Region"] == ctx.from_region):
            data = ctx.clients.aws_at("route53-recovery-cluster", ep["Region"], ep["Endpoint"])
            try:
                return fn(data)
            except Exception as exc:
                err = classify(exc)
                if not err.retryable:
                    raise err from exc
                errors.append(f"{ep['Region']}: {err.kind}")
        raise StepError(
            "ServiceUnavailable", "no ARC cluster endpoint answered: " + "; ".join(errors)
        )

    def regions_used(self, params: ArcParams, step_region: str | None) -> set[str]:
        return set()  # the data plane: any of the cluster's endpoints answers

    def describe(self, params: ArcParams) -> str:
        states = ", ".join(f"{k}={v}" for k, v in params.states.items())
        return f"Route 53 ARC routing controls: {states}"

    def iam_resources(self, params: ArcParams, region: str, arns: Arns) -> list[Grant]:
        # routing controls are found by name in the control panel: any of the account's
        control = "controlpanel/*/routingcontrol/*"
        return [
            Grant(("route53-recovery-cluster:UpdateRoutingControlStates",),
                  (arns.account_wide("route53-recovery-control", control),)),
        ]  # fmt: skip

    def resource(self, ctx: StepContext, params: ArcParams) -> str:
        return f"arc:{params.cluster}/{params.control_panel}"

    def _controls(self, ctx: StepContext, p: ArcParams) -> dict[str, dict[str, Any]]:
        """The panel's routing controls by name, from the data plane (which names panels)."""

        def list_all(data: Any) -> dict[str, dict[str, Any]]:
            out: dict[str, dict[str, Any]] = {}
            for page in data.get_paginator("list_routing_controls").paginate():
                for c in page["RoutingControls"]:
                    if c.get("ControlPanelName") == p.control_panel:
                        out[c["RoutingControlName"]] = c
            return out

        return self._on_endpoints(ctx, p, list_all)

    def preflight(self, ctx: StepContext, params: ArcParams) -> None:
        missing = sorted(set(params.states) - set(self._controls(ctx, params)))
        require(not missing, "PreflightFailed", f"no routing control {', '.join(missing)}")

    def observe(self, ctx: StepContext, params: ArcParams) -> State:
        controls = self._controls(ctx, params)
        return {
            "states": {
                n: controls[n]["RoutingControlState"] for n in params.states if n in controls
            }
        }

    def desired(self, ctx: StepContext, params: ArcParams, current: State) -> State:
        return {"states": dict(params.states)}

    def write(self, ctx: StepContext, params: ArcParams, state: State, current: State) -> None:
        controls = self._controls(ctx, params)
        entries = [
            {"RoutingControlArn": controls[n]["RoutingControlArn"], "RoutingControlState": s}
            for n, s in state["states"].items()
        ]

        def update(data: Any) -> None:
            data.update_routing_control_states(UpdateRoutingControlStateEntries=entries)

        self._on_endpoints(ctx, params, update)


class HealthCheckParams(StepParams):
    name: str = Field(description="The health check's Name tag (or its id).")
    inverted: bool | None = None
    disabled: bool | None = None

    @model_validator(mode="after")
    def _something(self) -> HealthCheckParams:
        if self.inverted is None and self.disabled is None:
            raise ValueError("set inverted and/or disabled")
        return self


class Route53HealthCheck(StateStep[HealthCheckParams]):
    """Inverts or disables a Route 53 health check (to force or stop a DNS failover)."""

    name = "route53_health_check"
    traffic = True
    actions = (
        "route53:ListHealthChecks",
        "route53:ListTagsForResources",
        "route53:GetHealthCheck",
        "route53:UpdateHealthCheck",
    )

    def regions_used(self, params: HealthCheckParams, step_region: str | None) -> set[str]:
        return {GLOBAL}  # Route 53's API

    def describe(self, params: HealthCheckParams) -> str:
        wanted = (("inverted", params.inverted), ("disabled", params.disabled))
        what = [f"{k}={v}" for k, v in wanted if v is not None]
        return f"Route 53 health check {params.name}: {', '.join(what)}"

    def iam_resources(self, params: HealthCheckParams, region: str, arns: Arns) -> list[Grant]:
        return [
            Grant(("route53:GetHealthCheck", "route53:UpdateHealthCheck"),
                  (arns.health_check(params.name),)),
            # finding it by its Name tag reads every health check's tags
            Grant(("route53:ListTagsForResources",), (arns.route53("healthcheck"),)),
        ]  # fmt: skip

    def resource(self, ctx: StepContext, params: HealthCheckParams) -> str:
        return f"route53:healthcheck/{params.name}"

    def observe(self, ctx: StepContext, params: HealthCheckParams) -> State:
        r53 = ctx.clients.aws("route53", GLOBAL)
        hc = r53.get_health_check(HealthCheckId=health_check_id(ctx, params.name))
        config = hc["HealthCheck"]["HealthCheckConfig"]
        return {"inverted": bool(config.get("Inverted")), "disabled": bool(config.get("Disabled"))}

    def desired(self, ctx: StepContext, params: HealthCheckParams, current: State) -> State:
        return {k: v for k, v in (("inverted", params.inverted), ("disabled", params.disabled))
                if v is not None}  # fmt: skip

    def write(
        self, ctx: StepContext, params: HealthCheckParams, state: State, current: State
    ) -> None:
        update: dict[str, Any] = {"HealthCheckId": health_check_id(ctx, params.name)}
        if "inverted" in state:
            update["Inverted"] = state["inverted"]
        if "disabled" in state:
            update["Disabled"] = state["disabled"]
        ctx.clients.aws("route53", GLOBAL).update_health_check(**update)


def health_check_id(ctx: StepContext, name: str) -> str:
    """A health check's id from its Name tag (or its id)."""
    r53 = ctx.clients.aws("route53", GLOBAL)
    ids = [h["Id"] for h in r53.list_health_checks()["HealthChecks"]]
    if name in ids:
        return name
    if ids:
        tags = r53.list_tags_for_resources(ResourceType="healthcheck", ResourceIds=ids)
        for entry in tags["ResourceTagSets"]:
            if {"Key": "Name", "Value": name} in entry.get("Tags", []):
                return str(entry["ResourceId"])
    raise StepError("NotFound", f"no health check named {name}")


class HealthStatusParams(StepParams):
    name: str = Field(description="The health check's Name tag (or its id).")
    expect: Literal["healthy", "unhealthy"] = "healthy"


class Route53HealthStatus(StepType[HealthStatusParams]):
    """Read-only: what Route 53's checkers report for a health check (healthy when most of
    them report success). A game day's detector: it fails once the check turns red."""

    name = "route53_health_status"
    poll_interval = 1.0
    actions = (
        "route53:ListHealthChecks",
        "route53:ListTagsForResources",
        "route53:GetHealthCheckStatus",
    )

    def regions_used(self, params: HealthStatusParams, step_region: str | None) -> set[str]:
        return {GLOBAL}  # Route 53's API

    def iam_resources(self, params: HealthStatusParams, region: str, arns: Arns) -> list[Grant]:
        return [
            Grant(("route53:GetHealthCheckStatus",), (arns.health_check(params.name),)),
            Grant(("route53:ListTagsForResources",), (arns.route53("healthcheck"),)),
        ]

    def describe(self, params: HealthStatusParams) -> str:
        return f"Route 53 health check {params.name} is {params.expect}"

    def verify(self, ctx: StepContext, params: HealthStatusParams, snapshot: State) -> Check:
        r53 = ctx.clients.aws("route53", GLOBAL)
        hc_id = health_check_id(ctx, params.name)
        obs = r53.get_health_check_status(HealthCheckId=hc_id)["HealthCheckObservations"]
        good = sum(1 for o in obs if o["StatusReport"]["Status"].startswith("Success"))
        healthy = bool(obs) and good * 2 > len(obs)
        status = "healthy" if healthy else "unhealthy"
        detail = f"health check {params.name}: {status} ({good}/{len(obs)} checkers report success)"
        observed = {"health_check": params.name, "healthy": healthy}
        return Check(ok=status == params.expect, detail=detail, observed=observed)
