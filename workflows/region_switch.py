"""RegionSwitchWorkflow: runs a resolved runbook as a DAG of verified steps, with a saga rollback.

Pure orchestration: no I/O, no clocks but `workflow.now()`, no cloud clients. Steps run as the
activities of `activities.steps` (called by name), gates wait for Updates, waits are durable timers.

Forward: steps start when their dependencies succeeded, at most `max_parallel` at once. A mutating
step runs `step.prepare` (preflight, guards, snapshot; read-only) then `step.apply` (apply, verify).
On a failure (after its retries), an abort, a rejected or expired gate: no new step starts, running
activities finish, open gates and timers are cancelled, and every step whose apply was started is
undone (`step.undo` with its snapshot) in reverse completion order; a step's undo waits for the
undos of the steps that depended on it, others run in parallel. Rollback is shielded from workflow
cancellation. An undo that keeps failing stops the run in ROLLBACK_FAILED until the operator
retries it, skips it (with a reason) or ends the run: never reported as success.

Notifications (`workflows.notify`, patched "notify"): switch started, a gate open (with the
commands to approve or reject), ROLLBACK_FAILED (a page), succeeded (resolves the page), rolled
back; each sent in the background, never awaited by the switch, recorded in the progress; the
run waits for the ones in flight only once it has ended (at most the activity's deadline). One
service of an evacuation that notifies (its input's `quiet`) does not say that it started, nor that
it succeeded unless it told people something before (its success resolves that page): the
evacuation tells its own start and end.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.exceptions import TimeoutError as TemporalTimeoutError

from workflows.notify import Notifier, run_ref
from workflows.report import end_run, write_report
from workflows.retry import step_options
from workflows.shield import run_shielded

with workflow.unsafe.imports_passed_through():
    from orchestrator import search_attributes as sa
    from orchestrator import ui
    from orchestrator.approval_auth import RunContext, Verifier, plan_digest
    from orchestrator.approvals import GateBook, operator_target
    from orchestrator.notifications import Delivery, Notice, NotifyCall, NotifyEvent, Severity
    from orchestrator.runbook.graph import ancestors, undo_plan
    from orchestrator.runs import (
        Abort,
        Decision,
        ErrorInfo,
        OperatorAction,
        PlannedStep,
        RunEnd,
        RunProgress,
        RunState,
        StepCall,
        StepKind,
        StepOutcome,
        StepRecord,
        StepState,
        SwitchInput,
    )


class _StepFailed(Exception):
    def __init__(self, error: ErrorInfo) -> None:
        super().__init__(error.message)
        self.error = error


@workflow.defn(name="RegionSwitch")
class RegionSwitchWorkflow:
    """Switch a service from one region to another, step by verified step; undo on failure."""

    @workflow.init
    def __init__(self, inp: SwitchInput) -> None:
        self.inp = inp
        self.steps: dict[str, PlannedStep] = {s.id: s for s in inp.steps}
        self.records: dict[str, StepRecord] = {
            s.id: StepRecord(
                id=s.id,
                type=s.type,
                kind=s.kind,
                description=s.description,
                depends_on=s.depends_on,
                irreversible=s.irreversible,
            )
            for s in inp.steps
        }
        self.started_at = workflow.now()
        self.ended_at: Any = None
        self.final: RunState | None = None
        self.rolling_back = False
        self.reason = ""
        gates = {s.id: s.gate for s in inp.steps if s.gate is not None}
        self.gates = GateBook(inp.requester, inp.approvers, gates)
        #: Why the run refuses to start (its requester is not proven), if it does.
        self.refused = self._authenticate() if inp.approval_auth == "signed" else ""
        self.snapshots: dict[str, dict[str, Any]] = {}
        self.completion: list[str] = []  # applied steps, in the order they ended
        self.abort_request: Abort | None = None
        self.awaiting: dict[str, str] = {}  # step id -> "paused" | "undo": waiting for operator
        self.decisions: dict[str, OperatorAction] = {}
        self._published_state: RunState | None = None
        self._details_stale = False
        self._quiet_waits = True
        self._batches: bool | None = None  # `_start_batches`, asked once when first needed
        self._in_flight: bool | None = None  # `_bounded`, the same
        self._abort_seen = False
        self._done = 0  # step and undo tasks finished so far (wakes the scheduling loops)
        self.notifications: list[Delivery] = []
        self.report_files: list[str] = []
        self._last: NotifyCall | None = None  # the last notice, sent with the report
        self._notifier = Notifier(False, inp.notify, self.notifications)
        self._quiet = False  # one service of an evacuation: see `run`

    def _authenticate(self) -> str:
        """Signed decisions (approval_auth: signed): the gates take only decisions signed by a
        listed key, and the requester must have signed this plan (else: why the run refuses to
        start). Pure computation, no command: an Ed25519 verification is deterministic, so the
        validators that call it replay alike. (cryptography comes in through the imports passed
        through above: native code, loaded once for the worker, not per workflow sandbox.)"""
        info = workflow.info()
        ctx = RunContext(
            workflow_id=info.workflow_id,
            run_id=info.first_execution_run_id,
            plan=plan_digest(self.inp),
        )
        try:
            verifier = Verifier(self.inp.signers, ctx)
        except ValueError as exc:
            verifier = Verifier([], ctx)
            self.gates.verifier = verifier  # no decision can pass: the run does not start anyway
            return f"requester not authenticated: the run's allowed signers: {exc}"
        self.gates.verifier = verifier
        try:
            self.gates.requester_key = verifier.request(self.inp, info.workflow_start_time)
        except ValueError as exc:
            return str(exc)
        return ""

    # ------------------------------------------------------------------------------- run
    @workflow.run
    async def run(self, inp: SwitchInput) -> RunProgress:
        """Run the switch; returns the final progress table (state SUCCEEDED, ROLLED_BACK or
        ROLLBACK_FAILED)."""
        # Waiting for a person (an open gate, a paused step) is not written to the FailoverState
        # search attribute: an upsert in the activation that opens a gate can be ordered after
        # the decision's Update on the original run and before it on replay (when the server
        # delivers the decision in the same workflow task), a nondeterminism error. The progress
        # query and the UI's current details show those states; histories recorded before this
        # change replay with the upserts they made.
        self._quiet_waits = workflow.patched("quiet-waits")
        # Notifications are activities: histories recorded before them replay without. A dry
        # run changes nothing and tells no one; a game day's switches page only when stuck
        # (the game day reports its own result).
        self._notifier.enabled = workflow.patched("notify") and inp.mode != "dry-run"
        # One service of an evacuation that tells people itself (`quiet`, set by it) tells them
        # only what needs them: a gate, a rollback, an undo that keeps failing. The evacuation
        # says that it started and how it ended, once, for all its services (200 services were
        # 400 notices). Inputs from before carry no `quiet`: they replay with their notices.
        self._quiet = inp.quiet
        self._publish()
        if inp.mode != "gameday" and not self.refused and not self._quiet:
            self._send(
                self._notice(
                    "switch_started",
                    f"{inp.runbook}: {self._what()} {inp.from_region} -> {inp.to_region} started "
                    f"by {inp.requester}",
                )
            )
        details = asyncio.create_task(self._render_details())
        await run_shielded(self._main(), self._cancelled)
        details.cancel()
        self._render()
        if self._last is not None:  # sent with the report: see `_notify_end`
            await self._notifier.drain()
            ended = await end_run(RunEnd(notice=self._last, progress=self.progress()))
            self.notifications.extend(ended.deliveries)
            self.report_files = ended.report_files
            return self.progress()
        await self._notifier.drain()  # the run has ended: only its last notices are awaited
        if workflow.patched("report"):  # (runs recorded before this wrote no report themselves)
            self.report_files = await write_report("report.switch", self.progress())
        return self.progress()

    def _cancelled(self) -> None:
        """Cancelling the workflow means "stop and roll back", never "leave it half-done"."""
        if self.abort_request is None and not self.rolling_back:
            self.abort_request = Abort(by="temporal", reason="the workflow was cancelled")

    async def _main(self) -> None:
        failure = self.refused or await self._unreachable()
        if failure is not None:  # nothing was started: nothing to undo
            for rec in self.records.values():
                rec.state = StepState.NOT_RUN
        else:
            failure = await self._forward()
        if failure is None:
            self.final = RunState.SUCCEEDED
        else:
            self.reason = failure
            self.rolling_back = True
            self._publish()
            ended = await self._rollback()
            self.final = RunState.ROLLBACK_FAILED if ended else RunState.ROLLED_BACK
        self.ended_at = workflow.now()
        self._publish()
        self._notify_end()

    async def _unreachable(self) -> str | None:
        """A planned run's preflight: does its source region answer? (A run recorded before
        this preflight existed has no `reach`, or no marker: it replays without it.)"""
        reach = self.inp.reach
        if reach is None or not workflow.patched("reach-preflight"):
            return None
        try:
            problems: list[str] = await workflow.execute_activity(
                "switch.reach",
                reach,
                result_type=list[str],
                # The probe answers within ~10 s (short timeouts, no retry of its own); an
                # attempt that ends otherwise lost its worker and is tried again on another.
                start_to_close_timeout=timedelta(seconds=20),
                retry_policy=RetryPolicy(maximum_attempts=3),
                summary=f"does {reach.region} answer?",
            )
        except ActivityError as exc:  # the probe itself timed out or failed: no answer either
            problems = [f"its probe failed: {_error_info(exc)[0].message}"]
        if not problems:
            return None
        return (
            f"preflight: {reach.region} does not answer ({'; '.join(problems)}): a planned switch "
            f"needs both regions; to leave a region that is down, run an unplanned switch "
            f"(--unplanned)"
        )

    # --------------------------------------------------------------------------- forward
    async def _forward(self) -> str | None:
        """Run the DAG; returns None if every step succeeded, else why the run must roll back."""
        remaining = {sid: len(set(s.depends_on)) for sid, s in self.steps.items()}
        dependents: dict[str, list[str]] = {sid: [] for sid in self.steps}
        for sid, s in self.steps.items():
            for dep in set(s.depends_on):
                dependents[dep].append(sid)
        ready = deque(sid for sid in self.steps if remaining[sid] == 0)
        running: dict[str, asyncio.Task[None]] = {}
        failure: str | None = None
        pause: asyncio.Task[None] | None = None  # after a batch of starts: the next batch
        while True:
            more = False  # steps left ready that this workflow task did not start
            if failure is None:
                started = 0
                while ready and len(running) < self.inp.max_parallel:
                    if len(running) >= IN_FLIGHT and self._bounded():
                        break  # the next step starts when one of these ends
                    if started == START_BATCH and self._start_batches():
                        more = True
                        break
                    sid = ready.popleft()
                    running[sid] = self._task(self._run_step(sid))
                    started += 1
            if not running:
                break
            self._publish()
            seen = self._done
            if more and (pause is None or pause.done()):
                # A timer of its own, never cancelled (a cancel can cross its firing).
                pause = asyncio.create_task(workflow.sleep(BATCH_PAUSE))
            await workflow.wait_condition(
                lambda: (
                    self._done != seen  # noqa: B023 - read at once, within this iteration
                    or (self.abort_request is not None and not self._abort_seen)
                    or (more and pause is not None and pause.done())  # noqa: B023 - the same
                )
            )
            if self.abort_request is not None and not self._abort_seen:
                self._abort_seen = True
                failure = failure or (
                    f"aborted by {self.abort_request.by}: {self.abort_request.reason}"
                )
                for sid, task in running.items():
                    if self.steps[sid].kind in (StepKind.GATE, StepKind.WAIT, StepKind.CHECK):
                        task.cancel()
            for sid, task in list(running.items()):
                if not task.done():
                    continue
                del running[sid]
                try:
                    task.result()
                except _StepFailed as exc:
                    failure = failure or f"step {sid} failed: {exc.error.kind}: {exc.error.message}"
                except asyncio.CancelledError:
                    failure = failure or f"step {sid} was cancelled"
                else:
                    for nxt in dependents[sid]:
                        remaining[nxt] -= 1
                        if remaining[nxt] == 0:
                            ready.append(nxt)
        for rec in self.records.values():
            if rec.state == StepState.PENDING:
                rec.state = StepState.NOT_RUN
        return failure

    async def _run_step(self, sid: str) -> None:
        step, rec = self.steps[sid], self.records[sid]
        rec.state, rec.started_at = StepState.RUNNING, workflow.now()
        try:
            while True:
                try:
                    await self._execute(step, rec)
                    break
                except _StepFailed as exc:
                    pause = step.on_failure == "pause" or self._past_no_return()
                    if not pause or self.abort_request is not None:
                        raise
                    rec.state, rec.error = StepState.PAUSED, exc.error
                    action = await self._operator(sid, "paused")
                    if action is None or action.action == "rollback":
                        raise
                    if action.action == "skip":
                        rec.state = StepState.SKIPPED
                        rec.detail = f"skipped by {action.by}: {action.reason}"
                        return
                    rec.state, rec.error = StepState.RUNNING, None
        except _StepFailed as exc:
            rec.state, rec.error = StepState.FAILED, exc.error
            self._ended(rec)
            raise
        except asyncio.CancelledError:
            rec.state = StepState.NOT_RUN if not rec.applied else StepState.FAILED
            rec.detail = "cancelled: the run is rolling back"
            self._ended(rec)
            raise
        # (No `finally`: on eviction the coroutine is closed outside the workflow's event loop.)
        if rec.state != StepState.SKIPPED:
            rec.state = StepState.SUCCEEDED
        self._ended(rec)

    def _start_batches(self) -> bool:
        """Whether more than START_BATCH steps ready at once are started over several workflow
        tasks (runs recorded before started them all in one: they replay so)."""
        if self._batches is None:
            self._batches = workflow.patched("start-batches")
        return self._batches

    def _bounded(self) -> bool:
        """Whether at most IN_FLIGHT steps run at once (runs recorded before ran up to
        max_parallel: they replay so)."""
        if self._in_flight is None:
            self._in_flight = workflow.patched("in-flight")
        return self._in_flight

    def _ended(self, rec: StepRecord) -> None:
        rec.ended_at, rec.phase = workflow.now(), ""
        if rec.applied and rec.id not in self.completion:
            self.completion.append(rec.id)

    async def _execute(self, step: PlannedStep, rec: StepRecord) -> None:
        dry = self.inp.mode == "dry-run"
        if step.kind == StepKind.GATE:
            await self._gate(step, rec)
        elif step.kind == StepKind.WAIT:
            if dry:
                rec.detail = "dry-run: timer not started"
            else:
                rec.phase = "waiting"
                await workflow.sleep(step.wait or timedelta(0))
        elif dry:
            out = await self._activity("step.plan", step, rec)
            rec.changes, rec.detail = out.changes, out.detail
        elif step.kind == StepKind.CHECK:
            out = await self._activity("step.check", step, rec)
            rec.detail, rec.observed = out.detail, out.observed
        else:
            if step.id not in self.snapshots:  # a retried step keeps its first snapshot
                out = await self._activity("step.prepare", step, rec)
                self.snapshots[step.id] = out.snapshot or {}
                rec.observed = out.observed  # what its guards measured
            rec.applied = True
            out = await self._activity("step.apply", step, rec, self.snapshots[step.id])
            rec.changes, rec.detail = out.changes, out.detail

    async def _activity(
        self,
        name: str,
        step: PlannedStep,
        rec: StepRecord,
        snapshot: dict[str, Any] | None = None,
        attempts: int | None = None,
        bounded: bool = False,
    ) -> StepOutcome:
        phase = name.split(".", 1)[1]
        rec.phase = phase
        info = workflow.info()
        try:
            out = await workflow.execute_activity(
                name,
                StepCall(
                    run_id=f"{info.workflow_id}/{info.run_id}",
                    step=step,
                    from_region=self.inp.from_region,
                    to_region=self.inp.to_region,
                    mode=self.inp.mode,
                    snapshot=snapshot,
                ),
                result_type=StepOutcome,
                summary=f"{step.id} ({phase})",
                **step_options(step, self.inp.heartbeat_timeout, attempts, bounded),
            )
        except ActivityError as exc:
            error, attempt = _error_info(exc)
            self._count(rec, phase, attempt)
            raise _StepFailed(error) from None
        self._count(rec, phase, out.attempt)
        return out

    @staticmethod
    def _count(rec: StepRecord, phase: str, attempts: int) -> None:
        """Attempts of the step's main activity (prepare is bookkeeping, undo counts apart)."""
        if phase == "undo":
            rec.undo_attempts += attempts
        elif phase != "prepare":
            rec.attempts += attempts

    # ----------------------------------------------------------------------------- gates
    async def _gate(self, step: PlannedStep, rec: StepRecord) -> None:
        assert step.gate is not None
        if self.inp.mode == "dry-run":
            rec.detail = "dry-run: gate not opened"
            return
        if step.gate.preapproved_by:  # no command: histories without it replay unchanged
            for who in step.gate.preapprovers or [step.gate.preapproved_by]:
                self.gates.preapproved(step.id, who, workflow.now())
            rec.detail = f"pre-approved by {step.gate.preapproved_by}"
            return
        rec.state, rec.phase = StepState.WAITING_APPROVAL, "waiting for approval"
        if self.inp.kind == "unplanned" and self._guards_irreversible(step.id):
            rpo = self._rpo()
            rec.detail = (
                f"RPO at risk: replication lag last measured {rpo:g}s before the outage"
                if rpo is not None
                else "RPO at risk: unknown (no replication lag was measured)"
            )
            self.gates.note(step.id, rec.detail)
        if self._notifier.enabled:
            # The notice first, and the gate opens in a later workflow task: no command is ever
            # issued in the activation that opens a gate. (An approval the server delivers with
            # the event that opens it is replayed before that event's commands: with none, the
            # history replays whatever the order.)
            self._notify_gate(step, rec)
            await workflow.sleep(SETTLE)
        self.gates.opened(step.id)
        self._publish()
        try:
            await workflow.wait_condition(
                lambda: step.id in self.gates.outcome or self.abort_request is not None,
                timeout=step.gate.expires,
            )
        except TimeoutError:
            self.gates.expire(step.id, workflow.now())
        finally:
            self.gates.closed(step.id)
        outcome = self.gates.outcome.get(step.id)
        if outcome == "approved":
            rec.detail = "approved by " + ", ".join(self.gates.votes.get(step.id, []))
            if step.id in self.gates.notes:  # what they approved knowing (unplanned runs only)
                rec.detail += f" ({self.gates.notes[step.id]})"
            return
        if outcome == "expired":
            raise _StepFailed(
                ErrorInfo(kind="GateExpired", message=f"no decision within {step.gate.expires}")
            )
        if outcome == "rejected":
            last = self.gates.rejection(step.id)
            raise _StepFailed(
                ErrorInfo(kind="Rejected", message=f"rejected by {last.approver}: {last.comment}")
            )
        raise _StepFailed(ErrorInfo(kind="Aborted", message="the run was aborted"))

    def _past_no_return(self) -> bool:
        """An unplanned run past an irreversible step (the writer moved, accepting data loss):
        rolling back would leave users with neither region, so a failing step pauses for the
        operator (retry, skip, or roll back anyway) instead. Planned runs are unchanged, and no
        history before unplanned runs existed can reach this."""
        return self.inp.kind == "unplanned" and any(
            rec.applied and self.steps[sid].irreversible for sid, rec in self.records.items()
        )

    def _guards_irreversible(self, gate: str) -> bool:
        """Whether an irreversible step depends (directly or not) on this gate."""
        deps = {sid: s.depends_on for sid, s in self.steps.items()}
        return any(gate in ancestors(deps, sid) for sid, s in self.steps.items() if s.irreversible)

    async def _accepted_gate(self, decision: Decision) -> str | None:
        """The gate an accepted decision is for. Validators do the checking, but they do not
        run on replay, where an accepted Update can be delivered before the activation that
        opened its gate: wait for it (no command), never raise in the handler."""
        await workflow.wait_condition(
            lambda: (
                _ok(self.gates.gate_for, decision) is not None
                or self.final is not None
                or self.rolling_back
            )
        )
        return _ok(self.gates.gate_for, decision)

    def _check_decider(self, decision: Decision, approving: bool) -> str:
        if self.final is not None or self.rolling_back:
            raise ValueError("the run is no longer waiting for a decision")
        return self.gates.check(decision, approving)

    @workflow.update(
        description='Approve the open gate. Payload: {"approver": "NAME", "comment": "why", '
        '"gate": "GATE-ID (optional if one gate is open)", "signature": "TOKEN (runs with '
        'approval_auth: signed: failover approve RUN --print-token)"}'
    )
    async def approve(self, decision: Decision) -> str:
        """Approve an open gate; it opens once enough distinct people approved."""
        sid = await self._accepted_gate(decision)
        if sid is None:
            return "the gate is no longer open"
        return self.gates.approve(sid, decision, workflow.now())

    @approve.validator
    def _validate_approve(self, decision: Decision) -> None:
        self._check_decider(decision, approving=True)

    @workflow.update(
        description='Reject the open gate: the switch rolls back. Payload: {"approver": "NAME", '
        '"comment": "why", "gate": "GATE-ID (optional)", "signature": "TOKEN (approval_auth: '
        'signed: failover reject RUN --print-token)"}'
    )
    async def reject(self, decision: Decision) -> str:
        """Reject an open gate: the switch rolls back."""
        sid = await self._accepted_gate(decision)
        if sid is None:
            return "the gate is no longer open"
        return self.gates.reject(sid, decision, workflow.now())

    @reject.validator
    def _validate_reject(self, decision: Decision) -> None:
        self._check_decider(decision, approving=False)

    # ------------------------------------------------------------------- abort & operator
    @workflow.update(
        description='Abort the switch and roll back what was done. Payload: {"by": "NAME", '
        '"reason": "why"}'
    )
    def abort(self, req: Abort) -> str:
        """Stop starting steps, let running ones finish, and undo every applied step."""
        self.abort_request = req
        return "aborting: completed steps will be undone"

    @workflow.signal(name="stop")
    def stop(self, req: Abort) -> None:
        """Like abort, for a parent workflow (a game day), which can signal but not update its
        child. Ignored once the run ended or is already rolling back."""
        if self.final is None and not self.rolling_back and self.abort_request is None:
            self.abort_request = req

    @abort.validator
    def _validate_abort(self, req: Abort) -> None:
        if self.final is not None:
            raise ValueError(f"the run has already ended ({self.final})")
        if self.rolling_back or self.abort_request is not None:
            raise ValueError("the run is already rolling back")
        if not req.by.strip() or not req.reason.strip():
            raise ValueError("by and reason are required")

    @workflow.update(
        description='Decide for a paused step or a failed undo. Payload: {"action": '
        '"retry|skip|rollback|end", "by": "NAME", "reason": "why", "step": "STEP-ID (optional)"}'
    )
    async def operator(self, action: OperatorAction) -> str:
        """Retry, skip (with a reason), roll back (paused step) or end (failed undo)."""
        await workflow.wait_condition(
            lambda: _ok(self._check_operator, action) is not None or self.final is not None
        )
        sid = _ok(self._check_operator, action)
        if sid is None:
            return "nothing waits for that decision any more"
        self.decisions[sid] = action
        return f"{action.action} {sid}"

    @operator.validator
    def _validate_operator(self, action: OperatorAction) -> None:
        self._check_operator(action)

    def _check_operator(self, action: OperatorAction) -> str:
        return operator_target(self.awaiting, action)

    async def _operator(self, sid: str, why: str) -> OperatorAction | None:
        """Wait for the operator's decision on a step (None: the run was aborted meanwhile)."""
        parent = workflow.info().parent
        if why == "undo" and self._notifier.enabled:
            # As for gates: the page, the search attribute and the game day's signal first; the
            # operator's decision is accepted from a later workflow task, where no command is
            # issued.
            self._notify_stuck(sid)
            workflow.upsert_search_attributes([sa.STATE.value_set(RunState.ROLLBACK_FAILED.value)])
            self._published_state = RunState.ROLLBACK_FAILED
            if parent is not None and workflow.patched("notify-parent"):
                await self._tell_parent(parent, sid)
            await workflow.sleep(SETTLE)
            parent = None  # told
        self.awaiting[sid] = why
        self.decisions.pop(sid, None)
        self._publish()
        if why == "undo" and parent is not None and workflow.patched("notify-parent"):
            await self._tell_parent(parent, sid)
        try:
            await workflow.wait_condition(
                lambda: (
                    sid in self.decisions or (why == "paused" and self.abort_request is not None)
                )
            )
        finally:
            del self.awaiting[sid]
        return self.decisions.pop(sid, None)

    async def _tell_parent(self, parent: Any, sid: str) -> None:
        """A game day must not leave its fault in place while the operator is awaited."""
        with contextlib.suppress(ApplicationError):
            await workflow.get_external_workflow_handle(
                parent.workflow_id, run_id=parent.run_id
            ).signal("switch_needs_operator", sid)

    # -------------------------------------------------------------------------- rollback
    async def _rollback(self) -> bool:
        """Undo applied steps (reverse completion order, dependents first); True if the operator
        ended the run with an undo still failed."""
        deps = {sid: s.depends_on for sid, s in self.steps.items()}
        todo, waits_for = undo_plan(deps, self.completion)
        blockers = {sid: len(w) for sid, w in waits_for.items()}
        unblocks: dict[str, list[str]] = {}
        for sid, w in waits_for.items():
            for later in w:
                unblocks.setdefault(later, []).append(sid)
        pending = list(todo)
        running: dict[str, asyncio.Task[str]] = {}
        ended = False
        while pending or running:
            if not ended:
                for sid in list(pending):
                    if len(running) >= self.inp.max_parallel:
                        break
                    if blockers[sid]:
                        continue
                    pending.remove(sid)
                    running[sid] = self._task(self._undo(sid))
            if not running:
                break
            self._publish()
            seen = self._done
            await workflow.wait_condition(lambda: self._done != seen)  # noqa: B023
            for sid, task in list(running.items()):
                if task.done():
                    del running[sid]
                    if task.result() == "ended":
                        ended = True
                    for earlier in unblocks.get(sid, ()):
                        blockers[earlier] -= 1
        for sid in pending:
            self.records[sid].undo_note = "not undone: the operator ended the rollback"
        return ended

    def _task(self, coro: Any) -> asyncio.Task[Any]:
        """A child task that wakes the scheduling loop when it ends."""
        task: asyncio.Task[Any] = asyncio.create_task(coro)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, _: asyncio.Task[Any]) -> None:
        self._done += 1

    async def _undo(self, sid: str) -> str:
        step, rec = self.steps[sid], self.records[sid]
        if not step.reversible:
            rec.state = StepState.UNDO_SKIPPED
            rec.undo_note = "irreversible: not undone"
            return "skipped"
        rec.undo_started_at = workflow.now()
        while True:
            rec.state, rec.undo_error = StepState.UNDOING, None
            try:
                await self._activity(
                    "step.undo",
                    step,
                    rec,
                    self.snapshots.get(sid, {}),
                    attempts=max(self.inp.undo_attempts, step.retry.attempts),
                    bounded=True,
                )
            except _StepFailed as exc:
                rec.state, rec.undo_error = StepState.UNDO_FAILED, exc.error
                action = await self._operator(sid, "undo")
                assert action is not None
                if action.action == "retry":
                    continue
                rec.undo_ended_at = workflow.now()
                if action.action == "skip":
                    rec.state = StepState.UNDO_SKIPPED
                    rec.undo_note = f"skipped by {action.by}: {action.reason}"
                    return "skipped"
                rec.undo_note = f"rollback ended by {action.by}: {action.reason}"
                return "ended"
            else:
                rec.state, rec.undo_ended_at = StepState.UNDONE, workflow.now()
                rec.phase = ""
                return "undone"

    # --------------------------------------------------------------------- notifications
    def _what(self) -> str:
        kind = {"planned": "", "unplanned": "unplanned ", "recovery": "recovery "}[self.inp.kind]
        return f"{kind}{self.inp.mode}"

    def _send(self, notice: Notice) -> None:
        """Send a notice in the background (nothing if notifications are off for this run)."""
        if self._notifier.enabled:
            self._notifier.send(notice)

    def _notice(
        self,
        event: NotifyEvent,
        summary: str,
        detail: str = "",
        severity: Severity = "info",
        resolve: bool = False,
        commands: list[str] | None = None,
    ) -> Notice:
        """A notice of this run (built, not sent: see `_send`)."""
        wid, rid, dedup = run_ref()
        return Notice(
            event=event,
            runbook=self.inp.runbook,
            summary=summary,
            detail=detail,
            severity=severity,
            dedup_key=dedup,
            resolve=resolve,
            workflow_id=wid,
            run_id=rid,
            commands=commands or [],
        )

    def _notify_gate(self, step: PlannedStep, rec: StepRecord) -> None:
        """A gate waits for people: who may approve, and the commands to paste. Sent before the
        gate opens (see `_gate`), so that no command is issued in the activation that opens it."""
        assert step.gate is not None
        wid, _, _ = run_ref()
        who = ", ".join(step.gate.approvers or self.inp.approvers) or "anyone but the requester"
        need = f"{step.gate.approvals} approval(s) from {who}; expires in {step.gate.expires}"
        detail = "; ".join(x for x in (step.gate.message, rec.detail, need) if x)
        self._send(
            self._notice(
                "gate_open",
                f"{self.inp.runbook}: gate {step.id} waits for approval "
                f"({self._what()} {self.inp.from_region} -> {self.inp.to_region}, "
                f"requested by {self.inp.requester})",
                detail,
                severity="warning",
                commands=[
                    f"failover approve {wid} --gate {step.id}",
                    f'failover reject {wid} --gate {step.id} --reason "..."',
                ],
            )
        )

    def _notify_stuck(self, sid: str) -> None:
        """An undo keeps failing: ROLLBACK_FAILED waits for a person (a page); sent before the
        operator's decisions are accepted (see `_operator`)."""
        wid, _, _ = run_ref()
        err = self.records[sid].undo_error
        self._send(
            self._notice(
                "rollback_failed",
                f"{self.inp.runbook}: ROLLBACK_FAILED: the undo of {sid} keeps failing "
                f"({self._what()} {self.inp.from_region} -> {self.inp.to_region})",
                f"{err.kind}: {err.message}" if err else "",
                severity="critical",
                commands=[
                    f'failover resolve {wid} --step {sid} --action retry --reason "..."',
                    f'failover resolve {wid} --step {sid} --action skip --reason "..."',
                    f'failover resolve {wid} --step {sid} --action end --reason "..."',
                ],
            )
        )

    def _notify_end(self) -> None:
        """The run's last notice (succeeded, rolled back). It is sent with the report, in one
        activity (`report.switch_end`, by `run`): the report lists the notice's deliveries, so
        the two cannot run side by side, and one round trip is saved where two followed each
        other. Runs recorded before sent it here, then wrote the report apart."""
        last = self._end_notice()
        if last is None:
            return
        if workflow.patched("end-together"):
            self._last = last
        else:
            self._notifier.send(last.notice)

    def _end_notice(self) -> NotifyCall | None:
        if not self._notifier.enabled or self.inp.mode == "gameday":
            return None
        what = f"{self.inp.runbook}: {self._what()} {self.inp.from_region} -> {self.inp.to_region}"
        took = f"took {(workflow.now() - self.started_at).total_seconds():.1f}s"
        if self.final == RunState.SUCCEEDED:
            if self._quiet and not self._notifier.sent:  # (else: it resolves a gate's page)
                return None
            notice = self._notice("switch_succeeded", f"{what} succeeded", took, resolve=True)
        elif self.final == RunState.ROLLED_BACK:
            notice = self._notice(
                "switch_rolled_back", f"{what} rolled back", f"{self.reason}; {took}", "warning"
            )
        else:
            return None
        return NotifyCall(notice=notice, routes=self._notifier.routes)

    # -------------------------------------------------------------------------- progress
    def _state(self) -> RunState:
        if self.final is not None:
            return self.final
        if any(w == "undo" for w in self.awaiting.values()):
            return RunState.ROLLBACK_FAILED
        if self.rolling_back:
            return RunState.ROLLING_BACK
        if self.awaiting:
            return RunState.PAUSED
        if self.gates.open:
            return RunState.WAITING_APPROVAL
        return RunState.RUNNING

    @workflow.query
    def progress(self) -> RunProgress:
        """The whole step table: state, attempts, timings, last error; approvals and open gates."""
        state = self._state()
        # What the failed region will owe: nothing once the run rolls back (it changed nothing).
        undone = state in (RunState.ROLLING_BACK, RunState.ROLLED_BACK, RunState.ROLLBACK_FAILED)
        return RunProgress(
            runbook=self.inp.runbook,
            from_region=self.inp.from_region,
            to_region=self.inp.to_region,
            mode=self.inp.mode,
            requester=self.inp.requester,
            state=state,
            started_at=self.started_at,
            ended_at=self.ended_at,
            reason=self.reason,
            steps=list(self.records.values()),
            approvals=list(self.gates.records),
            open_gates=list(self.gates.open),
            objectives=self.inp.objectives,
            rpo_seconds=self._rpo(),
            kind=self.inp.kind,
            owed=[] if undone else list(self.inp.owed),
            notifications=list(self.notifications),
            report_files=list(self.report_files),
            trigger=self.inp.trigger,
            target_choice=self.inp.target_choice,
            approval_auth=self.inp.approval_auth,
            requester_key=self.gates.requester_key,
        )

    def _rpo(self) -> float | None:
        """The lag measured last (by end time) among steps and guards that measured one."""
        measured = [r for r in self.records.values() if "lag_seconds" in r.observed and r.ended_at]
        if not measured:
            return None
        last = max(measured, key=lambda r: r.ended_at or self.started_at)
        return float(last.observed["lag_seconds"])

    def _publish(self) -> None:
        """Keep the FailoverState search attribute and the UI's current details up to date."""
        state = self._state()
        if self._quiet_waits and state in _PERSON_STATES:
            state = RunState.ROLLING_BACK if self.rolling_back else RunState.RUNNING
        if state != self._published_state:
            workflow.upsert_search_attributes([sa.STATE.value_set(state.value)])
            self._published_state = state
        self._details_stale = True  # rendered by _render_details, once the event loop is idle

    def _render(self) -> None:
        self._details_stale = False
        workflow.set_current_details(
            ui.switch_details(
                self.progress(), self.gates, self.awaiting, workflow.info().workflow_id
            )
        )

    async def _render_details(self) -> None:
        """The UI's current details (the whole step table, O(steps) to render) are rendered once
        per pass of the workflow's event loop, when every step task has run, not after each
        event: a run's work per event stays O(1) however many steps it has. (Details are not a
        command: histories are unchanged.)"""
        while True:
            await workflow.wait_condition(lambda: self._details_stale)
            self._render()


