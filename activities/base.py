"""The step-type contract: one class per type, registered in one place (`activities.registry`).

This module holds what a runbook needs to be validated and planned: the type's name, its params
model, whether it mutates anything, whether it can be undone, and its one-line description. The
runtime half of the contract (preflight, snapshot, apply, verify, undo, dry_run) is added with the
engine; it is deliberately not stubbed here.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict


class StepParams(BaseModel):
    """Base of every step type's params: unknown fields are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class StepType:
    """A kind of step a runbook can name in `type:`."""

    name: ClassVar[str]
    Params: ClassVar[type[StepParams]] = StepParams
    #: True if apply changes the world (then it needs an undo or `irreversible: true`).
    mutating: ClassVar[bool] = False
    #: True if undo restores what apply changed.
    reversible: ClassVar[bool] = True
    #: True for approval gates: the engine waits for people, not for an activity.
    gate: ClassVar[bool] = False
    summary: ClassVar[str] = ""

    def describe(self, params: StepParams) -> str:
        """One line for plans and reports."""
        return self.summary or self.name
