"""EvacuationWorkflow: every service of a region moved, each by its own RegionSwitch (a child
workflow, so each keeps its own history, rollback and Temporal UI page).

Pure orchestration, like RegionSwitchWorkflow: no I/O, no clocks but `workflow.now()`. The plan
arrives resolved (each service's switch and failback are plain `SwitchInput`s).

Forward: a service starts when its dependencies have switched, every service of a lower tier has
ended, and its gate (the evacuation's, or its tier's) is approved; at most `max_parallel` at once,
lower tiers first, then in plan order. Approving a gate pre-approves the services' own gates where
those allow it (`rules.preapprove`). Child ids are `<evacuation id>.<service>`.

When a service's switch fails (it has rolled itself back), the failure policy decides:
`continue` (its dependents are skipped, the others go on), `stop` (no new service starts; the
running ones finish) or `rollback_all` (the running ones are told to stop and roll back, then every
service that had switched is switched back, dependents first: `<id>.<service>.failback`). An
`abort` Update, a rejected or expired gate, or cancelling the workflow roll back everything the
same way. Rollback is shielded from cancellation.

Notifications (patched "evacuation-notify"): `evacuation_started`, `gate_open` for its gates and
`evacuation_result` (the services by outcome; sent before its report, which lists the
deliveries). Its services' switches tell only what needs people (see RegionSwitchWorkflow).

The `progress` query gives the service table; the Temporal UI's current details show it, rendered
at most once per pass of the event loop (not per event).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ChildWorkflowError
from temporalio.workflow import ChildWorkflowHandle, ParentClosePolicy

from workflows.notify import Notifier, run_ref
from workflows.report import write_report
from workflows.shield import run_shielded

with workflow.unsafe.imports_passed_through():
    from orchestrator import lease_shards, ui
    from orchestrator import search_attributes as sa
    from orchestrator.approvals import GateBook
    from orchestrator.evacuation.rules import (
        gate_for,
        outcome,
        preapprove,
        predecessors,
        start_order,
    )
    from orchestrator.evacuation.runs import (
        EvacState,
        EvacuationInput,
        EvacuationProgress,
        GateWait,
        ServiceRecord,
        ServiceState,
        child_workflow_id,
    )
    from orchestrator.guard.models import preapprove_reversible
    from orchestrator.notifications import Delivery, Notice, NotifyEvent, Severity
    from orchestrator.runbook.graph import undo_plan
    from orchestrator.runs import Abort, Decision, RunProgress, RunState, SwitchInput

#: Between scheduling a gate and opening it: the gate opens in a workflow task that issues no
#: command, so an approval delivered with it replays in either order (as RegionSwitch's gates).
SETTLE = timedelta(milliseconds=100)
_OUTCOMES = {
    RunState.SUCCEEDED: ServiceState.SUCCEEDED,
    RunState.ROLLED_BACK: ServiceState.ROLLED_BACK,
    RunState.ROLLBACK_FAILED: ServiceState.ROLLBACK_FAILED,
}


@workflow.defn(name="Evacuation")
class EvacuationWorkflow:
    """Leave a region: every service's switch, in order, under one failure policy."""

    @workflow.init
    def __init__(self, inp: EvacuationInput) -> None:
        self.inp = inp
        self.plans = {s.name: s for s in inp.services}
        self.switches: dict[str, SwitchInput] = {s.name: s.switch for s in inp.services}
        self.records = {
            s.name: ServiceRecord(
                name=s.name,
                runbook=s.runbook,
                tier=s.tier,
                depends_on=list(s.depends_on),
                from_region=s.switch.from_region,
                to_region=s.switch.to_region,
                target_choice=s.switch.target_choice,
            )
            for s in inp.services
        }
        # Tier, then plan order; the longest expected chain first where the input carries
        # estimates (inputs from before estimates carry none: the same order, same commands).
        self.order = start_order(inp.services)
        self.preds = predecessors(inp.services)
        self.started_at = workflow.now()
        self.ended_at: Any = None
        self.final: EvacState | None = None
        self.reason = ""
        self.halted = False  # no new service starts
        self.rollback = False  # what had switched is switched back
        self.rolling_back = False  # the failbacks run
        self.abort_request: Abort | None = None
        gates = {}
        if inp.approval is not None and inp.mode != "dry-run":
            for n in sorted({s.tier for s in inp.services}):
                gates[gate_for(inp.approval.scope, n)] = inp.approval.gate
        self.gates = GateBook(inp.requester, [], gates, what="evacuation")
        self.waits: dict[str, GateWait] = {}
        self.handles: dict[str, ChildWorkflowHandle[Any, RunProgress]] = {}
        self.told: set[str] = set()  # children told to stop
        self.last_ended = ""
        self.left: set[str] = set()  # left on the target: a dependent could not switch back
        self.report_files: list[str] = []
        self._done = 0
        self._published: EvacState | None = None
        self._details_stale = False
        self.leases_listed = False  # (only an evacuation with lease shards waits for it)
        self.notifications: list[Delivery] = []
        self._notifier = Notifier(False, inp.notify, self.notifications)

    # ------------------------------------------------------------------------------- run
    @workflow.run
    async def run(self, inp: EvacuationInput) -> EvacuationProgress:
        """Run the evacuation; returns its final progress (every service's switch result)."""
        # Its own notices: that it started and how it ended (its services tell only what needs
        # people: see RegionSwitchWorkflow). Histories recorded before sent none.
        self._notifier.enabled = inp.mode != "dry-run" and workflow.patched("evacuation-notify")
        self._publish()
        details = asyncio.create_task(self._render_details())
        await run_shielded(self._main(), self._cancelled)
        details.cancel()
        self._notify_result()
        # (its leases and shards are held until it closes: a run started next waits
        # `leases.FINISHING_WAIT_S` for a run that is only finishing, 20 s)
        await self._notifier.drain(NOTIFY_DRAIN)
        self._render()
        self.report_files = await write_report("report.evacuation", self.progress())
        return self.progress()

    async def _hold_leases(self) -> None:
        """Start the lease shards (the leases past the evacuation's own search attribute), all at
        once, before any service. They never run and end when this workflow closes, however it
        closes. Then wait for the starter to see them listed (under the lease lock) before
        changing anything. A shard that cannot start, or no word from the starter, halts the
        evacuation before anything changed. Inputs without shards: no command, no wait."""
        if not self.inp.lease_shards:
            return
        info = workflow.info()
        started = await asyncio.gather(
            *(
                workflow.start_child_workflow(
                    lease_shards.WORKFLOW_TYPE,
                    id=lease_shards.shard_id(info.workflow_id, info.run_id, number),
                    task_queue=lease_shards.QUEUE,
                    parent_close_policy=ParentClosePolicy.TERMINATE,
                    search_attributes=TypedSearchAttributes(
                        [
                            SearchAttributePair(sa.RESOURCES, keys),
                            SearchAttributePair(sa.REQUESTER, self.inp.requester),
                        ]
                    ),
                    static_summary=f"evacuation {self.inp.plan}: {len(keys)} of its leases",
                    execution_timeout=timedelta(days=30),
                )
                for number, keys in enumerate(self.inp.lease_shards, 1)
            ),
            return_exceptions=True,
        )
        failed = [r for r in started if isinstance(r, BaseException)]
        if failed:  # nothing has started yet
            self._halt(f"its leases could not be held: {failed[0]}", rollback=False)
            return
        try:  # its starter has seen the shards listed: every other start now sees its leases
            await workflow.wait_condition(  # (or aborted, or cancelled, meanwhile)
                lambda: self.leases_listed or self.halted,
                timeout=timedelta(seconds=lease_shards.CONFIRM_WAIT_S),
            )
        except TimeoutError:
            self._halt(
                f"its lease shards were not confirmed listed within "
                f"{lease_shards.CONFIRM_WAIT_S} s (its starter gave up or died)",
                rollback=False,
            )

    @workflow.signal(name=lease_shards.LISTED_SIGNAL)
    def confirm_leases(self) -> None:
        """Its starter saw its lease shards listed: the evacuation may go on."""
        self.leases_listed = True

    def _cancelled(self) -> None:
        """Cancelling the workflow means "stop and roll back", as an abort."""
        self._halt("the evacuation was cancelled", rollback=True)

    async def _main(self) -> None:
        await self._hold_leases()
        if not self.halted:  # (halted there: it changed nothing, and says so when it ends)
            self._notify_started()
        await self._forward()
        if self.rollback:
            self.rolling_back = True
            self._publish()
            await self._fail_back()
        for rec in self.records.values():
            if rec.state == ServiceState.PENDING:
                rec.state = ServiceState.SKIPPED
                rec.reason = rec.reason or f"not started: {self.reason}"
        self.final = outcome(list(self.records.values()))
        self.ended_at = workflow.now()
        self._publish()

    # --------------------------------------------------------------------------- forward
    async def _forward(self) -> None:
        running: dict[str, asyncio.Task[None]] = {}
        gates: dict[str, asyncio.Task[None]] = {}
        while True:
            self._schedule(running, gates)
            if not running and not any(not t.done() for t in gates.values()):
                break
            self._publish()
            seen = self._done
            await workflow.wait_condition(lambda: self._done != seen or self._must_tell())  # noqa: B023
            if self._must_tell():
                await self._tell_stop()
            for name, task in list(running.items()):
                if task.done():
                    del running[name]
                    task.result()
                    self._settle(name)

    def _schedule(
        self, running: dict[str, asyncio.Task[None]], gates: dict[str, asyncio.Task[None]]
    ) -> None:
        """Skip what can no longer run, open the gates now due, start what may start."""
        changed = True
        while changed:
            changed = False
            for name in self.order:
                rec = self.records[name]
                if rec.state != ServiceState.PENDING:
                    continue
                failed = [
                    d
                    for d in rec.depends_on
                    if self.records[d].state.ended
                    and self.records[d].state != ServiceState.SUCCEEDED
                ]
                if failed:
                    dep = self.records[failed[0]]
                    rec.state, rec.ended_at = ServiceState.SKIPPED, workflow.now()
                    rec.reason = f"not started: it depends on {dep.name}, which {dep.state.value}"
                    changed = True
        if self.halted:
            return
        for name in self.order:
            rec = self.records[name]
            if rec.state != ServiceState.PENDING:
                continue
            if not all(self.records[p].state.ended for p in self.preds[name]):
                continue
            gate = self._gate_of(name)
            if gate is not None and self.gates.outcome.get(gate) != "approved":
                if gate not in gates:
                    gates[gate] = self._task(self._gate(gate, name))
                continue
            if rec.ready_at is None:
                rec.ready_at, rec.after = workflow.now(), self._blocker(name)
            if len(running) >= self.inp.max_parallel:
                continue
            if rec.ready_at != workflow.now() and self.last_ended:
                rec.after = f"slot:{self.last_ended}"  # it waited for a place
            running[name] = self._task(self._run_service(name))

    def _gate_of(self, name: str) -> str | None:
        if self.inp.approval is None or not self.gates.gates:
            return None
        return gate_for(self.inp.approval.scope, self.records[name].tier)

    def _blocker(self, name: str) -> str:
        """What a service that is ready now waited for last: a service, or its gate."""
        found: list[tuple[Any, str]] = []
        for p in self.preds[name]:
            ended = self.records[p].ended_at
            if ended is not None:
                found.append((ended, p))
        gate = self._gate_of(name)
        wait = self.waits.get(gate) if gate is not None else None
        if wait is not None and wait.decided_at is not None:
            found.append((wait.decided_at, f"gate:{gate}"))
        return max(found, key=lambda f: f[0])[1] if found else ""

    def _settle(self, name: str) -> None:
        """A service's switch ended: apply the failure policy."""
        rec = self.records[name]
        if rec.state == ServiceState.SUCCEEDED or self.inp.failure_policy == "continue":
            return
        why = f"service {name} {rec.state.value}" + (f": {rec.reason}" if rec.reason else "")
        self._halt(why, rollback=self.inp.failure_policy == "rollback_all")

    def _halt(self, reason: str, rollback: bool) -> None:
        if not self.halted:
            self.halted, self.reason = True, reason
        if rollback:
            self.rollback = True
        self._mark()

    def _must_tell(self) -> bool:
        return self.rollback and any(n not in self.told for n in self.handles)

    async def _tell_stop(self) -> None:
        """Rolling back: every running switch is told to stop (it rolls itself back)."""
        for name, handle in list(self.handles.items()):
            if name in self.told:
                continue
            self.told.add(name)
            try:
                await handle.signal(
                    "stop", Abort(by=f"evacuation:{self.inp.plan}", reason=self.reason)
                )
            except Exception as exc:  # it ended meanwhile: nothing to stop
                workflow.logger.info("could not tell %s to stop: %s", name, exc)

    async def _run_service(self, name: str) -> None:
        rec, inp = self.records[name], self.switches[name]
        wid = child_workflow_id(workflow.info().workflow_id, name)
        rec.state, rec.started_at, rec.workflow_id = ServiceState.RUNNING, workflow.now(), wid
        self._mark()
        result = await self._child(
            wid,
            inp,
            self.plans[name].switch_leases,
            f"{name}: {inp.from_region} -> {inp.to_region}",
            rec,
            name,
        )
        if isinstance(result, str):
            rec.state, rec.reason = ServiceState.FAILED, result
        else:
            rec.result = result.summary()  # (its details are in its own history)
            rec.state = _OUTCOMES.get(result.state, ServiceState.FAILED)
            rec.reason = result.reason
        rec.ended_at = workflow.now()
        self.last_ended = name
        self._mark()

    async def _child(
        self,
        wid: str,
        inp: SwitchInput,
        leases: list[str],
        what: str,
        rec: ServiceRecord,
        name: str,
    ) -> RunProgress | str:
        """Run one switch as a child; its result, or why it has none."""
        extra: list[SearchAttributePair[Any]] = [SearchAttributePair(sa.EVACUATION, self.inp.plan)]
        if self._notifier.enabled:  # it tells its own start and end: the switch, what needs people
            inp = inp.model_copy(update={"quiet": True})
        if leases:
            extra.append(SearchAttributePair(sa.RESOURCES, leases))
        try:
            handle = await workflow.start_child_workflow(
                "RegionSwitch",
                inp,
                id=wid,
                result_type=RunProgress,
                parent_close_policy=ParentClosePolicy.REQUEST_CANCEL,
                static_summary=f"evacuation {self.inp.plan}: {what}",
                search_attributes=sa.of_switch(inp, *extra),
                execution_timeout=timedelta(days=30),
            )
        except Exception as exc:  # e.g. a switch with that id still runs
            return f"its switch {wid} could not start: {exc}"
        failback = wid.endswith(".failback")
        if failback:
            rec.failback_run_id = handle.first_execution_run_id
        else:
            rec.run_id = handle.first_execution_run_id
            self.handles[name] = handle
        self._mark()
        try:
            result: RunProgress = await handle
        except ChildWorkflowError as exc:
            return f"its switch {wid} ended without a result: {exc.cause or exc}"
        finally:
            if not failback:
                del self.handles[name]
        return result

    # ----------------------------------------------------------------------------- gates
    async def _gate(self, gate: str, first: str) -> None:
        """Open an evacuation gate and wait for its decision; approved: the services it covers
        get their own gates pre-approved where those allow it; otherwise everything rolls back."""
        assert self.inp.approval is not None
        lower = [
            r
            for r in self.records.values()
            if r.tier < self.records[first].tier and r.ended_at is not None
        ]
        after = max(lower, key=lambda r: r.ended_at).name if lower else ""  # type: ignore[arg-type,return-value]
        wait = self.waits[gate] = GateWait(after=after)
        self._notify_gate(gate)
        await workflow.sleep(SETTLE)  # no command in the activation that opens the gate
        if self.halted:
            return
        self.gates.opened(gate)
        wait.opened_at = workflow.now()
        self._mark()
        try:
            await workflow.wait_condition(
                lambda: gate in self.gates.outcome or self.halted,
                timeout=self.inp.approval.gate.expires,
            )
        except TimeoutError:
            self.gates.expire(gate, workflow.now())
        finally:
            self.gates.closed(gate)
        wait.decided_at = workflow.now()
        wait.outcome = self.gates.outcome.get(gate, "cancelled")
        if wait.outcome == "approved":
            wait.approved_by = list(self.gates.votes.get(gate, []))
            for name in self.order:
                if self._gate_of(name) == gate:
                    inp, done, left = preapprove(self.switches[name], wait.approved_by)
                    self.switches[name] = inp
                    self.records[name].preapproved, self.records[name].gates_left = done, left
        elif wait.outcome == "rejected":
            last = self.gates.rejection(gate)
            self._halt(f"gate {gate} rejected by {last.approver}: {last.comment}", rollback=True)
        elif wait.outcome == "expired":
            self._halt(
                f"gate {gate}: no decision within {self.inp.approval.gate.expires}", rollback=True
            )
        self._mark()

    async def _accepted_gate(self, decision: Decision) -> str | None:
        """The gate an accepted decision is for (validators do not run on replay: wait for the
        gate to open, never raise in the handler)."""
        await workflow.wait_condition(
            lambda: _ok(self.gates.gate_for, decision) is not None or self.halted
        )
        return _ok(self.gates.gate_for, decision)

    def _check_decider(self, decision: Decision, approving: bool) -> str:
        if self.halted:
            raise ValueError("the evacuation is no longer waiting for a decision")
        return self.gates.check(decision, approving)

    @workflow.update(
        description='Approve the open gate of the evacuation. Payload: {"approver": "NAME", '
        '"comment": "why", "gate": "GATE (optional if one is open)"}'
    )
    async def approve(self, decision: Decision) -> str:
        """Approve an open gate: the services it covers start, their own gates pre-approved
        where those allow it."""
        gate = await self._accepted_gate(decision)
        if gate is None:
            return "the gate is no longer open"
        return self.gates.approve(gate, decision, workflow.now())

    @approve.validator
    def _validate_approve(self, decision: Decision) -> None:
        self._check_decider(decision, approving=True)

    @workflow.update(
        description='Reject the open gate: the evacuation rolls back. Payload: {"approver": '
        '"NAME", "comment": "why"}'
    )
    async def reject(self, decision: Decision) -> str:
        """Reject an open gate: every service switched is switched back."""
        gate = await self._accepted_gate(decision)
        if gate is None:
            return "the gate is no longer open"
        return self.gates.reject(gate, decision, workflow.now())

    @reject.validator
    def _validate_reject(self, decision: Decision) -> None:
        self._check_decider(decision, approving=False)

    @workflow.update(
        description="Abort the evacuation: running switches roll back, switched services are "
        'switched back. Payload: {"by": "NAME", "reason": "why"}'
    )
    def abort(self, req: Abort) -> str:
        """Stop starting services, stop the running ones, switch back the switched ones."""
        self.abort_request = req
        self._halt(f"aborted by {req.by}: {req.reason}", rollback=True)
        return "aborting: running switches roll back, switched services are switched back"

    @abort.validator
    def _validate_abort(self, req: Abort) -> None:
        if self.final is not None:
            raise ValueError(f"the evacuation has already ended ({self.final})")
        if self.rollback:
            raise ValueError("the evacuation is already rolling back")
        if not req.by.strip() or not req.reason.strip():
            raise ValueError("by and reason are required")

    # -------------------------------------------------------------------------- rollback
    async def _fail_back(self) -> None:
        """Switch back every service that had switched, dependents first (a service waits for
        the failbacks of the services that waited for it); a service whose dependent could not
        be switched back stays on the target."""
        switched = sorted(
            (r for r in self.records.values() if r.state == ServiceState.SUCCEEDED),
            key=lambda r: r.ended_at or self.started_at,
        )
        for rec in switched:
            if self.plans[rec.name].failback is None:
                rec.reason = (
                    "not switched back: an unplanned switch cannot be undone while the "
                    "region it left is down (recover it, then switch back)"
                )
        todo, waits_for = undo_plan(
            self.preds, [r.name for r in switched if self.plans[r.name].failback is not None]
        )
        blockers = {n: set(w) for n, w in waits_for.items()}
        running: dict[str, asyncio.Task[None]] = {}
        pending = list(todo)
        while pending or running:
            while self._start_failbacks(pending, running, blockers):
                pass
            if not running:
                break
            self._publish()
            seen = self._done
            await workflow.wait_condition(lambda: self._done != seen)  # noqa: B023
            for name, task in list(running.items()):
                if task.done():
                    del running[name]
                    task.result()

    def _start_failbacks(
        self,
        pending: list[str],
        running: dict[str, asyncio.Task[None]],
        blockers: dict[str, set[str]],
    ) -> bool:
        """Start the failbacks no dependent's failback holds back; whether any was decided."""
        decided = False
        for name in list(pending):
            if len(running) >= self.inp.max_parallel:
                break
            waits = blockers[name]
            if any(b in pending or b in running for b in waits):
                continue  # a service that depends on it is not back yet
            pending.remove(name)
            decided = True
            stuck = [
                b
                for b in waits
                if self.records[b].state == ServiceState.FAILBACK_FAILED or b in self.left
            ]
            if stuck:
                self.left.add(name)
                self.records[name].reason = (
                    f"not switched back: {stuck[0]}, which depends on "
                    "it, could not be switched back"
                )
                continue
            running[name] = self._task(self._run_failback(name))
        return decided

    async def _run_failback(self, name: str) -> None:
        rec = self.records[name]
        failback = self.plans[name].failback
        assert failback is not None
        by = f"evacuation {self.inp.plan} rollback ({self.reason})"
        inp, _ = preapprove_reversible(failback, by)
        wid = child_workflow_id(workflow.info().workflow_id, name, failback=True)
        rec.state, rec.failback_workflow_id = ServiceState.FAILING_BACK, wid
        rec.failback_started_at = workflow.now()
        self._mark()
        result = await self._child(
            wid,
            inp,
            self.plans[name].failback_leases,
            f"{name}: switch back {inp.from_region} -> {inp.to_region}",
            rec,
            name,
        )
        if isinstance(result, str):
            rec.state, rec.reason = ServiceState.FAILBACK_FAILED, result
        else:
            rec.failback_result = result.summary()
            ok = result.state == RunState.SUCCEEDED
            rec.state = ServiceState.FAILED_BACK if ok else ServiceState.FAILBACK_FAILED
            if not ok:
                rec.reason = f"its switch back ended {result.state.value}: {result.reason}"
        rec.failback_ended_at = workflow.now()
        self._mark()

    # ------------------------------------------------------------------------- helpers
    def _task(self, coro: Any) -> asyncio.Task[Any]:
        """A child task that wakes the scheduling loop when it ends."""
        task: asyncio.Task[Any] = asyncio.create_task(coro)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, _: asyncio.Task[Any]) -> None:
        self._done += 1

    # --------------------------------------------------------------------- notifications
    def _notice(self, event: NotifyEvent, summary: str, detail: str, **extra: Any) -> Notice:
        wid, rid, dedup = run_ref()
        return Notice(event=event, runbook=self.inp.plan, summary=summary, detail=detail,
                      dedup_key=dedup, workflow_id=wid, run_id=rid, **extra)  # fmt: skip

    def _where(self) -> str:
        to = "auto" if self.inp.to_auto else self.inp.to_region or "each runbook's other region"
        return f"{self.inp.from_region} -> {to}"

    def _notify_started(self) -> None:
        """`evacuation_started`: what moves, where, by whom, under which rules."""
        wid, _, _ = run_ref()
        inp = self.inp
        self._notifier.send(
            self._notice(
                "evacuation_started",
                f"evacuation {inp.plan}: {len(inp.services)} services {self._where()} started "
                f"by {inp.requester}",
                f"{inp.mode}, {inp.kind}; at most {inp.max_parallel} at once; failure policy "
                f"{inp.failure_policy}",
                commands=[f"failover watch {wid}", f'failover abort {wid} --reason "..."'],
            )
        )

    def _notify_gate(self, gate: str) -> None:
        """`gate_open`: the evacuation waits for people (who may approve, the commands)."""
        assert self.inp.approval is not None
        spec, (wid, _, _) = self.inp.approval.gate, run_ref()
        waiting = [n for n in self.order if self._gate_of(n) == gate]
        who = ", ".join(spec.approvers) or "anyone but the requester"
        need = f"{spec.approvals} approval(s) from {who}; expires in {spec.expires}"
        self._notifier.send(
            self._notice(
                "gate_open",
                f"evacuation {self.inp.plan}: gate {gate} waits for approval ({len(waiting)} "
                f"services {self._where()}, requested by {self.inp.requester})",
                "; ".join(x for x in (spec.message, need) if x),
                severity="warning",
                commands=[
                    f"failover approve {wid} --gate {gate}",
                    f'failover reject {wid} --gate {gate} --reason "..."',
                ],
            )
        )

    def _notify_result(self) -> None:
        """`evacuation_result`: how it ended, the services by outcome, and the report command.
        A warning unless it succeeded; critical when a rollback failed (an operator is
        needed). Sent once it has ended: before its report, which lists the deliveries."""
        if self.final is None:
            return
        counts: dict[str, int] = {}
        for rec in self.records.values():
            counts[rec.state.value] = counts.get(rec.state.value, 0) + 1
        severity: Severity = "warning"
        if self.final == EvacState.SUCCEEDED:
            severity = "info"
        elif self.final == EvacState.ROLLBACK_FAILED:
            severity = "critical"
        took = (self.ended_at - self.started_at).total_seconds() if self.ended_at else 0.0
        parts = [", ".join(f"{n} {state}" for state, n in sorted(counts.items()))]
        parts.append(f"took {took:.1f}s")
        if self.reason:
            parts.append(self.reason)
        wid, _, _ = run_ref()
        self._notifier.send(
            self._notice(
                "evacuation_result",
                f"evacuation {self.inp.plan} {self._where()}: {self.final.value}",
                "; ".join(parts),
                severity=severity,
                resolve=self.final == EvacState.SUCCEEDED,
                commands=[f"failover report {wid}", f"failover status {wid}"],
            )
        )

    # -------------------------------------------------------------------------- progress
    def _state(self) -> EvacState:
        if self.final is not None:
            return self.final
        if self.rolling_back or (self.rollback and self.handles):
            return EvacState.ROLLING_BACK
        if self.gates.open:
            return EvacState.WAITING_APPROVAL
        return EvacState.RUNNING

    @workflow.query
    def progress(self) -> EvacuationProgress:
        """The service table: state, child runs, timings, gates, approvals."""
        return EvacuationProgress(
            plan=self.inp.plan,
            from_region=self.inp.from_region,
            to_region=self.inp.to_region,
            to_auto=self.inp.to_auto,
            mode=self.inp.mode,
            kind=self.inp.kind,
            requester=self.inp.requester,
            failure_policy=self.inp.failure_policy,
            max_parallel=self.inp.max_parallel,
            state=self._state(),
            started_at=self.started_at,
            ended_at=self.ended_at,
            reason=self.reason,
            services=list(self.records.values()),
            approvals=list(self.gates.records),
            open_gates=list(self.gates.waiting()),
            gates=dict(self.waits),
            rto=self.inp.rto,
            report_files=list(self.report_files),
            notifications=list(self.notifications),
        )

    def _publish(self) -> None:
        """The FailoverState search attribute (a person being waited for is not written: see
        RegionSwitchWorkflow) and the UI's current details."""
        state = self._state()
        if state == EvacState.WAITING_APPROVAL:
            state = EvacState.RUNNING
        if state != self._published:
            workflow.upsert_search_attributes([sa.STATE.value_set(state.value)])
            self._published = state
        self._mark()

    def _mark(self) -> None:
        self._details_stale = True  # rendered by _render_details, once the event loop is idle

    def _render(self) -> None:
        self._details_stale = False
        workflow.set_current_details(ui.evacuation_details(self.progress()))

    async def _render_details(self) -> None:
        """The UI's current details (the service table) are rendered once per pass of the
        workflow's event loop, when every task has run, not after each event."""
        while True:
            await workflow.wait_condition(lambda: self._details_stale)
            self._render()


#: The longest the evacuation waits for its last notices once it has ended (then its report).
NOTIFY_DRAIN = timedelta(seconds=15)


def _ok(check: Any, arg: Any) -> Any:
    """check(arg), or None if it refuses (raises ValueError)."""
    try:
        return check(arg)
    except ValueError:
        return None