_PERSON_STATES = (RunState.WAITING_APPROVAL, RunState.PAUSED)
#: The most steps one workflow task starts. Each start costs the worker about a millisecond
#: (its command, its input's and summary's payloads): a thousand ready steps started at once
#: made a first workflow task of about a second. Large batches make long tasks, and while a long
#: task runs the results of the batch before pile up on the server: past 100 buffered events it
#: force-closes the task (WORKFLOW_TASK_FAILED_CAUSE_FORCE_CLOSE_COMMAND), which then replays the
#: whole history (seen with batches of 200 and, rarely, 50; never with 25 in 1,000-step runs).
#: The next batch starts with the next results, or after BATCH_PAUSE (a durable timer) if none.
START_BATCH = 25
BATCH_PAUSE = timedelta(milliseconds=1)
#: The most steps of one run in flight at once, whatever its max_parallel. Each step has one
#: activity in flight, and an activity that ends while a workflow task runs leaves two events
#: buffered on the server (started, completed); past 100 buffered events the server
#: force-closes the task, which then replays the whole history. With at most 40 in flight, no
#: task can find more than 80 (and room for signals, timers and notices), however long it
#: takes: a busy worker slows a wide run down, it no longer makes it replay (1,000 steps in
#: flight, about 250 ending a second, made that happen in 3 of 20 runs).
IN_FLIGHT = 40
#: Between a gate's notice (or a stuck undo's page) and the gate opening to decisions.
SETTLE = timedelta(milliseconds=100)


def _ok(check: Any, arg: Any) -> Any:
    """check(arg), or None if it refuses (raises ValueError)."""
    try:
        return check(arg)
    except ValueError:
        return None


def _error_info(exc: ActivityError) -> tuple[ErrorInfo, int]:
    cause = exc.cause
    if isinstance(cause, ApplicationError):
        return _application_error(cause)
    if isinstance(cause, TemporalTimeoutError):
        what = cause.type.name.lower() if cause.type else "activity"
        if isinstance(cause.cause, ApplicationError):  # time ran out after this error
            last, attempt = _application_error(cause.cause)
            return last.model_copy(update={"message": f"{last.message} ({what} timeout)"}), attempt
        return ErrorInfo(kind="Timeout", message=f"{what} timeout"), 1
    return ErrorInfo(kind=type(cause).__name__, message=str(cause or exc)), 1


def _application_error(cause: ApplicationError) -> tuple[ErrorInfo, int]:
    details = cause.details[0] if cause.details and isinstance(cause.details[0], dict) else {}
    return (
        ErrorInfo(
            kind=cause.type or str(details.get("kind", "Error")),
            message=cause.message,
            retryable=not cause.non_retryable,
        ),
        int(details.get("attempt", 1)),
    )
