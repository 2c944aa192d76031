"""The engine's Temporal activities: run one phase of one step, whatever its type.

The workflow calls them by name, so it never imports this module (nor boto3, nor kubernetes):

- `step.prepare` (mutating steps): preflight, guards, snapshot. Read-only, so safe to repeat; its
  result (the snapshot) is in the history before anything is changed.
- `step.apply` (mutating steps): apply, then verify polled until it holds or time runs out (soon
  at first, then less and less often: `activities.base.poll_pause`).
- `step.check` (read-only steps): preflight, guards, apply (the check itself), verify polled.
- `step.undo`: undo with the recorded snapshot, then verify_undo polled.
- `step.plan` (dry-run): preflight and dry_run: what would change. Mutates nothing.

A verification that does not converge for a while (`redrive_after`) makes the step observe and
decide again (`StateStep.drive`: a write that was lost, or undone behind its back, is sent again;
one in flight is left alone), so apply and undo never just wait for something that will not happen.
Every phase ends by its activity's deadline, with the reason.

Every error is classified (`activities.errors`): a non-retryable one fails the activity at once.

A cancelled attempt (Temporal asked, or no longer knows it: its heartbeats were lost while the
server restarted) stops at its next heartbeat (`StepCancelled`), between two client calls. The
SDK's default for a synchronous activity, an exception raised in its thread at whatever line it
runs, is turned off: inside a client call botocore took it for a lost connection and sent the
request again, so a write in flight when the cancellation came was sent twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import fields
from datetime import UTC, datetime
from typing import Any

import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError, CancelledError

from activities import registry
from activities.attempts import AttemptLocks
from activities.base import Change, Check, StepContext, StepParams, StepType, poll_pause
from activities.clients import Clients
from activities.errors import StepCancelled, StepError, classify
from activities.heartbeat import Heartbeater
from orchestrator.runs import StepCall, StepOutcome

log = structlog.get_logger("failover.step")


def redrive_after(stype: StepType[Any], budget: float) -> float:
    """Seconds a verification may fail before the step observes and decides again."""
    return max(10 * stype.poll_interval, min(60.0, budget / 4))


class StepActivities:
    """The step activities of one worker, sharing its clients."""

    def __init__(self, clients: Clients) -> None:
        self.clients = clients
        self.attempts = AttemptLocks()

    def all(self) -> list[Callable[..., Any]]:
        """Every activity, for the worker's registration."""
        return [self.prepare, self.apply, self.check, self.undo, self.plan]

    # ------------------------------------------------------------------------- activities
    @activity.defn(name="step.prepare", no_thread_cancel_exception=True)
    def prepare(self, call: StepCall) -> StepOutcome:
        """Preflight, guards and snapshot of a mutating step (read-only)."""
        with self._running(call, "prepare") as (stype, params, ctx):
            ctx.heartbeat("preflight")
            stype.preflight(ctx, params)
            measured = self._guards(call, ctx)
            ctx.heartbeat("snapshot")
            snap = stype.snapshot(ctx, params)
            return StepOutcome(
                snapshot=snap, detail="snapshot taken", attempt=_attempt(), observed=measured
            )

    @activity.defn(name="step.apply", no_thread_cancel_exception=True)
    def apply(self, call: StepCall) -> StepOutcome:
        """Apply a mutating step (idempotent), then poll its verify until it holds."""
        with self._running(call, "apply") as (stype, params, ctx):
            snap = call.snapshot or {}
            ctx.heartbeat("apply")
            stype.apply(ctx, params, snap)
            check = self._until_holds(
                call, stype, ctx,
                check=lambda: stype.verify(ctx, params, snap),
                redrive=lambda: stype.apply(ctx, params, snap),
                params=params,
            )  # fmt: skip
            return StepOutcome(
                detail=check.detail,
                changes=_changes(stype, ctx, params, snap, check.observed),
                attempt=_attempt(),
            )

    @activity.defn(name="step.check", no_thread_cancel_exception=True)
    def check(self, call: StepCall) -> StepOutcome:
        """Run a read-only step: preflight, guards, its check, verify polled."""
        with self._running(call, "check") as (stype, params, ctx):
            ctx.heartbeat("preflight")
            stype.preflight(ctx, params)
            measured = self._guards(call, ctx)
            ctx.heartbeat("apply")
            stype.apply(ctx, params, {})
            check = self._until_holds(
                call, stype, ctx, lambda: stype.verify(ctx, params, {}), params=params
            )
            return StepOutcome(
                detail=check.detail, attempt=_attempt(), observed={**measured, **check.observed}
            )

    @activity.defn(name="step.undo", no_thread_cancel_exception=True)
    def undo(self, call: StepCall) -> StepOutcome:
        """Restore a step's snapshot (idempotent), then poll verify_undo until it holds."""
        with self._running(call, "undo") as (stype, params, ctx):
            snap = call.snapshot or {}
            ctx.heartbeat("undo")
            stype.undo(ctx, params, snap)
            check = self._until_holds(
                call, stype, ctx,
                check=lambda: stype.verify_undo(ctx, params, snap),
                redrive=lambda: stype.undo(ctx, params, snap),
                params=params,
            )  # fmt: skip
            return StepOutcome(detail=check.detail, attempt=_attempt())

    @activity.defn(name="step.plan", no_thread_cancel_exception=True)
    def plan(self, call: StepCall) -> StepOutcome:
        """Preflight and dry run: what the step would change. Mutates nothing."""
        with self._running(call, "plan") as (stype, params, ctx):
            ctx.heartbeat("preflight")
            stype.preflight(ctx, params)
            changes = stype.dry_run(ctx, params)
            return StepOutcome(
                detail=stype.describe(params),
                changes=[c.model_dump(mode="json") for c in changes],
                attempt=_attempt(),
            )

    # ---------------------------------------------------------------------------- helpers
    def _running(self, call: StepCall, phase: str) -> _Running:
        return _Running(self, call, phase)

    def context(
        self, call: StepCall, beat: Callable[..., None], deadline: float | None = None
    ) -> StepContext:
        return StepContext(
            run_id=call.run_id,
            step_id=call.step.id,
            from_region=call.from_region,
            to_region=call.to_region,
            region=call.step.region,
            mode=call.mode,
            clients=self.clients,
            heartbeat=beat,
            deadline=deadline,
            account=call.step.account,
        )

    def _guards(self, call: StepCall, ctx: StepContext) -> dict[str, Any]:
        """Check every guard (GuardFailed if one is not met); what they measured."""
        measured: dict[str, Any] = {}
        for guard in call.step.guards:
            ctx.heartbeat(f"guard {guard.type}")
            gtype, gparams = registry.bind(guard.type, guard.params)
            gtype.preflight(ctx, gparams)
            gtype.apply(ctx, gparams, {})
            result = gtype.verify(ctx, gparams, {})
            if not result.ok:
                what = guard.description or gtype.describe(gparams)
                raise StepError("GuardFailed", f"guard {what!r} not met: {result.detail}")
            measured.update(result.observed)
        return measured

    def _until_holds(
        self,
        call: StepCall,
        stype: StepType[Any],
        ctx: StepContext,
        check: Callable[[], Check],
        redrive: Callable[[], None] | None = None,
        params: StepParams | None = None,
    ) -> Check:
        """Poll a verification until it holds; re-drive the step when it does not converge;
        VerifyTimeout (with what was last seen) near the activity's deadline. Between two polls
        the step type's `pause` (given `params`), else a plain sleep."""
        budget = call.step.timeout.total_seconds()
        deadline = ctx.deadline or time.monotonic() + budget
        patience = redrive_after(stype, budget)
        driven = began = time.monotonic()
        while True:
            result = check()
            if result.ok:
                return result
            ctx.heartbeat("verify", result.detail)
            now = time.monotonic()
            pause = poll_pause(now - began, stype.poll_interval)
            if now + pause > deadline:
                raise StepError("VerifyTimeout", f"not verified within {budget:g}s: "
                                                 f"{result.detail}")  # fmt: skip
            if redrive is not None and now - driven >= patience:
                log.warning(
                    "not converging: observing and deciding again",
                    step_id=call.step.id,
                    step_type=call.step.type,
                    detail=result.detail,
                )
                redrive()
                driven = time.monotonic()
            if params is None:
                time.sleep(pause)
            else:
                stype.pause(ctx, params, result, pause, deadline)


