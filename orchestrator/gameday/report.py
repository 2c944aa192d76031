"""The report of a game day: both switches' reports joined with what the game day measured.

MTTD (fault in place -> first detector red), per direction RTO (traffic on the target, whole
run) and RPO from the switch's own report, recovery (switch end -> SLO holding again), SLO breach
time (probe windows in which users saw the SLO missed), the stop condition that tripped, the
fault's life, objectives met or missed. JSON, Markdown, and HTML with a chart of what users saw.
"""

from __future__ import annotations

import html
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from orchestrator import report
from orchestrator.gameday.models import ChildRun, GameDayProgress, ProbeSample, StopTrip
from orchestrator.gameday.slo import slo_miss
from orchestrator.notifications import Delivery


class Direction(BaseModel):
    workflow_id: str
    run_id: str | None = None
    from_region: str
    to_region: str
    outcome: str
    reason: str = ""
    rto_traffic_s: float | None = None
    rto_total_s: float | None = None
    rpo_s: float | None = None
    recovered_s: float | None = Field(
        default=None, description="Switch end to the SLO holding again for the settle time."
    )
    objectives: dict[str, report.Objective] = Field(default_factory=dict)
    kind: str = Field(default="planned", description="planned, unplanned or recovery.")
    lost_writes: int | None = Field(
        default=None, description="Recovery: writes the failed region took that were lost."
    )


class Point(BaseModel):
    t_s: float
    error_rate: float
    p95_ms: float | None
    weights: dict[str, int]
    breach: bool


class GameDayReport(BaseModel):
    """A game day's report (`failover gameday report ID -o json`)."""

    schema_version: int = 1
    kind: str = "gameday"
    workflow_id: str
    run_id: str | None = None
    name: str
    runbook: str
    from_region: str
    to_region: str
    requester: str
    outcome: str
    reason: str = ""
    started_at: datetime
    ended_at: datetime | None
    fault: str
    fault_state: str
    fault_injected_at: datetime | None
    fault_removed_at: datetime | None
    mttd_s: float | None
    detected_by: str | None
    switch: Direction | None
    failback: Direction | None
    recovery: Direction | None = Field(
        default=None, description="Unplanned game days: the recovery of the failed region."
    )
    slo: dict[str, Any]
    slo_breach_s: float
    probe_windows: int
    stop: StopTrip | None
    objectives: dict[str, report.Objective]
    preflight: list[str]
    timeline: list[Point]
    notifications: list[Delivery] = Field(
        default_factory=list,
        description="What the game day and its switches sent (channel, event, ok or why not).",
    )


def _direction(child: ChildRun | None, recovered: float | None) -> Direction | None:
    if child is None:
        return None
    if child.progress is None:
        return Direction(
            workflow_id=child.workflow_id, run_id=child.run_id, from_region="", to_region="",
            outcome="NOT FINISHED",
        )  # fmt: skip
    r = report.build(child.progress, child.workflow_id, child.run_id)
    return Direction(
        workflow_id=child.workflow_id,
        run_id=child.run_id,
        from_region=r.from_region,
        to_region=r.to_region,
        outcome=r.outcome,
        reason=r.reason,
        rto_traffic_s=r.rto_traffic_s,
        rto_total_s=r.rto_total_s,
        rpo_s=r.rpo_s,
        recovered_s=recovered,
        objectives=r.objectives,
        kind=r.kind,
        lost_writes=r.measured.get("lost_writes"),
    )


def _miss(p: GameDayProgress, s: ProbeSample) -> bool:
    """Users missed the SLO in this window (a window with no request missed it only if the
    probe itself failed)."""
    if not s.service.requests:
        return bool(s.error)
    return bool(slo_miss(p.slo, s.service))


