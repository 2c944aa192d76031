"""GuardWorkflow: watch a runbook's active region; confirm an outage; propose the switch.

One guard per runbook (workflow id `guard-<runbook>`), running for months: every `interval` it
evaluates the runbook's detectors against the active region (an activity), applies the anti-flap
rules (`orchestrator.guard.antiflap`: N of M failing evaluations lasting at least a minimum time;
no switch within the cooldown after one; none when the region flaps), and on a confirmed outage
starts the runbook's switch as a child workflow (id `switch-<runbook>`, so it never runs beside
a switch started by hand) in the mode the runbook names. The switch holds the leases of what it
writes (its `FailoverResources`, as a switch started by hand): before starting it, an activity
(`guard.leases`) computes them and asks which running run holds any of them; if one does, the
guard does not switch, and says why (patched "switch-leases"). The switch's gates wait for a
person unless the runbook says `auto_approve: true`, and even then a gate before an irreversible
step waits. What it decided, and the MTTD, time to decision and RTO of each episode, are in its
state (the `status` query, the UI's current details) and in notifications.

It continues as new every `evaluations_per_run` evaluations, carrying its state, so its history
stays short however long it runs; a switch in flight is awaited first (the child outlives the
guard if the guard is stopped: ABANDON).
"""

from __future__ import annotations

import contextlib
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributePair
from temporalio.exceptions import ActivityError
from temporalio.workflow import ParentClosePolicy

from workflows.notify import Notifier

with workflow.unsafe.imports_passed_through():
    from orchestrator import metrics
    from orchestrator import search_attributes as sa
    from orchestrator.guard import antiflap
    from orchestrator.guard.models import (
        EvaluateCall,
        Evaluation,
        GuardInput,
        GuardState,
        GuardStatus,
        LeaseCall,
        LeaseCheck,
        SwitchRecord,
        preapprove_reversible,
    )
    from orchestrator.notifications import Notice
    from orchestrator.runs import (
        Abort,
        GuardTrigger,
        RunProgress,
        RunState,
        SwitchInput,
        switch_workflow_id,
    )

GUARD_PREFIX = "guard-"


def guard_workflow_id(runbook: str) -> str:
    """The workflow id of a runbook's guard."""
    return f"{GUARD_PREFIX}{runbook}"