class _Running:
    """Sets up one activity run: type, params, context, heartbeats; classifies its errors."""

    def __init__(self, owner: StepActivities, call: StepCall, phase: str) -> None:
        self.owner, self.call, self.phase = owner, call, phase
        self.heart: Heartbeater | None = None
        self.held = ExitStack()
        self.log = log.bind(
            run_id=call.run_id,
            step_id=call.step.id,
            step_type=call.step.type,
            region=call.step.region or call.to_region,
            phase=phase,
            attempt=_attempt(),
            **({"account": call.step.account} if call.step.account else {}),
        )

    def __enter__(self) -> tuple[StepType[Any], StepParams, StepContext]:
        try:
            stype, params = registry.bind(self.call.step.type, self.call.step.params)
        except StepError as exc:
            raise _failure(exc, self.phase) from None
        deadline = _deadline()
        with ExitStack() as held:
            self.heart = held.enter_context(Heartbeater())
            info = activity.info()
            key = (info.workflow_id or "", info.workflow_run_id or "", info.activity_id)
            try:
                held.enter_context(self.owner.attempts.one_at_a_time(key, deadline))
            except StepError as exc:
                raise _failure(exc, self.phase) from None
            self.held = held.pop_all()
        ctx = self.owner.context(self.call, self.beat, deadline)
        self.log.info("step activity started")
        return stype, params, ctx

    def beat(self, *details: Any) -> None:
        """The step's heartbeat (`ctx.heartbeat`: every phase, every poll): records what it does
        now, and is where a cancelled attempt stops (StepCancelled), between two client calls."""
        if activity.is_cancelled():
            raise StepCancelled(_why_cancelled())
        assert self.heart is not None
        self.heart.beat(*details)

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self.held.__exit__(exc_type, exc, tb)
        if exc is None:
            self.log.info("step activity done")
            return
        if isinstance(exc, StepCancelled):  # reported as the SDK's own cancellation
            self.log.info("step activity cancelled", reason=str(exc))
            raise CancelledError(f"cancelled ({exc})") from None
        if not isinstance(exc, Exception) or isinstance(exc, ApplicationError | CancelledError):
            return  # (an interrupt, an ApplicationError already made) propagates as it is
        err = classify(exc)
        self.log.warning(
            "step activity failed", kind=err.kind, retryable=err.retryable, error=err.message
        )
        raise _failure(err, self.phase) from None


