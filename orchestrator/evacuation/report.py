"""The report of an evacuation: every service joined (its outcome and RTO, from its own switch's
report), the evacuation's RTO (first step to the last service's traffic on the target), the
critical path actually taken, and what was rolled back or switched back.

Built from the evacuation's own result (its progress, which carries each switch's final
progress), so it needs no worker. Formats: JSON, Markdown, one self-contained HTML page with a
timeline of the services.
"""

from __future__ import annotations

import html
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field

from orchestrator import report
from orchestrator.evacuation.rules import path_taken
from orchestrator.evacuation.runs import EvacuationProgress, GateWait, ServiceRecord, ServiceState
from orchestrator.notifications import Delivery
from orchestrator.runs import ApprovalRecord, TargetChoice


class Failback(BaseModel):
    """A service's switch back (rollback_all, abort)."""

    workflow_id: str
    outcome: str
    started_at: datetime | None
    ended_at: datetime | None
    rto_total_s: float | None


class ServiceReport(BaseModel):
    name: str
    runbook: str
    tier: int
    from_region: str
    to_region: str
    #: `--to auto`: how its target was chosen (every candidate region and why).
    target_choice: TargetChoice | None = None
    outcome: str
    reason: str = ""
    workflow_id: str = ""
    run_id: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    #: When its traffic was on the target (its last traffic step; its end if it moves none).
    done_at: datetime | None = None
    rto_traffic_s: float | None = Field(description="Its switch's RTO, traffic on the target.")
    rto_total_s: float | None = Field(description="Its switch, start to end.")
    waited_for: str = Field(default="", description="What it waited for last before starting.")
    preapproved: list[str] = Field(default_factory=list)
    gates_left: list[str] = Field(default_factory=list)
    #: Steps its own switch undid (its saga), in the order they were undone.
    rolled_back_steps: list[str] = Field(default_factory=list)
    failback: Failback | None = None


class PathNode(BaseModel):
    """One element of the critical path taken: a service or a gate."""

    name: str
    kind: str  # service | gate
    started_at: datetime | None = None
    ended_at: datetime | None = None
    took_s: float | None = None
    #: How it followed the element before: dependency, tier, gate, or slot (max_parallel).
    via: str = ""


class EvacuationReport(BaseModel):
    """An evacuation's report (`failover report evacuation-PLAN --format json`)."""

    schema_version: int = 1
    workflow_id: str
    run_id: str | None = None
    plan: str
    mode: str
    kind: str
    from_region: str
    to_region: str
    #: `--to auto`: each service's target chosen by its checks (`services[].target_choice`).
    to_auto: bool = False
    requester: str
    outcome: str
    reason: str = ""
    failure_policy: str
    max_parallel: int
    started_at: datetime
    ended_at: datetime | None
    rto_s: float | None = Field(
        description="First step of any service to the last service's traffic on the target "
        "(the services that switched)."
    )
    rto_total_s: float | None = Field(description="The evacuation, start to end.")
    objective: report.Objective
    critical_path: list[PathNode]
    services: list[ServiceReport]
    rolled_back: list[str] = Field(
        description="Services whose own switch rolled back, or that were switched back."
    )
    left_switched: list[str] = Field(
        default_factory=list, description="Services still on the target at the end."
    )
    approvals: list[ApprovalRecord] = Field(default_factory=list)
    gates: dict[str, GateWait] = Field(default_factory=dict)
    #: The evacuation's own notices (its services' are in their own reports).
    notifications: list[Delivery] = Field(default_factory=list)


def _seconds(a: datetime | None, b: datetime | None) -> float | None:
    return round((b - a).total_seconds(), 3) if a and b else None


