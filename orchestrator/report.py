"""The report of a run: what happened, how long it took, what it changed, who decided.

Built from the run's own result (the workflow's progress table), so it needs no worker and is the
same whenever it is made. Formats: JSON (schema: `Report.model_json_schema()`), Markdown, and one
self-contained HTML page with a timeline of the steps.
"""

from __future__ import annotations

import html
import re
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from activities import registry
from orchestrator.notifications import Delivery
from orchestrator.runs import ApprovalRecord, RunProgress, StepRecord, StepState, TargetChoice


class Objective(BaseModel):
    target_s: float | None = None
    measured_s: float | None = None
    met: bool | None = None


class ReportStep(BaseModel):
    id: str
    type: str
    description: str
    state: str
    attempts: int
    started_at: datetime | None
    ended_at: datetime | None
    duration_s: float | None
    changes: list[dict[str, Any]] = Field(default_factory=list)
    error: dict[str, Any] | None = None
    undo: dict[str, Any] | None = None


class Detection(BaseModel):
    """How the outage that a guard switched for was found and decided on."""

    guard: str = Field(description="The guard's workflow id.")
    region: str
    first_failure_at: datetime
    confirmed_at: datetime
    failures: int
    evaluations: int
    mttd_s: float = Field(description="First failing evaluation to the confirmed outage.")
    decision_s: float = Field(
        description="Confirmed outage to the last approval (to the run's start if nobody "
        "had to approve)."
    )
    outage_to_traffic_s: float | None = Field(
        description="First failing evaluation to traffic on the target (None: it never got there)."
    )


class Report(BaseModel):
    """A run's report (`failover report --format json`)."""

    schema_version: int = 1
    workflow_id: str
    run_id: str | None = None
    runbook: str
    mode: str
    from_region: str
    to_region: str
    requester: str
    outcome: str
    reason: str = ""
    started_at: datetime
    ended_at: datetime | None
    rto_traffic_s: float | None = Field(
        description="Start to the last traffic step done (traffic fully on the target)."
    )
    rto_total_s: float | None = Field(description="Start to the end of the run.")
    rpo_s: float | None = Field(description="Replication lag measured before the promotion.")
    objectives: dict[str, Objective]
    steps: list[ReportStep]
    approvals: list[ApprovalRecord]
    rolled_back: list[str] = Field(description="Steps undone, in the order they were undone.")
    kind: str = Field(default="planned", description="planned, unplanned or recovery.")
    owed: list[dict[str, str]] = Field(
        default_factory=list,
        description="An unplanned run's work owed to the failed region (`failover recover`).",
    )
    measured: dict[str, Any] = Field(
        default_factory=dict,
        description="What the run's checks measured (e.g. lost_writes in a recovery).",
    )
    notifications: list[Delivery] = Field(
        default_factory=list,
        description="What was sent: one entry per channel and event (ok, or why not).",
    )
    detection: Detection | None = Field(
        default=None, description="Set when a guard started the run: MTTD, time to decision."
    )
    target_choice: TargetChoice | None = Field(
        default=None,
        description="How `--to auto` chose the target: every region considered and why.",
    )


def _seconds(a: datetime | None, b: datetime | None) -> float | None:
    return round((b - a).total_seconds(), 3) if a and b else None


