"""failover-orchestrator: safe, verified, reversible region switches on Temporal."""

__version__ = "0.1.0"