def build(p: GameDayProgress, workflow_id: str, run_id: str | None = None) -> GameDayReport:
    """The game day's report from its result (or its progress, while it runs)."""
    timeline = []
    breach = 0.0
    for s in p.samples:
        if s.at is None:
            continue
        missed = _miss(p, s)
        breach += s.window_s if missed else 0.0
        timeline.append(
            Point(
                t_s=round((s.at - p.started_at).total_seconds(), 3),
                error_rate=round(s.service.error_rate, 4),
                p95_ms=s.service.p95_ms,
                weights=s.weights,
                breach=missed,
            )
        )
    switch = _direction(p.switch, p.recovered_s.get("switch"))
    failback = _direction(p.failback, p.recovered_s.get("failback"))
    recovery = _direction(p.recovery, None)
    objectives = {
        "mttd": report.objective(p.objectives.mttd, p.mttd_s),
        "slo_breach": report.objective(p.objectives.slo_breach, round(breach, 3)),
    }
    for label, d in (("switch", switch), ("failback", failback)):
        if d is not None:
            for key, o in d.objectives.items():
                objectives[f"{label}_{key}"] = o
    return GameDayReport(
        workflow_id=workflow_id,
        run_id=run_id,
        name=p.name,
        runbook=p.runbook,
        from_region=p.from_region,
        to_region=p.to_region,
        requester=p.requester,
        outcome=p.outcome.value,
        reason=p.reason.strip(),
        started_at=p.started_at,
        ended_at=p.ended_at,
        fault=p.fault_description,
        fault_state=p.fault.state,
        fault_injected_at=p.fault.injected_at,
        fault_removed_at=p.fault.removed_at,
        mttd_s=p.mttd_s,
        detected_by=p.detected_by,
        switch=switch,
        failback=failback,
        recovery=recovery,
        slo=p.slo.model_dump(mode="json", exclude_none=True),
        slo_breach_s=round(breach, 3),
        probe_windows=len(timeline),
        stop=p.stop,
        objectives=objectives,
        preflight=p.preflight,
        timeline=timeline,
        notifications=[*_child_notifications(p), *p.notifications],
    )


def _child_notifications(p: GameDayProgress) -> list[Delivery]:
    """What the game day's switches sent (their pages: ROLLBACK_FAILED)."""
    return [
        d
        for c in (p.switch, p.recovery, p.failback)
        if c is not None and c.progress is not None
        for d in c.progress.notifications
    ]


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}s"


def markdown(r: GameDayReport) -> str:
    """The report as Markdown."""
    lines = [
        f"# Game day `{r.name}` of `{r.runbook}`: {r.from_region} → {r.to_region} and back: "
        f"**{r.outcome}**",
        "",
        f"Requested by {r.requester}; started {r.started_at:%Y-%m-%d %H:%M:%S} UTC; "
        f"workflow `{r.workflow_id}`" + (f" run `{r.run_id}`" if r.run_id else ""),
        "",
    ]
    if r.reason:
        lines += [f"Why: {r.reason}", ""]
    if r.stop:
        lines += [f"Stop condition `{r.stop.condition}` tripped ({r.stop.rule}): {r.stop.detail}",
                  ""]  # fmt: skip
    if r.fault_state == "failed":
        lines += ["**THE FAULT COULD NOT BE REMOVED: remove it by hand now.**", ""]
    for problem in r.preflight:
        lines.append(f"- preflight: {problem}")
    lines += [
        f"Fault: {r.fault} ({r.fault_state}"
        + (f", in place {_seconds(r.fault_injected_at, r.fault_removed_at)}" if
           r.fault_injected_at and r.fault_removed_at else "") + ")",
        "",
        f"Detected by: {r.detected_by or '-'}",
        "",
        "| measure | value | objective |",
        "|---|---|---|",
        f"| MTTD | {_fmt(r.mttd_s)} | {report.met_text(r.objectives['mttd'])} |",
        f"| SLO breach (users) | {_fmt(r.slo_breach_s)} over {r.probe_windows} windows | "
        f"{report.met_text(r.objectives['slo_breach'])} |",
    ]  # fmt: skip
    for label, d in (("switch", r.switch), ("recovery", r.recovery), ("failback", r.failback)):
        if d is None:
            if label != "recovery":  # (planned game days have none)
                lines.append(f"| {label} | not run | |")
            continue
        if label == "recovery":
            lines += [
                f"| recovery of {d.from_region} | {d.outcome} (`{d.workflow_id}`) | |",
                f"| recovery, whole run | {_fmt(d.rto_total_s)} | |",
                f"| writes lost (the RPO measured) | "
                f"{'-' if d.lost_writes is None else d.lost_writes} | |",
            ]
            continue
        if d.kind == "unplanned":
            label = f"{label} (unplanned)"
        rto = d.objectives.get("rto", report.Objective())
        rpo = d.objectives.get("rpo", report.Objective())
        lines += [
            f"| {label} {d.from_region} → {d.to_region} | {d.outcome} (`{d.workflow_id}`) | |",
            f"| {label} RTO, traffic | {_fmt(d.rto_traffic_s)} | {report.met_text(rto)} |",
            f"| {label} RTO, whole run | {_fmt(d.rto_total_s)} | |",
            f"| {label} RPO | {_fmt(d.rpo_s)} | {report.met_text(rpo)} |",
            f"| {label}: SLO back after | {_fmt(d.recovered_s)} | |",
        ]
    lines += report.notifications_markdown(r.notifications)
    return "\n".join(lines) + "\n"


