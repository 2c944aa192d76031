"""The step-type contract: one class per type, registered in one place (`activities.registry`).

A step type is generic over its params model: `class AsgCapacity(StateStep[AsgCapacityParams])`
sets `Params` and types every method's `params`, so no method narrows a base class by hand.

Static half (what validation and plans need): the type's name, its params model, whether it mutates
anything, whether it can be undone, whether it is a gate, its one-line description, the resource it
touches.

Runtime half (what the engine's activities call, in a worker thread):

- `preflight`: read-only checks; raise `StepError("PreflightFailed", ...)` early, with the reason.
- `snapshot`: the prior state needed to undo (JSON-able), captured before anything is changed and
  recorded durably by the engine, so a crash after `apply` cannot lose it.
- `apply`: idempotent: running it twice has the effect of running it once.
- `verify`: the postcondition; the engine polls it until it holds or the step times out, first
  soon, then less and less often (`poll_pause`), at most every `poll_interval` seconds.
- `undo`: restores the snapshot; idempotent; `verify_undo` is polled after it.
- `describe`: one line for plans and reports; `dry_run`: what would change.

Errors need no handling in a type: a client's exception propagates and is classified once, where
the engine's activity ends (`activities.errors.classify`).

`StateStep` implements all of that for the common case of "read a state, write a desired state":
a type then only says how to `observe`, what it `desires` and how to `write`, and, for operations
that take time, when the resource is `in_transition` and whether that transition is `heading_to`
the wanted state. Every mutating type is a `StateStep`, so one piece of code decides every write:
observe (waiting out a transition in flight), write only if the settled state differs, and after any
error of the write observe again before deciding, because a write can land and still answer an
error (a 5xx, a timeout, a lost connection, or a conflict with its own earlier attempt).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar, cast, get_args, get_origin

import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from activities.arns import Arns, Grant, K8sRule
from activities.errors import StepError, classify
from orchestrator.runbook.problems import describe as describe_error
from orchestrator.runbook.problems import dotted
from orchestrator.runs import GateSpec

if TYPE_CHECKING:
    from activities.clients import Clients

State = dict[str, Any]
T = TypeVar("T")
log = structlog.get_logger("failover.step")

#: How long a settle or a wait may take when no activity deadline bounds it (plans, tests).
DEFAULT_WAIT = 120.0
#: Decisions one `drive` takes at most when its writes take effect only in part.
DECISIONS = 3
#: `StepContext.pass_on` key of a state step's preflight reading, for its snapshot.
PREFLIGHT_STATE = "state:preflight"
#: The first pause between two polls of a condition (a verify, a settle, a Route 53 change), in
#: seconds: well under the shortest operation the sandbox models (a Chaos Mesh injection or a
#: rollout: 0.1 s at the tests' time scale of 0.01, 1 s at 0.1), so a quick one is seen done
#: quickly.
FIRST_POLL = 0.05
#: After that, each pause is this share of the time waited so far (up to the longest pause, the
#: type's `poll_interval`): a condition that starts to hold is seen at most 5% of the wait later
#: (and never more than one `poll_interval` later). It costs at most some 70 polls more than
#: a fixed interval of 0.5 s, all in the first 10 s (about 57 in a 6 s wait, against 12), then
#: the same rate.
POLL_SHARE = 0.05


def poll_pause(waited: float, longest: float, first: float = FIRST_POLL) -> float:
    """The pause before the next poll of a condition first polled `waited` seconds ago: `first`
    at the start, then `POLL_SHARE` of the wait so far, never more than `longest`.

    Args:
        waited: Seconds since the condition was first polled.
        longest: The longest pause (the step type's `poll_interval`).
        first: The shortest pause (an API with a low rate limit polls less often at first).

    Returns:
        Seconds to sleep before polling again.
    """
    return min(longest, max(first, POLL_SHARE * waited))


#: A wait that knows about how long its condition takes (`StepContext.wait(expected=...)`)
#: polls sparsely until then: every `QUIET_SHARE` of the expected time (at least the longest
#: pause, at most `QUIET_LONGEST`), so a condition that holds much sooner is still seen, that
#: late at most: 4 polls before the close ones (12 before a minute's, 5 s apart).
QUIET_SHARE = 0.25
QUIET_LONGEST = 5.0


def expected_pause(waited: float, expected: float, longest: float, first: float) -> float:
    """The pause before the next poll of a condition expected to hold about `expected` seconds
    after its first poll: sparse pauses that land on `expected - first`, then `poll_pause` as
    if the wait started there (`first`, growing if it is later than expected).

    Args:
        waited: Seconds since the condition was first polled.
        expected: Seconds it usually takes (a recent upper bound: it held by then).
        longest: The longest pause once the expected time has come.
        first: The shortest pause; also how early the close polls start.

    Returns:
        Seconds to sleep before polling again.
    """
    close = expected - first
    if waited < close - 1e-3:  # (not a pause too short to move the clock)
        quiet = min(QUIET_LONGEST, max(longest, QUIET_SHARE * expected))
        return min(quiet, close - waited)
    return poll_pause(waited - close, longest, first)


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


class ParamsError(ValueError):
    """Params a step type refuses: where (a path under `params`) and why, in one line."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"params.{path}: {message}" if path else f"params: {message}")
        self.path, self.message = path, message

    @classmethod
    def first_of(cls, exc: ValidationError) -> ParamsError:
        err = exc.errors()[0]
        return cls(dotted(err["loc"]), describe_error(err))


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
    """What a step needs at run time: where it runs, the clients to act with, how to report
    progress, and by when it must be done.

    `clients` act in the step's AWS account: the one it names (`account`), else the
    configuration's default account, else the worker's own credentials."""

    run_id: str
    step_id: str
    from_region: str
    to_region: str
    region: str | None
    mode: str
    clients: Clients
    #: Says what the step is doing now (`ctx.heartbeat("phase", detail)`): call it between
    #: client calls. In an activity, a cancelled one stops there (`StepCancelled`).
    heartbeat: Callable[..., None] = field(default=lambda *_: None)
    #: time.monotonic() by which the activity must have ended (None: no activity bounds it).
    deadline: float | None = None
    #: What `remember` looked up already and what `pass_on` kept, for this context (one
    #: activity) only.
    memo: dict[Any, Any] = field(default_factory=dict)
    #: The AWS account the step names (`aws.accounts`), if any.
    account: str | None = None

    def __post_init__(self) -> None:
        bind = getattr(self.clients, "for_account", None)  # (None: a context that calls nothing)
        if bind is not None:
            self.clients = bind(self.account)

    @property
    def scope(self) -> str:
        """The step's region: its `region:`, else the target region."""
        return self.region or self.to_region

    def region_for(self, params: StepParams) -> str:
        """Where a regional step acts: its params' region, else the step's."""
        return getattr(params, "region", None) or self.scope

    def remember(self, key: Any, lookup: Callable[[], T]) -> T:
        """`lookup()` the first time `key` is asked for in this context, the same answer after:
        for what cannot change while one activity runs (a load balancer's ARN; for ids kept
        longer, `Clients.recall`), never for state the step reads to decide or to verify. Saves
        the calls a step would repeat in observe, write and verify. A lookup that raises is not
        kept."""
        if key not in self.memo:
            self.memo[key] = lookup()
        return cast(T, self.memo[key])

    def pass_on(self, key: Any, reading: Any) -> None:
        """Keep a reading for the one `take` of `key` that follows in this activity: for a read
        the step's next phase would otherwise repeat at once, with nothing written between and
        no wait for a change (preflight's listing for the snapshot, which follows the step's
        guards, reads only; the decision's listing for the write)."""
        self.memo[("pass_on", key)] = reading

    def take(self, key: Any) -> Any | None:
        """The reading `pass_on` kept for `key`, once (None: none, or already taken)."""
        return self.memo.pop(("pass_on", key), None)

    def wait(
        self,
        what: str,
        check: Callable[[], tuple[bool, str]],
        interval: float,
        timeout: float | None = None,
        first: float = FIRST_POLL,
        expected: float | None = None,
    ) -> float:
        """Poll `check` until it holds, heartbeating, with pauses growing from `first` to
        `interval` (`poll_pause`); VerifyTimeout after `timeout` seconds or at the activity's
        deadline, whichever comes first.

        With `expected` (seconds the condition has recently taken to hold), the polls before
        it are sparse and the close ones start just before it (`expected_pause`): a few polls
        instead of one every `first` to `interval` seconds all along.

        Returns:
            Seconds from the first poll to the one that saw the condition hold.
        """
        now = time.monotonic()
        ends = [t for t in (self.deadline, now + timeout if timeout else None) if t is not None]
        deadline = min(ends) if ends else now + DEFAULT_WAIT
        first = min(first, interval)
        while True:
            ok, detail = check()
            if ok:
                return time.monotonic() - now
            self.heartbeat(what, detail)
            at = time.monotonic()
            if expected is None:
                pause = poll_pause(at - now, interval, first)
            else:
                pause = expected_pause(at - now, expected, interval, first)
            if at + pause > deadline:
                raise StepError("VerifyTimeout", f"{what}: still {detail} after {at - now:.0f}s")
            time.sleep(pause)


P = TypeVar("P", bound=StepParams)


class StepType(Generic[P]):
    """A kind of step a runbook can name in `type:`."""

    name: ClassVar[str]
    #: The params model; set from the generic argument (`StepType[MyParams]`).
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
    #: The longest pause between two polls of verify, in seconds (the pauses start at
    #: `FIRST_POLL` and grow with the wait: `poll_pause`).
    poll_interval: ClassVar[float] = 0.25
    #: The AWS IAM actions the type calls (for least-privilege policies).
    actions: ClassVar[tuple[str, ...]] = ()
    #: The Kubernetes (apiGroup, resource, verb) triples the type uses (for RBAC).
    verbs: ClassVar[tuple[tuple[str, str, str], ...]] = ()
    summary: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for base in getattr(cls, "__orig_bases__", ()):
            origin = get_origin(base)
            if isinstance(origin, type) and issubclass(origin, StepType):
                (arg,) = get_args(base)
                if isinstance(arg, type) and issubclass(arg, StepParams):
                    cls.Params = arg

    def parse(self, raw: Mapping[str, Any]) -> P:
        """The params of a step of this type (ParamsError with where and why if they are
        wrong). The one place a type's params are turned into its model."""
        try:
            return cast(P, self.Params.model_validate(raw))
        except ValidationError as exc:
            raise ParamsError.first_of(exc) from None

    def describe(self, params: P) -> str:
        """One line for plans and reports."""
        return self.summary or self.name

    def resource(self, ctx: StepContext, params: P) -> str:
        """What the step touches, for plans, reports and leases."""
        return self.name

    def iam_resources(self, params: P, region: str, arns: Arns) -> list[Grant]:
        """The ARNs the type's `actions` act on for these params in `region` (where the step
        acts: its params' region, else the step's, else the target region), for `failover iam`.
        An action left out gets "*" (default: all of them); leave out the actions that AWS does
        not scope (List*, most Describe*)."""
        return []

    def k8s_rules(self, params: P) -> list[K8sRule]:
        """The Kubernetes access the type needs for these params, for `failover rbac`: its
        `verbs` in the params' namespace (cluster-wide without one), on any object. Types that
        know the kind and the objects say so."""
        namespace = getattr(params, "namespace", None)
        grouped: dict[tuple[str, str], list[str]] = {}
        for group, resource, verb in self.verbs:
            grouped.setdefault((group, resource), []).append(verb)
        return [
            K8sRule(namespace, group, resource, tuple(verbs))
            for (group, resource), verbs in grouped.items()
        ]

    def regions_used(self, params: P, step_region: str | None) -> set[str]:
        """The regions whose endpoints the step calls: its params' `region`, else the step's
        (none: it acts in the target region). Types bound to a control plane served from one
        region say so (Route 53: us-east-1). An unplanned run refuses a step that uses the
        region it leaves (static stability)."""
        region = getattr(params, "region", None) or step_region
        return {region} if region else set()

    # ------------------------------------------------------ steps the engine runs itself
    def gate_spec(self, params: P, approvers: list[str]) -> GateSpec | None:
        """For a gate type: who may approve, how many, until when (`approvers`: the runbook's)."""
        return None

    def timer(self, params: P) -> timedelta | None:
        """For a timer type: how long the durable timer runs."""
        return None

    # ------------------------------------------------------------------ runtime contract
    def preflight(self, ctx: StepContext, params: P) -> None:
        """Read-only checks before anything runs (default: none)."""

    def snapshot(self, ctx: StepContext, params: P) -> State:
        """The prior state that undo restores (default: nothing to restore)."""
        return {}

    def apply(self, ctx: StepContext, params: P, snapshot: State) -> None:
        """Make the change (idempotent). Read-only types check here."""

    def verify(self, ctx: StepContext, params: P, snapshot: State) -> Check:
        """The postcondition, polled until it holds (default: holds)."""
        return Check(ok=True)

    def pause(self, ctx: StepContext, params: P, last: Check, seconds: float, until: float) -> None:
        """Wait before verify is polled again, `last` not holding: `seconds` (`poll_pause`). A
        type that can be told when what it verifies changes (a Kubernetes watch) may wait for
        that instead, until time.monotonic() reaches `until` at the latest."""
        time.sleep(seconds)

    def undo(self, ctx: StepContext, params: P, snapshot: State) -> None:
        """Restore the snapshot (idempotent)."""

    def verify_undo(self, ctx: StepContext, params: P, snapshot: State) -> Check:
        """The state is back to the snapshot (default: holds)."""
        return Check(ok=True)

    def dry_run(self, ctx: StepContext, params: P) -> list[Change]:
        """What apply would change, without changing it (default: nothing)."""
        return []


class StateStep(StepType[P]):
    """A mutating step defined by a state it reads and a desired state it writes.

    Subclasses implement `observe`, `desired` and `write`; the rest of the contract follows:
    snapshot = the settled observed state; apply and undo `drive` the world to a wanted state
    (desired, or the snapshot); verify and verify_undo hold when the settled state matches it and
    the type's `ready` check passes.
    """

    mutating = True
    #: False when sending the write twice is not the same as sending it once (an Aurora
    #: switchover, a replica promotion): the type sends it with a client that does not resend on
    #: its own (`Clients.aws(..., retry=False)`), and only `drive` decides to send it again.
    idempotent_write: ClassVar[bool] = True

    def observe(self, ctx: StepContext, params: P) -> State:
        """The current state of what the step touches."""
        raise NotImplementedError

    def desired(self, ctx: StepContext, params: P, current: State) -> State:
        """The state apply must reach, given the current one."""
        raise NotImplementedError

    def write(self, ctx: StepContext, params: P, state: State, current: State) -> None:
        """Change the world from `current` to `state`."""
        raise NotImplementedError

    def matches(self, observed: State, wanted: State) -> bool:
        """Whether an observed state satisfies a wanted one (default: equal on wanted's keys)."""
        return all(observed.get(k) == v for k, v in wanted.items())

    def in_transition(self, observed: State) -> bool:
        """Whether an operation is in flight on the resource (a switchover, a promotion), so the
        observed state is not settled yet (default: never)."""
        return False

    def heading_to(self, observed: State, wanted: State) -> bool:
        """Whether the transition in flight leads to `wanted` (default: no)."""
        return False

    def dead_end(self, observed: State, wanted: State) -> StepError | None:
        """The error to fail with when `wanted` can no longer be reached from `observed` (a Job
        that failed, a fault that ended by itself), instead of waiting (default: never)."""
        return None

    def ready(self, ctx: StepContext, params: P, observed: State, wanted: State) -> Check:
        """What must hold besides the state itself (rollouts ready, instances in service);
        called once the settled state matches (default: nothing more)."""
        return Check(ok=True)

    def confirm(self, ctx: StepContext, params: P, wanted: State) -> None:
        """After a write that answered an error although it took effect: whatever the lost
        answer was needed for (default: nothing)."""

    def preflight_state(self, ctx: StepContext, params: P) -> State:
        """The current state, read for preflight and passed on to the snapshot that follows it
        in the same activity (`StepContext.pass_on`): one read where there were two."""
        current = self.observe(ctx, params)
        ctx.pass_on((PREFLIGHT_STATE, self.name), current)
        return current

    # -------------------------------------------------------------------------- contract
    def snapshot(self, ctx: StepContext, params: P) -> State:
        seen = ctx.take((PREFLIGHT_STATE, self.name))
        if seen is not None and not self.in_transition(seen):
            return cast(State, seen)
        return self.settled(ctx, params)

    def apply(self, ctx: StepContext, params: P, snapshot: State) -> None:
        self.drive(ctx, params, self.desired(ctx, params, snapshot))

    def verify(self, ctx: StepContext, params: P, snapshot: State) -> Check:
        return self.holds(ctx, params, self.desired(ctx, params, snapshot))

    def undo(self, ctx: StepContext, params: P, snapshot: State) -> None:
        self.drive(ctx, params, snapshot)

    def verify_undo(self, ctx: StepContext, params: P, snapshot: State) -> Check:
        return self.holds(ctx, params, snapshot)

    def dry_run(self, ctx: StepContext, params: P) -> list[Change]:
        current = self.observe(ctx, params)
        wanted = self.desired(ctx, params, current)
        if self.matches(current, wanted) and not self.in_transition(current):
            return []
        before = {k: current.get(k) for k in wanted}
        return [Change(resource=self.resource(ctx, params), before=before, after=wanted)]

    # ---------------------------------------------------------------------- the decision
    def landed(self, observed: State, wanted: State) -> bool:
        """The world is at `wanted`, or on its way there."""
        if self.in_transition(observed):
            return self.heading_to(observed, wanted)
        return self.matches(observed, wanted)

    def settled(self, ctx: StepContext, params: P) -> State:
        """The observed state once no transition is in flight (waited for, within the
        deadline): decisions compare settled states only."""
        current = self.observe(ctx, params)
        if not self.in_transition(current):
            return current
        seen = {"state": current}

        def done() -> tuple[bool, str]:
            seen["state"] = self.observe(ctx, params)
            return not self.in_transition(seen["state"]), f"in transition: {seen['state']}"

        ctx.wait("settle", done, self.poll_interval)
        return seen["state"]

    def drive(self, ctx: StepContext, params: P, wanted: State) -> None:
        """Bring the world to `wanted`, deciding from what is observed; safe to call again.

        A transition already heading there is left to finish; another one is waited out first.
        The write is sent only if the settled state differs, and after any error of the write
        the world is observed again: if the write took effect (or started the transition), the
        error is logged and the step goes on to verify; if it took effect in part (some of the
        objects it writes), the step decides again from there; if nothing changed, the error
        stands (and the engine retries or fails the step, by its kind).
        """
        for decision in range(1, DECISIONS + 1):
            current = self.observe(ctx, params)
            if self.in_transition(current):
                if self.heading_to(current, wanted):
                    return
                current = self.settled(ctx, params)
            if self.matches(current, wanted):
                return
            stuck = self.dead_end(current, wanted)
            if stuck is not None:
                raise stuck
            try:
                self.write(ctx, params, wanted, current)
                return
            except Exception as exc:
                err = classify(exc)
                try:
                    seen = self.observe(ctx, params)
                except Exception:
                    raise err from exc
                if self.landed(seen, wanted):
                    log.warning(
                        "the write answered an error but took effect",
                        step_id=ctx.step_id,
                        step_type=self.name,
                        error_kind=err.kind,
                        error=err.message,
                    )
                    self.confirm(ctx, params, wanted)
                    return
                if seen == current or decision == DECISIONS:
                    raise err from exc  # nothing changed: the error stands
                # Part of it took effect (one of several objects): decide again from there.
                log.warning(
                    "the write answered an error and took effect in part: deciding again",
                    step_id=ctx.step_id,
                    step_type=self.name,
                    error_kind=err.kind,
                )

    def holds(self, ctx: StepContext, params: P, wanted: State) -> Check:
        """Whether the world is settled at `wanted` and ready."""
        observed = self.observe(ctx, params)
        stuck = self.dead_end(observed, wanted)
        if stuck is not None:
            raise stuck
        if self.in_transition(observed):
            return Check(ok=False, detail=f"in transition: {self.transition(observed)}")
        if not self.matches(observed, wanted):
            diff = {k: observed.get(k) for k in wanted if observed.get(k) != wanted[k]}
            return Check(ok=False, detail=f"wanted {wanted}, observed {diff}")
        extra = self.ready(ctx, params, observed, wanted)
        if not extra.ok:
            return extra
        return Check(ok=True, detail=extra.detail or "as wanted", observed=observed)

    def transition(self, observed: State) -> str:
        """The transition in flight, in words (for progress and errors)."""
        return str(observed)


def require(condition: bool, kind: str, message: str) -> None:
    """Raise a classified StepError unless condition holds."""
    if not condition:
        raise StepError(kind, message)
