"""The step-type contract: one class per type, registered in one place (`activities.registry`).

Static half (what validation and plans need): the type's name, its params model, whether it mutates
anything, whether it can be undone, whether it is a gate, its one-line description.

Runtime half (what the engine's activities call, in a worker thread):

- `preflight`: read-only checks; raise `StepError("PreflightFailed", ...)` early, with the reason.
- `snapshot`: the prior state needed to undo (JSON-able), captured before anything is changed and
  recorded durably by the engine, so a crash after `apply` cannot lose it.
- `apply`: idempotent: running it twice has the effect of running it once.
- `verify`: the postcondition; the engine polls it until it holds or the step times out.
- `undo`: restores the snapshot; idempotent; `verify_undo` is polled after it.
- `describe`: one line for plans and reports; `dry_run`: what would change.

`StateStep` implements all of that for the common case of "read a state, write a desired state":
a type then only says how to `observe`, what it `desires` and how to `write`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from activities.errors import StepError

if TYPE_CHECKING:
    from activities.clients import Clients

State = dict[str, Any]


class StepParams(BaseModel):
    """Base of every step type's params: unknown fields are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class RegionalParams(StepParams):
    """Params of a step that acts in one region: `region` (a template such as
    ${{ from_region }}), else the step's own region."""

    region: str | None = Field(default=None, description="Region (default: the step's).")

    @property
    def where(self) -> str:
        """' in REGION' when the params name a region (for descriptions), else ''."""
        return f" in {self.region}" if self.region else ""


class Change(BaseModel):
    """One change a step makes (or would make): a resource and its before -> after."""

    resource: str
    before: Any = None
    after: Any = None


class Check(BaseModel):
    """The outcome of a verification: holds or not, why, and what was observed."""

    ok: bool
    detail: str = ""
    observed: dict[str, Any] = {}


@dataclass
class StepContext:
    """What a step needs at run time: where it runs and the clients to act with."""

    run_id: str
    step_id: str
    from_region: str
    to_region: str
    region: str | None
    mode: str
    clients: Clients
    heartbeat: Callable[..., None] = field(default=lambda *_: None)

    @property
    def scope(self) -> str:
        """The step's region: its `region:`, else the target region."""
        return self.region or self.to_region

    def region_for(self, params: StepParams) -> str:
        """Where a regional step acts: its params' region, else the step's."""
        return getattr(params, "region", None) or self.scope


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
    #: True for steps the engine runs itself (durable timers): no activity.
    engine_only: ClassVar[bool] = False
    #: True if the step moves user traffic (DNS, load balancers, accelerators, routing controls):
    #: the run's RTO to "traffic on the target" ends with the last such step.
    traffic: ClassVar[bool] = False
    #: True for fault injectors (game days): apply injects, verify sees it in effect, undo
    #: removes it and verify_undo sees it gone. Only these may be a game day's `fault`.
    fault: ClassVar[bool] = False
    #: Seconds between two polls of verify.
    poll_interval: ClassVar[float] = 0.25
    #: The AWS IAM actions the type calls (for least-privilege policies).
    actions: ClassVar[tuple[str, ...]] = ()
    #: The Kubernetes (apiGroup, resource, verb) triples the type uses (for RBAC).
    verbs: ClassVar[tuple[tuple[str, str, str], ...]] = ()
    summary: ClassVar[str] = ""

    def describe(self, params: StepParams) -> str:
        """One line for plans and reports."""
        return self.summary or self.name

    # ------------------------------------------------------------------ runtime contract
    def preflight(self, ctx: StepContext, params: StepParams) -> None:
        """Read-only checks before anything runs (default: none)."""

    def snapshot(self, ctx: StepContext, params: StepParams) -> State:
        """The prior state that undo restores (default: nothing to restore)."""
        return {}

    def apply(self, ctx: StepContext, params: StepParams, snapshot: State) -> None:
        """Make the change (idempotent). Read-only types check here."""

    def verify(self, ctx: StepContext, params: StepParams, snapshot: State) -> Check:
        """The postcondition, polled until it holds (default: holds)."""
        return Check(ok=True)

    def undo(self, ctx: StepContext, params: StepParams, snapshot: State) -> None:
        """Restore the snapshot (idempotent)."""

    def verify_undo(self, ctx: StepContext, params: StepParams, snapshot: State) -> Check:
        """The state is back to the snapshot (default: holds)."""
        return Check(ok=True)

    def dry_run(self, ctx: StepContext, params: StepParams) -> list[Change]:
        """What apply would change, without changing it (default: nothing)."""
        return []


class StateStep(StepType):
    """A mutating step defined by a state it reads and a desired state it writes.

    Subclasses implement `observe`, `desired` and `write`; the rest of the contract follows:
    snapshot = observe; apply writes desired unless it is already there (so repeating it changes
    nothing); verify compares; undo writes the snapshot back unless it is already there.
    """

    mutating = True

    def resource(self, ctx: StepContext, params: StepParams) -> str:
        """What the step touches, for plans and reports."""
        return self.name

    def observe(self, ctx: StepContext, params: StepParams) -> State:
        """The current state of what the step touches."""
        raise NotImplementedError

    def desired(self, ctx: StepContext, params: StepParams, current: State) -> State:
        """The state apply must reach, given the current one."""
        raise NotImplementedError

    def write(self, ctx: StepContext, params: StepParams, state: State, current: State) -> None:
        """Change the world from `current` to `state`."""
        raise NotImplementedError

    def matches(self, observed: State, wanted: State) -> bool:
        """Whether an observed state satisfies a wanted one (default: equal on wanted's keys)."""
        return all(observed.get(k) == v for k, v in wanted.items())

    def snapshot(self, ctx: StepContext, params: StepParams) -> State:
        return self.observe(ctx, params)

    def apply(self, ctx: StepContext, params: StepParams, snapshot: State) -> None:
        current = self.observe(ctx, params)
        wanted = self.desired(ctx, params, snapshot)
        if not self.matches(current, wanted):
            self.write(ctx, params, wanted, current)

    def verify(self, ctx: StepContext, params: StepParams, snapshot: State) -> Check:
        return self._check(ctx, params, self.desired(ctx, params, snapshot))

    def undo(self, ctx: StepContext, params: StepParams, snapshot: State) -> None:
        current = self.observe(ctx, params)
        if not self.matches(current, snapshot):
            self.write(ctx, params, snapshot, current)

    def verify_undo(self, ctx: StepContext, params: StepParams, snapshot: State) -> Check:
        return self._check(ctx, params, snapshot)

    def dry_run(self, ctx: StepContext, params: StepParams) -> list[Change]:
        current = self.observe(ctx, params)
        wanted = self.desired(ctx, params, current)
        if self.matches(current, wanted):
            return []
        before = {k: current.get(k) for k in wanted}
        return [Change(resource=self.resource(ctx, params), before=before, after=wanted)]

    def _check(self, ctx: StepContext, params: StepParams, wanted: State) -> Check:
        observed = self.observe(ctx, params)
        if self.matches(observed, wanted):
            return Check(ok=True, detail="as wanted", observed=observed)
        diff = {k: observed.get(k) for k in wanted if observed.get(k) != wanted[k]}
        return Check(ok=False, detail=f"wanted {wanted}, observed {diff}", observed=observed)


def require(condition: bool, kind: str, message: str) -> None:
    """Raise a classified StepError unless condition holds."""
    if not condition:
        raise StepError(kind, message)
