"""How long slow cloud operations take in the sandbox, scaled so drills are realistic yet fast."""

from __future__ import annotations

from pydantic import BaseModel, Field


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
