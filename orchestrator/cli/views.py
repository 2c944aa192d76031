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

from orchestrator.evacuation.rules import last_done, path_taken
from orchestrator.evacuation.runs import EvacuationProgress, ServiceRecord, ServiceState
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


WIDE = 120  # from this many columns: each step's type and attempts, a game day's DNS weights
TYPED = 100  # from this many columns: each step's type, cut to TYPE_WIDTH
TYPE_WIDTH = 16


def _took(s: Any, now: datetime) -> str:
    if s.started_at is None:
        return ""
    end = s.undo_ended_at or s.ended_at or (now if s.state != StepState.PENDING else None)
    return f"{(end - s.started_at).total_seconds():.1f}s" if end else ""


def _detail(s: Any) -> str:
    err = s.undo_error or s.error
    return f"{err.kind}: {err.message}" if err else (s.undo_note or s.detail or s.phase)


def progress_table(p: RunProgress, width: int | None = None) -> Group:
    """The step table and, when a gate or the operator is awaited, what to do.

    One line per step whatever the width (None: as wide as it takes): cells never wrap, the
    detail is cut to what fits (with an ellipsis). Under `WIDE` columns the attempts are left
    out and the type is cut to `TYPE_WIDTH`; under `TYPED` columns the type is left out too."""
    now = datetime.now(UTC)
    elapsed = ((p.ended_at or now) - p.started_at).total_seconds()
    kind = "" if p.kind == "planned" else f"{p.kind} "
    title = (
        f"{kind}{p.mode} {p.runbook}: {p.from_region} -> {p.to_region}  ·  {p.state.value}  ·  "
        f"{elapsed:.1f}s"
    )
    wide = width is None or width >= WIDE
    typed = wide or (width is not None and width >= TYPED)
    table = Table(title=title, header_style="bold", title_justify="left", width=width,
                  pad_edge=False, collapse_padding=True)  # fmt: skip
    cols = ["step", "type", "state", "attempts", "took", "detail"]
    if not wide:
        cols.remove("attempts")
    if not typed:
        cols.remove("type")
    for col in cols:
        last = col == "detail"  # takes what is left
        table.add_column(col, no_wrap=True, overflow="ellipsis", ratio=1 if last else None,
                         min_width=8 if last else None,
                         max_width=TYPE_WIDTH if col == "type" and not wide else None)  # fmt: skip
    for s in p.steps:
        cells: dict[str, str | Text] = {
            "step": s.id,
            "type": s.type,
            "state": Text(s.state.value, style=STATE_STYLE.get(s.state, "")),
            "attempts": str(s.attempts),
            "took": _took(s, now),
            "detail": _detail(s),
        }
        table.add_row(*(cells[c] for c in cols))
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
    failed = [d for d in p.notifications if not d.ok]
    if p.notifications:
        sent = len(p.notifications) - len(failed)
        note = "; ".join(f"{d.channel} {d.event}: {d.detail}" for d in failed[-3:])
        parts.append(
            Text(
                f"notifications: {sent} delivered, {len(failed)} failed"
                + (f" ({note})" if note else ""),
                style="yellow" if failed else "dim",
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


def _child(c: ChildRun | None) -> str:
    if c is None:
        return "-"
    if c.progress:
        return c.progress.state.value
    return f"running, {', '.join(c.gates_left)} for people" if c.gates_left else "running"


def _users(p: GameDayProgress, wide: bool) -> str:
    """What users saw in the last probe window (with the DNS weights they followed, if wide)."""
    last = p.samples[-1] if p.samples else None
    if last is None:
        return "-"
    p95 = "-" if last.service.p95_ms is None else f"{last.service.p95_ms:g} ms"
    seen = f"{1 - last.service.error_rate:.0%} ok, p95 {p95}"
    return f"{seen} {last.weights}" if wide and last.weights else seen


def gameday_table(p: GameDayProgress, width: int | None = None) -> Table:
    """Phase, fault, MTTD, both switches, what users saw last, outcome: one row from `WIDE`
    columns (None: as wide as it takes), else one line per field (a row would not fit), what
    users saw without the DNS weights. Cells never wrap: what does not fit is cut (with an
    ellipsis)."""
    wide = width is None or width >= WIDE
    title = f"game day {p.name}: {p.runbook} {p.from_region} -> {p.to_region} and back"
    fields = [
        ("phase", p.phase.value),
        ("fault", p.fault.state),
        ("MTTD", seconds(p.mttd_s)),
        ("switch", _child(p.switch)),
        ("failback", _child(p.failback)),
        ("users (last window)", _users(p, wide)),
        ("outcome", p.outcome.value),
    ]
    if p.recovery is not None or p.phase.value == "RECOVERING":
        fields.insert(4, ("recovery", _child(p.recovery)))
    t = Table(title=title, title_justify="left", header_style="bold", width=width,
              pad_edge=False, collapse_padding=True, show_header=wide)  # fmt: skip
    if wide:
        for name, _ in fields:
            t.add_column(name, no_wrap=True, overflow="ellipsis")
        t.add_row(*(value for _, value in fields))
        return t
    t.add_column("field", no_wrap=True, style="bold")
    t.add_column("value", no_wrap=True, overflow="ellipsis", ratio=1)
    for name, value in fields:
        t.add_row(name, value)
    return t


def gameday_changes(seen: dict[str, str], p: GameDayProgress) -> list[str]:
    """A plain line when the game day's phase, fault, a switch or its outcome changed since
    `seen` (updated in place); for output that is not a terminal (no table redrawn)."""
    children = [("switch", p.switch), ("recovery", p.recovery), ("failback", p.failback)]
    parts = [p.phase.value, f"fault {p.fault.state}"]
    parts += [f"{label} {_child(c)}" for label, c in children if c is not None]
    parts.append(p.outcome.value)
    key = " · ".join(parts)
    if seen.get("") == key:
        return []
    seen[""] = key
    mttd = f" · MTTD {seconds(p.mttd_s)}" if p.mttd_s is not None else ""
    return [f"game day {p.name}: {key}{mttd}"]


def notify_note(n: dict[str, Any]) -> str:
    """What to notice about one notification the sandbox's sink received."""
    if n.get("fault"):
        return f"sandbox fault: {n['fault']}"
    parts = []
    if n.get("signature"):
        parts.append(f"signature {n['signature']}")
    if n.get("action"):
        parts.append(f"{n['action']} {n.get('dedup_key') or ''}".strip())
    if not n.get("valid", True):
        parts.append(f"INVALID: {n.get('error', '')}")
    return "; ".join(parts)


def changes(seen: dict[str, str], p: RunProgress) -> list[str]:
    """Plain lines for what changed since `seen` (updated in place): the run's state and each
    step's state or phase; for output that is not a terminal (no table redrawn)."""
    out = []
    if seen.get("") != p.state.value:
        seen[""] = p.state.value
        out.append(f"{p.runbook}: {p.from_region} -> {p.to_region}: {p.state.value}")
    for s in p.steps:
        key = f"{s.state.value} {s.phase}".strip()
        if seen.get(s.id) != key and s.state != StepState.PENDING:
            seen[s.id] = key
            detail = _detail(s)
            took = _took(s, datetime.now(UTC))
            out.append(f"{s.id}: {s.state.value}" + (f" {took}" if took else "")
                       + (f" ({detail})" if detail else ""))  # fmt: skip
    return out


# ----------------------------------------------------------------------------- evacuations
SERVICE_STYLE = {
    ServiceState.SUCCEEDED: "green",
    ServiceState.RUNNING: "cyan",
    ServiceState.ROLLED_BACK: "magenta",
    ServiceState.FAILED_BACK: "magenta",
    ServiceState.FAILING_BACK: "magenta",
    ServiceState.FAILED: "red",
    ServiceState.ROLLBACK_FAILED: "bold red",
    ServiceState.FAILBACK_FAILED: "bold red",
    ServiceState.SKIPPED: "dim",
    ServiceState.PENDING: "dim",
}


def current_step(child: RunProgress | None) -> str:
    """What a running switch does now: its steps under way (an open gate says so)."""
    if child is None:
        return ""
    busy = [
        s.id + (" (waiting for approval)" if s.state == StepState.WAITING_APPROVAL else "")
        + (" (undo)" if s.state == StepState.UNDOING else "")
        for s in child.steps
        if s.state in (StepState.RUNNING, StepState.WAITING_APPROVAL, StepState.UNDOING,
                       StepState.PAUSED)
    ]  # fmt: skip
    return ", ".join(busy) or child.state.value


def service_rto(s: ServiceRecord, now: datetime) -> str:
    """How long a service's switch took (so far, if it runs; its switch back after a slash)."""
    if s.started_at is None:
        return ""
    end = s.result.ended_at if s.result is not None and s.result.ended_at else s.ended_at
    took = f"{((end or now) - s.started_at).total_seconds():.1f}s"
    if s.failback_started_at is not None:
        back = s.failback_ended_at or now
        took += f" / back {(back - s.failback_started_at).total_seconds():.1f}s"
    return took


def evacuation_table(
    p: EvacuationProgress, live: dict[str, RunProgress], wid: str, width: int | None = None
) -> Group:
    """The service table (state, the step each running switch is at, RTO so far, what it waited
    for), open gates with the command to approve, and the critical path taken so far. Cells never
    wrap: what does not fit is cut."""
    now = datetime.now(UTC)
    elapsed = ((p.ended_at or now) - p.started_at).total_seconds()
    kind = "" if p.kind == "planned" else f"{p.kind} "
    to = f" -> {p.to_region}" if p.to_region else ""
    if p.to_auto:
        to = " -> auto (" + ", ".join(f"{s.name}: {s.to_region}" for s in p.services) + ")"
    title = (
        f"{kind}{p.mode} evacuation {p.plan}: {p.from_region}{to}  ·  {p.state.value}  ·  "
        f"{elapsed:.1f}s  ·  {p.failure_policy}, {p.max_parallel} at once"
    )
    table = Table(title=title, header_style="bold", title_justify="left", width=width,
                  pad_edge=False, collapse_padding=True)  # fmt: skip
    for col in ("service", "tier", "state", "step", "took", "waited for", "detail"):
        table.add_column(col, no_wrap=True, overflow="ellipsis",
                         ratio=1 if col == "detail" else None)  # fmt: skip
    for s in p.services:
        child = live.get(s.name)
        state = s.state.value
        if child is not None and child.state == RunState.WAITING_APPROVAL:
            state = "WAITING_APPROVAL"
        detail = s.reason or (child.reason if child is not None else "")
        if s.gates_left and s.state == ServiceState.RUNNING:
            detail = detail or f"its gates left to people: {', '.join(s.gates_left)}"
        table.add_row(s.name, str(s.tier), Text(state, style=SERVICE_STYLE.get(s.state, "")),
                      current_step(child), service_rto(s, now), s.after, detail)  # fmt: skip
    parts: list[Any] = [table]
    if p.reason:
        parts.append(Text(f"stopped going forward: {p.reason}", style="red"))
    for gate in p.open_gates:
        parts.append(Text(f"gate '{gate}' is open: failover approve {wid} --gate {gate} --as NAME",
                          style="yellow"))  # fmt: skip
    for name, child in live.items():
        for gate in child.open_gates:
            parts.append(Text(f"service {name} waits at its gate '{gate}': failover approve {wid} "
                              f"--service {name} --as NAME", style="yellow"))  # fmt: skip
    last = last_done(p.services)
    if last is not None:
        parts.append(Text("critical path so far: " + " -> ".join(
            path_taken(p.services, p.gates, last)), style="dim"))  # fmt: skip
    return Group(*parts)


def evacuation_changes(
    seen: dict[str, str], p: EvacuationProgress, live: dict[str, RunProgress], wid: str
) -> list[str]:
    """A plain line per change of a service's state (a service whose own gate waits for people
    says so, with the command), then of the evacuation's; for output that is not a terminal."""
    out = []
    now = datetime.now(UTC)
    for s in p.services:
        child = live.get(s.name)
        waiting = child.open_gates if child is not None else []
        key = s.state.value + "".join(f" gate:{g}" for g in waiting)
        if s.state != ServiceState.PENDING and seen.get(s.name) != key:
            seen[s.name] = key
            took = service_rto(s, now)
            out.append(f"{s.name}: {s.state.value}" + (f" {took}" if took else "")
                       + (f" ({s.reason})" if s.reason else ""))  # fmt: skip
            for gate in waiting:
                out.append(f"{s.name}: its gate '{gate}' waits for people: failover approve "
                           f"{wid} --service {s.name} --as NAME")  # fmt: skip
    if seen.get("") != p.state.value:
        seen[""] = p.state.value
        out.append(f"evacuation {p.plan}: {p.state.value}")
        for gate in p.open_gates:
            out.append(f"gate '{gate}' is open: failover approve {wid} --gate {gate} --as NAME")
    return out
