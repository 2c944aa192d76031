"""A state step's activities, phase by phase, as the step activities run them (for tests that
count the calls each phase makes)."""

from __future__ import annotations

from typing import Any

from activities import registry
from activities.base import StateStep, StepContext, StepParams
from activities.clients import Clients


def activity(clients: Clients) -> StepContext:
    """A new activity's context on the worker's clients."""
    return StepContext("run", "s", "us-east-1", "us-west-2", None, "drill", clients)


def step(type_name: str, **values: object) -> tuple[StateStep[Any], StepParams]:
    """A registered state step type and its params."""
    stype = registry.get(type_name)
    assert isinstance(stype, StateStep)
    return stype, stype.Params.model_validate(values)


def prepare(stype: StateStep[Any], params: StepParams, clients: Clients) -> dict[str, Any]:
    """What the prepare activity does: preflight, then the snapshot."""
    ctx = activity(clients)
    stype.preflight(ctx, params)
    return stype.snapshot(ctx, params)


def apply(
    stype: StateStep[Any], params: StepParams, clients: Clients, snap: dict[str, Any]
) -> None:
    """What the apply activity does: apply, then verify."""
    ctx = activity(clients)
    stype.apply(ctx, params, snap)
    assert stype.verify(ctx, params, snap).ok
