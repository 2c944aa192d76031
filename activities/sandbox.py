"""The local sandbox's fault injectors: a game day's `fault` when the world is the sandbox.

The sandbox's chaos API plays the part AWS FIS or Chaos Mesh play on real infrastructure:
- `sandbox_fault` (`/_sandbox/region`, `/_sandbox/app` of each region): take a region's app down
  (503, and its Route 53 health check fails), or give it an error rate and extra latency;
- `region_outage` (`/_sandbox/outage` of the region and of the AWS server): the whole region
  down, as in a disaster: its Kubernetes API, its app and its AWS endpoint refuse connections (or
  hold them, with a hang), and Route 53's API with it when it is us-east-1.
Each injection carries an expiry: if the orchestrator were lost with the fault in place, the
sandbox lifts it by itself (a dead man's switch, like an FIS experiment's duration).

The control endpoints are the configuration's named endpoints `sandbox` (each region's) and
`sandbox-aws` (set for the sandbox).
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any, Literal

from pydantic import Field, model_validator

from activities.base import RegionalParams, State, StateStep, StepContext
from activities.errors import StepError
from activities.http import send
from orchestrator.runbook.durations import Duration, format_duration


class SandboxFaultParams(RegionalParams):
    outage: bool = Field(default=False, description="The region's app answers 503 (health fails).")
    error_rate: float = Field(default=0.0, ge=0, le=1, description="Share of requests failing.")
    latency_ms: float = Field(default=0.0, ge=0, description="Extra latency on every request.")
    duration: Duration = Field(
        default=timedelta(hours=1), description="The sandbox lifts the fault by itself after this."
    )

    @model_validator(mode="after")
    def _something(self) -> SandboxFaultParams:
        if not self.outage and not self.error_rate and not self.latency_ms:
            raise ValueError("set outage, error_rate and/or latency_ms")
        return self


class SandboxFault(StateStep[SandboxFaultParams]):
    """Injects a fault into a sandbox region (outage, errors, latency); removes it on undo."""

    name = "sandbox_fault"
    fault = True
    poll_interval = 0.2

    def describe(self, params: SandboxFaultParams) -> str:
        p = params
        what = ["outage"] if p.outage else []
        if p.error_rate:
            what.append(f"{p.error_rate:.0%} errors")
        if p.latency_ms:
            what.append(f"+{p.latency_ms:g} ms")
        lifted = format_duration(p.duration)
        return f"sandbox fault{p.where}: {', '.join(what)} (lifted after {lifted})"

    def resource(self, ctx: StepContext, params: SandboxFaultParams) -> str:
        return f"sandbox:{ctx.region_for(params)}"

    def _call(
        self, ctx: StepContext, params: SandboxFaultParams, path: str, body: Any = None
    ) -> Any:
        base = ctx.clients.endpoint("sandbox", ctx.region_for(params)).rstrip("/")
        method = "GET" if body is None else "PUT"
        data = None if body is None else json.dumps(body).encode()
        status, text = send(ctx.clients.http(), f"{base}/_sandbox/{path}", method, 10.0, data)
        if status != 200:
            raise StepError(
                "Unavailable" if status in (0, 502, 503) else "BadRequest",
                f"sandbox {path}: HTTP {status or 'no answer'} {text[:120]}",
                retryable=status in (0, 502, 503),
            )
        return json.loads(text)

    def observe(self, ctx: StepContext, params: SandboxFaultParams) -> State:
        region = self._call(ctx, params, "region")
        app = self._call(ctx, params, "app")
        return {
            "healthy": bool(region["healthy"]),
            "error_rate": float(app["error_rate"]),
            "latency_ms": float(app["latency_ms"]),
        }

    def desired(self, ctx: StepContext, params: SandboxFaultParams, current: State) -> State:
        p = params
        return {
            "healthy": not p.outage and bool(current.get("healthy", True)),
            "error_rate": p.error_rate or float(current.get("error_rate", 0.0)),
            "latency_ms": p.latency_ms or float(current.get("latency_ms", 0.0)),
        }

    def write(
        self, ctx: StepContext, params: SandboxFaultParams, state: State, current: State
    ) -> None:
        injecting = not state["healthy"] or state["error_rate"] > 0 or state["latency_ms"] > 0
        expires = params.duration.total_seconds() if injecting else None
        self._call(ctx, params, "region", {"healthy": state["healthy"], "expires_in": expires})
        self._call(
            ctx,
            params,
            "app",
            {
                "error_rate": state["error_rate"],
                "latency_ms": state["latency_ms"],
                "expires_in": expires,
            },
        )


class RegionOutageParams(RegionalParams):
    outage: Literal["full", "app"] = Field(
        default="full",
        description="full: the whole region (Kubernetes API, app, AWS endpoint) stops answering; "
        "app: its app answers 503.",
    )
    hang: float = Field(
        default=0.0, ge=0, description="full: calls hang this long (seconds), then fail."
    )
    duration: Duration = Field(
        default=timedelta(hours=1), description="The sandbox lifts it by itself after this."
    )


class RegionOutage(StateStep[RegionOutageParams]):
    """Takes a sandbox region down as a disaster would (the region does not answer at all);
    brings it back on undo."""

    name = "region_outage"
    fault = True
    poll_interval = 0.2

    def describe(self, params: RegionOutageParams) -> str:
        p = params
        how = f"{p.outage} outage" + (f", calls hang {p.hang:g}s" if p.hang else "")
        return f"sandbox region down{p.where}: {how} (lifted after {format_duration(p.duration)})"

    def resource(self, ctx: StepContext, params: RegionOutageParams) -> str:
        return f"sandbox:{ctx.region_for(params)}:outage"

    def regions_used(self, params: RegionOutageParams, step_region: str | None) -> set[str]:
        return set()  # the sandbox's control endpoints answer whatever the region's state

    def _put(self, ctx: StepContext, endpoint: str, region: str, body: dict[str, Any]) -> Any:
        base = ctx.clients.endpoint(endpoint, region).rstrip("/")
        status, text = send(ctx.clients.http(), f"{base}/_sandbox/outage", "PUT", 10.0,
                            json.dumps(body).encode())  # fmt: skip
        if status != 200:
            raise StepError(
                "Unavailable" if status in (0, 502, 503) else "BadRequest",
                f"sandbox outage: HTTP {status or 'no answer'} {text[:120]}",
                retryable=status in (0, 502, 503),
            )
        return json.loads(text)

    def observe(self, ctx: StepContext, params: RegionOutageParams) -> State:
        region = ctx.region_for(params)
        base = ctx.clients.endpoint("sandbox", region).rstrip("/")
        status, text = send(ctx.clients.http(), f"{base}/_sandbox/outage", "GET", 10.0)
        if status != 200:
            raise StepError("Unavailable", f"sandbox outage: HTTP {status or 'no answer'}")
        data = json.loads(text)
        return {"outage": data.get("outage") or "none", "hang": float(data.get("hang") or 0.0)}

    def desired(self, ctx: StepContext, params: RegionOutageParams, current: State) -> State:
        return {"outage": params.outage, "hang": params.hang if params.outage == "full" else 0.0}

    def write(
        self, ctx: StepContext, params: RegionOutageParams, state: State, current: State
    ) -> None:
        region = ctx.region_for(params)
        down = state["outage"] != "none"
        expires = params.duration.total_seconds() if down else None
        full = state["outage"] == "full"
        self._put(ctx, "sandbox-aws", region, {"region": region, "down": full,
                  "hang": state["hang"], "expires_in": expires if full else None})  # fmt: skip
        self._put(ctx, "sandbox", region, {"outage": None if not down else state["outage"],
                  "hang": state["hang"], "expires_in": expires})  # fmt: skip
