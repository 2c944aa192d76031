"""Who approves a game day's switches: a person (`approval: true`, as many as `approvals`), whose
approval covers the switches' gates, or nobody (`unattended: true`), which covers no gate an
irreversible step depends on; neither is refused by validation."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from orchestrator.gameday import client as gameday_client
from orchestrator.gameday.models import (
    GameDayProgress,
    Outcome,
    cover_by_approval,
    cover_unattended,
)
from orchestrator.runbook.loader import RunbookError, check_text, load_text
from orchestrator.runs import RunProgress, RunState, StepState
from orchestrator.sandbox.control import SandboxControl
from orchestrator.sandbox.manager import SandboxEnv
from tests.gameday.helpers import approve_game_day, child_until, progress_until, shop_gameday
from tests.workflows.helpers import ROOT, RUNBOOKS, run, sandbox_config, worker
from tests.workflows.shop import world

SHOP = (RUNBOOKS / "shop-region-switch.yaml").read_text()
WEEKLY = "gameday:\n  unattended: true\n"  # the weekly game day's opening lines
DISASTER = "    approval: true\n"  # the disaster game day's


def _line_of(text: str, needle: str) -> int:
    return text[: text.index(needle)].count("\n") + 1


def _problems(text: str) -> list[str]:
    with pytest.raises(RunbookError) as exc:
        load_text(text, "rb.yaml")
    return [str(p) for p in exc.value.problems]


# ---------------------------------------------------------------------------- validation
def test_a_game_day_that_does_not_say_who_approves_it_fails_validation_with_the_reason() -> None:
    neither = SHOP.replace(WEEKLY, "gameday:\n")
    line = _line_of(neither, "\ngameday:") + 1
    assert _problems(neither) == [
        f"rb.yaml:{line}:1: gameday: say who approves the game day's switches: `approval: true` "
        "(a person approves the game day, which covers its switches' gates) or `unattended: "
        "true` (nobody does; a gate an irreversible step depends on still waits for a person)"
    ]
    # `approval: false` written out: the problem points at it
    explicit = SHOP.replace(WEEKLY, "gameday:\n  approval: false\n")
    (problem,) = _problems(explicit)
    assert problem.startswith(f"rb.yaml:{_line_of(explicit, '  approval: false')}:3: "
                              "gameday.approval: say who approves")  # fmt: skip
    both = SHOP.replace(WEEKLY, "gameday:\n  unattended: true\n  approval: true\n")
    assert any("gameday.unattended: set approval: true or unattended: true, not both" in p
               for p in _problems(both))  # fmt: skip
    many = SHOP.replace(WEEKLY, "gameday:\n  approval: true\n  approvals: 4\n")
    assert any("gameday.approvals: 4 approvals needed but the runbook names 3 approvers" in p
               for p in _problems(many))  # fmt: skip
    lone = SHOP.replace(WEEKLY, "gameday:\n  unattended: true\n  approvals: 2\n")
    assert any("gameday.approvals: approvals needs approval: true" in p for p in _problems(lone))


def test_validate_warns_about_an_unattended_game_day_and_names_the_gates_it_cannot_cover(
    tmp_path: Path,
) -> None:
    path = tmp_path / "shop.yaml"
    path.write_text(SHOP.replace(DISASTER, "    unattended: true\n"))
    text = path.read_text()
    _, warnings = check_text(text, str(path))
    assert [w.path for w in warnings] == ["gameday.unattended", "gamedays.disaster.unattended"]
    assert (warnings[1].line, warnings[1].column) == (_line_of(text, "    unattended: true"), 5)
    assert warnings[1].message.endswith(
        "gates that still wait for people: approve (unplanned), approve-rejoin (recovery)"
    )
    proc = subprocess.run([sys.executable, "-m", "orchestrator", "validate", str(path)],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[0].startswith(f"warning: {path}:{warnings[0].line}:3: gameday.unattended: runs "
                               "with nobody approving it")  # fmt: skip
    assert lines[1].startswith(f"warning: {path}:{warnings[1].line}:5: gamedays.disaster")
    assert "valid runbook 'shop-region-switch'" in lines[2]
    as_json = subprocess.run([sys.executable, "-m", "orchestrator", "validate", str(path), "-o",
                              "json"], capture_output=True, text=True, timeout=60, cwd=ROOT)  # fmt: skip
    got = json.loads(as_json.stdout)
    assert got["valid"] and [w["path"] for w in got["warnings"]] == [w.path for w in warnings]
    # as shipped: the weekly game day runs unattended (warned), the disaster asks for a person
    _, shipped = check_text(SHOP)
    assert [w.path for w in shipped] == ["gameday.unattended"]


# ------------------------------------------------------------------------- which gates
def test_an_approval_covers_a_gate_only_with_as_many_approvers_as_it_needs() -> None:
    disaster = shop_gameday("disaster").switch  # approve: an irreversible failover behind it
    out, done, left = cover_by_approval(disaster, ["bob"])
    gate = next(s.gate for s in out.steps if s.id == "approve")
    assert (done, left) == (["approve"], [])
    assert gate is not None and (gate.preapproved_by, gate.preapprovers) == ("bob", ["bob"])
    needs_two = shop_gameday("weekly", **{"      approvals: 1\n": "      approvals: 2\n"}).switch
    assert cover_by_approval(needs_two, ["bob"])[1:] == ([], ["approve"])
    # the requester and people not allowed on the gate do not count; one person counts once
    assert cover_by_approval(needs_two, ["alice", "bob", "bob", "mallory"])[1:] == ([], ["approve"])
    out, done, _ = cover_by_approval(needs_two, ["bob", "carol"])
    gate = next(s.gate for s in out.steps if s.id == "approve")
    assert done == ["approve"] and gate is not None and gate.preapprovers == ["bob", "carol"]


def test_unattended_covers_no_gate_an_irreversible_step_depends_on() -> None:
    weekly = shop_gameday("weekly")
    assert weekly.unattended and weekly.approval is None
    _, done, left = cover_unattended(weekly.switch, "game day weekly")
    assert (done, left) == (["approve"], [])
    disaster = shop_gameday("disaster", **{"    approval: true": "    unattended: true"})
    assert disaster.recovery is not None
    out, done, left = cover_unattended(disaster.switch, "game day disaster")
    assert (done, left) == ([], ["approve"])
    assert all(s.gate is None or s.gate.preapproved_by is None for s in out.steps)
    assert cover_unattended(disaster.recovery, "x")[1:] == ([], ["approve-rejoin"])
    assert cover_unattended(disaster.failback, "x")[1:] == (["approve"], [])  # planned
    needs_two = shop_gameday("weekly", **{"      approvals: 1\n": "      approvals: 2\n"})
    assert cover_unattended(needs_two.switch, "x")[1:] == ([], ["approve"])


# ----------------------------------------------------------------- game days, end to end
@pytest.mark.slow
def test_two_people_approve_the_game_day_and_cover_a_gate_that_needs_two(
    fresh: SandboxEnv, control: SandboxControl
) -> None:
    before = world(fresh)
    edits = {
        "  unattended: true": "  approval: true\n  approvals: 2",
        "      approvals: 1\n": "      approvals: 2\n",  # the switch's own gate needs two
    }

    async def scenario() -> GameDayProgress:
        async with worker(sandbox_config(fresh)) as (client, queue):
            inp = shop_gameday(f"t-{uuid.uuid4().hex[:8]}", **edits)
            assert inp.approval is not None and inp.approval.approvals == 2
            h = await gameday_client.start_now(client, inp, queue, "test")
            approved = await approve_game_day(h, "bob", "carol")
            assert approved.approved_by == "bob, carol"
            return await h.result()

    p = run(scenario())
    assert p.outcome == Outcome.SUCCEEDED, p.reason
    for child in (p.switch, p.failback):
        assert child is not None and child.progress is not None
        assert (child.preapproved, child.gates_left) == (["approve"], [])
        votes = [(a.gate, a.approver) for a in child.progress.approvals]
        assert votes == [("approve", "bob"), ("approve", "carol")]  # each one an approval
        assert child.progress.step("approve").detail == "pre-approved by bob, carol"
    assert world(fresh) == before


def test_an_unattended_disaster_waits_for_a_person_at_its_irreversible_gate(
    fresh: SandboxEnv, control: SandboxControl
) -> None:
    """The unplanned switch fails the writer over (irreversible): nobody approved the game day,
    so its gate opens and waits for a person; the game day says so and the switch sends its
    gate_open notice. Cancelled there, everything is put back."""
    before = world(fresh)
    runbook = f"shop-{uuid.uuid4().hex[:6]}"
    edits = {"name: shop-region-switch": f"name: {runbook}",
             "    approval: true": "    unattended: true"}  # fmt: skip

    async def scenario() -> tuple[GameDayProgress, RunProgress, GameDayProgress]:
        async with worker(sandbox_config(fresh)) as (client, queue):
            h = await gameday_client.start_now(client, shop_gameday("disaster", **edits), queue,
                                               "test")  # fmt: skip
            p = await progress_until(h, lambda p: p.switch is not None, 90)
            assert p.switch is not None
            child = await child_until(
                client, p.switch.workflow_id, p.switch.run_id,
                lambda c: c.step("approve").state == StepState.WAITING_APPROVAL
                and any(n.event == "gate_open" for n in c.notifications),
            )  # fmt: skip
            waiting = await gameday_client.progress(h)
            await gameday_client.cancel(h, "carol", "game day over")
            return waiting, child, await h.result()

    waiting, child, p = run(scenario())
    assert waiting.switch is not None
    assert (waiting.switch.preapproved, waiting.switch.gates_left) == ([], ["approve"])
    assert "The switch left approve to people" in waiting.reason
    assert f"failover approve switch-{runbook} --gate approve" in waiting.reason
    assert waiting.fault.state == "injected" and waiting.ended_at is None
    assert "pre-approved" not in child.step("approve").detail
    assert child.approvals == []  # nobody stood in for a person
    sent = [n for n in child.notifications if n.event == "gate_open"]
    assert sent and all(n.ok for n in sent), sent
    assert p.outcome == Outcome.CANCELLED and "stopped by carol" in p.reason
    assert p.switch is not None and p.switch.progress is not None
    assert p.switch.progress.state == RunState.ROLLED_BACK and p.fault.state == "removed"
    assert world(fresh) == before
