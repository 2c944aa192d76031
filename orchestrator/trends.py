"""RTO, RPO and MTTD of a runbook's runs over time, from the runs' own results.

MTTD is a game day's (fault injected to detected) or, for a switch a guard started, the guard's
(first failing evaluation to the confirmed outage), with its time to decision (confirmed to
approved).

Sources: Temporal (the results of closed RegionSwitch and GameDay runs, found by their search
attributes) and the reports written to disk (`.failover/reports/*.json`), which outlive Temporal's
retention. A switch whose RTO exceeds the median of the previous runs (at least
`MIN_HISTORY` of them) by more than `threshold` is flagged as a regression.
"""

from __future__ import annotations

import html
import json
import statistics
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError
from temporalio.client import Client

from orchestrator import report
from orchestrator.gameday import report as gd_report
from orchestrator.gameday.models import GameDayProgress
from orchestrator.runs import RunProgress

MIN_HISTORY = 3


class TrendPoint(BaseModel):
    workflow_id: str
    run_id: str | None = None
    kind: str  # "switch" | "gameday"
    mode: str
    started_at: datetime
    from_region: str
    to_region: str
    outcome: str
    rto_s: float | None = None
    rpo_s: float | None = None
    mttd_s: float | None = None
    decision_s: float | None = Field(
        default=None, description="A guard's confirmed outage to the switch's approval."
    )
    #: "guard" when a guard started the switch, else "person" (game days: "gameday").
    started_by: str = "person"
    slo_breach_s: float | None = None
    baseline_rto_s: float | None = Field(default=None, description="Median RTO of the runs before.")
    regression: bool = False


class Trends(BaseModel):
    runbook: str
    since: datetime
    threshold: float
    objectives: dict[str, float | None]
    points: list[TrendPoint]
    regressions: list[str]


def _switch_point(r: report.Report) -> TrendPoint:
    return TrendPoint(
        workflow_id=r.workflow_id,
        run_id=r.run_id,
        kind="switch",
        mode=r.mode,
        started_at=r.started_at,
        from_region=r.from_region,
        to_region=r.to_region,
        outcome=r.outcome,
        rto_s=r.rto_traffic_s if r.rto_traffic_s is not None else r.rto_total_s,
        rpo_s=r.rpo_s,
        mttd_s=r.detection.mttd_s if r.detection else None,
        decision_s=r.detection.decision_s if r.detection else None,
        started_by="guard" if r.detection else "person",
    )


def _gameday_point(r: gd_report.GameDayReport) -> TrendPoint:
    return TrendPoint(
        workflow_id=r.workflow_id,
        run_id=r.run_id,
        kind="gameday",
        mode="gameday",
        started_at=r.started_at,
        from_region=r.from_region,
        to_region=r.to_region,
        outcome=r.outcome,
        rto_s=r.switch.rto_traffic_s if r.switch else None,
        rpo_s=r.switch.rpo_s if r.switch else None,
        mttd_s=r.mttd_s,
        slo_breach_s=r.slo_breach_s,
        started_by="gameday",
    )


async def from_temporal(
    client: Client, runbook: str, since: datetime
) -> tuple[list[TrendPoint], dict[str, float | None]]:
    """Points from closed runs in Temporal, and the objectives the latest run carried."""
    points: list[TrendPoint] = []
    objectives: dict[str, float | None] = {}
    stamp = since.strftime("%Y-%m-%dT%H:%M:%SZ")
    query = (
        f"FailoverRunbook = '{runbook}' AND ExecutionStatus = 'Completed' AND StartTime > '{stamp}'"
    )
    async for wf in client.list_workflows(query):
        if wf.workflow_type == "RegionSwitch":
            p = await client.get_workflow_handle(
                wf.id, run_id=wf.run_id, result_type=RunProgress
            ).result()
            if p.mode == "dry-run":
                continue
            r = report.build(p, wf.id, wf.run_id)
            points.append(_switch_point(r))
            for key in ("rto", "rpo"):
                objectives.setdefault(key, r.objectives[key].target_s)
        elif wf.workflow_type == "GameDay":
            g = await client.get_workflow_handle(
                wf.id, run_id=wf.run_id, result_type=GameDayProgress
            ).result()
            gr = gd_report.build(g, wf.id, wf.run_id)
            points.append(_gameday_point(gr))
            objectives.setdefault("mttd", gr.objectives["mttd"].target_s)
    return points, objectives


def from_reports(directory: Path, runbook: str, since: datetime) -> list[TrendPoint]:
    """Points from report files (runs whose Temporal history may be gone)."""
    points: list[TrendPoint] = []
    if not directory.is_dir():
        return points
    for path in sorted(directory.glob("*.json")):
        try:
            data: dict[str, Any] = json.loads(path.read_text())
            if data.get("runbook") != runbook:
                continue
            if data.get("kind") == "gameday":
                point = _gameday_point(gd_report.GameDayReport.model_validate(data))
            else:
                r = report.Report.model_validate(data)
                if r.mode == "dry-run":
                    continue
                point = _switch_point(r)
        except (OSError, ValueError, ValidationError):
            continue  # not a report of ours
        if point.started_at >= since:
            points.append(point)
    return points


