"""What the Temporal Web UI shows of a run in its "current details" (Markdown): where the run is,
what it waits for, and the exact Update payload that answers it.

Pure rendering, shared by the workflows and unit-tested on its own.
"""

from __future__ import annotations

from collections.abc import Mapping

from orchestrator.approvals import GateBook
from orchestrator.evacuation.rules import last_done, path_taken
from orchestrator.evacuation.runs import EvacuationProgress
from orchestrator.gameday.models import ChildRun, GameDayProgress, ProbeStats
from orchestrator.runs import RunProgress, StepRecord, StepState

DETAIL_ROWS = 40  # rows of the step table shown in the Temporal UI's current details


def switch_details(
    p: RunProgress, gates: GateBook, awaiting: Mapping[str, str], run: str = "RUN"
) -> str:
    """A switch: state, counts, why it rolls back, open gates and waiting steps (with the
    payload to send), and the step table (the steps not done yet, when there are many). `run`:
    its workflow id, in the commands shown."""
    counts: dict[str, int] = {}
    shown: list[StepRecord] = []
    for rec in p.steps:
        counts[rec.state.value] = counts.get(rec.state.value, 0) + 1
        if rec.state not in (StepState.PENDING, StepState.SUCCEEDED) or len(p.steps) <= 30:
            shown.append(rec)
    lines = [
        f"**{p.state.value}** · {p.mode} of `{p.runbook}`: {p.from_region} → "
        f"{p.to_region} · requested by {p.requester}",
        "",
        " · ".join(f"{k} {v}" for k, v in sorted(counts.items())),
    ]
    if p.reason:
        lines += ["", f"Rolling back because: {p.reason}"]
    for sid in gates.open:
        who = ", ".join(gates.allowed(sid)) or "anyone but the requester"
        got = len(gates.votes.get(sid, []))
        spec = gates.gates[sid]
        note = gates.notes.get(sid)
        lines += [
            "",
            f"**Gate `{sid}` is open** ({got}/{spec.approvals} approvals; {who}). {spec.message}"
            + (f" **{note}**" if note else ""),
            _decision_payload(run, sid, gates.verifier is not None),
        ]
    for sid, why in awaiting.items():
        lines += [
            "",
            f"**Step `{sid}` waits for the operator** ({why}): send Update **operator** with "
            f'`{{"action": "retry", "by": "YOUR-NAME", "reason": "...", "step": "{sid}"}}`',
        ]
    lines += ["", "| step | state | attempts | detail |", "|---|---|---|---|"]
    for rec in shown[:DETAIL_ROWS]:
        err = rec.undo_error or rec.error
        detail = (err.message if err else "") or rec.detail or rec.phase
        detail = " ".join(detail.replace("|", "/").split())[:100]
        lines.append(f"| {rec.id} | {rec.state.value} | {rec.attempts} | {detail} |")
    if len(shown) > DETAIL_ROWS:
        lines.append(f"| … {len(shown) - DETAIL_ROWS} more | | | |")
    return "\n".join(lines)


def _decision_payload(run: str, gate: str, signed: bool) -> str:
    """How to decide a gate from the UI: the Update and its JSON payload (signed: with the token
    that `failover approve --print-token` prints)."""
    if not signed:
        return (
            f'Send Update **approve** with `{{"approver": "YOUR-NAME", "comment": "...", '
            f'"gate": "{gate}"}}` (or **reject**).'
        )
    return (
        f"Decisions are signed (approval_auth: signed): run `failover approve {run} --gate {gate} "
        f'--as YOUR-NAME --comment "..." --key ~/.ssh/id_ed25519 --print-token`, then send Update '
        f'**approve** with `{{"approver": "YOUR-NAME", "comment": "... (the same)", "gate": '
        f'"{gate}", "signature": "TOKEN"}}` (or **reject**: `failover reject ... --print-token`).'
    )


def _window(stats: ProbeStats) -> str:
    if not stats.requests:
        return "no request could be sent"
    p95 = "-" if stats.p95_ms is None else f"{stats.p95_ms:g} ms"
    return f"{1 - stats.error_rate:.0%} ok, p95 {p95}"


def gameday_details(p: GameDayProgress) -> str:
    """A game day: phase, fault, MTTD, both switches and what users saw last."""
    last = p.samples[-1] if p.samples else None

    def child(c: ChildRun | None) -> str:
        if c is None:
            return "-"
        state = c.progress.state.value if c.progress else "running"
        return f"{state} (`{c.workflow_id}`)"

    rows = [
        ("phase", p.phase.value),
        ("fault", f"{p.fault.state}: {p.fault_description}"),
        ("MTTD", "-" if p.mttd_s is None else f"{p.mttd_s:.1f}s"),
        ("switch", child(p.switch)),
        *([("recovery", child(p.recovery))] if p.recovery is not None else []),
        ("failback", child(p.failback)),
        ("users, last window", _window(last.service) if last else "-"),
    ]
    text = f"**game day {p.name}**: {p.runbook} {p.from_region} → {p.to_region} and back\n\n"
    text += "| | |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)
    if p.reason:
        text += f"\n\n{p.reason}"
    return text


def evacuation_details(p: EvacuationProgress) -> str:
    """An evacuation: state, why it stops, its open gate (with the payload to send), the service
    table (each service's switch is a workflow of its own: its page has the steps) and the
    critical path taken so far."""
    what = "" if p.kind == "planned" else f"{p.kind} "
    to = f" → {p.to_region}" if p.to_region else ""
    if p.to_auto:
        to = " → auto (" + ", ".join(f"{s.name}: {s.to_region}" for s in p.services) + ")"
    lines = [
        f"**{p.state.value}** · {what}{p.mode} evacuation `{p.plan}` of {p.from_region}{to} · "
        f"requested by {p.requester} · failure policy {p.failure_policy}, "
        f"{p.max_parallel} at once",
    ]
    if p.reason:
        lines += ["", f"Stopped going forward: {p.reason}"]
    for gate in p.open_gates:
        lines += [
            "",
            f"**Gate `{gate}` is open**: its approval stands in for the gates of the services it "
            "covers, where they allow it.",
            f'Send Update **approve** with `{{"approver": "YOUR-NAME", "comment": "...", '
            f'"gate": "{gate}"}}` (or **reject**: everything switched is switched back).',
        ]
    lines += [
        "",
        "| service | tier | state | switch | waited for | detail |",
        "|---|---|---|---|---|---|",
    ]
    for s in p.services[:DETAIL_ROWS]:
        wid = s.failback_workflow_id or s.workflow_id
        detail = " ".join(s.reason.replace("|", "/").split())[:100]
        lines.append(
            f"| {s.name} | {s.tier} | {s.state.value} | {f'`{wid}`' if wid else ''} | "
            f"{s.after or ''} | {detail} |"
        )
    last = last_done(p.services)
    if last is not None:
        lines += ["", "Critical path so far: " + " → ".join(path_taken(p.services, p.gates, last))]
    return "\n".join(lines)
