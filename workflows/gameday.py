"""GameDayWorkflow: inject a fault, detect it, switch, verify SLOs, remove the fault, fail back.

Pure orchestration, like RegionSwitchWorkflow: no I/O, no clocks but `workflow.now()`. The fault is
a step (`step.prepare` / `step.apply` / `step.undo` of a fault step type); detection and the SLO
probe are the activities of `activities.gameday`; both switches are child RegionSwitch runs.

1. preflight: every mutating step of both directions is planned (`step.plan`), the fault too;
   the detectors must be green, the service must meet its SLO, and no switch or game day of the
   runbook may be running (`gameday.busy`) before anything is injected;
2. approval (Updates `approve` / `reject`) when the game day asks for one: the switches' own gates
   are then pre-approved by whoever approved, a gate that needs several approvers only if as
   many approved the game day (patched "gate-policy"); an unattended game day's are pre-approved
   by its requester (the schedule), except a gate an irreversible step depends on or one that
   needs several approvers: those open in the switch and wait for people, and the game day says
   so (the switch sends its `gate_open` notice);
3. inject the fault (verified in effect); from then on a probe measures the service every
   `probe_interval`, and the stop conditions (error rate, p95, an alarm; held for a while) are
   evaluated on every window;
4. detect: the detectors are polled until one turns red (MTTD);
5. switch (child), then wait until the SLO holds for `settle`;
6. remove the fault (verified gone), fail back (child, directions swapped), SLO settles again.

Whatever happens (a stop condition, a rejection, a failure, cancellation of this workflow), the
fault is removed, verified, and a switch that succeeded is failed back; a running switch is told to
stop (signal `stop`) and rolls itself back. Cancellation is shielded: it means "stop and clean up".

When it ends it sends its result (`gameday_result`, patched "notify"), in the background; it waits
for that delivery at most the notification activity's deadline.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError
from temporalio.workflow import ParentClosePolicy

from workflows.notify import Notifier, run_ref
from workflows.report import write_report
from workflows.retry import step_options
from workflows.shield import run_shielded

with workflow.unsafe.imports_passed_through():
    from orchestrator import search_attributes as sa
    from orchestrator import ui
    from orchestrator.approvals import GateBook
    from orchestrator.gameday.models import (
        AlarmRef,
        BusyCall,
        ChildRun,
        DetectCall,
        Detection,
        GameDayInput,
        GameDayProgress,
        Outcome,
        Phase,
        ProbeCall,
        ProbeSample,
        ProbeStats,
        cover_by_approval,
        cover_unattended,
        preapprove,
    )
    from orchestrator.gameday.slo import StopWatch, recovered_at, slo_miss
    from orchestrator.notifications import Notice, Severity
    from orchestrator.runs import (
        Abort,
        Decision,
        PlannedStep,
        RunProgress,
        RunState,
        StepCall,
        StepKind,
        StepOutcome,
        SwitchInput,
        switch_workflow_id,
    )

PLAN_ATTEMPTS = 2
GATE = "gameday"  # the game day's own approval gate


class _Halt(Exception):
    """Stop going forward: a stop condition, a rejection or a cancellation (already recorded)."""


class _Failed(Exception):
    """Something the game day needed did not work (preflight, a switch that rolled back)."""


#: The phase a game day is in while one of its child switches runs.
_PHASES = {"switch": Phase.SWITCHING, "recovery": Phase.RECOVERING, "failback": Phase.FAILING_BACK}


@workflow.defn(name="GameDay")
class GameDayWorkflow:
    """A game day: fault, detection, switch, SLO verification, fault removal, failback, report."""

    @workflow.init
    def __init__(self, inp: GameDayInput) -> None:
        self.inp = inp
        self.p = GameDayProgress(
            name=inp.name,
            runbook=inp.runbook,
            from_region=inp.from_region,
            to_region=inp.to_region,
            requester=inp.requester,
            phase=Phase.PREFLIGHT,
            outcome=Outcome.RUNNING,
            started_at=workflow.now(),
            fault_description=inp.fault.description,
            slo=inp.slo,
            stop_conditions=inp.stop_conditions,
            objectives=inp.objectives,
        )
        self.halt: Outcome | None = None  # set once: why the game day stops going forward
        gates = {GATE: inp.approval} if inp.approval is not None else {}
        self.gate = GateBook(inp.requester, [], gates, what="game day")
        self.probing = False
        self.stops = StopWatch(inp.stop_conditions)
        self._published: Outcome | None = None
        self._probe_task: asyncio.Task[None] | None = None
        self.switch_stuck = False  # a child switch waits for its operator (ROLLBACK_FAILED)
        self._notifier = Notifier(False, inp.notify, self.p.notifications)
        self._gate_policy = False  # set in run: which gates of the switches the game day covers

    # ------------------------------------------------------------------------------- run
    @workflow.run
    async def run(self, inp: GameDayInput) -> GameDayProgress:
        """Run the game day; returns its progress, with both switches' results."""
        # Histories recorded before notifications replay without them.
        self._notifier.enabled = workflow.patched("notify")
        # Histories recorded before game days said who approves them covered every gate.
        self._gate_policy = workflow.patched("gate-policy")
        await run_shielded(
            self._main(), lambda: self._stop(Outcome.CANCELLED, "the game day was cancelled")
        )
        self._notify_result()
        await self._notifier.drain()
        if workflow.patched("report"):  # (game days recorded before this wrote none themselves)
            self.p.report_files = await write_report("report.gameday", self.p)
        return self.p

    def _notify_result(self) -> None:
        """`gameday_result`: the outcome, MTTD and what each switch did."""
        if not self._notifier.enabled:
            return
        p = self.p
        severity: Severity = "warning"  # stopped, cancelled, failed: someone should look
        if p.outcome == Outcome.SUCCEEDED:
            severity = "info"
        elif p.outcome == Outcome.CLEANUP_FAILED:  # the fault is still in place
            severity = "critical"
        parts = [f"MTTD {p.mttd_s:.1f}s" if p.mttd_s is not None else "not detected"]
        for kind in ("switch", "recovery", "failback"):
            child = getattr(p, kind)
            if child is not None and child.progress is not None:
                parts.append(f"{kind} {child.progress.state.value}")
        if p.reason:
            parts.append(p.reason)
        wid, rid, dedup = run_ref()
        self._notifier.send(
            Notice(
                event="gameday_result",
                runbook=p.runbook,
                summary=f"{p.runbook}: game day {p.name} {p.from_region} -> {p.to_region}: "
                f"{p.outcome.value}",
                detail="; ".join(parts),
                severity=severity,
                dedup_key=dedup,
                resolve=p.outcome == Outcome.SUCCEEDED,
                workflow_id=wid,
                run_id=rid,
                commands=[f"failover gameday report {wid}"],
            )
        )

    async def _main(self) -> None:
        try:
            await self._preflight()
            if self.inp.approval is not None:
                await self._approval()
            self._check()
            await self._inject()
            await self._detect()
            await self._switch()
            await self._remove_fault()
            if self.inp.recovery is not None:  # unplanned: the failed region's owed work
                await self._recover()
            await self._failback()
        except _Halt:
            pass
        except _Failed as exc:
            self._stop(Outcome.FAILED, str(exc))
        except ActivityError as exc:
            self._stop(Outcome.FAILED, _message(exc))
        except Exception as exc:  # a bug must not leave the fault behind
            workflow.logger.exception("game day failed")
            self._stop(Outcome.FAILED, f"internal error: {type(exc).__name__}: {exc}")
        await self._clean_up()
        self.probing = False
        if self._probe_task is not None:
            await self._probe_task
        if self.p.fault.state == "failed":
            self.p.outcome = Outcome.CLEANUP_FAILED
        elif self.halt is not None:
            self.p.outcome = self.halt
        else:
            self.p.outcome = Outcome.SUCCEEDED
        self.p.phase = Phase.DONE
        self.p.ended_at = workflow.now()
        self._publish()

    # ------------------------------------------------------------------------- phases
    async def _preflight(self) -> None:
        """Plan both directions and the fault; detectors green; SLO met. Nothing changes."""
        self._phase(Phase.PREFLIGHT)
        calls: list[tuple[str, str, PlannedStep, str, str]] = []
        runs = [("switch", self.inp.switch), ("failback", self.inp.failback)]
        if self.inp.recovery is not None:
            runs.insert(1, ("recovery", self.inp.recovery))
        for label, sw in runs:
            for step in sw.steps:
                if step.kind == StepKind.MUTATE:
                    calls.append(("step.plan", label, step, sw.from_region, sw.to_region))
        calls.append(("step.plan", "fault", self.inp.fault, *self._regions()))
        checks = [self._baseline_detectors(), self._baseline_slo()]
        if workflow.patched("busy-check"):  # histories recorded before it have no such activity
            checks.append(self._busy())
        results = await asyncio.gather(*(self._plan(*c) for c in calls), *checks)
        problems = [p for p in results if p]
        self.p.preflight = problems
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise _Failed(f"preflight: {problems[0]}{more}")

    async def _plan(self, name: str, label: str, step: PlannedStep, frm: str, to: str) -> str:
        try:
            await self._step(name, step, frm, to, attempts=PLAN_ATTEMPTS)
        except ActivityError as exc:
            return f"{label} step {step.id}: {_message(exc)}"
        return ""

    async def _busy(self) -> str:
        running: list[str] = await workflow.execute_activity(
            "gameday.busy",
            BusyCall(runbook=self.inp.runbook),
            result_type=list[str],
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(maximum_attempts=3),
            summary="other runs of the runbook",
        )
        if running:
            return f"the runbook is already being switched or practised: {', '.join(running)}"
        return ""

    async def _baseline_detectors(self) -> str:
        if not self.inp.detect:
            return ""
        found = await self._detect_once(timeout_s=0)
        return f"detector already red before any fault: {found.detail}" if found.detected else ""

    async def _baseline_slo(self) -> str:
        sample = await self._probe()
        if sample.error:
            return f"SLO probe: {sample.error}"
        miss = self._slo_miss(sample.service)
        return f"the service misses its SLO before any fault: {miss}" if miss else ""

    async def _approval(self) -> None:
        self._phase(Phase.WAITING_APPROVAL)
        gate = self.inp.approval
        assert gate is not None
        self.gate.opened(GATE)
        try:
            await workflow.wait_condition(
                lambda: GATE in self.gate.outcome or self.halt is not None, timeout=gate.expires
            )
        except TimeoutError:
            self._stop(Outcome.CANCELLED, f"no approval within {gate.expires}")
        finally:
            self.gate.closed(GATE)

    async def _inject(self) -> None:
        """Inject the fault (verified in effect) and start probing."""
        self._phase(Phase.INJECTING)
        frm, to = self._regions()
        try:
            prepared = await self._step("step.prepare", self.inp.fault, frm, to)
        except ActivityError as exc:
            raise _Failed(f"fault preflight failed: {_message(exc)}") from None
        self.p.fault.snapshot = prepared.snapshot
        self.p.fault.state = "injecting"  # from here on, clean-up removes it
        self.probing = True
        self._probe_task = asyncio.create_task(self._probe_loop())
        try:
            out = await self._step("step.apply", self.inp.fault, frm, to, prepared.snapshot)
        except ActivityError as exc:
            raise _Failed(f"fault injection failed: {_message(exc)}") from None
        self.p.fault.state = "injected"
        self.p.fault.injected_at = workflow.now()
        self.p.fault.detail = out.detail
        self._check()

    async def _detect(self) -> None:
        self._phase(Phase.DETECTING)
        if self.inp.detect:
            found = await self._until_halt(
                self._detect_once(self.inp.detect_timeout.total_seconds())
            )
            injected = self.p.fault.injected_at
            if found.detected and injected is not None:
                self.p.mttd_s = found.elapsed_s
                self.p.detected_at = injected + timedelta(seconds=found.elapsed_s)
                self.p.detected_by = f"{found.by}: {found.detail}"
            else:
                self.p.detected_by = None
                self.p.reason = found.detail
        self._check()

    async def _switch(self) -> None:
        self._phase(Phase.SWITCHING)
        result = await self._child("switch", self.inp.switch, stoppable=True)
        if result.state != RunState.SUCCEEDED:
            self._check()
            raise _Failed(f"the switch ended {result.state.value}: {result.reason}")
        self._phase(Phase.VERIFYING)
        self.p.recovered_s["switch"] = await self._settle(result.ended_at or workflow.now())
        self._check()

    async def _recover(self) -> None:
        """Unplanned game days: the region the fault took down answers again; the work the
        unplanned switch owes it runs (fence it, count the writes lost, rejoin its databases)."""
        assert self.inp.recovery is not None
        self._phase(Phase.RECOVERING)
        result = await self._child("recovery", self.inp.recovery, stoppable=True)
        if result.state != RunState.SUCCEEDED:
            self._check()
            raise _Failed(f"the recovery ended {result.state.value}: {result.reason}")

    async def _failback(self) -> None:
        self._phase(Phase.FAILING_BACK)
        result = await self._child("failback", self.inp.failback, stoppable=True)
        if result.state != RunState.SUCCEEDED:
            self._check()
            raise _Failed(f"the failback ended {result.state.value}: {result.reason}")
        self._phase(Phase.VERIFYING_FAILBACK)
        self.p.recovered_s["failback"] = await self._settle(result.ended_at or workflow.now())

    async def _clean_up(self) -> None:
        """Whatever happened: the fault removed and verified; a completed switch failed back."""
        if self.p.fault.state in ("injecting", "injected"):
            await self._remove_fault()
        switched = self._succeeded(self.p.switch)
        if switched and self.p.failback is None and self.p.fault.state != "failed":
            unrecovered = self.inp.recovery is not None and not self._succeeded(self.p.recovery)
            if unrecovered and not await self._recover_in_clean_up():
                return
            self.p.reason += " Failing back (the switch had completed)."
            self._phase(Phase.FAILING_BACK)
            result = await self._child("failback", self.inp.failback, stoppable=False)
            if result.state != RunState.SUCCEEDED:
                self.p.reason += f" The failback ended {result.state.value}: {result.reason}"

    async def _recover_in_clean_up(self) -> bool:
        """An unplanned switch completed: the failback needs the recovery first. Run it if it
        has not run; whether it succeeded (if not, the reason says what to do by hand)."""
        assert self.inp.recovery is not None
        how = (f"run 'failover recover {self.inp.runbook} --region {self.inp.from_region}', "
               "then fail back")  # fmt: skip
        if self.p.recovery is not None:  # it ran, and did not succeed
            self.p.reason += f" The failed region is not recovered: {how}."
            return False
        self.p.reason += " Recovering the failed region (the switch had completed)."
        self._phase(Phase.RECOVERING)
        result = await self._child("recovery", self.inp.recovery, stoppable=False)
        if result.state != RunState.SUCCEEDED:
            self.p.reason += f" The recovery ended {result.state.value}: {result.reason}; {how}."
            return False
        return True

    async def _remove_fault(self) -> None:
        if self.p.fault.state not in ("injecting", "injected"):
            return
        self._phase(Phase.REMOVING_FAULT)
        frm, to = self._regions()
        try:
            out = await self._step(
                "step.undo",
                self.inp.fault,
                frm,
                to,
                self.p.fault.snapshot or {},
                attempts=self.inp.fault.retry.attempts,
                bounded=True,
            )
        except ActivityError as exc:
            self.p.fault.state = "failed"
            self.p.fault.detail = f"COULD NOT REMOVE THE FAULT: {_message(exc)}"
            self.p.reason = (self.p.reason + " " + self.p.fault.detail).strip()
            return
        self.p.fault.state = "removed"
        self.p.fault.removed_at = workflow.now()
        self.p.fault.detail = out.detail

    # ------------------------------------------------------------------------ children
    async def _child(self, kind: str, inp: SwitchInput, stoppable: bool) -> RunProgress:
        """Run one switch as a child; tell it to stop (it rolls back) when the game day halts."""
        wid = switch_workflow_id(inp.runbook)
        child_input, covered, left = self._cover(inp)
        info = workflow.info()
        attributes: list[SearchAttributePair[Any]] = [
            SearchAttributePair(sa.RUNBOOK, inp.runbook),
            SearchAttributePair(sa.FROM_REGION, inp.from_region),
            SearchAttributePair(sa.TO_REGION, inp.to_region),
            SearchAttributePair(sa.MODE, inp.mode),
            SearchAttributePair(sa.STATE, RunState.RUNNING.value),
            SearchAttributePair(sa.REQUESTER, inp.requester),
            SearchAttributePair(sa.GAMEDAY, self.inp.name),
        ]
        if workflow.patched("child-kind"):  # (children of earlier game days have no kind)
            attributes.append(SearchAttributePair(sa.KIND, inp.kind))
        try:
            handle = await workflow.start_child_workflow(
                "RegionSwitch",
                child_input,
                id=wid,
                result_type=RunProgress,
                parent_close_policy=ParentClosePolicy.REQUEST_CANCEL,
                static_summary=f"game day {self.inp.name}: {kind} "
                f"{inp.from_region} -> {inp.to_region}",
                search_attributes=TypedSearchAttributes(attributes),
                memo={"gameday": f"{info.workflow_id}/{info.run_id}"},
            )
        except Exception as exc:
            raise _Failed(f"could not start the {kind} ({wid}): {exc}") from None
        record = ChildRun(workflow_id=wid, run_id=handle.first_execution_run_id,
                          preapproved=covered, gates_left=left)  # fmt: skip
        setattr(self.p, kind, record)
        if left:
            gates = ", ".join(left)
            self.p.reason = (
                f"{self.p.reason} The {kind} left {gates} to people (an irreversible step "
                "depends on it, or it needs more approvers than approved the game day): "
                f"failover approve {wid} --gate {left[0]}."
            ).strip()
            self._details()
        self._publish()

        async def result() -> RunProgress:
            out: RunProgress = await handle
            return out

        waiting = asyncio.create_task(result())
        told = False

        def stop_it() -> bool:
            return stoppable and not told and self.halt is not None

        def stuck() -> bool:  # the switch waits for its operator: the fault must not wait
            return self.switch_stuck and self.p.fault.state in ("injecting", "injected")

        while not waiting.done():
            await workflow.wait_condition(lambda: waiting.done() or stop_it() or stuck())
            if waiting.done():
                break
            if stop_it():
                told = True
                await handle.signal(
                    "stop", Abort(by=f"gameday:{self.inp.name}", reason=self.p.reason)
                )
                # Stop injecting at once: the fault goes while the switch rolls back, not after
                # (histories from before this did it after the switch ended: they replay so).
                if workflow.patched("remove-fault-on-stop"):
                    await self._remove_fault()
                    self._phase(_PHASES[kind])
                elif not stuck():
                    break
            elif stuck():
                self.p.reason = (
                    f"{self.p.reason} The {kind} needs its operator (an undo keeps failing: "
                    f"failover resolve {wid}); the fault was removed meanwhile."
                ).strip()
                await self._remove_fault()
                self._phase(_PHASES[kind])
        try:
            record.progress = await waiting
        except ChildWorkflowError as exc:
            raise _Failed(f"the {kind} failed: {exc.cause or exc}") from None
        self._publish()
        return record.progress

    def _cover(self, inp: SwitchInput) -> tuple[SwitchInput, list[str], list[str]]:
        """The switch with the gates the game day covers pre-approved; the gates covered and
        those left to people."""
        requested = f"game day {self.inp.name} (requested by {self.inp.requester})"
        gates = [s.id for s in inp.steps if s.gate is not None]
        if not self._gate_policy:  # recorded before: every gate, by the approver or requester
            return preapprove(inp, self.p.approved_by or requested), gates, []
        if self.inp.approval is not None:
            return cover_by_approval(inp, self.gate.votes.get(GATE, []))
        return cover_unattended(inp, f"{requested}, unattended")

    @staticmethod
    def _succeeded(child: ChildRun | None) -> bool:
        return bool(child and child.progress and child.progress.state == RunState.SUCCEEDED)

    # ---------------------------------------------------------------------- activities
    async def _step(
        self,
        name: str,
        step: PlannedStep,
        frm: str,
        to: str,
        snapshot: dict[str, Any] | None = None,
        attempts: int | None = None,
        bounded: bool = False,
    ) -> StepOutcome:
        info = workflow.info()
        return await workflow.execute_activity(
            name,
            StepCall(
                run_id=f"{info.workflow_id}/{info.run_id}",
                step=step,
                from_region=frm,
                to_region=to,
                mode="gameday",
                snapshot=snapshot,
            ),
            result_type=StepOutcome,
            summary=f"{step.id} ({name.split('.', 1)[1]})",
            **step_options(step, self.inp.heartbeat_timeout, attempts, bounded),
        )

    async def _detect_once(self, timeout_s: float) -> Detection:
        info = workflow.info()
        frm, to = self._regions()
        return await workflow.execute_activity(
            "gameday.detect",
            DetectCall(
                run_id=f"{info.workflow_id}/{info.run_id}",
                checks=self.inp.detect,
                from_region=frm,
                to_region=to,
                timeout_s=timeout_s,
            ),
            result_type=Detection,
            start_to_close_timeout=timedelta(seconds=timeout_s) + timedelta(minutes=1),
            heartbeat_timeout=self.inp.heartbeat_timeout,
            retry_policy=RetryPolicy(maximum_attempts=3),
            summary="detect" if timeout_s else "detectors baseline",
        )

    async def _probe(self) -> ProbeSample:
        window = self.inp.probe_interval.total_seconds()
        try:
            sample: ProbeSample = await workflow.execute_activity(
                "gameday.probe",
                ProbeCall(
                    slo=self.inp.slo,
                    regions=sorted({r.region for r in self.inp.stop_conditions if r.region}),
                    requests=self.inp.probe_requests,
                    window_s=window,
                    alarms=[
                        AlarmRef(name=r.alarm, region=r.alarm_region)
                        for r in self.inp.stop_conditions
                        if r.alarm and r.alarm_region
                    ],
                ),
                result_type=ProbeSample,
                start_to_close_timeout=timedelta(seconds=window + 60),
                heartbeat_timeout=self.inp.heartbeat_timeout,
                retry_policy=RetryPolicy(maximum_attempts=1),
                summary="probe",
            )
        except ActivityError as exc:
            sample = ProbeSample(window_s=window, service=ProbeStats(), error=_message(exc))
            await workflow.sleep(self.inp.probe_interval)  # no tight loop on a broken probe
        sample.at = workflow.now()
        return sample

    async def _probe_loop(self) -> None:
        while self.probing:
            sample = await self._probe()
            self.p.samples.append(sample)
            self._evaluate(sample)
            self._details()

    # ------------------------------------------------------------------ SLO and stops
    def _slo_miss(self, stats: ProbeStats) -> str:
        return slo_miss(self.inp.slo, stats)

    def _evaluate(self, sample: ProbeSample) -> None:
        """Stop conditions over the probe windows (a condition must hold for its duration)."""
        trip = self.stops.evaluate(sample)
        if trip is not None and self.halt is None:
            self.p.stop = trip
            self._stop(
                Outcome.STOPPED,
                f"stop condition {trip.condition!r} tripped ({trip.rule}): {trip.detail}",
            )

    async def _settle(self, since: datetime) -> float | None:
        """Wait until the SLO has held for `settle` after `since`; seconds to recover, or None
        if it did not within `settle_timeout` (an objective missed, not a reason to stop)."""

        clip = workflow.patched("settle-from-switch-end")  # older histories counted earlier

        def recovered() -> datetime | None:
            return recovered_at(self.p.samples, self.inp.slo, since, self.inp.settle, clip)

        try:
            await workflow.wait_condition(
                lambda: recovered() is not None or self.halt is not None,
                timeout=self.inp.settle_timeout,
            )
        except TimeoutError:
            return None
        at = recovered()
        return max(0.0, round((at - since).total_seconds(), 3)) if at else None

    # -------------------------------------------------------------------- approvals
    @workflow.update(
        description='Approve the game day\'s switch. Payload: {"approver": "NAME", "comment": ""}'
    )
    def approve(self, decision: Decision) -> str:
        """Approve: the fault is injected and the switch runs (its gates pre-approved by you)."""
        said = self.gate.approve(GATE, decision, workflow.now())
        self.p.approved_by = ", ".join(self.gate.votes.get(GATE, [])) or None
        return f"approved by {decision.approver}" if GATE in self.gate.outcome else said

    @approve.validator
    def _validate_approve(self, decision: Decision) -> None:
        self._check_decider(decision, approving=True)

    @workflow.update(
        description='Reject the game day. Payload: {"approver": "NAME", "comment": "why"}'
    )
    def reject(self, decision: Decision) -> str:
        """Reject: nothing is injected; the game day ends CANCELLED."""
        self.gate.reject(GATE, decision, workflow.now())
        self._stop(Outcome.CANCELLED, f"rejected by {decision.approver}: {decision.comment}")
        return f"rejected by {decision.approver}"

    @reject.validator
    def _validate_reject(self, decision: Decision) -> None:
        self._check_decider(decision, approving=False)

    def _check_decider(self, decision: Decision, approving: bool) -> None:
        if GATE not in self.gate.open or GATE in self.gate.outcome:
            raise ValueError("the game day is not waiting for an approval")
        self.gate.check(decision.model_copy(update={"gate": GATE}), approving)

    @workflow.signal(name="stop")
    def stop(self, req: Abort) -> None:
        """Stop the game day: remove the fault, roll back the switch, report (like cancel)."""
        self._stop(Outcome.CANCELLED, f"stopped by {req.by}: {req.reason}")

    @workflow.signal(name="switch_needs_operator")
    def switch_needs_operator(self, step: str) -> None:
        """From a child switch whose undo of `step` keeps failing (ROLLBACK_FAILED): the fault
        is removed now instead of waiting for the operator's decision."""
        self.switch_stuck = True

    @workflow.query
    def progress(self) -> GameDayProgress:
        """Phase, fault, detection, both switches, probe samples, stop condition tripped."""
        return self.p

    # ------------------------------------------------------------------------ helpers
    def _stop(self, outcome: Outcome, reason: str) -> None:
        if self.halt is None:
            self.halt = outcome
            earlier = self.p.reason  # notes made on the way (detection, a stuck switch) stay
            self.p.reason = f"{reason}. {earlier}" if earlier else reason
            self._publish()

    async def _until_halt(self, coro: Any) -> Any:
        """Await coro unless the game day halts first (then cancel it and raise _Halt)."""
        task = asyncio.create_task(coro)
        await workflow.wait_condition(lambda: task.done() or self.halt is not None)
        if not task.done():
            task.cancel()
            raise _Halt
        return task.result()

    def _check(self) -> None:
        if self.halt is not None:
            raise _Halt

    def _regions(self) -> tuple[str, str]:
        return self.inp.from_region, self.inp.to_region

    def _phase(self, phase: Phase) -> None:
        self.p.phase = phase
        self._details()

    def _details(self) -> None:
        """The Temporal UI's current details: where the game day is and what users see."""
        workflow.set_current_details(ui.gameday_details(self.p))

    def _publish(self) -> None:
        state = self.halt or Outcome.RUNNING
        if self.p.ended_at is not None:
            state = self.p.outcome
        if state != self._published:
            workflow.upsert_search_attributes([sa.STATE.value_set(state.value)])
            self._published = state


def _message(exc: BaseException) -> str:
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, ApplicationError) and cause.__cause__:
        cause = cause.__cause__
    return str(cause if cause is not None else exc)