def build(
    runbook: str,
    points: list[TrendPoint],
    since: datetime,
    objectives: dict[str, float | None],
    threshold: float = 0.5,
) -> Trends:
    """Points deduplicated (by run), ordered by time, regressions flagged."""
    unique = {(p.workflow_id, p.run_id): p for p in points}
    ordered = sorted(unique.values(), key=lambda p: p.started_at)
    previous: list[float] = []
    flagged = []
    for p in ordered:
        if p.kind != "switch" or p.outcome != "SUCCEEDED" or p.rto_s is None:
            continue
        if len(previous) >= MIN_HISTORY:
            p.baseline_rto_s = round(statistics.median(previous), 3)
            if p.rto_s > p.baseline_rto_s * (1 + threshold):
                p.regression = True
                flagged.append(p.workflow_id + (f"/{p.run_id}" if p.run_id else ""))
        previous.append(p.rto_s)
    return Trends(
        runbook=runbook,
        since=since,
        threshold=threshold,
        objectives=objectives,
        points=ordered,
        regressions=flagged,
    )


def parse_since(text: str, now: datetime) -> datetime:
    """`90d`, `12h`, ... before now, or an ISO date."""
    from orchestrator.runbook.durations import parse_duration

    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"expected a duration (90d) or a date (2026-09-01), got {text!r}"
        ) from None
    return t if t.tzinfo else t.replace(tzinfo=now.tzinfo)


def html_page(t: Trends) -> str:
    """A chart: RTO of each switch over time (regressions in red), MTTD of game days, and the
    objective lines; then the table."""
    width, height, left, top = 900, 300, 60, 20
    plot_w, plot_h = width - left - 20, height - top - 40
    pts = t.points
    values = [p.rto_s for p in pts if p.rto_s is not None] + [
        p.mttd_s for p in pts if p.mttd_s is not None
    ]
    top_value = max([*values, 1.0]) * 1.3  # scaled to what was measured, not to objectives
    t0 = pts[0].started_at if pts else t.since
    span = max(((pts[-1].started_at - t0).total_seconds() if pts else 0.0), 1.0)

    def x(when: datetime) -> float:
        return left + (when - t0).total_seconds() / span * plot_w

    def y(v: float) -> float:
        return top + (1 - v / top_value) * plot_h

    parts = [
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 20}" y2="{top + plot_h}" '
        'stroke="#999"/>',
        f'<text x="4" y="{top + 10}" font-size="11">{top_value:.0f}s</text>',
        f'<text x="4" y="{top + plot_h}" font-size="11">0s</text>',
    ]
    for i, (key, colour) in enumerate((("rto", "#c62828"), ("mttd", "#6a1b9a"))):
        target = t.objectives.get(key)
        if target is not None and target > top_value:
            parts.append(
                f'<text x="{width - 260}" y="{top + 12 + 14 * i}" font-size="11" fill="{colour}">'
                f"{key.upper()} objective {target:g}s (above the chart)</text>"
            )
        elif target is not None:
            parts.append(
                f'<line x1="{left}" y1="{y(target):.1f}" x2="{width - 20}" y2="{y(target):.1f}" '
                f'stroke="{colour}" stroke-dasharray="6"/><text x="{width - 150}" '
                f'y="{y(target) - 3:.1f}" font-size="11">{key.upper()} objective {target:g}s</text>'
            )
    rto = [(p, p.rto_s) for p in pts
           if p.kind == "switch" and p.outcome == "SUCCEEDED" and p.rto_s is not None]  # fmt: skip
    line = " ".join(f"{x(p.started_at):.1f},{y(v):.1f}" for p, v in rto)
    if line:
        parts.append(f'<polyline points="{line}" fill="none" stroke="#1565c0"/>')
    for p, v in rto:
        colour = "#c62828" if p.regression else "#1565c0"
        parts.append(
            f'<circle cx="{x(p.started_at):.1f}" cy="{y(v):.1f}" r="4" fill="{colour}"><title>'
            f"{html.escape(p.workflow_id)} {p.from_region}->{p.to_region} RTO {v:.1f}s"
            f"{' REGRESSION' if p.regression else ''}</title></circle>"
        )
    for p in pts:
        if p.mttd_s is not None:
            parts.append(
                f'<rect x="{x(p.started_at) - 3:.1f}" y="{y(p.mttd_s) - 3:.1f}" width="6" '
                f'height="6" fill="#6a1b9a"><title>{html.escape(p.workflow_id)} MTTD '
                f"{p.mttd_s:.1f}s</title></rect>"
            )
    parts.append(
        f'<text x="{left}" y="{height - 8}" font-size="11">RTO of each switch (blue; red: '
        f"regression), MTTD of game days and guards (purple squares), "
        f"since {t.since:%Y-%m-%d}</text>"
    )
    figure = (
        f"<h2>{html.escape(t.runbook)}: RTO, RPO, MTTD over time</h2>"
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">'
        + "".join(parts)
        + "</svg>"
    )
    lines = ["| started | kind | by | from → to | outcome | RTO | RPO | MTTD | decision | "
             "baseline | flag |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for p in pts:
        lines.append(
            f"| {p.started_at:%Y-%m-%d %H:%M} | {p.kind} | {p.started_by} | {p.from_region} → "
            f"{p.to_region} | {p.outcome} | {seconds_text(p.rto_s)} | {seconds_text(p.rpo_s)} | "
            f"{seconds_text(p.mttd_s)} | {seconds_text(p.decision_s)} | "
            f"{seconds_text(p.baseline_rto_s)} | "
            f"{'REGRESSION' if p.regression else ''} |"
        )
    return report.page(f"trends {t.runbook}", figure, "\n".join(lines))


def seconds_text(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}s"