def _deadline() -> float:
    """time.monotonic() by which this attempt must end: its start-to-close timeout and the
    activity's schedule-to-close timeout (all attempts), less a margin to report why."""
    info = activity.info()
    ends = [info.started_time + info.start_to_close_timeout] if info.start_to_close_timeout else []
    if info.schedule_to_close_timeout:
        ends.append(info.scheduled_time + info.schedule_to_close_timeout)
    if not ends:
        return time.monotonic() + 3600.0
    left = (min(ends) - datetime.now(UTC)).total_seconds()
    total = (min(ends) - info.started_time).total_seconds()
    return time.monotonic() + left - min(5.0, max(total, 0.0) * 0.1)


def _changes(
    stype: StepType[Any],
    ctx: StepContext,
    params: StepParams,
    before: dict[str, Any],
    after: dict[str, Any],
) -> list[dict[str, Any]]:
    """Before -> after of what a mutating step touched (the snapshot's keys, for reports)."""
    if not stype.mutating or not (before or after):
        return []
    keys = sorted(before.keys() or after.keys())
    change = Change(
        resource=stype.resource(ctx, params),
        before={k: before.get(k) for k in keys},
        after={k: after.get(k) for k in keys},
    )
    return [change.model_dump(mode="json")]


def _why_cancelled() -> str:
    """Why Temporal cancelled this attempt, in a word or two (`not_found`: it no longer knows
    the attempt, which timed out while its heartbeats were lost)."""
    details = activity.cancellation_details()
    reasons = [f.name for f in fields(details) if getattr(details, f.name)] if details else []
    return ", ".join(reasons) or "cancel requested"


def _attempt() -> int:
    try:
        return activity.info().attempt
    except RuntimeError:
        return 1


def _failure(err: StepError, phase: str) -> ApplicationError:
    return ApplicationError(
        err.message,
        {"kind": err.kind, "phase": phase, "attempt": _attempt(), "retryable": err.retryable},
        type=err.kind,
        non_retryable=not err.retryable,
    )
