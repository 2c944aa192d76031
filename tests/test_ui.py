"""The Temporal UI's "current details" of a run on their own (`orchestrator.ui`).

Tests `switch_details` (state, counts, why it rolls back, open gates and waiting steps with the
exact Update payload to send, the step table and how it is cut when a run has many steps) and
`gameday_details` (phase, fault, MTTD, both switches, the last probe window). Pure rendering.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

from orchestrator.approvals import GateBook
from orchestrator.gameday.models import (
    ChildRun,
    FaultRecord,
    GameDayProgress,
    Outcome,
    Phase,
    ProbeSample,
    ProbeStats,
    SloTarget,
)
from orchestrator.runs import (
    Decision,
    ErrorInfo,
    GateSpec,
    RunProgress,
    RunState,
    StepKind,
    StepRecord,
    StepState,
)
from orchestrator.ui import DETAIL_ROWS, gameday_details, switch_details

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def step(sid: str, state: StepState = StepState.PENDING, **kw: object) -> StepRecord:
    fields = {"id": sid, "type": "t", "kind": StepKind.CHECK, "state": state}
    return StepRecord.model_validate({**fields, **kw})


def progress(steps: list[StepRecord], **kw: object) -> RunProgress:
    fields = {
        "runbook": "shop",
        "from_region": "east",
        "to_region": "west",
        "mode": "drill",
        "requester": "rita",
        "state": RunState.RUNNING,
        "started_at": T0,
        "steps": steps,
    }
    return RunProgress.model_validate({**fields, **kw})


def rows(text: str) -> list[list[str]]:
    """The step table's body rows, as cells."""
    body = text.split("|---|---|---|---|\n", 1)[1].splitlines()
    return [[c.strip() for c in line.strip("|").split("|")] for line in body]


def payloads(text: str) -> list[dict[str, object]]:
    return [json.loads(m) for m in re.findall(r"`(\{.*?\})`", text)]


# ------------------------------------------------------------------------------ switches
def test_switch_details_gate_waiting_step_and_table() -> None:
    steps = [
        step("preflight", state=StepState.SUCCEEDED, attempts=1, detail="all good"),
        step("approve", state=StepState.WAITING_APPROVAL, phase="waiting for approval"),
        step("db", state=StepState.PAUSED, attempts=3, error=ErrorInfo(kind="X", message="boom")),
        step("dns"),
    ]
    gates = GateBook("rita", ["ann", "bob"], {"approve": GateSpec(approvals=2, message="Go?")})
    gates.opened("approve")
    gates.approve("approve", Decision(approver="ann"), T0)
    text = switch_details(progress(steps, state=RunState.WAITING_APPROVAL), gates, {"db": "paused"})
    assert text.startswith(
        "**WAITING_APPROVAL** · drill of `shop`: east → west · requested by rita\n\n"
        "PAUSED 1 · PENDING 1 · SUCCEEDED 1 · WAITING_APPROVAL 1\n"
    )
    assert "**Gate `approve` is open** (1/2 approvals; ann, bob). Go?" in text
    assert "**Step `db` waits for the operator** (paused)" in text
    assert payloads(text) == [
        {"approver": "YOUR-NAME", "comment": "...", "gate": "approve"},
        {"action": "retry", "by": "YOUR-NAME", "reason": "...", "step": "db"},
    ]
    assert "Rolling back" not in text
    assert rows(text) == [
        ["preflight", "SUCCEEDED", "1", "all good"],
        ["approve", "WAITING_APPROVAL", "0", "waiting for approval"],
        ["db", "PAUSED", "3", "boom"],
        ["dns", "PENDING", "0", ""],
    ]


def test_switch_details_anyone_may_approve_and_undo_error_first() -> None:
    gates = GateBook("rita", [], {"g": GateSpec()})
    gates.opened("g")
    rec = step(
        "db",
        state=StepState.UNDO_FAILED,
        error=ErrorInfo(kind="X", message="apply failed"),
        undo_error=ErrorInfo(kind="Y", message="undo failed"),
    )
    text = switch_details(progress([rec]), gates, {})
    assert "(0/1 approvals; anyone but the requester)" in text
    assert rows(text) == [["db", "UNDO_FAILED", "0", "undo failed"]]


def test_switch_details_rolling_back_reason() -> None:
    p = progress([step("a")], state=RunState.ROLLING_BACK, reason="db failed: boom")
    text = switch_details(p, GateBook("rita", [], {}), {"a": "undo"})
    assert "\n\nRolling back because: db failed: boom\n" in text
    assert "**Step `a` waits for the operator** (undo)" in text
    assert "Gate" not in text


