"""Where reports are kept: a directory of Markdown, JSON and HTML files, one set per run, named by
its workflow id and run id (`failover trends` reads them back after Temporal's retention)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol


class Stored(Protocol):
    """A report model: what names its files, and its JSON."""

    workflow_id: str
    run_id: str | None

    def model_dump_json(self, *, indent: int | None = None) -> str: ...


def default_directory() -> Path:
    """$FAILOVER_REPORTS, else .failover/reports."""
    return Path(os.environ.get("FAILOVER_REPORTS", ".failover/reports"))


def write(r: Stored, markdown: str, html: str, directory: Path | None = None) -> list[Path]:
    """A report as .md, .json and .html files; returns their paths."""
    out = directory or default_directory()
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"{r.workflow_id}-{(r.run_id or 'run')[:13]}"
    paths = [stem.with_suffix(".md"), stem.with_suffix(".json"), stem.with_suffix(".html")]
    paths[0].write_text(markdown)
    paths[1].write_text(r.model_dump_json(indent=2))
    paths[2].write_text(html)
    return paths