def build(p: RunProgress, workflow_id: str, run_id: str | None = None) -> Report:
    """The report of a run from its progress table."""
    traffic = [
        s
        for s in p.steps
        if (t := registry.get(s.type)) is not None and t.traffic and s.state == StepState.SUCCEEDED
    ]
    rto_traffic = None
    if p.state.value == "SUCCEEDED" and traffic:
        rto_traffic = _seconds(p.started_at, max(s.ended_at or p.started_at for s in traffic))
    rto_total = _seconds(p.started_at, p.ended_at)
    objectives = {
        "rto": objective(p.objectives.rto, rto_traffic if rto_traffic is not None else rto_total),
        "rpo": objective(p.objectives.rpo, p.rpo_seconds),
    }
    undone = sorted(
        (s for s in p.steps if s.undo_started_at is not None),
        key=lambda s: s.undo_started_at or p.started_at,
    )
    return Report(
        workflow_id=workflow_id,
        run_id=run_id,
        runbook=p.runbook,
        mode=p.mode,
        from_region=p.from_region,
        to_region=p.to_region,
        requester=p.requester,
        outcome=p.state.value,
        reason=p.reason,
        started_at=p.started_at,
        ended_at=p.ended_at,
        rto_traffic_s=rto_traffic,
        rto_total_s=rto_total,
        rpo_s=p.rpo_seconds,
        objectives=objectives,
        steps=[_step(s) for s in p.steps],
        approvals=p.approvals,
        rolled_back=[s.id for s in undone],
        kind=p.kind,
        owed=[o.model_dump() for o in p.owed],
        measured={
            k: v
            for s in p.steps
            for k, v in s.observed.items()
            if k in ("lost_writes", "lost_writes_rpo_s", "lag_seconds")
        },
        notifications=list(p.notifications),
        detection=detection(p, rto_traffic),
        target_choice=p.target_choice,
    )


def detection(p: RunProgress, rto_traffic: float | None) -> Detection | None:
    """MTTD, time to decision and outage to traffic of a run a guard started (else None)."""
    t = p.trigger
    if t is None:
        return None
    approved = [a.at for a in p.approvals if a.decision == "approve"]
    decided = max(approved) if approved else p.started_at
    traffic = (
        None
        if rto_traffic is None
        else round((p.started_at - t.first_failure_at).total_seconds() + rto_traffic, 3)
    )
    return Detection(
        guard=t.guard,
        region=t.region,
        first_failure_at=t.first_failure_at,
        confirmed_at=t.confirmed_at,
        failures=t.failures,
        evaluations=t.evaluations,
        mttd_s=round((t.confirmed_at - t.first_failure_at).total_seconds(), 3),
        decision_s=round(max(0.0, (decided - t.confirmed_at).total_seconds()), 3),
        outage_to_traffic_s=traffic,
    )


def objective(target: Any, measured: float | None) -> Objective:
    t = target.total_seconds() if target is not None else None
    met = None if t is None or measured is None else measured <= t
    return Objective(target_s=t, measured_s=measured, met=met)


def _step(s: StepRecord) -> ReportStep:
    undo = None
    if s.undo_started_at is not None or s.undo_note:
        undo = {
            "state": s.state.value,
            "started_at": s.undo_started_at,
            "ended_at": s.undo_ended_at,
            "attempts": s.undo_attempts,
            "error": s.undo_error.model_dump() if s.undo_error else None,
            "note": s.undo_note,
        }
    return ReportStep(
        id=s.id,
        type=s.type,
        description=s.description,
        state=s.state.value,
        attempts=s.attempts,
        started_at=s.started_at,
        ended_at=s.ended_at,
        duration_s=_seconds(s.started_at, s.ended_at),
        changes=s.changes,
        error=s.error.model_dump() if s.error else None,
        undo=undo,
    )


# --------------------------------------------------------------------------- renderers
def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}s"


def met_text(o: Objective) -> str:
    if o.target_s is None:
        return "no objective"
    if o.met is None:
        return f"objective {o.target_s:g}s, not measured"
    return f"objective {o.target_s:g}s: {'met' if o.met else 'MISSED'}"


