"""`failover trends RUNBOOK`: RTO, RPO and MTTD per run over time, regressions flagged."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from temporalio.client import Client

from orchestrator import report_store
from orchestrator import trends as trends_mod
from orchestrator.cli.options import ChartFormat, ChartOption, ConfigOption, OutOption, load_config
from orchestrator.cli.output import emit, fail, info, print_table
from orchestrator.cli.temporal import call


def trends(
    runbook: Annotated[str, typer.Argument(help="The runbook's name.")],
    since: Annotated[str, typer.Option(help="How far back: 90d, 12h, or a date.")] = "90d",
    threshold: Annotated[
        float, typer.Option(help="Flag an RTO this much above the previous runs' median (0.5=50%).")
    ] = 0.5,
    reports: Annotated[
        Path | None, typer.Option(help="Also read reports from here [default: the report store].")
    ] = None,
    output: ChartOption = ChartFormat.table,
    out: OutOption = None,
    config: ConfigOption = None,
) -> None:
    """RTO, RPO and MTTD of a runbook's switches and game days over time (Temporal results and
    stored reports), with the objectives; for a switch a guard started, its MTTD and time to
    decision; a run whose RTO regressed beyond the threshold compared
    with the median of the previous runs is flagged. `-o html` draws the chart."""
    if threshold < 0:
        fail("--threshold: must not be negative")
    now = datetime.now(UTC)
    try:
        start = trends_mod.parse_since(since, now)
    except ValueError as exc:
        fail(f"--since: {exc}")
    cfg = load_config(config)

    async def body(client: Client) -> trends_mod.Trends:
        points, objectives = await trends_mod.from_temporal(client, runbook, start)
        configured = Path(cfg.reports.directory) if cfg.reports.directory else None
        stored = reports or configured or report_store.default_directory()
        points += trends_mod.from_reports(stored, runbook, start)
        return trends_mod.build(runbook, points, start, objectives, threshold)

    t = call(cfg, body)
    if output == ChartFormat.json:
        text = t.model_dump_json(indent=2) + "\n"
    elif output == ChartFormat.html:
        text = trends_mod.html_page(t)
    else:
        print_table(
            f"{runbook}: {len(t.points)} run(s) since {t.since:%Y-%m-%d}",
            ["started", "kind", "by", "from -> to", "outcome", "RTO", "RPO", "MTTD", "decision",
             "baseline", ""],
            [
                [f"{p.started_at:%Y-%m-%d %H:%M}", p.kind, p.started_by,
                 f"{p.from_region} -> {p.to_region}", p.outcome,
                 trends_mod.seconds_text(p.rto_s), trends_mod.seconds_text(p.rpo_s),
                 trends_mod.seconds_text(p.mttd_s), trends_mod.seconds_text(p.decision_s),
                 trends_mod.seconds_text(p.baseline_rto_s),
                 "REGRESSION" if p.regression else ""]
                for p in t.points
            ],
        )  # fmt: skip
        if t.regressions:
            info(f"{len(t.regressions)} regression(s): {', '.join(t.regressions)}")
        return
    emit(text, out)
