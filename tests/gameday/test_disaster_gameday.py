"""The disaster game day (`gamedays.disaster` of the shop runbook): the whole source region down,
the unplanned switch, the recovery of the region once it is back, the planned failback.

Each test runs the runbook under a name of its own: the work a region owes is looked up by
runbook name, so a game day left unrecovered here cannot refuse another test's switch.
"""

from __future__ import annotations

import uuid

import pytest

from orchestrator.gameday import client as gameday_client
from orchestrator.gameday import report as gd_report
from orchestrator.gameday.models import GameDayProgress, Outcome
from orchestrator.runbook.loader import load_text
from orchestrator.runbook.resolve import resolve
from orchestrator.runs import RunState
from orchestrator.sandbox.control import SandboxControl
from orchestrator.sandbox.faults import FaultRule
from orchestrator.sandbox.manager import SandboxEnv
from tests.gameday.helpers import approve_game_day, shop_gameday
from tests.workflows.helpers import RUNBOOKS, drive, run, sandbox_config, start, worker
from tests.workflows.shop import world


def _game_day(env: SandboxEnv, runbook: str) -> GameDayProgress:
    async def scenario() -> GameDayProgress:
        async with worker(sandbox_config(env)) as (client, queue):
            inp = shop_gameday("disaster", **{"name: shop-region-switch": f"name: {runbook}"})
            h = await gameday_client.start_now(client, inp, queue, "test")
            approved = await approve_game_day(h, "bob")  # the disaster asks for a person
            assert approved.approved_by == "bob"
            out: GameDayProgress = await h.result()
            return out

    return run(scenario())


def _outages(control: SandboxControl) -> dict[str, str | None]:
    return {r: o["outage"] for r, o in control.outages().items()}


@pytest.mark.slow
def test_disaster_game_day_fails_over_recovers_and_fails_back(
    fresh: SandboxEnv, control: SandboxControl
) -> None:
    before = world(fresh)
    p = _game_day(fresh, f"shop-{uuid.uuid4().hex[:6]}")
    assert p.outcome == Outcome.SUCCEEDED, p.reason
    r = gd_report.build(p, "gameday-disaster")
    assert r.fault_state == "removed" and "source region stops answering" in r.fault
    assert r.mttd_s is not None and "the source region's app" in (r.detected_by or "")
    assert r.switch is not None and r.switch.kind == "unplanned" and r.switch.outcome == "SUCCEEDED"
    assert r.recovery is not None and r.recovery.kind == "recovery"
    assert (r.recovery.outcome, r.recovery.lost_writes) == ("SUCCEEDED", 0)
    assert r.failback is not None and r.failback.kind == "planned"
    assert r.failback.outcome == "SUCCEEDED"
    # bob's approval of the game day covered every gate, the irreversible failover's included
    for child in (p.switch, p.recovery, p.failback):
        assert child is not None and child.gates_left == [] and child.progress is not None
        gates = [a for a in child.progress.approvals if a.decision == "approve"]
        assert gates and all(a.approver == "bob" for a in gates), gates
    # Users were sent to the target (DNS, through ARC) while the source was down.
    assert any(pt.weights == {"us-west-2": 10} for pt in r.timeline)
    md = gd_report.markdown(r)
    assert "switch (unplanned) us-east-1 → us-west-2" in md and "recovery of us-east-1" in md
    assert _outages(control) == {"us-east-1": None, "us-west-2": None}
    assert world(fresh) == before


@pytest.mark.slow
def test_a_recovery_that_rolls_back_stops_the_game_day_with_the_way_out(
    fresh: SandboxEnv, control: SandboxControl
) -> None:
    """The unplanned switch completed, the recovery did not: no failback (the region still
    owes its work), the fault is gone, and the reason says what to run."""
    name = f"shop-{uuid.uuid4().hex[:6]}"
    control.add_fault(FaultRule(target="aws:rds:CreateDBClusterSnapshot", error="AccessDenied",
                                count=None))  # fmt: skip
    p = _game_day(fresh, name)
    assert p.outcome == Outcome.FAILED
    assert p.recovery is not None and p.recovery.progress is not None
    assert p.recovery.progress.state == RunState.ROLLED_BACK
    assert p.failback is None
    assert f"failover recover {name} --region us-east-1" in p.reason
    assert p.fault.state == "removed" and _outages(control) == {
        "us-east-1": None,
        "us-west-2": None,
    }

    # Which is what an operator then does: the recovery, then the planned failback.
    control.clear_faults()
    rb = load_text((RUNBOOKS / "shop-region-switch.yaml").read_text()
                   .replace("name: shop-region-switch", f"name: {name}"))  # fmt: skip

    async def by_hand() -> list[RunState]:
        async with worker(sandbox_config(fresh)) as (client, queue):
            out = []
            for frm, to, kind in (("us-east-1", "us-west-2", "recovery"),
                                  ("us-west-2", "us-east-1", "planned")):  # fmt: skip
                inp = resolve(rb, frm, to, requester="carol", mode="drill", kind=kind)  # type: ignore[arg-type]
                out.append((await drive(await start(client, queue, inp), timeout=120)).state)
            return out

    assert run(by_hand()) == [RunState.SUCCEEDED, RunState.SUCCEEDED]