def markdown(r: Report) -> str:
    """The report as Markdown."""
    kind = "" if r.kind == "planned" else f"{r.kind} "
    lines = [
        f"# {kind}{r.mode} of `{r.runbook}`: {r.from_region} → {r.to_region}: **{r.outcome}**",
        "",
        f"Requested by {r.requester}; started {r.started_at:%Y-%m-%d %H:%M:%S} UTC; "
        f"workflow `{r.workflow_id}`" + (f" run `{r.run_id}`" if r.run_id else ""),
        "",
    ]
    if r.reason:
        lines += [f"Rolled back because: {r.reason}", ""]
    lost, lost_s = r.measured.get("lost_writes"), r.measured.get("lost_writes_rpo_s")
    lines += ["| measure | value | objective |", "|---|---|---|"]
    if r.kind == "recovery":  # the RTO was the unplanned run's; what it cost is counted now
        lines.append(f"| recovery, whole run | {_fmt(r.rto_total_s)} | |")
    else:
        lines += [
            f"| RTO, traffic on the target | {_fmt(r.rto_traffic_s)} | "
            f"{met_text(r.objectives['rto'])} |",
            f"| RTO, whole run | {_fmt(r.rto_total_s)} | |",
            f"| RPO (lag at promotion) | {_fmt(r.rpo_s)} | {met_text(r.objectives['rpo'])} |",
        ]
    if lost is not None:
        target = r.objectives["rpo"].target_s
        measured = objective(None, lost_s)
        if target is not None and lost_s is not None:
            measured = Objective(target_s=target, measured_s=lost_s, met=lost_s <= target)
        lines.append(
            f"| RPO measured: writes lost (accepted by the failed region, never replicated) | "
            f"**{lost}**, the last {_fmt(lost_s)} of writes | {met_text(measured)} |"
        )
    if r.detection is not None:
        d = r.detection
        lines += [
            f"| MTTD: first failing evaluation to the confirmed outage of {d.region} "
            f"({d.failures} of {d.evaluations} evaluations failed) | {_fmt(d.mttd_s)} | |",
            f"| time to decision: confirmed to approved | {_fmt(d.decision_s)} | |",
            f"| first failing evaluation to traffic on the target | "
            f"{_fmt(d.outage_to_traffic_s)} | |",
        ]
    lines.append("")
    if r.detection is not None:
        lines += [f"Started by the guard `{r.detection.guard}`.", ""]
    if r.target_choice is not None:
        lines += ["## Target chosen (--to auto)", "", f"{r.target_choice.rule}: "
                  f"**{r.target_choice.chosen}**.", "", "| region | qualified | reasons |",
                  "|---|---|---|"]  # fmt: skip
        for c in r.target_choice.candidates:
            why = "; ".join(c.reasons).replace("|", "/")
            lines.append(f"| {c.region} | {'yes' if c.ok else 'no'} | {why} |")
        lines.append("")
    if r.owed:
        lines += [
            f"Owed to {r.from_region} (run `failover recover {r.runbook} --region "
            f"{r.from_region}` once it answers): "
            + ", ".join(f"{o['id']} ({o['description']})" for o in r.owed),
            "",
        ]
    lines += [
        "## Steps",
        "",
        "| step | state | attempts | took | changed | error |",
        "|---|---|---|---|---|---|",
    ]
    for s in r.steps:
        changed = "; ".join(
            f"{c['resource']}: {c['before']} → {c['after']}" for c in s.changes
        ).replace("|", "/")
        err = f"{s.error['kind']}: {s.error['message']}" if s.error else ""
        lines.append(
            f"| {s.id} | {s.state} | {s.attempts} | {_fmt(s.duration_s)} | {changed} | "
            f"{err.replace('|', '/')} |"
        )
    if r.approvals:
        lines += ["", "## Approvals", "", "| gate | who | decision | when | comment |",
                  "|---|---|---|---|---|"]  # fmt: skip
        for a in r.approvals:
            lines.append(
                f"| {a.gate} | {a.approver or '-'} | {a.decision} | {a.at:%H:%M:%S} | "
                f"{a.comment.replace('|', '/')} |"
            )
    if r.rolled_back:
        lines += ["", "## Rollback", "", "| step | undo | attempts | note / error |",
                  "|---|---|---|---|"]  # fmt: skip
        for s in r.steps:
            if s.undo is not None:
                err = s.undo["error"]
                note = f"{err['kind']}: {err['message']}" if err else s.undo["note"]
                lines.append(f"| {s.id} | {s.state} | {s.undo['attempts']} | {note} |")
    lines += notifications_markdown(r.notifications)
    return "\n".join(lines) + "\n"


