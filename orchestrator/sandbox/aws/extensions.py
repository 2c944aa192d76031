"""Services moto does not have: Route 53 ARC (control config + cluster) and Global Accelerator.

Handlers take the operation's input (as botocore would send it) and return the output as a dict;
the server serializes it with botocore's shapes. Only what a region switch uses is here, with the
semantics AWS documents: routing-control updates are checked against the control panel's safety
rules (assertion and gating rules, with overrides); accelerator changes deploy over time.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from orchestrator.sandbox.aws.errors import SandboxError
from orchestrator.sandbox.latency import LatencyModel

ACCOUNT = "123456789012"
ARC_ENDPOINT_REGIONS = ("us-east-1", "us-west-2", "eu-west-1", "ap-northeast-1", "ap-southeast-2")


def _error(code: str, message: str, **attrs: Any) -> SandboxError:
    return SandboxError(code, message, **attrs)


def _not_found(kind: str, arn: str) -> SandboxError:
    return _error(
        "ResourceNotFoundException", f"{kind} {arn} not found", resourceId=arn, resourceType=kind
    )


class Extensions:
    """State and handlers of the extra services, for one AWS server process."""

    def __init__(self, latency: LatencyModel, base_url: Callable[[str | None], str]) -> None:
        self.latency = latency
        self._base_url = base_url
        self.lock = threading.RLock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.clusters: dict[str, dict[str, Any]] = {}
            self.panels: dict[str, dict[str, Any]] = {}
            self.controls: dict[str, dict[str, Any]] = {}  # arn -> control (+ "_state")
            self.rules: dict[str, dict[str, Any]] = {}  # arn -> {"ASSERTION"|"GATING": rule}
            self.accelerators: dict[str, dict[str, Any]] = {}
            self.listeners: dict[str, dict[str, Any]] = {}
            self.groups: dict[str, dict[str, Any]] = {}
            self._deploy_until: dict[str, float] = {}

    def handle(self, service: str, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        method = getattr(self, f"_{service.replace('-', '_')}__{operation}", None)
        if method is None:
            raise _error(
                "InternalFailure", f"{service}:{operation} is not available in the sandbox"
            )
        with self.lock:
            return dict(method(params))

    # ------------------------------------------------------------ ARC control configuration
    def _cfg_arn(self, kind: str, name: str) -> str:
        return f"arn:aws:route53-recovery-control::{ACCOUNT}:{kind}/{name}-{uuid.uuid4().hex[:8]}"

    def _route53_recovery_control_config__CreateCluster(self, p: dict[str, Any]) -> dict[str, Any]:
        arn = self._cfg_arn("cluster", p["ClusterName"])
        # Each endpoint is served from its region's own endpoint where the sandbox has that
        # region (it goes down with it), else from the main one. The path names the cluster, so
        # an endpoint stays the same when the sandbox is reset and re-seeded (as configuration
        # that lists it expects).
        endpoints = [
            {"Endpoint": f"{self._base_url(region)}/_arc/{p['ClusterName']}/{i}", "Region": region}
            for i, region in enumerate(ARC_ENDPOINT_REGIONS, start=1)
        ]
        self.clusters[arn] = {
            "ClusterArn": arn,
            "ClusterEndpoints": endpoints,
            "Name": p["ClusterName"],
            "Status": "DEPLOYED",
            "Owner": ACCOUNT,
            "NetworkType": p.get("NetworkType", "IPV4"),
        }
        return {"Cluster": self.clusters[arn]}

    def _route53_recovery_control_config__DescribeCluster(
        self, p: dict[str, Any]
    ) -> dict[str, Any]:
        if p["ClusterArn"] not in self.clusters:
            raise _not_found("Cluster", p["ClusterArn"])
        return {"Cluster": self.clusters[p["ClusterArn"]]}

    def _route53_recovery_control_config__ListClusters(self, p: dict[str, Any]) -> dict[str, Any]:
        return {"Clusters": list(self.clusters.values())}

    def _route53_recovery_control_config__DeleteCluster(self, p: dict[str, Any]) -> dict[str, Any]:
        if self.clusters.pop(p["ClusterArn"], None) is None:
            raise _not_found("Cluster", p["ClusterArn"])
        return {}

    def _route53_recovery_control_config__CreateControlPanel(
        self, p: dict[str, Any]
    ) -> dict[str, Any]:
        if p["ClusterArn"] not in self.clusters:
            raise _not_found("Cluster", p["ClusterArn"])
        arn = self._cfg_arn("controlpanel", p["ControlPanelName"])
        self.panels[arn] = {
            "ClusterArn": p["ClusterArn"],
            "ControlPanelArn": arn,
            "DefaultControlPanel": False,
            "Name": p["ControlPanelName"],
            "RoutingControlCount": 0,
            "Status": "DEPLOYED",
            "Owner": ACCOUNT,
        }
        return {"ControlPanel": self.panels[arn]}

    def _panel(self, arn: str) -> dict[str, Any]:
        if arn not in self.panels:
            raise _not_found("ControlPanel", arn)
        panel = self.panels[arn]
        panel["RoutingControlCount"] = sum(
            1 for c in self.controls.values() if c["ControlPanelArn"] == arn
        )
        return panel

    def _route53_recovery_control_config__DescribeControlPanel(
        self, p: dict[str, Any]
    ) -> dict[str, Any]:
        return {"ControlPanel": self._panel(p["ControlPanelArn"])}

    def _route53_recovery_control_config__ListControlPanels(
        self, p: dict[str, Any]
    ) -> dict[str, Any]:
        panels = [self._panel(a) for a in self.panels]
        if p.get("ClusterArn"):
            panels = [x for x in panels if x["ClusterArn"] == p["ClusterArn"]]
        return {"ControlPanels": panels}

    def _route53_recovery_control_config__CreateRoutingControl(
        self, p: dict[str, Any]
    ) -> dict[str, Any]:
        panel_arn = p.get("ControlPanelArn") or next(
            (a for a, x in self.panels.items() if x["ClusterArn"] == p["ClusterArn"]), None
        )
        if panel_arn is None or panel_arn not in self.panels:
            raise _not_found("ControlPanel", str(panel_arn))
        arn = f"{panel_arn}/routingcontrol/{uuid.uuid4().hex[:16]}"
        self.controls[arn] = {
            "ControlPanelArn": panel_arn,
            "Name": p["RoutingControlName"],
            "RoutingControlArn": arn,
            "Status": "DEPLOYED",
            "Owner": ACCOUNT,
            "_state": "Off",
        }
        return {"RoutingControl": self._public(self.controls[arn])}

    @staticmethod
    def _public(obj: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in obj.items() if not k.startswith("_")}

    def _control(self, arn: str) -> dict[str, Any]:
        if arn not in self.controls:
            raise _not_found("RoutingControl", arn)
        return self.controls[arn]

    def _route53_recovery_control_config__DescribeRoutingControl(
        self, p: dict[str, Any]
    ) -> dict[str, Any]:
        return {"RoutingControl": self._public(self._control(p["RoutingControlArn"]))}

    def _route53_recovery_control_config__ListRoutingControls(
        self, p: dict[str, Any]
    ) -> dict[str, Any]:
        self._panel(p["ControlPanelArn"])
        return {
            "RoutingControls": [
                self._public(c)
                for c in self.controls.values()
                if c["ControlPanelArn"] == p["ControlPanelArn"]
            ]
        }

    def _route53_recovery_control_config__DeleteRoutingControl(
        self, p: dict[str, Any]
    ) -> dict[str, Any]:
        self._control(p["RoutingControlArn"])
        del self.controls[p["RoutingControlArn"]]
        return {}

    def _route53_recovery_control_config__CreateSafetyRule(
        self, p: dict[str, Any]
    ) -> dict[str, Any]:
        kind = "AssertionRule" if "AssertionRule" in p else "GatingRule"
        rule = dict(p[kind])
        self._panel(rule["ControlPanelArn"])
        controls = rule.get("AssertedControls", []) + rule.get("GatingControls", [])
        for arn in controls + rule.get("TargetControls", []):
            self._control(arn)
        rule["SafetyRuleArn"] = f"{rule['ControlPanelArn']}/safetyrule/{uuid.uuid4().hex[:16]}"
        rule["Status"] = "DEPLOYED"
        rule["Owner"] = ACCOUNT
        self.rules[rule["SafetyRuleArn"]] = {
            "ASSERTION" if kind == "AssertionRule" else "GATING": rule
        }
        return {kind: rule}

    def _route53_recovery_control_config__ListSafetyRules(
        self, p: dict[str, Any]
    ) -> dict[str, Any]:
        self._panel(p["ControlPanelArn"])
        rules = [
            r
            for r in self.rules.values()
            if next(iter(r.values()))["ControlPanelArn"] == p["ControlPanelArn"]
        ]
        return {"SafetyRules": rules}

    def _route53_recovery_control_config__DescribeSafetyRule(
        self, p: dict[str, Any]
    ) -> dict[str, Any]:
        rule = self.rules.get(p["SafetyRuleArn"])
        if rule is None:
            raise _not_found("SafetyRule", p["SafetyRuleArn"])
        kind, body = next(iter(rule.items()))
        return {"AssertionRule" if kind == "ASSERTION" else "GatingRule": body}

    def _route53_recovery_control_config__DeleteSafetyRule(
        self, p: dict[str, Any]
    ) -> dict[str, Any]:
        if self.rules.pop(p["SafetyRuleArn"], None) is None:
            raise _not_found("SafetyRule", p["SafetyRuleArn"])
        return {}

    def routing_control_state(self, arn: str) -> str | None:
        """A routing control's state ("On"/"Off"), None if there is no such control: what a
        Route 53 health check of type RECOVERY_CONTROL follows."""
        with self.lock:
            control = self.controls.get(arn)
            return None if control is None else str(control["_state"])

    # ------------------------------------------------------------- ARC cluster (data plane)
    def _route53_recovery_cluster__GetRoutingControlState(
        self, p: dict[str, Any]
    ) -> dict[str, Any]:
        c = self._control(p["RoutingControlArn"])
        return {
            "RoutingControlArn": c["RoutingControlArn"],
            "RoutingControlState": c["_state"],
            "RoutingControlName": c["Name"],
        }

    def _route53_recovery_cluster__ListRoutingControls(self, p: dict[str, Any]) -> dict[str, Any]:
        out = []
        for c in self.controls.values():
            if p.get("ControlPanelArn") and c["ControlPanelArn"] != p["ControlPanelArn"]:
                continue
            out.append(
                {
                    "ControlPanelArn": c["ControlPanelArn"],
                    "ControlPanelName": self.panels[c["ControlPanelArn"]]["Name"],
                    "RoutingControlArn": c["RoutingControlArn"],
                    "RoutingControlName": c["Name"],
                    "RoutingControlState": c["_state"],
                    "Owner": ACCOUNT,
                }
            )
        return {"RoutingControls": out}

    def _route53_recovery_cluster__UpdateRoutingControlState(
        self, p: dict[str, Any]
    ) -> dict[str, Any]:
        self._update_states(
            {p["RoutingControlArn"]: p["RoutingControlState"]}, p.get("SafetyRulesToOverride", [])
        )
        return {}

    def _route53_recovery_cluster__UpdateRoutingControlStates(
        self, p: dict[str, Any]
    ) -> dict[str, Any]:
        changes = {
            e["RoutingControlArn"]: e["RoutingControlState"]
            for e in p["UpdateRoutingControlStateEntries"]
        }
        self._update_states(changes, p.get("SafetyRulesToOverride", []))
        return {}

    @staticmethod
    def _satisfied(config: dict[str, Any], states: list[str]) -> bool:
        on = sum(1 for s in states if s == "On")
        kind = config.get("Type", "ATLEAST")
        if kind == "AND":
            ok = on == len(states)
        elif kind == "OR":
            ok = on >= 1
        else:
            ok = on >= int(config.get("Threshold", 1))
        return not ok if config.get("Inverted") else ok

    def _update_states(self, changes: dict[str, str], overrides: list[str]) -> None:
        for arn, state in changes.items():
            self._control(arn)
            if state not in ("On", "Off"):
                raise _error("ValidationException", f"Invalid routing control state {state}")
        after = {arn: c["_state"] for arn, c in self.controls.items()} | changes
        for rule_arn, rule in self.rules.items():
            if rule_arn in overrides:
                continue
            kind, body = next(iter(rule.items()))
            if kind == "ASSERTION":
                asserted = body["AssertedControls"]
                if not any(a in changes for a in asserted):
                    continue
                ok = self._satisfied(body["RuleConfig"], [after[a] for a in asserted])
            else:
                if not any(t in changes for t in body["TargetControls"]):
                    continue
                ok = self._satisfied(body["RuleConfig"], [after[g] for g in body["GatingControls"]])
            if not ok:
                raise _error(
                    "ConflictException",
                    f"The update would violate safety rule {body['Name']} ({rule_arn}); "
                    "override it with SafetyRulesToOverride if this is intended.",
                    resourceId=rule_arn,
                    resourceType="SafetyRule",
                )
        for arn, state in changes.items():
            self.controls[arn]["_state"] = state

    # ---------------------------------------------------------------- Global Accelerator
    def _deploying(self, acc_arn: str) -> None:
        self._deploy_until[acc_arn] = time.monotonic() + self.latency.seconds("accelerator_deploy")
        acc = self.accelerators[acc_arn]
        acc["Status"] = "IN_PROGRESS"
        acc["LastModifiedTime"] = datetime.now(UTC)

    def _acc(self, arn: str) -> dict[str, Any]:
        acc = self.accelerators.get(arn)
        if acc is None:
            raise _error("AcceleratorNotFoundException", f"Accelerator {arn} not found")
        if acc["Status"] == "IN_PROGRESS" and time.monotonic() >= self._deploy_until.get(arn, 0):
            acc["Status"] = "DEPLOYED"
        return acc

    def _globalaccelerator__CreateAccelerator(self, p: dict[str, Any]) -> dict[str, Any]:
        arn = f"arn:aws:globalaccelerator::{ACCOUNT}:accelerator/{uuid.uuid4()}"
        now = datetime.now(UTC)
        n = len(self.accelerators) + 1
        self.accelerators[arn] = {
            "AcceleratorArn": arn,
            "Name": p["Name"],
            "IpAddressType": p.get("IpAddressType", "IPV4"),
            "Enabled": p.get("Enabled", True),
            "IpSets": [{"IpFamily": "IPv4", "IpAddresses": [f"75.2.{n}.1", f"99.83.{n}.1"]}],
            "DnsName": f"a{uuid.uuid4().hex[:16]}.awsglobalaccelerator.com",
            "Status": "IN_PROGRESS",
            "CreatedTime": now,
            "LastModifiedTime": now,
        }
        self._deploying(arn)
        return {"Accelerator": self.accelerators[arn]}

    def _globalaccelerator__DescribeAccelerator(self, p: dict[str, Any]) -> dict[str, Any]:
        return {"Accelerator": self._acc(p["AcceleratorArn"])}

    def _globalaccelerator__ListAccelerators(self, p: dict[str, Any]) -> dict[str, Any]:
        return {"Accelerators": [self._acc(a) for a in self.accelerators]}

    def _globalaccelerator__CreateListener(self, p: dict[str, Any]) -> dict[str, Any]:
        self._acc(p["AcceleratorArn"])
        arn = f"{p['AcceleratorArn']}/listener/{uuid.uuid4().hex[:8]}"
        self.listeners[arn] = {
            "ListenerArn": arn,
            "PortRanges": p["PortRanges"],
            "Protocol": p["Protocol"],
            "ClientAffinity": p.get("ClientAffinity", "NONE"),
        }
        self._deploying(p["AcceleratorArn"])
        return {"Listener": self.listeners[arn]}

    def _globalaccelerator__ListListeners(self, p: dict[str, Any]) -> dict[str, Any]:
        prefix = p["AcceleratorArn"] + "/"
        return {"Listeners": [x for a, x in self.listeners.items() if a.startswith(prefix)]}

    def _globalaccelerator__DescribeListener(self, p: dict[str, Any]) -> dict[str, Any]:
        if p["ListenerArn"] not in self.listeners:
            raise _error("ListenerNotFoundException", f"Listener {p['ListenerArn']} not found")
        return {"Listener": self.listeners[p["ListenerArn"]]}

    @staticmethod
    def _endpoints(configs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            {
                "EndpointId": c["EndpointId"],
                "Weight": c.get("Weight", 128),
                "HealthState": "HEALTHY",
                "ClientIPPreservationEnabled": c.get("ClientIPPreservationEnabled", False),
            }
            for c in configs
        ]

    def _globalaccelerator__CreateEndpointGroup(self, p: dict[str, Any]) -> dict[str, Any]:
        if p["ListenerArn"] not in self.listeners:
            raise _error("ListenerNotFoundException", f"Listener {p['ListenerArn']} not found")
        for g in self.groups.values():
            if (
                g["_listener"] == p["ListenerArn"]
                and g["EndpointGroupRegion"] == p["EndpointGroupRegion"]
            ):
                raise _error(
                    "EndpointGroupAlreadyExistsException",
                    f"An endpoint group for {p['EndpointGroupRegion']} already exists",
                )
        arn = f"{p['ListenerArn']}/endpoint-group/{uuid.uuid4().hex[:12]}"
        self.groups[arn] = {
            "EndpointGroupArn": arn,
            "EndpointGroupRegion": p["EndpointGroupRegion"],
            "EndpointDescriptions": self._endpoints(p.get("EndpointConfigurations", [])),
            "TrafficDialPercentage": float(p.get("TrafficDialPercentage", 100.0)),
            "HealthCheckPort": p.get("HealthCheckPort", 80),
            "HealthCheckProtocol": p.get("HealthCheckProtocol", "TCP"),
            "HealthCheckPath": p.get("HealthCheckPath", "/"),
            "HealthCheckIntervalSeconds": p.get("HealthCheckIntervalSeconds", 30),
            "ThresholdCount": p.get("ThresholdCount", 3),
            "_listener": p["ListenerArn"],
        }
        self._deploying(p["ListenerArn"].split("/listener/")[0])
        return {"EndpointGroup": self._public(self.groups[arn])}

    def _group(self, arn: str) -> dict[str, Any]:
        if arn not in self.groups:
            raise _error("EndpointGroupNotFoundException", f"Endpoint group {arn} not found")
        return self.groups[arn]

    def _globalaccelerator__DescribeEndpointGroup(self, p: dict[str, Any]) -> dict[str, Any]:
        return {"EndpointGroup": self._public(self._group(p["EndpointGroupArn"]))}

    def _globalaccelerator__ListEndpointGroups(self, p: dict[str, Any]) -> dict[str, Any]:
        return {
            "EndpointGroups": [
                self._public(g) for g in self.groups.values() if g["_listener"] == p["ListenerArn"]
            ]
        }

    def _globalaccelerator__UpdateEndpointGroup(self, p: dict[str, Any]) -> dict[str, Any]:
        g = self._group(p["EndpointGroupArn"])
        if "TrafficDialPercentage" in p:
            dial = float(p["TrafficDialPercentage"])
            if not 0 <= dial <= 100:
                raise _error("InvalidArgumentException", "TrafficDialPercentage must be 0-100")
            g["TrafficDialPercentage"] = dial
        if "EndpointConfigurations" in p:
            g["EndpointDescriptions"] = self._endpoints(p["EndpointConfigurations"])
        for key in ("HealthCheckPort", "HealthCheckProtocol", "HealthCheckPath", "ThresholdCount"):
            if key in p:
                g[key] = p[key]
        self._deploying(g["_listener"].split("/listener/")[0])
        return {"EndpointGroup": self._public(g)}

    def _globalaccelerator__DeleteEndpointGroup(self, p: dict[str, Any]) -> dict[str, Any]:
        self._group(p["EndpointGroupArn"])
        del self.groups[p["EndpointGroupArn"]]
        return {}


EXTENSION_SERVICES = frozenset(
    {"route53-recovery-control-config", "route53-recovery-cluster", "globalaccelerator"}
)