def _service(s: ServiceRecord) -> ServiceReport:
    r = report.build(s.result, s.workflow_id, s.run_id) if s.result is not None else None
    done_at = None
    if r is not None and r.outcome == "SUCCEEDED":  # its switch got there (it may be back since)
        done_at = (
            r.started_at + timedelta(seconds=r.rto_traffic_s)
            if r.rto_traffic_s is not None
            else r.ended_at
        )
    failback = None
    if s.failback_workflow_id:
        fb = s.failback_result
        failback = Failback(
            workflow_id=s.failback_workflow_id,
            outcome=fb.state.value if fb is not None else s.state.value,
            started_at=s.failback_started_at,
            ended_at=s.failback_ended_at,
            rto_total_s=_seconds(fb.started_at, fb.ended_at) if fb is not None else None,
        )
    return ServiceReport(
        name=s.name,
        runbook=s.runbook,
        tier=s.tier,
        from_region=s.from_region,
        to_region=s.to_region,
        target_choice=s.target_choice,
        outcome=s.state.value,
        reason=s.reason,
        workflow_id=s.workflow_id,
        run_id=s.run_id,
        started_at=s.started_at,
        ended_at=s.ended_at,
        done_at=done_at,
        rto_traffic_s=r.rto_traffic_s if r is not None else None,
        rto_total_s=r.rto_total_s if r is not None else None,
        waited_for=s.after,
        preapproved=s.preapproved,
        gates_left=s.gates_left,
        rolled_back_steps=r.rolled_back if r is not None else [],
        failback=failback,
    )


def build(p: EvacuationProgress, workflow_id: str, run_id: str | None = None) -> EvacuationReport:
    """The report of an evacuation from its progress."""
    services = [_service(s) for s in p.services]
    firsts = [
        step.started_at
        for s in p.services
        if s.result is not None
        for step in s.result.steps
        if step.started_at is not None
    ]
    done = [s for s in services if s.done_at is not None]
    rto = None
    if firsts and done and p.state.value in ("SUCCEEDED", "PARTIAL"):
        done = [s for s in done if s.outcome == ServiceState.SUCCEEDED.value]
        rto = _seconds(min(firsts), max((s.done_at for s in done if s.done_at), default=None))
    last = max(done, key=lambda s: s.done_at or p.started_at).name if done else None
    return EvacuationReport(
        workflow_id=workflow_id,
        run_id=run_id,
        plan=p.plan,
        mode=p.mode,
        kind=p.kind,
        from_region=p.from_region,
        to_region=p.to_region,
        to_auto=p.to_auto,
        requester=p.requester,
        outcome=p.state.value,
        reason=p.reason,
        failure_policy=p.failure_policy,
        max_parallel=p.max_parallel,
        started_at=p.started_at,
        ended_at=p.ended_at,
        rto_s=rto,
        rto_total_s=_seconds(p.started_at, p.ended_at),
        objective=report.objective(p.rto, rto),
        critical_path=_path(p, services, last) if last else [],
        services=services,
        rolled_back=[
            s.name
            for s in services
            if s.outcome in (ServiceState.ROLLED_BACK.value, ServiceState.FAILED_BACK.value)
            or s.rolled_back_steps
        ],
        left_switched=[s.name for s in services if s.outcome == ServiceState.SUCCEEDED.value],
        approvals=p.approvals,
        gates=p.gates,
        notifications=list(p.notifications),
    )


def _path(p: EvacuationProgress, services: list[ServiceReport], last: str) -> list[PathNode]:
    by_name = {s.name: s for s in services}
    records = {r.name: r for r in p.services}
    out: list[PathNode] = []
    for node in path_taken(p.services, p.gates, last):
        if node.startswith("gate:"):
            g = p.gates.get(node.removeprefix("gate:"))
            out.append(
                PathNode(
                    name=node,
                    kind="gate",
                    started_at=g.opened_at if g else None,
                    ended_at=g.decided_at if g else None,
                    took_s=_seconds(g.opened_at, g.decided_at) if g else None,
                )
            )
            continue
        s = by_name[node]
        out.append(
            PathNode(
                name=node,
                kind="service",
                started_at=s.started_at,
                ended_at=s.ended_at,
                took_s=_seconds(s.started_at, s.ended_at),
            )
        )
    for i, n in enumerate(out[1:], start=1):  # how each followed the one before
        rec = records.get(n.name)
        after = rec.after if rec is not None else ""
        if n.kind == "gate":
            n.via = "tier"
        elif after.startswith("slot:"):
            n.via = "slot (max_parallel)"
        elif after.startswith("gate:"):
            n.via = "gate"
        elif rec is not None and out[i - 1].name in rec.depends_on:
            n.via = "dependency"
        else:
            n.via = "tier"
    return out


