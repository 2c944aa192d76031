"""A game day's own activities: the SLO probe and the fault detector.

- `gameday.probe`: one window of synthetic traffic. Requests to the service as users reach it (a
  URL, or each region's endpoint as DNS answers the record, one question per request, where the
  configuration names the zone's name servers; else in proportion to the weighted record's
  weights) and, for stop conditions scoped to a region, to that region directly. Requests are
  spread evenly over the window. Never fails for what it measures: an unreachable service is a
  measurement (errors), not an activity failure.
- `gameday.busy`: the runbook's switches and game days running now (preflight).
- `gameday.detect`: polls the game day's detectors (read-only step types: health checks, alarms)
  until one turns red; MTTD is the time from the fault being in place to that moment.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import structlog
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from activities import registry
from activities.aws.route53 import record_weights
from activities.base import StepContext, StepType
from activities.clients import Clients
from activities.dns import answers as dns_answers
from activities.errors import StepError, classify
from activities.heartbeat import Heartbeater
from activities.http import send
from orchestrator import leases
from orchestrator import search_attributes as sa
from orchestrator.gameday.models import (
    BusyCall,
    DetectCall,
    Detection,
    ProbeCall,
    ProbeSample,
    ProbeStats,
)
from orchestrator.runs import PlannedStep, switch_workflow_id

log = structlog.get_logger("failover.gameday")


def split(total: int, weights: dict[str, int]) -> dict[str, int]:
    """`total` requests split in proportion to weights (largest remainder); all 0 -> none."""
    whole = sum(w for w in weights.values() if w > 0)
    if not whole:
        return dict.fromkeys(weights, 0)
    exact = {k: total * max(w, 0) / whole for k, w in weights.items()}
    out = {k: int(v) for k, v in exact.items()}
    left = total - sum(out.values())
    for k in sorted(exact, key=lambda k: exact[k] - out[k], reverse=True)[:left]:
        out[k] += 1
    return out


def _interleave(plan: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Round-robin over the distinct targets, keeping each target's count."""
    groups: dict[tuple[str, str], int] = {}
    for item in plan:
        groups[item] = groups.get(item, 0) + 1
    out: list[tuple[str, str]] = []
    while groups:
        for item in list(groups):
            out.append(item)
            groups[item] -= 1
            if not groups[item]:
                del groups[item]
    return out


def _p95(latencies: list[float]) -> float | None:
    if not latencies:
        return None
    ordered = sorted(latencies)
    return round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 1)


class DnsProbe(StepType):
    """Not a step: the AWS calls of the SLO probe when users follow a weighted record (for
    `failover iam`)."""

    name = "gameday_probe"
    actions = ("route53:ListHostedZonesByName", "route53:ListResourceRecordSets")


class AlarmProbe(StepType):
    """Not a step: the AWS call of the probe when a stop condition watches an alarm."""

    name = "gameday_alarms"
    actions = ("cloudwatch:DescribeAlarms",)


