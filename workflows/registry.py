"""Every workflow the worker registers, in one list.

Kept out of `workflows/__init__.py` on purpose: the workflow sandbox imports a workflow's module
(and so its package's `__init__`) anew for every workflow it starts, so a package `__init__` that
imported every workflow would make each switch import all of them.
"""

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
