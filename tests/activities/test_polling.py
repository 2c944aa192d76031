"""Verifications are polled soon at first, then less and less often (issue 17): a quick
operation is seen done quickly, a slow one is seen done at most a small share of its time late,
and the pause never exceeds the type's `poll_interval`. On a fake clock: no sandbox."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from activities import base, steps
from activities.aws import route53
from activities.base import (
    FIRST_POLL,
    POLL_SHARE,
    QUIET_LONGEST,
    QUIET_SHARE,
    Check,
    StepContext,
    poll_pause,
)
from activities.errors import StepError
from activities.registry import STEP_TYPES
from orchestrator.config import Config
from orchestrator.sandbox.latency import LatencyModel

TESTS_TIME_SCALE = 0.01  # tests/conftest.py's sandbox


class FakeClock:
    """time.monotonic and time.sleep of the polling loops: sleeping moves the clock."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.pauses: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeClock]:
    fake = FakeClock()
    for module in (base, steps):
        monkeypatch.setattr(module, "time", SimpleNamespace(monotonic=fake.monotonic,
                                                            sleep=fake.sleep))  # fmt: skip
    yield fake


def _ctx() -> StepContext:
    from activities.clients import Clients

    return StepContext("run", "step", "us-east-1", "us-west-2", None, "drill", Clients(Config()))


def test_first_poll_is_well_under_the_shortest_modelled_operation() -> None:
    model = LatencyModel(time_scale=TESTS_TIME_SCALE)
    shortest = min(model.seconds(f) for f in LatencyModel.model_fields if f != "time_scale")
    assert shortest / 2 >= FIRST_POLL
    assert route53.INSYNC_FIRST_POLL <= 0.2  # Route 53's API: 5 requests a second per account
    # Pauses grow with the wait, from FIRST_POLL to the type's poll_interval, never beyond.
    pauses = [poll_pause(t / 10, 0.5) for t in range(0, 200)]
    assert pauses[0] == FIRST_POLL and pauses[-1] == 0.5
    assert pauses == sorted(pauses)
    for waited in (0.0, 0.5, 2.0, 6.0, 30.0, 600.0):
        for longest in {stype.poll_interval for stype in STEP_TYPES.values()}:
            assert poll_pause(waited, longest) <= max(FIRST_POLL, POLL_SHARE * waited) + 1e-12
            assert poll_pause(waited, longest) <= longest


@pytest.mark.parametrize("ready_at", [0.03, 0.4, 2.0, 6.0, 30.0])
def test_a_wait_sees_the_condition_soon_after_it_holds(clock: FakeClock, ready_at: float) -> None:
    started = clock.now
    polls = 0

    def check() -> tuple[bool, str]:
        nonlocal polls
        polls += 1
        return clock.now - started >= ready_at, "not yet"

    _ctx().wait("thing", check, interval=0.5)
    late = clock.now - started - ready_at
    assert 0 <= late <= max(FIRST_POLL, POLL_SHARE * ready_at) + 1e-9
    assert clock.pauses == sorted(clock.pauses) and max(clock.pauses) <= 0.5
    # Some more polls than every 0.5 s (all in the first 10 s), no flood.
    assert polls <= ready_at / 0.5 + 70


def test_a_wait_with_a_slower_first_poll_and_its_timeout(clock: FakeClock) -> None:
    started = clock.now
    _ctx().wait("change", lambda: (clock.now - started >= 1.0, "PENDING"), 0.5, first=0.2)
    assert clock.pauses[0] == 0.2 and min(clock.pauses) == 0.2
    with pytest.raises(StepError) as err:
        _ctx().wait("change", lambda: (False, "PENDING"), 0.5, timeout=3.0)
    assert err.value.kind == "VerifyTimeout" and "still PENDING" in err.value.message


def test_the_engine_polls_verify_the_same_way(clock: FakeClock) -> None:
    """step.apply's loop (`_until_holds`): soon at first, growing, capped at poll_interval."""
    stype = STEP_TYPES["k8s_scale"]
    call: Any = SimpleNamespace(step=SimpleNamespace(id="pods", type="k8s_scale",
                                                     timeout=timedelta(minutes=10)))  # fmt: skip
    started = clock.now

    def verify() -> Check:
        return Check(ok=clock.now - started >= 2.0, detail="1/3 ready")

    acts = steps.StepActivities(None)  # type: ignore[arg-type]
    result = acts._until_holds(call, stype, _ctx(), verify)
    assert result.ok
    assert clock.now - started - 2.0 <= POLL_SHARE * 2.0 + 1e-9  # seen 0.1 s late at most
    assert clock.pauses[0] == FIRST_POLL and max(clock.pauses) <= stype.poll_interval


def _ready_after(clock: FakeClock, ready_at: float) -> tuple[Any, list[float]]:
    """A check that holds `ready_at` seconds after its first poll, and when it was polled."""
    polled: list[float] = []

    def check() -> tuple[bool, str]:
        polled.append(clock.now)
        return clock.now - polled[0] >= ready_at, "PENDING"

    return check, polled


@pytest.mark.parametrize("ready_at", [3.0, 14.9, 15.0, 15.15, 16.0, 40.0])
def test_a_wait_that_expects_its_condition_polls_it_sparsely_until_then(
    clock: FakeClock, ready_at: float
) -> None:
    expected, first = 15.1, 0.2  # the zone's changes recently took 15.1 s
    check, polled = _ready_after(clock, ready_at)
    took = _ctx().wait("change", check, 0.5, first=first, expected=expected)
    assert took == clock.now - polled[0] >= ready_at
    late = took - ready_at
    quiet = min(QUIET_LONGEST, max(0.5, QUIET_SHARE * expected))
    if ready_at < expected - first:  # sooner than expected: seen a sparse pause late at most
        assert late <= quiet + 1e-9
    else:  # from just before the expected time on: as closely as a fresh wait there
        assert late <= max(first, POLL_SHARE * (ready_at - expected + first)) + 1e-9
    before = [t - polled[0] for t in polled if t - polled[0] < expected - first]
    assert len(before) <= 1 + expected / quiet  # 5 here, against 46 without an expectation
    if ready_at <= expected:
        assert len(polled) <= 7


def test_without_an_expectation_the_same_change_is_polled_about_50_times(
    clock: FakeClock,
) -> None:
    check, polled = _ready_after(clock, 15.0)
    _ctx().wait("change", check, 0.5, first=0.2)
    assert 45 <= len(polled) <= 55


def test_route53_learns_each_zones_propagation_and_polls_around_it(clock: FakeClock) -> None:
    """Changes that each take 15 s: the first is polled every 0.2-0.5 s, the next ones a few
    times, each seen at most one close pause late, the estimate an upper bound coming down."""
    learnt = route53.Propagation()
    polls, lates = [], []
    for _ in range(8):
        check, polled = _ready_after(clock, 15.0)
        took = _ctx().wait("change", check, 0.5, first=0.2, expected=learnt.expected("Z1"))
        learnt.record("Z1", took)
        polls.append(len(polled))
        lates.append(took - 15.0)
        estimate = learnt.expected("Z1")
        assert estimate is not None and estimate >= 15.0  # never below a change's time
    assert polls[0] >= 45 and max(polls[1:]) <= 7, polls
    assert max(lates[1:]) <= 0.2 + 1e-9, lates
    assert learnt.expected("Z2") is None  # per zone
    # the shortest of the last 8: one slow change does not make the next ones wait for it
    learnt.record("Z1", 60.0)
    assert learnt.expected("Z1") == min(15.0 + x for x in lates)
