"""The one place step types are registered: a new type is one class plus one line here."""

from __future__ import annotations

from activities.aws import SsmParameter
from activities.base import StepType
from activities.builtin import Approval, Noop, Wait
from activities.http import HttpCheck
from activities.kubernetes import ConfigMapFlag

STEP_TYPES: dict[str, StepType] = {
    t.name: t() for t in (Noop, Wait, Approval, HttpCheck, SsmParameter, ConfigMapFlag)
}


def get(name: str) -> StepType | None:
    """The registered step type with this name, or None."""
    return STEP_TYPES.get(name)
