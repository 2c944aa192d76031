"""Temporal workflow code only: deterministic orchestration, no I/O, no cloud clients."""

from workflows.region_switch import RegionSwitchWorkflow

WORKFLOWS = [RegionSwitchWorkflow]

__all__ = ["WORKFLOWS", "RegionSwitchWorkflow"]