def test_switch_details_pipe_in_a_detail_and_long_details() -> None:
    steps = [step("a", detail="x | y || z"), step("b", detail="w" * 150)]
    text = switch_details(progress(steps), GateBook("rita", [], {}), {})
    assert rows(text) == [["a", "PENDING", "0", "x / y // z"], ["b", "PENDING", "0", "w" * 100]]


def test_switch_details_many_steps_show_the_ones_not_done() -> None:
    states = [StepState.SUCCEEDED] * 20 + [StepState.PENDING] * 20 + [StepState.RUNNING] * 3
    text = switch_details(
        progress([step(f"s{i}", state=s) for i, s in enumerate(states)]), GateBook("r", [], {}), {}
    )
    assert [r[0] for r in rows(text)] == ["s40", "s41", "s42"]
    assert "PENDING 20 · RUNNING 3 · SUCCEEDED 20" in text


def test_switch_details_thirty_steps_are_all_shown() -> None:
    text = switch_details(
        progress([step(f"s{i}", state=StepState.SUCCEEDED) for i in range(30)]),
        GateBook("r", [], {}),
        {},
    )
    assert len(rows(text)) == 30


def test_switch_details_at_most_detail_rows_then_more() -> None:
    extra = 7
    steps = [step(f"ok{i}", state=StepState.SUCCEEDED) for i in range(10)]
    steps += [step(f"f{i}", state=StepState.FAILED) for i in range(DETAIL_ROWS + extra)]
    table = rows(switch_details(progress(steps), GateBook("r", [], {}), {}))
    assert len(table) == DETAIL_ROWS + 1
    assert [r[0] for r in table[:-1]] == [f"f{i}" for i in range(DETAIL_ROWS)]
    assert table[-1] == [f"… {extra} more", "", "", ""]


# ------------------------------------------------------------------------------ game days
def gameday(**kw: object) -> GameDayProgress:
    fields = {
        "name": "dr",
        "runbook": "shop",
        "from_region": "east",
        "to_region": "west",
        "requester": "rita",
        "phase": Phase.SWITCHING,
        "outcome": Outcome.RUNNING,
        "started_at": T0,
        "slo": SloTarget(),
    }
    return GameDayProgress.model_validate({**fields, **kw})


def test_gameday_details_rows() -> None:
    switch = ChildRun(
        workflow_id="switch-shop",
        progress=progress([step("a")], state=RunState.SUCCEEDED),
    )
    p = gameday(
        fault=FaultRecord(state="injected"),
        fault_description="stop the east database",
        mttd_s=12.345,
        switch=switch,
        failback=ChildRun(workflow_id="switch-shop-back"),
        samples=[
            ProbeSample(window_s=5, service=ProbeStats()),
            ProbeSample(window_s=5, service=ProbeStats(requests=20, errors=1, p95_ms=120.5)),
        ],
        reason="stop condition tripped",
    )
    assert gameday_details(p) == (
        "**game day dr**: shop east → west and back\n\n"
        "| | |\n|---|---|\n"
        "| phase | SWITCHING |\n"
        "| fault | injected: stop the east database |\n"
        "| MTTD | 12.3s |\n"
        "| switch | SUCCEEDED (`switch-shop`) |\n"
        "| failback | running (`switch-shop-back`) |\n"
        "| users, last window | 95% ok, p95 120.5 ms |\n\n"
        "stop condition tripped"
    )


def test_gameday_details_before_anything_happened() -> None:
    text = gameday_details(gameday(phase=Phase.PREFLIGHT))
    assert "| phase | PREFLIGHT |" in text
    assert "| fault | pending:  |" in text
    assert "| MTTD | - |" in text
    assert "| switch | - |\n| failback | - |\n| users, last window | - |" in text
    assert text.endswith("| users, last window | - |")  # no reason


def test_switch_details_a_multiline_error_stays_in_its_row() -> None:
    err = ErrorInfo(kind="Boom", message="boom\nTraceback: line 2")
    text = switch_details(
        progress([step("db", StepState.FAILED, error=err)]), GateBook("r", [], {}), {}
    )
    assert "| db | FAILED | 0 | boom Traceback: line 2 |" in text


def test_gameday_details_last_window_without_latency_or_requests() -> None:
    unmeasured = ProbeSample(window_s=5, service=ProbeStats(requests=4, errors=1))
    assert "| users, last window | 75% ok, p95 - |" in gameday_details(
        gameday(samples=[unmeasured])
    )
    nothing = ProbeSample(window_s=5, service=ProbeStats())
    text = gameday_details(gameday(samples=[nothing]))
    assert "| users, last window | no request could be sent |" in text