# --------------------------------------------------------------------------- renderers
def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}s"


def _offset(r: EvacuationReport, at: datetime | None) -> str:
    return "-" if at is None else f"+{(at - r.started_at).total_seconds():.1f}s"


def markdown(r: EvacuationReport) -> str:
    """The report as Markdown."""
    kind = "" if r.kind == "planned" else f"{r.kind} "
    to = f" → {r.to_region}" if r.to_region else ""
    if r.to_auto:
        to = " → auto (each service's target chosen by its checks)"
    lines = [
        f"# {kind}{r.mode} evacuation `{r.plan}`: {r.from_region}{to}: **{r.outcome}**",
        "",
        f"Requested by {r.requester}; started {r.started_at:%Y-%m-%d %H:%M:%S} UTC; failure "
        f"policy {r.failure_policy}, {r.max_parallel} services at once; workflow "
        f"`{r.workflow_id}`" + (f" run `{r.run_id}`" if r.run_id else ""),
        "",
    ]
    if r.reason:
        lines += [f"Stopped going forward because: {r.reason}", ""]
    lines += [
        "| measure | value | objective |",
        "|---|---|---|",
        f"| RTO: first step to the last service's traffic on the target | {_fmt(r.rto_s)} | "
        f"{report.met_text(r.objective)} |",
        f"| evacuation, start to end | {_fmt(r.rto_total_s)} | |",
        "",
    ]
    if r.critical_path:
        path = " → ".join(
            (f"({n.via}) " if n.via else "") + f"{n.name} {_fmt(n.took_s)}" for n in r.critical_path
        )
        lines += [f"Critical path taken: {path}", ""]
    lines += [
        "## Services",
        "",
        "| service | tier | runbook | outcome | started | RTO traffic | took | waited for | "
        "gates pre-approved / left | switch |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in r.services:
        gates = ", ".join(s.preapproved) or "-"
        if s.gates_left:
            gates += f" / left: {', '.join(s.gates_left)}"
        lines.append(
            f"| {s.name} | {s.tier} | {s.runbook} | {s.outcome} | {_offset(r, s.started_at)} | "
            f"{_fmt(s.rto_traffic_s)} | {_fmt(s.rto_total_s)} | {s.waited_for or '-'} | {gates} | "
            + (f"`{s.workflow_id}` |" if s.workflow_id else "- |")
        )
    if r.to_auto:
        lines += targets_chosen(r)
    reasons = [s for s in r.services if s.reason]
    if reasons:
        lines += ["", "## Why", ""]
        lines += [f"- **{s.name}**: {s.reason}" for s in reasons]
    if r.rolled_back:
        lines += ["", "## Rolled back", "", "| service | what | switch back |", "|---|---|---|"]
        for s in r.services:
            if s.name not in r.rolled_back:
                continue
            undone = ", ".join(s.rolled_back_steps) or "-"
            fb = s.failback
            back = f"{fb.outcome} in {_fmt(fb.rto_total_s)} (`{fb.workflow_id}`)" if fb else "-"
            lines.append(f"| {s.name} | its steps undone: {undone} | {back} |")
    if r.left_switched and r.outcome != "SUCCEEDED":
        lines += ["", f"Still on the target: {', '.join(r.left_switched)}."]
    if r.approvals:
        lines += ["", "## Approvals", "", "| gate | who | decision | when | comment |",
                  "|---|---|---|---|---|"]  # fmt: skip
        for a in r.approvals:
            lines.append(
                f"| {a.gate} | {a.approver or '-'} | {a.decision} | {a.at:%H:%M:%S} | "
                f"{a.comment.replace('|', '/')} |"
            )
    lines += report.notifications_markdown(r.notifications)
    return "\n".join(lines) + "\n"


def targets_chosen(r: EvacuationReport) -> list[str]:
    """`--to auto`: one row per service, the target chosen and why (its checks that were green,
    and why each region before it in its runbook's order was not chosen)."""
    lines = ["", "## Targets chosen (--to auto)", ""]
    rule = next((s.target_choice.rule for s in r.services if s.target_choice), "")
    lines += [f"Each service on its own: {rule}.", ""] if rule else []
    lines += ["| service | target | why |", "|---|---|---|"]
    for s in r.services:
        why = why_chosen(s.target_choice) if s.target_choice else "-"
        lines.append(f"| {s.name} | {s.to_region} | {why.replace('|', '/')} |")
    return lines


def why_chosen(choice: TargetChoice) -> str:
    """The reasons of a choice in one line: the chosen region's checks, then every other
    candidate with its first reason (or that it also qualified, later in the runbook)."""
    chosen = next((c for c in choice.candidates if c.region == choice.chosen), None)
    parts = [f"{choice.chosen}: " + "; ".join(chosen.reasons if chosen else [])]
    for c in choice.candidates:
        if c.region != choice.chosen:
            first = c.reasons[0] if c.reasons else "not qualified"
            parts.append(f"{c.region}: " + ("also qualified (later in the runbook)" if c.ok
                                              else f"not chosen ({first})"))  # fmt: skip
    return "; ".join(parts)


COLOURS = {"switch": "#2e7d32", "failed": "#c62828", "failback": "#6a1b9a", "gate": "#f9a825"}


def html_page(r: EvacuationReport) -> str:
    """One self-contained page: an SVG timeline (each service's switch, its switch back, the
    gates), then the Markdown's tables."""
    start = r.started_at
    ends: list[Any] = [r.ended_at] + [s.ended_at for s in r.services]
    ends += [s.failback.ended_at for s in r.services if s.failback]
    end = max((e for e in ends if e is not None), default=start)
    span = max((end - start).total_seconds(), 0.001)
    width, row_h, left = 900, 22, 220
    rows: list[tuple[str, list[tuple[datetime, datetime, str]]]] = []
    for name, g in r.gates.items():
        if g.opened_at and g.decided_at:
            rows.append((f"gate {name}", [(g.opened_at, g.decided_at, "gate")]))
    for s in r.services:
        segs = []
        if s.started_at and s.ended_at:
            ok = s.outcome in ("SUCCEEDED", "FAILED_BACK", "FAILBACK_FAILED")
            segs.append((s.started_at, s.ended_at, "switch" if ok else "failed"))
        if s.failback and s.failback.started_at and s.failback.ended_at:
            segs.append((s.failback.started_at, s.failback.ended_at, "failback"))
        rows.append((s.name, segs))
    bars = []
    for i, (label, segs) in enumerate(rows):
        y = 30 + i * row_h
        bars.append(f'<text x="4" y="{y + 14}" font-size="12">{html.escape(label)}</text>')
        for a, b, kind in segs:
            x = left + (a - start).total_seconds() / span * (width - left)
            w = max((b - a).total_seconds() / span * (width - left), 2)
            bars.append(
                f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{row_h - 6}" '
                f'fill="{COLOURS[kind]}"><title>{html.escape(label)} {kind} '
                f"{(b - a).total_seconds():.2f}s</title></rect>"
            )
    legend = " ".join(
        f'<span style="background:{c};color:#fff;padding:1px 6px">{k}</span>'
        for k, c in COLOURS.items()
    )
    svg = (
        f"<h2>Timeline ({span:.1f}s)</h2><p>{legend}</p>"
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{40 + len(rows) * row_h}">' + "".join(bars) + "</svg>"
    )
    return report.page(f"evacuation {r.plan} {r.outcome}", svg, markdown(r))
