"""A switch a guard started: its report and `failover trends` carry the guard's MTTD (first
failing evaluation to the confirmed outage), time to decision (confirmed to approved) and the
whole time from the first failing evaluation to traffic on the target."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from orchestrator import report, trends
from orchestrator.runs import (
    ApprovalRecord,
    GuardTrigger,
    RunProgress,
    RunState,
    StepKind,
    StepRecord,
    StepState,
)

T0 = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def progress(trigger: GuardTrigger | None, approvals: list[ApprovalRecord]) -> RunProgress:
    """A switch started at +40 s: a gate, then DNS moved from +70 s to +75 s, ended at +80 s."""
    steps = [
        StepRecord(id="approve", type="approval", kind=StepKind.GATE,
                   state=StepState.SUCCEEDED, started_at=at(40), ended_at=at(70)),
        StepRecord(id="dns", type="route53_weighted", kind=StepKind.MUTATE,
                   state=StepState.SUCCEEDED, started_at=at(70), ended_at=at(75)),
    ]  # fmt: skip
    return RunProgress(
        runbook="shop", from_region="us-east-1", to_region="us-west-2", mode="drill",
        requester="guard", state=RunState.SUCCEEDED, started_at=at(40), ended_at=at(80),
        steps=steps, approvals=approvals, kind="unplanned", trigger=trigger,
    )  # fmt: skip


TRIGGER = GuardTrigger(guard="guard-shop", region="us-east-1", first_failure_at=at(0),
                       confirmed_at=at(38.5), failures=4, evaluations=5)  # fmt: skip
BOB = ApprovalRecord(gate="approve", approver="bob", decision="approve", at=at(70))


def test_a_guard_started_switch_reports_mttd_decision_and_outage_to_traffic() -> None:
    r = report.build(progress(TRIGGER, [BOB]), "switch-shop", "r1")
    d = r.detection
    assert d is not None and d.guard == "guard-shop" and d.region == "us-east-1"
    assert d.mttd_s == 38.5
    assert d.decision_s == 31.5  # confirmed at +38.5 s, bob approved at +70 s
    assert r.rto_traffic_s == 35.0
    assert d.outage_to_traffic_s == 75.0  # first failure at 0, DNS on the target at +75 s
    md = report.markdown(r)
    assert "| MTTD: first failing evaluation to the confirmed outage of us-east-1 " \
        "(4 of 5 evaluations failed) | 38.5s |" in md  # fmt: skip
    assert "| time to decision: confirmed to approved | 31.5s |" in md
    assert "Started by the guard `guard-shop`." in md
    assert "guard-shop" in report.html_page(r)


def test_nobody_to_approve_decides_at_the_start_and_a_rollback_never_reaches_traffic() -> None:
    auto = report.build(progress(TRIGGER, []), "switch-shop")
    assert auto.detection is not None and auto.detection.decision_s == 1.5  # started at +40 s
    rolled = progress(TRIGGER, [BOB]).model_copy(update={"state": RunState.ROLLED_BACK})
    d = report.build(rolled, "switch-shop").detection
    assert d is not None and d.outage_to_traffic_s is None and d.mttd_s == 38.5


def test_a_person_started_switch_has_no_detection() -> None:
    r = report.build(progress(None, [BOB]), "switch-shop")
    assert r.detection is None
    assert "MTTD" not in report.markdown(r)


def test_trends_show_who_started_a_switch_and_the_guard_s_mttd(tmp_path: Path) -> None:
    for name, trigger in (("guard", TRIGGER), ("person", None)):
        r = report.build(progress(trigger, [BOB]), f"switch-{name}", name)
        (tmp_path / f"{name}.json").write_text(r.model_dump_json())
    points = trends.from_reports(tmp_path, "shop", at(-60))
    by = {p.started_by: p for p in points}
    assert set(by) == {"guard", "person"}
    assert (by["guard"].mttd_s, by["guard"].decision_s, by["guard"].rto_s) == (38.5, 31.5, 35.0)
    assert by["person"].mttd_s is None and by["person"].decision_s is None
    t = trends.build("shop", points, at(-60), {"rto": 60.0})
    page = trends.html_page(t)
    row = ["guard", "us-east-1 → us-west-2", "SUCCEEDED", "35.0s", "-", "38.5s", "31.5s"]
    assert "".join(f"<td>{c}</td>" for c in row) in page
