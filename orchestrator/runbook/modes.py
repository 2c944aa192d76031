"""Which steps a run of a runbook is made of, by its kind: planned, unplanned or recovery.

- planned (both regions answer): every step but those marked `planned: skip`;
- unplanned (the source region does not answer): every step but those marked `unplanned: skip`
  or `unplanned: defer`, with `unplanned: {replace: ...}` applied; the deferred steps are the
  work owed to the failed region;
- recovery (`failover recover`, once the failed region answers again): the deferred steps, then
  the runbook's `recovery:` steps.

A step left out hands its dependencies down to the steps that depended on it, so the order of
what remains is the runbook's order. Pure: the loader validates each kind's DAG with it, and the
resolver builds runs from it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

from orchestrator.runbook.models import Runbook, Step, Unplanned

Kind = Literal["planned", "unplanned", "recovery"]
KINDS: tuple[Kind, ...] = ("planned", "unplanned", "recovery")


@dataclass
class Selection:
    """The steps of one kind of run, and (unplanned) the steps it owes the failed region."""

    steps: list[Step]
    deferred: list[Step] = field(default_factory=list)


def replaced(step: Step) -> Step:
    """The step an unplanned run runs in place of `step` (itself unless it is replaced)."""
    if not isinstance(step.unplanned, Unplanned):
        return step
    r = step.unplanned.replace
    return step.model_copy(
        update={
            "type": r.type,
            "params": r.params,
            "description": r.description or step.description,
            "region": r.region if r.region is not None else step.region,
            "account": r.account if r.account is not None else step.account,
            "timeout": r.timeout if r.timeout is not None else step.timeout,
            "guards": r.guards,
            "irreversible": r.irreversible,
            "unplanned": "run",
        }
    )


def select(rb: Runbook, kind: Kind) -> Selection:
    """The steps of a `kind` run of `rb`, dependencies handed down past the steps left out."""
    deferred = [s for s in rb.steps if s.unplanned == "defer"]
    if kind == "planned":
        kept = [s for s in rb.steps if s.planned == "run"]
    elif kind == "unplanned":
        kept = [replaced(s) for s in rb.steps if s.unplanned not in ("skip", "defer")]
    else:
        kept = [*deferred, *rb.recovery]
    deps = {s.id: s.depends_on for s in [*rb.steps, *rb.recovery]}
    ids = {s.id for s in kept}

    def through(sid: str, seen: set[str]) -> Iterator[str]:
        for dep in deps.get(sid, ()):
            if dep in ids:
                yield dep
            elif dep not in seen:
                seen.add(dep)
                yield from through(dep, seen)

    steps = [s.model_copy(update={"depends_on": list(dict.fromkeys(through(s.id, set())))})
             for s in kept]  # fmt: skip
    return Selection(steps=steps, deferred=deferred if kind == "unplanned" else [])
