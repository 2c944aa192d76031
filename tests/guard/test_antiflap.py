"""The guard's anti-flap rules, on their own (no Temporal, no sandbox): N of M, the minimum
duration, recovery, cooldown after a switch, flapping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from orchestrator.guard import antiflap
from orchestrator.guard.models import Evaluation, GuardInput, GuardState, GuardStatus
from orchestrator.guard.resolve import resolve_guard
from orchestrator.runbook.loader import load_file
from tests.workflows.helpers import RUNBOOKS

T0 = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)


def _guard(**changes: object) -> GuardInput:
    inp = resolve_guard(load_file(RUNBOOKS / "shop-region-switch.yaml"), "us-east-1",
                        requester="test")  # fmt: skip
    settings = {"interval": timedelta(seconds=5), "confirm_failures": 3, "confirm_of": 4,
                "confirm_for": timedelta(seconds=10), "cooldown": timedelta(minutes=30),
                "flap_window": timedelta(minutes=30), **changes}  # fmt: skip
    return inp.model_copy(update=settings)


def _feed(inp: GuardInput, s: GuardState, marks: str, start: datetime, every: float = 5.0
          ) -> list[bool]:  # fmt: skip
    """Evaluate one mark per interval ('x' failed, '.' passed); what each returned."""
    out = []
    for i, m in enumerate(marks):
        ev = Evaluation(region=s.active, failed=m == "x")
        out.append(antiflap.observe(s, inp, ev, start + timedelta(seconds=i * every)))
    return out


def test_healthy_evaluations_take_no_action() -> None:
    inp = _guard()
    s = GuardState(active="us-east-1")
    assert not any(_feed(inp, s, "." * 500, T0))
    assert s.status == GuardStatus.HEALTHY and s.episode is None and s.history == []
    assert s.evaluations == 500 and len(s.window) == 4


def test_three_of_four_lasting_ten_seconds_confirm() -> None:
    inp = _guard()
    s = GuardState(active="us-east-1")
    # x . x x: 3 of the last 4 at the 4th evaluation, first failure 15 s old: confirmed then.
    assert _feed(inp, s, "x.xx", T0) == [False, False, False, True]
    assert s.status == GuardStatus.CONFIRMED
    ep = s.episode
    assert ep is not None and ep.mttd_s == 15.0 and (ep.failures, ep.evaluations) == (3, 4)


def test_the_minimum_duration_holds_back_a_fast_burst() -> None:
    inp = _guard(confirm_for=timedelta(seconds=30))
    s = GuardState(active="us-east-1")
    # Three failures within 10 s are enough by count, not by duration: suspect until 30 s.
    got = _feed(inp, s, "xxxxxxx", T0)
    assert got.index(True) == 6 and s.episode is not None and s.episode.mttd_s == 30.0
    assert s.status == GuardStatus.CONFIRMED


def test_scattered_failures_never_confirm_and_recovery_ends_the_episode() -> None:
    inp = _guard()
    s = GuardState(active="us-east-1")
    assert not any(_feed(inp, s, "x..x..x..", T0))
    assert s.status == GuardStatus.SUSPECT and s.episode is not None
    _feed(inp, s, "....", T0 + timedelta(minutes=1))
    assert s.episode is None and s.status == GuardStatus.HEALTHY
    assert [e.outcome for e in s.history] == ["recovered"]
    # It failed 3 times in all (as many as confirm): an outage soon after it would be flapping.
    assert s.last_recovery_at == T0 + timedelta(minutes=1, seconds=5)  # the window all green


def test_confirmed_once_per_episode() -> None:
    inp = _guard()
    s = GuardState(active="us-east-1")
    got = _feed(inp, s, "xxxxxxxxxx", T0)
    assert got.count(True) == 1


def test_no_switch_within_the_cooldown_after_one() -> None:
    inp = _guard()
    s = GuardState(active="us-west-2", last_switch_at=T0)
    _feed(inp, s, "xxxx", T0 + timedelta(minutes=5))
    decision, why = antiflap.decide(s, inp, T0 + timedelta(minutes=5, seconds=15))
    assert decision == "cooldown" and "cooldown" in why and "us-west-2" in why
    later = GuardState(active="us-west-2", last_switch_at=T0)
    _feed(inp, later, "xxxx", T0 + timedelta(minutes=40))
    assert antiflap.decide(later, inp, T0 + timedelta(minutes=40, seconds=15))[0] == "switch"


def test_down_up_down_within_the_window_is_flapping() -> None:
    inp = _guard(confirm_for=timedelta(seconds=60))
    s = GuardState(active="us-east-1")
    _feed(inp, s, "xxxx....", T0)  # failed 4 times (too short to confirm), then recovered
    assert s.history[-1].outcome == "recovered" and s.last_recovery_at is not None
    assert _feed(inp, s, "x" * 14, T0 + timedelta(minutes=5)).index(True) == 12  # 60 s
    decision, why = antiflap.decide(s, inp, T0 + timedelta(minutes=6))
    assert decision == "flapping" and "flapping" in why
    # The same outage an hour after the blip is a real one: switch.
    t = GuardState(active="us-east-1")
    _feed(inp, t, "xxxx....", T0)
    _feed(inp, t, "x" * 14, T0 + timedelta(hours=1))
    assert antiflap.decide(t, inp, T0 + timedelta(hours=1, minutes=2)) == (
        "switch",
        "us-east-1 is down: switching to us-west-2",
    )


def test_gates_before_an_irreversible_step_stay_with_a_person() -> None:
    from orchestrator.guard.models import preapprove_reversible

    inp = _guard().switches["us-east-1"]
    approved, left = preapprove_reversible(inp, "guard")
    gates = {s.id: s.gate for s in approved.steps if s.gate is not None}
    assert left and all(gates[g].preapproved_by is None for g in left)
    irreversible = [s.id for s in approved.steps if s.irreversible]
    assert irreversible, "the unplanned shop switch promotes irreversibly"
    assert all(g.preapproved_by == "guard" for sid, g in gates.items() if sid not in left)
