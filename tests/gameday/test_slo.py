"""The game-day judgement of probe windows on its own (`orchestrator.gameday.slo`).

Tests `slo_miss` (why a window misses the SLO), `breach` (what breaks a stop condition in one
window), `StopWatch` (a condition trips only once broken for its `hold`, a good window resets it)
and `recovered_at` (when the SLO held again for `settle` after a switch). Pure: no sandbox.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.gameday.models import ProbeSample, ProbeStats, SloTarget, StopRule, StopTrip
from orchestrator.gameday.slo import StopWatch, breach, recovered_at, slo_miss

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
SLO = SloTarget(min_success_rate=0.9, max_latency_ms=500)
GOOD = ProbeStats(requests=10, errors=0, p95_ms=100)
BAD = ProbeStats(requests=10, errors=5, p95_ms=100)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def sample(
    t: float | None, service: ProbeStats = GOOD, window_s: float = 5, **kw: object
) -> ProbeSample:
    """A probe window ending `t` seconds after T0."""
    return ProbeSample.model_validate(
        {"at": None if t is None else at(t), "window_s": window_s, "service": service, **kw}
    )


# ------------------------------------------------------------------------------- slo_miss
@pytest.mark.parametrize(
    ("stats", "miss"),
    [
        (ProbeStats(), "no request could be sent"),
        (ProbeStats(requests=20, errors=5, p95_ms=100), "success 75% < 90%"),
        (ProbeStats(requests=10, errors=0, p95_ms=750), "p95 750 ms > 500 ms"),
        (ProbeStats(requests=10, errors=5, p95_ms=750), "success 50% < 90%"),  # success first
        (ProbeStats(requests=10, errors=1, p95_ms=500), ""),  # both exactly at their bound
        (ProbeStats(requests=10, errors=0, p95_ms=None), ""),  # no latency measured
    ],
)
def test_slo_miss(stats: ProbeStats, miss: str) -> None:
    assert slo_miss(SLO, stats) == miss


def test_slo_without_latency_bound_ignores_latency() -> None:
    slo = SloTarget(min_success_rate=0.99)
    assert slo_miss(slo, ProbeStats(requests=100, errors=1, p95_ms=60_000)) == ""
    assert slo_miss(slo, ProbeStats(requests=100, errors=2)) == "success 98% < 99%"


# --------------------------------------------------------------------------------- breach
def test_breach_on_the_service_or_a_region() -> None:
    s = sample(5, service=GOOD, regions={"east": BAD, "west": GOOD})
    rule = StopRule(name="errors", max_error_rate=0.2)
    assert breach(rule, s) == ""
    assert breach(rule.model_copy(update={"region": "east"}), s) == "error rate 50%"
    assert breach(rule.model_copy(update={"region": "west"}), s) == ""
    assert breach(rule.model_copy(update={"region": "north"}), s) == ""  # not probed
    assert breach(rule, sample(5, service=BAD)) == "error rate 50%"


def test_breach_error_rate_at_the_bound_is_not_a_breach() -> None:
    rule = StopRule(name="errors", max_error_rate=0.5)
    assert breach(rule, sample(5, service=BAD)) == ""


def test_breach_alarm_in_alarm() -> None:
    rule = StopRule(name="alarm", alarm="HighErrors", alarm_region="east")
    assert breach(rule, sample(5, alarms={"HighErrors": "ALARM"})) == "alarm HighErrors in ALARM"
    assert breach(rule, sample(5, alarms={"HighErrors": "OK"})) == ""
    assert breach(rule, sample(5, alarms={"Other": "ALARM"})) == ""
    assert breach(rule, sample(5, service=ProbeStats(), alarms={"HighErrors": "ALARM"})) != ""


def test_breach_latency() -> None:
    rule = StopRule(name="slow", max_latency_ms=300)
    assert breach(rule, sample(5, service=ProbeStats(requests=4, p95_ms=450.5))) == "p95 450.5 ms"
    assert breach(rule, sample(5, service=ProbeStats(requests=4, p95_ms=300))) == ""
    assert breach(rule, sample(5, service=ProbeStats(requests=4, errors=4))) == ""  # no p95


# ------------------------------------------------------------------------------ StopWatch
def test_a_condition_trips_only_after_its_hold() -> None:
    rule = StopRule(name="errors", max_error_rate=0.2, hold=timedelta(seconds=30))
    watch = StopWatch([rule])
    # bad from t=0 (the first bad window began then), windows of 10 s
    assert watch.evaluate(sample(10, BAD, window_s=10)) is None
    assert watch.evaluate(sample(20, BAD, window_s=10)) is None
    assert watch.evaluate(sample(30, BAD, window_s=10)) == StopTrip(
        condition="errors",
        rule="error rate > 20% on the service for 30s",
        detail="error rate 50% for 30.0s",
        at=at(30),
    )


def test_a_good_window_resets_the_hold() -> None:
    watch = StopWatch([StopRule(name="errors", max_error_rate=0.2, hold=timedelta(seconds=20))])
    assert watch.evaluate(sample(10, BAD, window_s=10)) is None
    assert watch.evaluate(sample(20, GOOD, window_s=10)) is None  # reset
    assert watch.evaluate(sample(30, BAD, window_s=10)) is None  # bad since 20: 10 s
    trip = watch.evaluate(sample(40, BAD, window_s=10))  # 20 s
    assert trip is not None and trip.detail == "error rate 50% for 20.0s"


def test_the_first_rule_that_trips_is_returned() -> None:
    slow = StopRule(name="slow", max_latency_ms=50, hold=timedelta(seconds=60))
    errors = StopRule(name="errors", max_error_rate=0.2)
    east = StopRule(name="east", region="east", max_error_rate=0.2)
    watch = StopWatch([slow, errors, east])
    trip = watch.evaluate(sample(5, BAD, regions={"east": BAD}))
    assert trip is not None and trip.condition == "errors"  # slow is bad but still holding
    assert trip.rule == "error rate > 20% on the service for 0s"
    # slow's clock ran all along: it trips 60 s after its first bad window began
    assert watch.evaluate(sample(55, GOOD.model_copy(update={"p95_ms": 90}))) is None
    trip = watch.evaluate(sample(60, GOOD.model_copy(update={"p95_ms": 90})))
    assert trip is not None and trip.condition == "slow" and trip.detail == "p95 90 ms for 60.0s"


@given(
    bound=st.floats(min_value=0, max_value=0.99),
    windows=st.lists(
        st.tuples(st.integers(1, 50), st.integers(0, 50)).map(lambda t: (t[0], min(t[0], t[1]))),
        min_size=1,
        max_size=20,
    ),
)
def test_with_no_hold_a_window_over_the_bound_trips_at_once(
    bound: float, windows: list[tuple[int, int]]
) -> None:
    """hold=0: a window over max_error_rate trips at once; windows all under it never do."""
    watch = StopWatch([StopRule(name="errors", max_error_rate=bound)])
    for i, (requests, errors) in enumerate(windows):
        trip = watch.evaluate(sample(5 * (i + 1), ProbeStats(requests=requests, errors=errors)))
        assert (trip is not None) == (errors / requests > bound)
        if trip is not None:
            assert trip.at == at(5 * (i + 1)) and trip.condition == "errors"


# --------------------------------------------------------------------------- recovered_at
SETTLE = timedelta(seconds=20)


def test_recovered_only_once_the_slo_held_for_settle() -> None:
    samples = [sample(t) for t in (5, 10, 15)]
    assert recovered_at(samples, SLO, T0, SETTLE) is None  # held 15 s
    samples.append(sample(20))
    assert recovered_at(samples, SLO, T0, SETTLE) == T0  # since the first good window began


def test_no_samples_not_recovered() -> None:
    assert recovered_at([], SLO, T0, timedelta(0)) is None


@pytest.mark.parametrize(
    "broken",
    [
        sample(10, BAD),
        sample(10, GOOD, error="probe timed out"),
        sample(10, ProbeStats(requests=10, p95_ms=900)),
    ],
)
def test_a_bad_window_restarts_the_clock(broken: ProbeSample) -> None:
    samples = [sample(5), broken, *(sample(t) for t in (15, 20, 25))]
    assert recovered_at(samples, SLO, T0, SETTLE) is None  # held from 10 to 25
    samples.append(sample(30))
    assert recovered_at(samples, SLO, T0, SETTLE) == at(10)


def test_samples_at_or_before_since_are_ignored() -> None:
    since = at(10)
    samples = [sample(0, BAD), sample(5), sample(10), sample(15), sample(20), sample(25)]
    assert recovered_at(samples, SLO, since, SETTLE) is None  # the good one at 10 not counted
    samples.append(sample(30))
    assert recovered_at(samples, SLO, since, SETTLE) == at(10)
    # a bad window ending exactly at `since` does not restart the clock either
    samples[2] = sample(10, BAD)
    assert recovered_at(samples, SLO, since, SETTLE) == at(10)


def test_success_exactly_at_the_bound_meets_it_despite_float_rounding() -> None:
    # 1 - 4/5 is 0.19999999999999996 in floating point: still 20% success, not a miss.
    assert slo_miss(SloTarget(min_success_rate=0.2), ProbeStats(requests=5, errors=4)) == ""
    assert slo_miss(SloTarget(min_success_rate=0.2), ProbeStats(requests=5, errors=5))


def test_recovery_is_counted_from_since_not_from_a_window_that_began_before() -> None:
    """A window ending after the switch but begun before it: only its part after counts."""
    since = at(12)
    samples = [sample(t) for t in (15, 20, 25, 30)]  # the first one began at 10
    assert recovered_at(samples, SLO, since, SETTLE) is None  # 18 s of SLO after `since`
    samples.append(sample(35))
    assert recovered_at(samples, SLO, since, SETTLE) == since
    # game days recorded before the rule counted from the window's beginning
    assert recovered_at(samples[:4], SLO, since, SETTLE, from_since=False) == at(10)
