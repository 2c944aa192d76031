"""What the commands draw with Rich: a switch's step table, a game day's row, one-line summaries.

Views only: they take the data (`RunProgress`, `GameDayProgress`, reports) and return renderables
or text; they talk to nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from orchestrator.gameday.models import ChildRun, GameDayProgress
from orchestrator.runs import RunProgress, RunState, StepState

STATE_STYLE = {
    StepState.SUCCEEDED: "green",
    StepState.RUNNING: "cyan",
    StepState.WAITING_APPROVAL: "yellow",
    StepState.PAUSED: "yellow",
    StepState.FAILED: "red",
    StepState.UNDOING: "magenta",
    StepState.UNDONE: "magenta",
    StepState.UNDO_FAILED: "bold red",
    StepState.NOT_RUN: "dim",
    StepState.PENDING: "dim",
}


def seconds(v: float | None) -> str:
    """A duration for people: 1.2s, or - when there is none."""
    return "-" if v is None else f"{v:.1f}s"


def progress_table(p: RunProgress) -> Group:
    """The step table and, when a gate or the operator is awaited, what to do."""
    now = datetime.now(UTC)
    elapsed = ((p.ended_at or now) - p.started_at).total_seconds()
    kind = "" if p.kind == "planned" else f"{p.kind} "
    title = (
        f"{kind}{p.mode} {p.runbook}: {p.from_region} -> {p.to_region}  ·  {p.state.value}  ·  "
        f"{elapsed:.1f}s"
    )
    table = Table(title=title, header_style="bold", title_justify="left")
    for col in ("step", "type", "state", "attempts", "elapsed", "detail"):
        table.add_column(col, overflow="fold")
    for s in p.steps:
        took = ""
        if s.started_at is not None:
            end = s.undo_ended_at or s.ended_at or (now if s.state != StepState.PENDING else None)
            took = f"{(end - s.started_at).total_seconds():.1f}s" if end else ""
        err = s.undo_error or s.error
        detail = f"{err.kind}: {err.message}" if err else (s.undo_note or s.detail or s.phase)
        style = STATE_STYLE.get(s.state, "")
        table.add_row(s.id, s.type, Text(s.state.value, style=style), str(s.attempts), took, detail)
    parts: list[Any] = [table]
    if p.reason:
        parts.append(Text(f"rolling back because: {p.reason}", style="red"))
    for gate in p.open_gates:
        parts.append(
            Text(
                f"gate '{gate}' is open: failover approve {p.runbook} --gate {gate} --as NAME "
                "(or approve it in the Temporal UI: Update 'approve' with "
                '{"approver": "NAME", "comment": "..."})',
                style="yellow",
            )
        )
    if p.owed and p.state.final:
        parts.append(
            Text(
                f"owed to {p.from_region}: {', '.join(o.id for o in p.owed)}; once it answers: "
                f"failover recover {p.runbook} --region {p.from_region}",
                style="yellow",
            )
        )
    if p.state in (RunState.PAUSED, RunState.ROLLBACK_FAILED):
        parts.append(
            Text(
                f"waiting for the operator: failover resolve {p.runbook} --action "
                "retry|skip|end|rollback --as NAME --reason '...'",
                style="bold yellow",
            )
        )
    return Group(*parts)


def gameday_table(p: GameDayProgress) -> Table:
    """One row: phase, fault, MTTD, both switches, what users saw last, outcome."""
    t = Table(title=f"game day {p.name}: {p.runbook} {p.from_region} -> {p.to_region} and back")
    cols = ["phase", "fault", "MTTD", "switch", "failback", "users (last window)", "outcome"]
    if p.recovery is not None or p.phase.value == "RECOVERING":
        cols.insert(4, "recovery")
    for col in cols:
        t.add_column(col)
    last = p.samples[-1] if p.samples else None
    users = (
        f"{1 - last.service.error_rate:.0%} ok, p95 {last.service.p95_ms} ms {last.weights}"
        if last
        else "-"
    )

    def child(c: ChildRun | None) -> str:
        if c is None:
            return "-"
        return c.progress.state.value if c.progress else "running"

    row = [
        p.phase.value,
        p.fault.state,
        "-" if p.mttd_s is None else f"{p.mttd_s:.1f}s",
        child(p.switch),
        child(p.failback),
        users,
        p.outcome.value,
    ]
    if "recovery" in cols:
        row.insert(4, child(p.recovery))
    t.add_row(*row)
    return t