def notifications_markdown(sent: list[Delivery]) -> list[str]:
    """The "Notifications" section: what was sent where, and what could not be ([] if none)."""
    if not sent:
        return []
    lines = ["", "## Notifications", "", "| when | event | channel | delivered | detail |",
             "|---|---|---|---|---|"]  # fmt: skip
    for d in sorted(sent, key=lambda d: d.at):
        lines.append(
            f"| {d.at:%H:%M:%S} | {d.event} | {d.channel} | {'yes' if d.ok else '**NO**'} | "
            f"{d.detail.replace('|', '/')} |"
        )
    return lines


COLOURS = {"apply": "#2e7d32", "gate": "#f9a825", "undo": "#6a1b9a", "failed": "#c62828"}


def html_page(r: Report) -> str:
    """One self-contained HTML page: summary, an SVG timeline (apply, gate waits, undo and
    failures in different colours), and the Markdown tables rendered as HTML tables."""
    start = r.started_at
    end = r.ended_at or max((s.ended_at for s in r.steps if s.ended_at), default=start)
    for s in r.steps:
        if s.undo and s.undo.get("ended_at"):
            end = max(end, s.undo["ended_at"])
    span = max((end - start).total_seconds(), 0.001)
    width, row_h, left = 900, 22, 220
    bars = []
    for i, s in enumerate(r.steps):
        y = 30 + i * row_h
        bars.append(f'<text x="4" y="{y + 14}" font-size="12">{html.escape(s.id)}</text>')
        segments = []
        if s.started_at and s.ended_at:
            kind = "gate" if s.type == "approval" else ("failed" if s.error else "apply")
            segments.append((s.started_at, s.ended_at, kind))
        if s.undo and s.undo.get("started_at") and s.undo.get("ended_at"):
            segments.append((s.undo["started_at"], s.undo["ended_at"], "undo"))
        for a, b, kind in segments:
            x = left + (a - start).total_seconds() / span * (width - left)
            w = max((b - a).total_seconds() / span * (width - left), 2)
            bars.append(
                f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{row_h - 6}" '
                f'fill="{COLOURS[kind]}"><title>{html.escape(s.id)} {kind} '
                f"{(b - a).total_seconds():.2f}s</title></rect>"
            )
    height = 40 + len(r.steps) * row_h
    legend = " ".join(
        f'<span style="background:{c};color:#fff;padding:1px 6px">{k}</span>'
        for k, c in COLOURS.items()
    )
    svg = (
        f"<h2>Timeline ({span:.1f}s)</h2><p>{legend}</p>"
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">'
        + "".join(bars)
        + "</svg>"
    )
    return page(f"{r.runbook} {r.outcome}", svg, markdown(r))


def page(title: str, figure: str, body: str) -> str:
    """A self-contained HTML page: a figure (SVG) then the Markdown's text and tables."""
    rows = []
    for line in body.splitlines():
        if line.startswith("|---"):
            continue  # a table's header separator
        if line.startswith("|"):
            cells = [_inline(c.strip()) for c in line.strip("|").split("|")]
            rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
        elif line.startswith("#"):
            rows.append(f"</table><h2>{_inline(line.lstrip('# '))}</h2><table>")
        elif line.strip():
            rows.append(f"</table><p>{_inline(line)}</p><table>")
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;margin:2em}td{border:1px solid #ccc;"
        "padding:2px 6px;font-size:13px}table{border-collapse:collapse;margin:1em 0}</style>"
        f"</head><body>{figure}<table>" + "".join(rows) + "</table></body></html>\n"
    )


def _inline(text: str) -> str:
    """Markdown's **bold** and `code` as HTML, everything else escaped."""
    out = html.escape(text)
    out = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", out)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", out)
