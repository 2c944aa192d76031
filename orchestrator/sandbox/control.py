"""Client of the sandbox's control endpoints: faults, region health, calls, latency, reset.

What the `failover sandbox fault|region|calls|notifications|reset` commands and the tests use. A
fault target's first part says which server gets it: `aws:...` the AWS server, `k8s:<region>:...`
that region. Notifications arrive at the sandbox's sink (`orchestrator.sandbox.notify_sink`).
"""

from __future__ import annotations

from typing import Any

from orchestrator.sandbox.calls import Call
from orchestrator.sandbox.faults import FaultRule
from orchestrator.sandbox.manager import SandboxEnv, SandboxError, http_json


class SandboxControl:
    """Talks to every component of one running sandbox."""

    def __init__(self, env: SandboxEnv) -> None:
        self.env = env

    def _components(self) -> list[str]:
        return ["aws", *self.env.regions]

    def _url(self, component: str, path: str) -> str:
        return f"{self.env.control_url(component)}/_sandbox/{path}"

    def _region(self, region: str) -> str:
        if region not in self.env.regions:
            raise SandboxError(
                f"unknown region {region!r}: the sandbox has {', '.join(self.env.regions)}"
            )
        return region

    # ------------------------------------------------------------------------------ faults
    def add_fault(self, rule: FaultRule) -> FaultRule:
        parts = rule.target.split(":")
        component = "aws" if parts[0] == "aws" else self._region(parts[1])
        if rule.region and rule.region not in self.env.regions and parts[0] == "k8s":
            self._region(rule.region)
        return FaultRule.model_validate(
            http_json(self._url(component, "faults"), "POST", rule.model_dump())
        )

    def faults(self) -> list[FaultRule]:
        out: list[FaultRule] = []
        for c in self._components():
            out += [FaultRule.model_validate(r) for r in http_json(self._url(c, "faults"))]
        return out

    def clear_faults(self) -> int:
        return sum(
            int(http_json(self._url(c, "faults"), "DELETE", {})["cleared"])
            for c in self._components()
        )

    # ------------------------------------------------------------------------------ regions
    def set_region_health(self, region: str, healthy: bool) -> dict[str, Any]:
        result: dict[str, Any] = http_json(
            self._url(self._region(region), "region"), "PUT", {"healthy": healthy}
        )
        return result

    def set_outage(
        self, region: str, outage: str | None, hang: float = 0.0, expires_in: float | None = None
    ) -> dict[str, Any]:
        """Take a region down (`app`: its app answers 503; `full`: its Kubernetes API, its app
        and its AWS endpoint, with that region's ARC cluster endpoint (and Route 53's API when
        it is us-east-1), stop answering: refused, or held `hang` seconds then failed), or bring
        it back up (`None`). With `expires_in`, it comes back by itself after that long."""
        if outage not in (None, "app", "full"):
            raise SandboxError(f"outage must be app or full (got {outage!r})")
        if hang < 0:
            raise SandboxError(f"--hang must be 0 or more seconds (got {hang:g})")
        self._region(region)
        full = outage == "full"
        if expires_in is not None and expires_in <= 0:
            raise SandboxError(f"--for must be more than 0 seconds (got {expires_in:g})")
        until = expires_in if outage is not None else None
        http_json(self._url("aws", "outage"), "PUT", {"region": region, "down": full,
                  "hang": hang if full else 0, "expires_in": until if full else None})  # fmt: skip
        result: dict[str, Any] = http_json(
            self._url(region, "outage"),
            "PUT",
            {"outage": outage, "hang": hang if full else 0, "expires_in": until},
        )
        return result

    def outages(self) -> dict[str, dict[str, Any]]:
        """Each region's outage state (outage: None, app or full; hang)."""
        return {r: http_json(self._url(r, "outage")) for r in self.env.regions}

    def set_app_fault(self, region: str, error_rate: float, latency_ms: float) -> dict[str, Any]:
        result: dict[str, Any] = http_json(
            self._url(self._region(region), "app"),
            "PUT",
            {"error_rate": error_rate, "latency_ms": latency_ms},
        )
        return result

    # ---------------------------------------------------------------- Kubernetes secure port
    def kube_auth(self, region: str) -> dict[str, Any]:
        """Who a region's secure Kubernetes port lets in (no secrets), and its recent
        decisions (who, how, or why not)."""
        result: dict[str, Any] = http_json(self._url(self._region(region), "auth"))
        return result

    def set_kube_auth(self, region: str, **fields: Any) -> dict[str, Any]:
        """Replace what the fields name (`service_account_tokens`, `static_tokens`,
        `eks_clusters`, `sts_endpoints`, `aws_credentials`: `orchestrator.sandbox.k8s.auth`)."""
        result: dict[str, Any] = http_json(self._url(self._region(region), "auth"), "PUT", fields)
        return result

    # ------------------------------------------------------------------------------- calls
    def calls(self, since: float | None = None) -> list[Call]:
        query = f"calls?since={since}" if since is not None else "calls"
        out: list[Call] = []
        for c in self._components():
            out += [Call.model_validate(x) for x in http_json(self._url(c, query))]
        return sorted(out, key=lambda call: call.time)

    def clear_calls(self) -> None:
        for c in self._components():
            http_json(self._url(c, "calls"), "DELETE", {})

    # ------------------------------------------------------------------------ notifications
    def _sink(self, path: str) -> str:
        if not self.env.notify_url:
            raise SandboxError(
                "this sandbox has no notification sink (started by an older version): "
                "run 'failover sandbox up' to start it"
            )
        return f"{self.env.notify_url}/_sandbox/{path}"

    def notifications(self, since: float | None = None) -> list[dict[str, Any]]:
        """What arrived at the sink, oldest first: kind (slack, pagerduty, webhook, sns),
        channel, event, summary, valid, signature (webhooks), status answered, the body."""
        query = f"notifications?since={since}" if since is not None else "notifications"
        result: list[dict[str, Any]] = http_json(self._sink(query))
        return result

    def clear_notifications(self) -> None:
        http_json(self._sink("notifications"), "DELETE", {})

    def set_notify_fault(
        self, channel: str = "*", mode: str = "error", status: int = 500, hang: float = 60.0
    ) -> dict[str, Any]:
        """Make the sink answer `status` (mode error) or hold requests `hang` seconds (mode
        hang) for a channel ("*": every channel); mode ok removes it."""
        result: dict[str, Any] = http_json(
            self._sink("notify/fault"),
            "PUT",
            {"channel": channel, "mode": mode, "status": status, "hang": hang},
        )
        return result

    def clear_notify_faults(self) -> None:
        if self.env.notify_url:
            http_json(self._sink("notify/fault"), "DELETE", {})

    def set_notify_secret(self, channel: str, secret: str) -> None:
        """The HMAC key the sink checks a webhook channel's signatures with."""
        http_json(self._sink("notify/secret"), "PUT", {"channel": channel, "secret": secret})

    # ----------------------------------------------------------------------- lag & latency
    def set_lag(self, seconds: float, resource: str = "*") -> dict[str, float]:
        result: dict[str, float] = http_json(self._url("aws", "lag"), "PUT", {resource: seconds})
        return result

    def set_replication_lag(self, region: str, seconds: float) -> dict[str, Any]:
        """How late a region's app replicates the peer's orders while its database is a replica
        (what an unplanned failover to it loses: the orders younger than this)."""
        result: dict[str, Any] = http_json(
            self._url(self._region(region), "replication"), "PUT", {"lag": seconds}
        )
        return result

    def set_quota(self, service: str, rate: float, burst: float | None = None) -> dict[str, Any]:
        """Enforce an API request quota on `service`: `rate` requests a second per account (0
        lifts it), in bursts of at most `burst` (default: one second's worth); past it, calls
        are answered `Throttling`."""
        body = {"service": service, "rate": rate, "burst": burst}
        result: dict[str, Any] = http_json(self._url("aws", "quota"), "PUT", body)
        return result

    def quotas(self) -> dict[str, Any]:
        """The quotas set, with the calls each let through and throttled since."""
        result: dict[str, Any] = http_json(self._url("aws", "quota"))
        return result

    def set_latency(self, **values: float) -> None:
        for c in self._components():
            http_json(self._url(c, "latency"), "PUT", values)

    # ---------------------------------------------------------------------------- topology
    def active_region(self) -> str:
        """The region that holds the shop's Aurora global writer now."""
        from orchestrator.sandbox.aws.seed import client

        gc = client(self.env.aws_endpoint_url, "rds", next(iter(self.env.regions)))
        members = gc.describe_global_clusters(GlobalClusterIdentifier="shop-global")[
            "GlobalClusters"
        ][0]["GlobalClusterMembers"]
        writer = next(m for m in members if m["IsWriter"])
        return str(writer["DBClusterArn"].split(":")[3])
