"""Reports write themselves: when a switch, a game day or an evacuation ends (however it ends),
the workflow runs one of these activities, which builds its report (Markdown, JSON, HTML) and
writes it to the configured store (`reports:` in the configuration: a directory, or an S3 bucket
through the worker's AWS client), named by the run's workflow id and run id. Nothing here can fail
a run: the workflow records a report that could not be written and ends as it would have."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import structlog
from temporalio import activity

from activities.clients import Clients
from activities.notify import NotifyActivities, count
from orchestrator import report, report_store
from orchestrator.evacuation import report as evac_report
from orchestrator.evacuation.runs import EvacuationProgress
from orchestrator.gameday import report as gd_report
from orchestrator.gameday.models import GameDayProgress
from orchestrator.notifications import Delivery
from orchestrator.runs import RunEnd, RunEnded, RunProgress

log = structlog.get_logger()


class ReportActivities:
    """Write reports to the worker's configured store."""

    def __init__(self, clients: Clients, notify: NotifyActivities | None = None) -> None:
        self.clients = clients
        self.notify = notify or NotifyActivities(clients)

    def all(self) -> list[Callable[..., Any]]:
        return [self.write_switch, self.end_switch, self.write_gameday, self.write_evacuation]

    @activity.defn(name="report.switch")
    def write_switch(self, progress: RunProgress) -> list[str]:
        """The calling switch's report, written; returns where (paths or s3:// URLs)."""
        wid, rid = _run()
        r = report.build(progress, wid, rid)
        return self._write(r, report.markdown(r), report.html_page(r))

    @activity.defn(name="report.switch_end")
    def end_switch(self, end: RunEnd) -> RunEnded:
        """A switch's end in one activity: its last notice sent, then its report written with
        that notice's deliveries (one round trip to the server where two followed each other).

        The deliveries are recorded as heartbeat details before the report is written: an
        attempt after one whose report failed sends nothing again, and returns the recorded
        deliveries with its report. A report that cannot be written raises (the activity's
        retries write it; after the last, the workflow records the end as not known to be
        sent)."""
        info = activity.info()
        sent = _sent(info.heartbeat_details)
        if sent is None:
            delivery_id = f"{info.workflow_id}/{info.workflow_run_id}/{info.activity_id}"
            sent = self.notify.deliver(end.notice, delivery_id)
            count(sent)
            activity.heartbeat(RunEnded(deliveries=sent).model_dump(mode="json"))
        progress = end.progress.model_copy(
            update={"notifications": [*end.progress.notifications, *sent]}
        )
        return RunEnded(deliveries=sent, report_files=self.write_switch(progress))

    @activity.defn(name="report.gameday")
    def write_gameday(self, progress: GameDayProgress) -> list[str]:
        """The calling game day's report, written; returns where."""
        wid, rid = _run()
        r = gd_report.build(progress, wid, rid)
        return self._write(r, gd_report.markdown(r), gd_report.html_page(r))

    @activity.defn(name="report.evacuation")
    def write_evacuation(self, progress: EvacuationProgress) -> list[str]:
        """The calling evacuation's report (every service joined), written; returns where."""
        wid, rid = _run()
        r = evac_report.build(progress, wid, rid)
        return self._write(r, evac_report.markdown(r), evac_report.html_page(r))

    def _write(self, r: report_store.Stored, markdown: str, html: str) -> list[str]:
        cfg = self.clients.config.reports
        if cfg.s3_bucket:
            region = cfg.s3_region or "us-east-1"
            s3 = self.clients.aws("s3", region)
            where = report_store.write_s3(s3, cfg.s3_bucket, cfg.s3_prefix, r, markdown, html)
        else:
            directory = Path(cfg.directory) if cfg.directory else None
            where = [str(p) for p in report_store.write(r, markdown, html, directory)]
        log.info("report written", workflow_id=r.workflow_id, where=where[0])
        return where


def _sent(details: Sequence[Any]) -> list[Delivery] | None:
    """The deliveries an earlier attempt recorded (None: it sent nothing yet)."""
    if not details:
        return None
    return RunEnded.model_validate(details[-1]).deliveries


def _run() -> tuple[str, str]:
    """The workflow (id, run id) that runs this activity: the report's name."""
    info = activity.info()
    return info.workflow_id or "unknown", info.workflow_run_id or "run"
