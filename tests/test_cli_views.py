"""The live table fits the terminal: one line per step at 80 columns (type and attempts left
out), more at 160; piped output is a plain line per change, never a redrawn table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rich.console import Console, RenderableType

from orchestrator.cli.views import changes, gameday_changes, gameday_table, progress_table
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
from orchestrator.runs import ErrorInfo, RunProgress, RunState, StepKind, StepRecord, StepState
from orchestrator.sandbox.manager import SandboxEnv
from tests.cli import failover
from tests.workflows.helpers import ROOT

T0 = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)


def _progress() -> RunProgress:
    steps = [
        StepRecord(id="scale-up-target-pods", type="k8s_deployment_scale", kind=StepKind.MUTATE,
                   state=StepState.SUCCEEDED, attempts=1, started_at=T0,
                   ended_at=T0 + timedelta(seconds=2), detail="checkout, cart, catalog: 3/3 "
                   "replicas ready in us-west-2 after a rollout that took a while"),
        StepRecord(id="aurora-switchover", type="aurora_global_switchover",
                   kind=StepKind.MUTATE, state=StepState.FAILED, attempts=3, started_at=T0,
                   ended_at=T0 + timedelta(seconds=9),
                   error=ErrorInfo(kind="InvalidGlobalClusterStateFault", message="the global "
                                   "cluster shop-global is switching over already; try later")),
        StepRecord(id="approve", type="approval", kind=StepKind.GATE,
                   state=StepState.WAITING_APPROVAL, phase="waiting for approval"),
        StepRecord(id="dns-full", type="route53_weighted_records", kind=StepKind.MUTATE),
    ]  # fmt: skip
    return RunProgress(runbook="shop-region-switch", from_region="us-east-1",
                       to_region="us-west-2", mode="drill", requester="alice",
                       state=RunState.WAITING_APPROVAL, started_at=T0, steps=steps)  # fmt: skip


def _lines(renderable: RenderableType, width: int) -> list[str]:
    console = Console(width=width, record=True, color_system=None, force_terminal=False)
    console.print(renderable)
    return console.export_text().splitlines()


def _render(width: int) -> list[str]:
    return _lines(progress_table(_progress().model_copy(update={"open_gates": []}), width), width)


def _step_lines(lines: list[str]) -> dict[str, list[str]]:
    return {sid: [ln for ln in lines if sid in ln] for sid in
            ("scale-up-target-pods", "aurora-switchover", "approve ", "dns-full")}  # fmt: skip


def test_eighty_columns_one_line_per_step() -> None:
    lines = _render(80)
    assert all(len(ln) <= 80 for ln in lines)
    for sid, found in _step_lines(lines).items():
        assert len(found) == 1, (sid, lines)
    row = _step_lines(lines)["aurora-switchover"][0]
    assert "FAILED" in row and "9.0s" in row and "InvalidGlobal" in row
    assert "aurora_global_switchover" not in row  # the type is left out at 80 columns
    assert "…" in _step_lines(lines)["scale-up-target-pods"][0]  # the detail is cut, marked


def test_one_hundred_sixty_columns_show_the_type_and_more_detail() -> None:
    lines = _render(160)
    rows = _step_lines(lines)
    assert all(len(found) == 1 for found in rows.values()), lines
    assert "aurora_global_switchover" in rows["aurora-switchover"][0]
    assert "the global cluster shop-global" in rows["aurora-switchover"][0]  # more of it
    assert "attempts" in lines[1] + lines[2]  # the header (under the title)
    assert len(rows["aurora-switchover"][0]) > len(_step_lines(_render(80))["aurora-switchover"][0])


def test_one_hundred_columns_cut_the_type() -> None:
    lines = _render(100)
    rows = _step_lines(lines)
    assert all(len(found) == 1 for found in rows.values()), lines
    assert all(len(ln) <= 100 for ln in lines)
    assert "aurora_global_s…" in rows["aurora-switchover"][0]  # abbreviated, marked
    assert "attempts" not in "".join(lines)


def _gameday() -> GameDayProgress:
    child = RunProgress(runbook="shop-region-switch", from_region="us-east-1",
                        to_region="us-west-2", mode="gameday", requester="alice",
                        state=RunState.ROLLBACK_FAILED, started_at=T0, steps=[])  # fmt: skip
    sample = ProbeSample(window_s=5, service=ProbeStats(requests=100, errors=3, p95_ms=120),
                         weights={"us-east-1": 0, "us-west-2": 100})  # fmt: skip
    return GameDayProgress(name="weekly-shop", runbook="shop-region-switch",
                           from_region="us-east-1", to_region="us-west-2", requester="alice",
                           phase=Phase.VERIFYING_FAILBACK, outcome=Outcome.CLEANUP_FAILED,
                           started_at=T0, fault=FaultRecord(state="not injected"), mttd_s=12.5,
                           switch=ChildRun(workflow_id="s", progress=child),
                           failback=ChildRun(workflow_id="f", progress=child),
                           samples=[sample], slo=SloTarget())  # fmt: skip


def test_game_day_fits_80_columns_and_is_one_row_at_160() -> None:
    narrow = _lines(gameday_table(_gameday(), 80), 80)
    assert all(len(ln) <= 80 for ln in narrow), narrow
    for field, value in (("phase", "VERIFYING_FAILBACK"), ("fault", "not injected"),
                         ("MTTD", "12.5s"), ("switch", "ROLLBACK_FAILED"),
                         ("failback", "ROLLBACK_FAILED"), ("users", "97% ok, p95 120 ms"),
                         ("outcome", "CLEANUP_FAILED")):  # fmt: skip
        found = [ln for ln in narrow if ln.startswith(f"│{field}")]
        assert len(found) == 1 and value in found[0], (field, narrow)  # one line per field
    assert "us-west-2': 100" not in "".join(narrow)  # the weights are left out
    wide = _lines(gameday_table(_gameday(), 160), 160)
    rows = [ln for ln in wide if "VERIFYING_FAILBACK" in ln]
    assert len(rows) == 1 and all(len(ln) <= 160 for ln in wide), wide
    assert "CLEANUP_FAILED" in rows[0] and "12.5s" in rows[0]
    assert "97% ok, p95 120 ms {'us-east-1': 0, 'us-west-2': 100}" in rows[0]


def test_piped_game_day_is_a_line_per_change() -> None:
    seen: dict[str, str] = {}
    p = _gameday()
    first = gameday_changes(seen, p)
    assert first == [
        "game day weekly-shop: VERIFYING_FAILBACK · fault not injected · switch ROLLBACK_FAILED "
        "· failback ROLLBACK_FAILED · CLEANUP_FAILED · MTTD 12.5s"
    ]
    assert gameday_changes(seen, p) == []
    p.fault.state = "failed"
    assert gameday_changes(seen, p)[0].startswith("game day weekly-shop: VERIFYING_FAILBACK · "
                                                  "fault failed")  # fmt: skip


def test_piped_output_is_a_line_per_change() -> None:
    seen: dict[str, str] = {}
    p = _progress()
    first = changes(seen, p)
    assert first[0] == "shop-region-switch: us-east-1 -> us-west-2: WAITING_APPROVAL"
    assert any(ln.startswith("aurora-switchover: FAILED 9.0s (InvalidGlobal") for ln in first)
    assert not any(ln.startswith("dns-full") for ln in first)  # pending: nothing to say yet
    assert changes(seen, p) == []  # nothing changed, nothing printed
    p.steps[2].state = StepState.SUCCEEDED
    p.steps[2].phase = ""
    assert changes(seen, p) == ["approve: SUCCEEDED"]
    assert all("\x1b" not in ln for ln in first)


RUNBOOK = str(ROOT / "runbooks/maintenance-drill.yaml")
STEPS = ("freeze-writes", "writes-fenced", "source-maintenance-flag", "approve",
         "target-maintenance-banner", "target-maintenance-flag", "settle",
         "target-shows-maintenance")  # fmt: skip


def test_a_piped_drill_prints_lines_and_status_fits_80_columns(fresh: SandboxEnv) -> None:
    """Through the command (stderr is not a terminal under the test runner): plain lines, no
    cursor movement; then `status` at COLUMNS=80 has one line per step."""
    r = failover(fresh, "drill", RUNBOOK, "--from", "us-east-1", "--to", "us-west-2",
                 "--auto-approve", "bob", COLUMNS="80")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "\x1b" not in r.stderr  # no ANSI: no cursor movement, no redrawn table
    lines = r.stderr.splitlines()
    assert "maintenance-drill: us-east-1 -> us-west-2: RUNNING" in lines
    assert "maintenance-drill: us-east-1 -> us-west-2: SUCCEEDED" in lines
    assert any(ln.startswith("approve: SUCCEEDED") for ln in lines), lines
    assert not any(ln.startswith(("┏", "┃", "│")) for ln in lines), lines  # no table drawn
    status = failover(fresh, "status", "maintenance-drill", COLUMNS="80")
    assert status.returncode == 0, status.stderr
    table = status.stdout.splitlines()
    assert all(len(ln) <= 80 for ln in table), table
    for sid in STEPS:  # one line each, none wrapped
        found = [ln for ln in table if f"│{sid} " in ln or f"│ {sid} " in ln]
        assert len(found) == 1 and "SUCCEEDED" in found[0], (sid, table)
    assert len([ln for ln in table if ln.startswith("│")]) == len(STEPS)  # no continuation
