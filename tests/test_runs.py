"""`RunProgress.summary()`: what an evacuation keeps of each switch it ran."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from orchestrator import report
from orchestrator.notifications import Delivery
from orchestrator.runs import (
    ApprovalRecord,
    ErrorInfo,
    RunProgress,
    RunState,
    StepKind,
    StepRecord,
    StepState,
)

T0 = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)


def _step(sid: str, stype: str, start: float, end: float, **kw: object) -> StepRecord:
    return StepRecord(
        id=sid,
        type=stype,
        kind=StepKind.MUTATE if stype != "http_check" else StepKind.CHECK,
        description=f"{sid}: a description as long as a runbook's",
        state=StepState.SUCCEEDED,
        attempts=1,
        started_at=T0 + timedelta(seconds=start),
        ended_at=T0 + timedelta(seconds=end),
        detail="weights us-east-1=0 us-west-2=100, INSYNC after 31.2s",
        changes=[{"resource": f"route53:{sid}", "before": {"weight": 100}, "after": {"weight": 0}}],
        observed={"lag_seconds": 0.4, "status": "INSYNC"},
        **kw,  # type: ignore[arg-type]
    )


def _progress() -> RunProgress:
    return RunProgress(
        runbook="shop",
        from_region="us-east-1",
        to_region="us-west-2",
        mode="drill",
        requester="alice",
        state=RunState.SUCCEEDED,
        started_at=T0,
        ended_at=T0 + timedelta(seconds=90),
        steps=[
            _step("scale-up", "k8s_scale", 0, 20),
            _step("dns", "route53_weighted", 20, 60),
            _step("verify", "http_check", 60, 90, error=ErrorInfo(kind="Timeout", message="once")),
        ],
        approvals=[ApprovalRecord(gate="approve", approver="bob", decision="approve", at=T0)],
        notifications=[
            Delivery(channel="slack", event="switch_succeeded", ok=True, detail="200", at=T0)
        ],
    )


def test_a_summary_keeps_states_times_errors_and_approvals_and_drops_the_details() -> None:
    full = _progress()
    short = full.summary()
    assert [(s.id, s.type, s.state, s.started_at, s.ended_at, s.error) for s in short.steps] == [
        (s.id, s.type, s.state, s.started_at, s.ended_at, s.error) for s in full.steps
    ]
    assert short.approvals == full.approvals and short.state == full.state
    assert all(not (s.detail or s.description or s.changes or s.observed) for s in short.steps)
    assert short.notifications == []
    assert len(short.model_dump_json()) < len(full.model_dump_json()) * 0.8
    assert full.steps[0].changes  # the original is untouched


def test_a_summary_makes_the_same_report_numbers() -> None:
    """The evacuation's report builds each service's RTO and what it rolled back from it."""
    full, short = _progress(), _progress().summary()
    a, b = report.build(full, "wf"), report.build(short, "wf")
    assert (b.outcome, b.rto_traffic_s, b.rto_total_s, b.rolled_back) == (
        a.outcome, a.rto_traffic_s, a.rto_total_s, a.rolled_back
    )  # fmt: skip
    assert a.rto_traffic_s == 60.0  # the Route 53 step, the last traffic step, ended at 60 s
