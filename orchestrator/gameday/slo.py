"""What users saw during a game day, judged: the SLO, the stop conditions, recovery after a switch.

Plain arithmetic over probe samples (`ProbeSample`), shared by the game-day workflow and its
report, and unit-tested on its own. Times are the samples' own (set by the workflow from its
deterministic clock); nothing here reads a clock or does I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from orchestrator.gameday.models import ProbeSample, ProbeStats, SloTarget, StopRule, StopTrip

#: Rates equal to their bound up to float rounding meet it (4 of 5 failing is 20% success).
EPSILON = 1e-9


def slo_miss(slo: SloTarget, stats: ProbeStats) -> str:
    """Why a window missed the SLO ("" when it met it)."""
    if not stats.requests:
        return "no request could be sent"
    if 1 - stats.error_rate + EPSILON < slo.min_success_rate:
        return f"success {1 - stats.error_rate:.0%} < {slo.min_success_rate:.0%}"
    if slo.max_latency_ms and stats.p95_ms and stats.p95_ms > slo.max_latency_ms:
        return f"p95 {stats.p95_ms:g} ms > {slo.max_latency_ms:g} ms"
    return ""


def breach(rule: StopRule, sample: ProbeSample) -> str:
    """What breaks a stop condition's bound in one window ("" when nothing does)."""
    stats = sample.service if rule.region is None else sample.regions.get(rule.region)
    if rule.alarm is not None and sample.alarms.get(rule.alarm) == "ALARM":
        return f"alarm {rule.alarm} in ALARM"
    if stats is not None and stats.requests:
        if rule.max_error_rate is not None and stats.error_rate > rule.max_error_rate:
            return f"error rate {stats.error_rate:.0%}"
        if rule.max_latency_ms is not None and (stats.p95_ms or 0) > rule.max_latency_ms:
            return f"p95 {stats.p95_ms:g} ms"
    return ""


class StopWatch:
    """The stop conditions over successive probe windows: a condition trips once its bound has
    been broken without a break for its `hold` (a window that meets it resets it)."""

    def __init__(self, rules: Sequence[StopRule]) -> None:
        self.rules = list(rules)
        self.bad_since: dict[str, datetime] = {}

    def evaluate(self, sample: ProbeSample) -> StopTrip | None:
        """Take one window (its `at` is when it ended); the first condition that trips."""
        assert sample.at is not None
        began = sample.at - timedelta(seconds=sample.window_s)
        tripped: StopTrip | None = None
        for rule in self.rules:
            bad = breach(rule, sample)
            if not bad:
                self.bad_since.pop(rule.name, None)
                continue
            since = self.bad_since.setdefault(rule.name, began)
            if sample.at - since >= rule.hold and tripped is None:
                held = (sample.at - since).total_seconds()
                tripped = StopTrip(condition=rule.name, rule=rule.describe(),
                                   detail=f"{bad} for {held:.1f}s", at=sample.at)  # fmt: skip
        return tripped


def recovered_at(
    samples: Sequence[ProbeSample],
    slo: SloTarget,
    since: datetime,
    settle: timedelta,
    from_since: bool = True,
) -> datetime | None:
    """When users started to see the SLO met again after `since`, if it has held for `settle`
    up to the last sample (None: not recovered yet). A window that began before `since` counts
    from `since` (`from_since=False`: from its beginning, as game days recorded before this rule
    did)."""
    start: datetime | None = None
    for s in samples:
        if s.at is None or s.at <= since:
            continue
        if slo_miss(slo, s.service) or s.error:
            start = None
        elif start is None:
            began = s.at - timedelta(seconds=s.window_s)
            start = max(began, since) if from_since else began
    last = samples[-1].at if samples else None
    if start is not None and last is not None and last - start >= settle:
        return start
    return None