@workflow.defn(name="Guard")
class GuardWorkflow:
    """Watch the active region of one runbook; switch out of it when an outage is confirmed."""

    @workflow.init
    def __init__(self, inp: GuardInput) -> None:
        self.inp = inp
        self.s: GuardState = inp.state
        if self.s.started_at is None:
            self.s.started_at = workflow.now()
        self.stop_request: Abort | None = None
        self._published: GuardStatus | None = None
        self.notifier = Notifier(True, inp.notify, self.s.notifications)

    @workflow.run
    async def run(self, inp: GuardInput) -> GuardState:
        """Evaluate, decide, sleep; until stopped (continues as new now and then)."""
        self._publish()
        for _ in range(inp.evaluations_per_run):
            if self.stop_request is not None:
                break
            ev = await self._evaluate()
            if ev is not None and antiflap.observe(self.s, self.inp, ev, workflow.now()):
                await self._confirmed()
            self._publish()
            if self.stop_request is None:
                await self._sleep()
        if self.stop_request is None:  # a long guard: a fresh history, the same state
            await self._flush()
            workflow.continue_as_new(self.inp.model_copy(update={"state": self.s}))
        self.s.status = GuardStatus.STOPPED
        self.s.stopped_by = f"{self.stop_request.by}: {self.stop_request.reason}"
        self._publish()
        await self._flush()
        return self.s

    async def _sleep(self) -> None:
        with contextlib.suppress(TimeoutError):  # the interval passed: evaluate again
            await workflow.wait_condition(
                lambda: self.stop_request is not None, timeout=self.inp.interval
            )

    # ---------------------------------------------------------------------- evaluation
    async def _evaluate(self) -> Evaluation | None:
        """One evaluation of the active region (None: the activity itself failed: a worker
        lost mid-evaluation is not evidence either way)."""
        region = self.s.active
        call = EvaluateCall(
            runbook=self.inp.runbook,
            region=region,
            checks=self.inp.detectors[region],
            other=self.inp.target(region),
        )
        # Detectors are bounded by their own timeouts (a dead region answers within seconds);
        # an evaluation that outlives a generous bound lost its worker and is tried again.
        bound = max(timedelta(seconds=30), sum((c.timeout for c in call.checks), timedelta()))
        try:
            ev: Evaluation = await workflow.execute_activity(
                "guard.evaluate",
                call,
                result_type=Evaluation,
                start_to_close_timeout=bound,
                heartbeat_timeout=timedelta(seconds=20),
                retry_policy=RetryPolicy(maximum_attempts=2),
                summary=f"evaluate {region}",
            )
        except ActivityError:
            return None
        return ev

    # ------------------------------------------------------------------------ decision
    async def _confirmed(self) -> None:
        ep = self.s.episode
        assert ep is not None
        if ep.mttd_s is not None:
            metrics.histogram(workflow.metric_meter(), metrics.MTTD).record(
                ep.mttd_s, {"runbook": self.inp.runbook}
            )
        failing = [d.name for d in (self.s.last.detectors if self.s.last else []) if not d.ok]
        self._notify(
            "guard_detected",
            f"{ep.region} is down ({self.inp.runbook}): confirmed after "
            f"{ep.failures} failing evaluations in {ep.mttd_s or 0:.0f}s",
            "warning",
            f"failing: {', '.join(failing) or 'unknown'}",
        )
        decision, why = antiflap.decide(self.s, self.inp, workflow.now())
        if decision != "switch":
            ep.outcome, ep.decision = decision, why
            self.s.status = GuardStatus.FLAPPING if decision == "flapping" else GuardStatus.COOLDOWN
            self._notify("guard_decision", why, "critical")
            return
        await self._switch(why)

    async def _switch(self, why: str) -> None:
        ep = self.s.episode
        assert ep is not None
        frm = ep.region
        inp = self.inp.switches[frm]
        left: list[str] = [s.id for s in inp.steps if s.gate is not None]
        if self.inp.auto_approve:
            inp, left = preapprove_reversible(inp, "guard (auto_approve)")
        if ep.confirmed_at is not None:
            trigger = GuardTrigger(
                guard=workflow.info().workflow_id,
                region=frm,
                first_failure_at=ep.first_failure_at,
                confirmed_at=ep.confirmed_at,
                failures=ep.failures,
                evaluations=ep.evaluations,
            )
            inp = inp.model_copy(update={"trigger": trigger})
        wid = switch_workflow_id(inp.runbook)
        rec = SwitchRecord(workflow_id=wid, from_region=frm, to_region=inp.to_region,
                           kind=inp.kind, started_at=workflow.now())  # fmt: skip
        ep.switch, ep.decision = rec, why
        self.s.status = GuardStatus.SWITCHING
        self._publish()
        held: list[SearchAttributePair[Any]] = []
        if workflow.patched("switch-leases"):  # (guards recorded before it held no lease)
            check, failed = await self._lease_check(inp, wid)
            if check is None or check.held_by:
                blocked = (
                    f"the lease check failed ({failed}): no switch without it"
                    if check is None
                    else "another run holds what the switch would write: "
                    + "; ".join(check.held_by)
                )
                rec.state, rec.reason = "NOT STARTED", blocked
                ep.outcome = "switch failed"
                ep.decision = f"{why}; but no switch: {blocked}; a person decides"
                self.s.status = GuardStatus.CONFIRMED
                self._notify("guard_decision", ep.decision, "critical")
                return
            if check.keys:
                held.append(SearchAttributePair(sa.RESOURCES, check.keys))
        info = workflow.info()
        try:
            handle = await workflow.start_child_workflow(
                "RegionSwitch",
                inp,
                id=wid,
                result_type=RunProgress,
                parent_close_policy=ParentClosePolicy.ABANDON,
                static_summary=f"guard: {inp.kind} switch {frm} -> {inp.to_region}",
                search_attributes=sa.of_switch(inp, *held),
                memo={"guard": f"{info.workflow_id}/{info.run_id}"},
            )
        except Exception as exc:  # e.g. a switch of this runbook is already running
            rec.state, rec.reason = "NOT STARTED", str(exc)
            ep.outcome = "switch failed"
            ep.decision = f"{why}; but the switch could not start: {exc}"
            self.s.status = GuardStatus.CONFIRMED
            self._notify("guard_decision", ep.decision, "critical")
            return
        rec.run_id = handle.first_execution_run_id
        waiting = f"; it waits for approval at {', '.join(left)} ({wid})" if left else " (no gate)"
        self._notify("guard_decision", f"{why}: {inp.kind} switch started{waiting}", "warning")
        result: RunProgress = await handle
        await self._switch_ended(rec, result)

    async def _lease_check(self, inp: SwitchInput, wid: str) -> tuple[LeaseCheck | None, str]:
        """The switch's lease keys and who holds them now; (None, why) if the check failed."""
        try:
            check: LeaseCheck = await workflow.execute_activity(
                "guard.leases",
                LeaseCall(switch=inp, workflow_id=wid),
                result_type=LeaseCheck,
                start_to_close_timeout=timedelta(seconds=60),
                heartbeat_timeout=timedelta(seconds=10),
                retry_policy=RetryPolicy(maximum_attempts=3),
                summary="leases of the switch",
            )
        except ActivityError as exc:
            cause = exc.cause if exc.cause is not None else exc
            return None, str(cause)
        return check, ""

    async def _switch_ended(self, rec: SwitchRecord, result: RunProgress) -> None:
        ep = self.s.episode
        now = workflow.now()
        rec.state, rec.ended_at, rec.reason = result.state.value, now, result.reason
        approvals = [a for a in result.approvals if a.decision == "approve"]
        if approvals:
            last = max(approvals, key=lambda a: a.at)
            rec.approved_at = last.at
            rec.approved_by = sorted({a.approver for a in approvals})
        try:
            rec.rto_s = await workflow.execute_activity(
                "guard.rto",
                result,
                result_type=float,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=RetryPolicy(maximum_attempts=3),
            )
        except ActivityError:
            rec.rto_s = None
        if ep is None:  # (cannot happen: the episode waits for its switch)
            return
        if result.state == RunState.SUCCEEDED:
            self.s.active = rec.to_region
            self.s.last_switch_at = now
            self.s.window = []
            antiflap.end(self.s, ep, now, "switched", f"switched to {rec.to_region}")
            self.s.status = GuardStatus.COOLDOWN
            self._notify(
                "guard_decision",
                f"switched {rec.from_region} -> {rec.to_region}: RTO "
                f"{rec.rto_s if rec.rto_s is not None else '?'}s; MTTD {ep.mttd_s or 0:.0f}s",
                "info",
                resolve=True,
            )
            return
        ep.outcome = "switch failed"
        ep.decision = f"the switch ended {result.state.value}: {result.reason}"
        self.s.status = GuardStatus.CONFIRMED
        self._notify("guard_decision", ep.decision, "critical")

    # ------------------------------------------------------------------- notifications
    def _notify(
        self, event: Any, summary: str, severity: Any = "info", detail: str = "",
        resolve: bool = False,
    ) -> None:  # fmt: skip
        """Send in the background: a notification never holds the guard up."""
        info = workflow.info()
        notice = Notice(
            event=event,
            runbook=self.inp.runbook,
            summary=summary,
            detail=detail,
            severity=severity,
            dedup_key=f"{GUARD_PREFIX}{self.inp.runbook}",
            resolve=resolve,
            workflow_id=info.workflow_id,
            run_id=info.run_id,
            commands=[f"failover guard status {self.inp.runbook}"],
        )
        self.notifier.send(notice)

    async def _flush(self) -> None:
        """Let notifications in flight finish (each is bounded by its deadline)."""
        await self.notifier.drain()

    # --------------------------------------------------------------------- visibility
    def _publish(self) -> None:
        del self.s.notifications[: -antiflap.HISTORY]  # the last ones are enough
        status = self.s.status
        if status != self._published:
            workflow.upsert_search_attributes([sa.STATE.value_set(status.value)])
            self._published = status
        metrics.gauge(workflow.metric_meter(), metrics.GUARD_STATE).set(
            metrics.GUARD_STATES[status.value.lower()], {"runbook": self.inp.runbook}
        )
        workflow.set_current_details(_details(self.inp, self.s))

    # ------------------------------------------------------------------------ handlers
    @workflow.query
    def status(self) -> GuardInput:
        """The guard's settings and state (the switches it would run are left out)."""
        return self.inp.model_copy(update={"state": self.s, "switches": {}, "detectors": {}})

    @workflow.update
    def stop(self, req: Abort) -> str:
        """Stop watching (a switch it started runs on)."""
        self.stop_request = req
        return "the guard stops after its current evaluation"

    @stop.validator
    def _validate_stop(self, req: Abort) -> None:
        if not req.by.strip() or not req.reason.strip():
            raise ValueError("by and reason are required")
        if self.stop_request is not None:
            raise ValueError("the guard is already stopping")


def _details(inp: GuardInput, s: GuardState) -> str:
    """The Temporal UI's current details: status, counters, last evaluation, last decision."""
    lines = [
        f"**{s.status.value}** · guard of `{inp.runbook}` · active region **{s.active}**",
        "",
        f"evaluations: {s.evaluations} · last {inp.confirm_of}: "
        f"{''.join('x' if f else '.' for f in s.window)} (confirm: {inp.confirm_failures} of "
        f"{inp.confirm_of} for {inp.confirm_for.total_seconds():g}s)",
    ]
    if s.last is not None:
        lines += ["", "| detector | ok | detail |", "|---|---|---|"]
        for d in s.last.detectors:
            lines.append(f"| {d.name} | {'yes' if d.ok else 'NO'} | {d.detail} |")
    ep = s.episode or (s.history[-1] if s.history else None)
    if ep is not None and ep.decision:
        lines += ["", f"last decision: {ep.decision}"]
    return "\n".join(lines)
