"""How long slow cloud operations take in the sandbox, scaled so drills are realistic yet fast.

`LatencyModel` is what the sandbox's servers wait for (Aurora transitions, Route 53 propagation,
rollouts, promotions, ...). `STEP_OPERATIONS` is the one place that says which of those modelled
operations each step type waits for on the sandbox; `LatencyModel.step_seconds` turns a step
into its modelled duration (the floor no orchestrator can beat: `bench/rto.py` adds them up
along a runbook's longest dependency chain).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, Field

from orchestrator.runbook.durations import parse_duration

#: For every step type: the `LatencyModel` operations (field names) a step of that type waits
#: for on the sandbox, one after the other. `()`: nothing modelled takes time (a write that is
#: in effect when it is answered, a read-only check of the world as it is). Exceptions that
#: depend on the step's params are in `LatencyModel.operations`:
#: - `route53_weighted`: one propagation per increment (`increments`, default 1);
#: - `k8s_scale`: a scale to 0 replicas is ready at once (the toy controller removes Pods at
#:   once; scaling up, or down to more than 0, waits for the rollout);
#: - `noop` and `wait` take their `duration` (not scaled: it is the step's own);
#: - `approval` counts as answered at once (its wait for people is not the orchestrator's cost).
#: Every registered step type is listed (tests/bench/test_rto_bound.py checks it), so a new type
#: must say what it waits for.
STEP_OPERATIONS: Mapping[str, tuple[str, ...]] = {
    # slow operations the sandbox models
    "aurora_global_switchover": ("aurora_switchover",),
    "aurora_global_failover": ("aurora_failover",),
    "rds_promote_replica": ("replica_promotion",),
    "route53_weighted": ("dns_propagation",),
    "route53_failover": ("dns_propagation",),
    "k8s_scale": ("rollout_ready",),
    "k8s_job": ("job_run",),
    "cnpg_role": ("cnpg_promotion",),
    "ga_traffic_dial": ("accelerator_deploy",),
    "chaos_mesh": ("chaos_injection",),
    "fis_experiment": ("chaos_injection",),
    # in effect when answered, or read-only
    "noop": (),
    "wait": (),
    "approval": (),
    "http_check": (),
    "write_divergence": (),
    "ssm_parameter": (),
    "k8s_configmap_flag": (),
    "k8s_patch": (),
    "route53_health_check": (),
    "dns_view": (),
    "dns_answer": (),
    "arc_routing_controls": (),
    "elbv2_weights": (),
    "asg_capacity": (),
    "aurora_global_rejoin": (),
    "ecs_service": (),
    "replica_lag": (),
    "cloudwatch_metric": (),
    "cloudwatch_alarm": (),
    "route53_health_status": (),
    "sandbox_fault": (),
    "region_outage": (),
}


class LatencyModel(BaseModel):
    """Durations in (unscaled) seconds; every one is multiplied by `time_scale`."""

    time_scale: float = Field(default=0.02, ge=0, description="1.0 = real-world durations")
    aurora_switchover: float = 60.0
    aurora_failover: float = 45.0
    replica_promotion: float = 60.0
    dns_propagation: float = 30.0
    rollout_ready: float = 20.0
    job_run: float = 15.0
    cnpg_promotion: float = 20.0
    accelerator_deploy: float = 30.0
    chaos_injection: float = 10.0

    def seconds(self, name: str) -> float:
        """Scaled duration of one named operation."""
        return float(getattr(self, name)) * self.time_scale

    @staticmethod
    def operations(step_type: str, params: Mapping[str, Any]) -> list[str]:
        """The modelled operations a step of `step_type` with `params` waits for, in order
        (KeyError for a type `STEP_OPERATIONS` does not list)."""
        ops = list(STEP_OPERATIONS[step_type])
        if step_type == "route53_weighted":
            ops *= int(params.get("increments", 1))
        elif step_type == "k8s_scale" and int(params.get("replicas", 1)) == 0:
            ops = []
        return ops

    def step_seconds(self, step_type: str, params: Mapping[str, Any]) -> float:
        """The modelled duration of one step: its operations' scaled durations, plus the
        `duration` a `noop` or `wait` step states (KeyError for an unlisted type)."""
        total = sum(self.seconds(op) for op in self.operations(step_type, params))
        if step_type in ("noop", "wait") and params.get("duration") is not None:
            total += parse_duration(params["duration"]).total_seconds()
        return total
