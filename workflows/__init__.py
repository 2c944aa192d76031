"""Temporal workflow code only: deterministic orchestration, no I/O, no cloud clients."""

from workflows.evacuation import EvacuationWorkflow
from workflows.gameday import GameDayWorkflow
from workflows.guard import GuardWorkflow
from workflows.readiness import ReadinessWorkflow
from workflows.region_switch import RegionSwitchWorkflow

WORKFLOWS = [
    RegionSwitchWorkflow,
    GameDayWorkflow,
    GuardWorkflow,
    ReadinessWorkflow,
    EvacuationWorkflow,
]

__all__ = [
    "WORKFLOWS",
    "EvacuationWorkflow",
    "GameDayWorkflow",
    "GuardWorkflow",
    "ReadinessWorkflow",
    "RegionSwitchWorkflow",
]