def _seconds(a: datetime | None, b: datetime | None) -> str:
    return f"{(b - a).total_seconds():.1f}s" if a and b else "-"


def html_page(r: GameDayReport) -> str:
    """The report with a chart: users' error rate per probe window, SLO breaches in red, and the
    moments the fault was injected and removed."""
    width, height, left, top = 900, 220, 50, 20
    span = max([p.t_s for p in r.timeline] + [1.0])
    plot_w, plot_h = width - left - 10, height - top - 30

    def x(t: float) -> float:
        return left + t / span * plot_w

    def y(rate: float) -> float:
        return top + (1 - rate) * plot_h

    parts = [
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 10}" y2="{top + plot_h}" '
        'stroke="#999"/>',
        f'<text x="4" y="{top + 8}" font-size="11">100%</text>',
        f'<text x="4" y="{top + plot_h}" font-size="11">0%</text>',
        f'<text x="{left}" y="{height - 4}" font-size="11">error rate users saw, per probe '
        f"window, over {span:.0f}s</text>",
    ]
    pts = " ".join(f"{x(p.t_s):.1f},{y(p.error_rate):.1f}" for p in r.timeline)
    if pts:
        parts.append(f'<polyline points="{pts}" fill="none" stroke="#1565c0" stroke-width="2"/>')
    for p in r.timeline:
        colour = "#c62828" if p.breach else "#2e7d32"
        parts.append(
            f'<circle cx="{x(p.t_s):.1f}" cy="{y(p.error_rate):.1f}" r="3" fill="{colour}">'
            f"<title>t={p.t_s:.1f}s errors {p.error_rate:.0%} p95 {p.p95_ms} ms "
            f"weights {html.escape(str(p.weights))}</title></circle>"
        )
    for label, at in (("fault in", r.fault_injected_at), ("fault out", r.fault_removed_at)):
        if at is not None:
            t = (at - r.started_at).total_seconds()
            parts.append(
                f'<line x1="{x(t):.1f}" y1="{top}" x2="{x(t):.1f}" y2="{top + plot_h}" '
                f'stroke="#6a1b9a" stroke-dasharray="4"/><text x="{x(t) + 3:.1f}" '
                f'y="{top + 10}" font-size="11">{label}</text>'
            )
    figure = (
        f"<h2>What users saw</h2>"
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">'
        + "".join(parts)
        + "</svg>"
    )
    return report.page(f"game day {r.name} {r.outcome}", figure, markdown(r))
