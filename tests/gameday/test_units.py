"""Game-day pieces on their own: the runbook section, resolution, the probe and detector
activities against the sandbox, the report and the trends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from temporalio.testing import ActivityEnvironment

from activities.clients import Clients
from activities.gameday import DnsProbe, GameDayActivities, split
from orchestrator.config import from_sandbox
from orchestrator.gameday import report as gd_report
from orchestrator.gameday.models import (
    DetectCall,
    GameDayProgress,
    Outcome,
    Phase,
    ProbeCall,
    ProbeSample,
    ProbeStats,
    SloTarget,
)
from orchestrator.runbook.loader import RunbookError, load_text
from orchestrator.runbook.resolve import ResolveError
from orchestrator.sandbox.control import SandboxControl
from orchestrator.sandbox.manager import SandboxEnv
from orchestrator.trends import TrendPoint, build, from_reports, parse_since
from tests.activities.test_step_types import RecordingClients
from tests.gameday.helpers import shop_gameday
from tests.workflows.helpers import RUNBOOKS

SHOP = (RUNBOOKS / "shop-region-switch.yaml").read_text()


def _problems(text: str) -> list[str]:
    with pytest.raises(RunbookError) as exc:
        load_text(text, "rb.yaml")
    return [str(p) for p in exc.value.problems]


def test_gameday_section_is_validated_with_positions() -> None:
    bad = SHOP.replace("type: sandbox_fault", "type: http_check").replace(
        "type: route53_health_status", "type: route53_weighted"
    )
    problems = _problems(bad)
    assert any("gameday.fault.type" in p and "not a fault step type" in p for p in problems)
    assert any("gameday.detect[0].type" in p and "read-only" in p for p in problems)
    typo = SHOP.replace('{name: "${{ from_region }}"}', '{name: "${{ from_regoin }}"}')
    assert any("detect[0].params" in p and "from_regoin" in p for p in _problems(typo))
    both = SHOP.replace("\n    dns: {zone", '\n    url: "http://x"\n    dns: {zone', 1)
    assert any("exactly one of url or dns" in p for p in _problems(both))
    no_limit = SHOP.replace("max_error_rate: 0.2", "")
    assert any("max_latency_ms and/or alarm" in p for p in _problems(no_limit))


def test_resolve_both_directions_and_scoped_stop_conditions() -> None:
    inp = shop_gameday("weekly", "us-west-2", "us-east-1")
    assert (inp.switch.from_region, inp.switch.to_region) == ("us-west-2", "us-east-1")
    assert (inp.failback.from_region, inp.failback.to_region) == ("us-east-1", "us-west-2")
    assert inp.switch.mode == inp.failback.mode == "gameday"
    assert inp.fault.params["region"] == "us-west-2" and inp.fault.params["outage"] is True
    assert inp.detect[0].params["name"] == "us-west-2"
    assert inp.stop_conditions[0].region == "us-east-1"  # the target, as a template said
    assert inp.fault.retry.attempts == 20  # removal is retried far longer than a step
    no_section = SHOP[: SHOP.index("\ngameday:")]
    from orchestrator.gameday.resolve import resolve_gameday

    with pytest.raises(ResolveError, match="no gameday section"):
        resolve_gameday(load_text(no_section), "x", "us-east-1", "us-west-2", requester="a")
    with pytest.raises(ResolveError, match="unknown region"):
        shop_gameday("x", "us-east-1", "eu-west-1")


def test_split_follows_weights() -> None:
    assert split(10, {"a": 100, "b": 0}) == {"a": 10, "b": 0}
    assert split(10, {"a": 50, "b": 50}) == {"a": 5, "b": 5}
    assert split(10, {"a": 1, "b": 2}) == {"a": 3, "b": 7}
    assert split(10, {"a": 0, "b": 0}) == {"a": 0, "b": 0}


def _activities(env: SandboxEnv) -> GameDayActivities:
    return GameDayActivities(Clients(from_sandbox(env)))


def test_probe_follows_dns_and_probes_regions(fresh: SandboxEnv, control: SandboxControl) -> None:
    env = fresh  # the seeded weights: another test may have left users in us-west-2
    control.set_region_health("us-east-1", False)  # where DNS sends users (seeded 100/0)
    slo = SloTarget(path="/api/request", dns_zone="shop.example.", dns_record="api.shop.example.")
    call = ProbeCall(slo=slo, regions=["us-west-2"], requests=6, window_s=0.3)
    # Users as DNS answers them (the sandbox's name server is configured): no AWS call at all.
    clients = RecordingClients(from_sandbox(env))
    sample: ProbeSample = ActivityEnvironment().run(GameDayActivities(clients).probe, call)
    assert not clients.actions
    assert sample.weights == {"us-east-1": 6}  # one question per request
    assert (sample.service.requests, sample.service.errors) == (6, 6)  # users hit the outage
    assert (sample.regions["us-west-2"].requests, sample.regions["us-west-2"].errors) == (6, 0)
    assert sample.window_s >= 0.3 and not sample.error
    # No name server configured: the weighted record's weights, through Route 53's API.
    config = from_sandbox(env)
    config.dns.nameservers = []
    clients = RecordingClients(config)
    sample = ActivityEnvironment().run(GameDayActivities(clients).probe, call)
    assert clients.actions and clients.actions <= set(DnsProbe.actions)  # `failover iam` has them
    assert sample.weights == {"us-east-1": 100, "us-west-2": 0}
    assert (sample.service.requests, sample.service.errors) == (6, 6)


def test_detect_fires_on_the_first_red_check_or_times_out(
    env: SandboxEnv, control: SandboxControl
) -> None:
    inp = shop_gameday("x")
    call = DetectCall(run_id="t", checks=inp.detect, from_region="us-east-1",
                      to_region="us-west-2", timeout_s=0.5, interval_s=0.1)  # fmt: skip
    acts = _activities(env)
    quiet = ActivityEnvironment().run(acts.detect, call)
    assert not quiet.detected and "within 0.5s" in quiet.detail
    control.set_region_health("us-east-1", False)
    found = ActivityEnvironment().run(acts.detect, call)
    assert found.detected and "us-east-1" in found.detail and found.elapsed_s < 0.5


def _progress(samples: list[tuple[float, int, int]]) -> GameDayProgress:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    return GameDayProgress(
        name="x", runbook="rb", from_region="a", to_region="b", requester="alice",
        phase=Phase.DONE, outcome=Outcome.SUCCEEDED, started_at=t0,
        ended_at=t0 + timedelta(seconds=60), slo=SloTarget(url="http://x"),
        samples=[
            ProbeSample(at=t0 + timedelta(seconds=t), window_s=2.0,
                        service=ProbeStats(requests=n, errors=e, p95_ms=1.0))
            for t, n, e in samples
        ],
    )  # fmt: skip


def test_report_counts_breach_windows() -> None:
    p = _progress([(2, 10, 0), (4, 10, 10), (6, 10, 5), (8, 10, 0)])
    r = gd_report.build(p, "gameday-x")
    assert r.slo_breach_s == 4.0 and r.probe_windows == 4
    assert [pt.breach for pt in r.timeline] == [False, True, True, False]
    assert r.switch is None and "not run" in gd_report.markdown(r)


def _point(day: int, rto: float, outcome: str = "SUCCEEDED") -> TrendPoint:
    return TrendPoint(
        workflow_id=f"switch-rb-{day}", run_id=str(day), kind="switch", mode="drill",
        started_at=datetime(2026, 1, day, tzinfo=UTC), from_region="a", to_region="b",
        outcome=outcome, rto_s=rto,
    )  # fmt: skip


def test_trends_flag_a_regression_against_the_median_of_previous_runs() -> None:
    points = [_point(1, 10), _point(2, 12), _point(3, 11), _point(4, 30, "ROLLED_BACK"),
              _point(5, 16), _point(6, 18), _point(5, 16)]  # fmt: skip
    t = build("rb", points, datetime(2026, 1, 1, tzinfo=UTC), {"rto": 20.0}, threshold=0.5)
    assert len(t.points) == 6  # the duplicate is dropped
    flagged = {p.run_id: p for p in t.points if p.regression}
    assert set(flagged) == {"6"}  # 18 > 1.5 x median(10, 12, 11, 16) = 17.25; 16 is not
    assert flagged["6"].baseline_rto_s == 11.5
    assert "REGRESSION" in __import__("orchestrator.trends").trends.html_page(t)


def test_trends_read_stored_reports(tmp_path: Path) -> None:
    p = _progress([(2, 10, 0)])
    r = gd_report.build(p, "gameday-x", "r1").model_copy(update={"runbook": "rb", "mttd_s": 3.0})
    (tmp_path / "a.json").write_text(r.model_dump_json())
    (tmp_path / "junk.json").write_text("{not json")
    points = from_reports(tmp_path, "rb", datetime(2025, 1, 1, tzinfo=UTC))
    assert [(pt.kind, pt.mttd_s) for pt in points] == [("gameday", 3.0)]
    assert from_reports(tmp_path, "other", datetime(2025, 1, 1, tzinfo=UTC)) == []


def test_since_parses_durations_and_dates() -> None:
    now = datetime(2026, 11, 24, tzinfo=UTC)
    assert parse_since("90d", now) == now - timedelta(days=90)
    assert parse_since("2026-09-01", now) == datetime(2026, 9, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="expected a duration"):
        parse_since("last tuesday", now)


def test_game_days_by_name_and_the_unplanned_one() -> None:
    weekly, disaster = shop_gameday("weekly"), shop_gameday("disaster")
    assert weekly.switch.kind == "planned" and weekly.recovery is None
    assert weekly.fault.type == "sandbox_fault"
    assert disaster.switch.kind == "unplanned" and disaster.fault.type == "region_outage"
    assert disaster.recovery is not None and disaster.recovery.kind == "recovery"
    assert (disaster.recovery.from_region, disaster.recovery.to_region) == (
        "us-east-1",
        "us-west-2",
    )
    assert disaster.failback.kind == "planned"
    # An unplanned game day recovers the failed region: the runbook must owe it something.
    owes_nothing = SHOP.replace("unplanned: defer", "unplanned: skip")
    assert any(
        "gamedays.disaster.mode" in p and "unplanned: defer" in p for p in _problems(owes_nothing)
    )