class GameDayActivities:
    """The probe and the detector of one worker, sharing its clients."""

    def __init__(self, clients: Clients, temporal: Client | None = None) -> None:
        self.clients = clients
        self.temporal = temporal

    def all(self) -> list[Callable[..., Any]]:
        return [self.probe, self.detect, self.busy]

    @activity.defn(name="gameday.busy")
    async def busy(self, call: BusyCall) -> list[str]:
        """Switches and game days of the runbook running now (other than the caller): a game
        day must not inject a fault into a service that is being switched for real."""
        if self.temporal is None:
            raise ApplicationError("this worker has no Temporal client", non_retryable=True)
        me = activity.info().workflow_id or ""
        query = (
            f"FailoverRunbook = '{call.runbook}' AND ExecutionStatus = 'Running' "
            "AND WorkflowType IN ('RegionSwitch', 'GameDay')"
        )
        mine = switch_workflow_id(call.runbook)
        out = []
        seen = {me}
        async for wf in self.temporal.list_workflows(query):
            if wf.id == me or (wf.parent_id == me and wf.id == mine):
                continue
            seen.add(wf.id)
            out.append(f"{wf.workflow_type} {wf.id} (started {wf.start_time:%Y-%m-%d %H:%M:%S}Z)")
        # Any other run holding a lease on what this game day writes (an evacuation, a switch
        # of another runbook that writes the same records): the game day's own leases are its
        # search attribute (game days started before leases have none).
        desc = await self.temporal.get_workflow_handle(me).describe()
        keys = desc.typed_search_attributes.get(sa.RESOURCES) or []
        for h in await leases.holders(self.temporal, {k: k for k in keys}, seen) or []:
            out.append(
                f"{h.workflow_type} {h.workflow_id} (holds {len(h.resources)} of the resources "
                f"it writes; requested by {h.requester or '?'}, started "
                f"{h.started_at:%Y-%m-%d %H:%M:%S}Z)"
            )
        return out

    def _context(self, run_id: str, beat: Callable[..., None], step: PlannedStep | None = None,
                 from_region: str = "", to_region: str = "") -> StepContext:  # fmt: skip
        return StepContext(
            run_id=run_id,
            step_id=step.id if step else "probe",
            from_region=from_region,
            to_region=to_region,
            region=step.region if step else None,
            mode="gameday",
            clients=self.clients,
            heartbeat=beat,
            account=step.account if step else None,
        )

    def _users_split(self, call: ProbeCall, beat: Callable[..., None]) -> dict[str, int]:
        """How users split between regions: as DNS answers them where the configuration names
        the zone's name servers (the data plane: it answers while Route 53's API is down with
        us-east-1), else by the weighted record's weights (Route 53's API)."""
        slo = call.slo
        assert slo.dns_zone and slo.dns_record
        if self.clients.config.dns.nameservers:
            # (an answer naming no region of ours, or none at all, is a request that fails)
            return dns_answers(self.clients.config, slo.dns_record, queries=call.requests,
                               zone=slo.dns_zone)  # fmt: skip
        return record_weights(self._context("probe", beat), slo.dns_zone, slo.dns_record)

    @activity.defn(name="gameday.probe")
    def probe(self, call: ProbeCall) -> ProbeSample:
        """One window of synthetic user traffic; what users saw."""
        with Heartbeater() as heart:
            slo = call.slo
            plan: list[tuple[str, str]] = []  # (who: "service" or a region, url)
            weights: dict[str, int] = {}
            error = ""
            if slo.url:
                plan += [("service", slo.url)] * call.requests
            else:
                assert slo.dns_zone and slo.dns_record
                try:
                    weights = self._users_split(call, heart.beat)
                except Exception as exc:  # no answer: users still hit something
                    error = f"could not resolve {slo.dns_record}: {classify(exc).message}"
                for region, n in split(call.requests, weights).items():
                    plan += [("service", self._url(region, slo.endpoint, slo.path))] * n
            for region in call.regions:
                plan += [(region, self._url(region, slo.endpoint, slo.path))] * call.requests
            plan = _interleave(plan)  # every target sampled across the whole window
            stats: dict[str, tuple[int, int, list[float]]] = {}
            opener = self.clients.http()
            started = time.monotonic()
            gap = call.window_s / max(1, len(plan))
            timeout = max(1.0, min(5.0, call.window_s))
            for i, (who, url) in enumerate(plan):
                t0 = time.monotonic()
                status, _ = send(opener, url, "GET", timeout) if url else (0, "")
                n, errs, lat = stats.get(who, (0, 0, []))
                lat.append((time.monotonic() - t0) * 1000)
                stats[who] = (n + 1, errs + (not 200 <= status < 400), lat)
                heart.beat("probe", f"{i + 1}/{len(plan)}")
                pause = started + (i + 1) * gap - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
            if not plan:
                time.sleep(call.window_s)

            def summary(who: str) -> ProbeStats:
                n, errs, lat = stats.get(who, (0, 0, []))
                return ProbeStats(requests=n, errors=errs, p95_ms=_p95(lat))

            alarms: dict[str, str] = {}
            for ref in call.alarms:
                try:
                    # (in the default account, as the steps that name none)
                    cw = self.clients.for_account(None).aws("cloudwatch", ref.region)
                    found = cw.describe_alarms(AlarmNames=[ref.name])["MetricAlarms"]
                    alarms[ref.name] = found[0]["StateValue"] if found else "MISSING"
                except Exception as exc:  # an unreadable alarm is reported, not fatal
                    error = error or f"alarm {ref.name}: {classify(exc).message}"
            if not weights and not slo.url and not error:
                error = f"{slo.dns_record} has no weighted records with weight > 0"
            service = summary("service")
            if slo.dns_record and not service.requests:
                # no region gets traffic per DNS: users get no answer at all
                service = ProbeStats(requests=call.requests, errors=call.requests)
            return ProbeSample(
                window_s=round(time.monotonic() - started, 3),
                service=service,
                regions={r: summary(r) for r in call.regions},
                weights=weights,
                alarms=alarms,
                error=error,
            )

    def _url(self, region: str, endpoint: str, path: str) -> str:
        try:
            base = self.clients.endpoint(endpoint, region)
        except StepError:
            return ""  # no endpoint for that region: counted as an error
        return base.rstrip("/") + "/" + path.lstrip("/")

    @activity.defn(name="gameday.detect")
    def detect(self, call: DetectCall) -> Detection:
        """Poll the detectors until one fails (the fault is detected) or time runs out."""
        with Heartbeater() as heart:
            started = time.monotonic()
            checks = []
            for step in call.checks:
                stype, params = registry.bind(step.type, step.params)
                ctx = self._context(call.run_id, heart.beat, step, call.from_region, call.to_region)
                checks.append((step, stype, params, ctx))
            if not checks:
                return Detection(detected=False, detail="no detectors", elapsed_s=0.0)
            while True:
                for step, stype, params, ctx in checks:
                    try:
                        result = stype.verify(ctx, params, {})
                        ok, detail = result.ok, result.detail
                    except Exception as exc:
                        err = classify(exc)
                        if not err.retryable:
                            raise err from exc
                        ok, detail = True, f"not answering ({err.message}); polling on"
                    if not ok:
                        elapsed = round(time.monotonic() - started, 3)
                        log.info("fault detected", by=step.id, elapsed_s=elapsed)
                        return Detection(
                            detected=True,
                            by=step.description or step.id,
                            detail=detail,
                            elapsed_s=elapsed,
                        )
                elapsed = time.monotonic() - started
                if elapsed >= call.timeout_s:
                    return Detection(
                        detected=False,
                        detail=f"no detector fired within {call.timeout_s:g}s",
                        elapsed_s=round(elapsed, 3),
                    )
                heart.beat("detect", f"{elapsed:.0f}s, all green")
                time.sleep(call.interval_s)
