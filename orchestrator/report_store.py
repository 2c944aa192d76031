"""Where reports are kept: Markdown, JSON and HTML, one set per run, named by its workflow id and
run id, in a local directory or an S3 bucket (the configuration's `reports:`). The worker writes
them when a run ends (`activities/report.py`); `failover report` and `failover trends` read them
back once Temporal's retention has dropped the run."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Protocol


class Stored(Protocol):
    """A report model: what names its files, and its JSON."""

    workflow_id: str
    run_id: str | None

    def model_dump_json(self, *, indent: int | None = None) -> str: ...


def default_directory() -> Path:
    """$FAILOVER_REPORTS, else .failover/reports."""
    return Path(os.environ.get("FAILOVER_REPORTS", ".failover/reports"))


def stem(workflow_id: str, run_id: str | None) -> str:
    """The files' common name: the workflow id and the run id's first 13 characters."""
    return f"{workflow_id}-{(run_id or 'run')[:13]}"


def write(r: Stored, markdown: str, html: str, directory: Path | None = None) -> list[Path]:
    """A report as .md, .json and .html files; returns their paths."""
    out = directory or default_directory()
    out.mkdir(parents=True, exist_ok=True)
    base = out / stem(r.workflow_id, r.run_id)
    # (not with_suffix: a workflow id may have a dot, as an evacuation's switches do)
    paths = [base.with_name(base.name + ext) for ext in (".md", ".json", ".html")]
    paths[0].write_text(markdown)
    paths[1].write_text(r.model_dump_json(indent=2))
    paths[2].write_text(html)
    return paths


def write_s3(s3: Any, bucket: str, prefix: str, r: Stored, markdown: str, html: str) -> list[str]:
    """The same three files as S3 objects under `prefix`; returns their s3:// URLs."""
    base = f"{prefix}{stem(r.workflow_id, r.run_id)}"
    objects = {
        f"{base}.md": (markdown, "text/markdown; charset=utf-8"),
        f"{base}.json": (r.model_dump_json(indent=2), "application/json"),
        f"{base}.html": (html, "text/html; charset=utf-8"),
    }
    for key, (body, kind) in objects.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body.encode(), ContentType=kind)
    return [f"s3://{bucket}/{key}" for key in objects]


def read_json(
    workflow_id: str,
    run_id: str | None = None,
    directory: Path | None = None,
    s3: Any = None,
    bucket: str | None = None,
    prefix: str = "",
) -> dict[str, Any] | None:
    """A stored report's JSON: the run's (by run id prefix), else the workflow id's newest."""
    if s3 is not None and bucket:
        names = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=f"{prefix}{workflow_id}-") for o in page.get("Contents", [])
            if o["Key"].endswith(".json")]  # fmt: skip
        chosen = _choose(names, workflow_id, run_id, prefix)
        if chosen is None:
            return None
        body = s3.get_object(Bucket=bucket, Key=chosen)["Body"].read()
        data: dict[str, Any] = json.loads(body)
        return data
    folder = directory or default_directory()
    files = sorted(folder.glob(f"{workflow_id}-*.json"), key=lambda p: p.stat().st_mtime)
    chosen = _choose([p.name for p in files], workflow_id, run_id, "")
    if chosen is None:
        return None
    loaded: dict[str, Any] = json.loads((folder / chosen).read_text())
    return loaded


def _choose(names: list[str], workflow_id: str, run_id: str | None, prefix: str) -> str | None:
    """The name of the run's report (run ids are matched on their stored prefix), or the last."""
    mine = [n for n in names if n.startswith(f"{prefix}{workflow_id}-")]
    if run_id:
        mine = [n for n in mine if n.startswith(f"{prefix}{stem(workflow_id, run_id)}")]
    return mine[-1] if mine else None


def read_configured(store: Any, workflow_id: str, s3: Any = None) -> dict[str, Any] | None:
    """The newest JSON report of a workflow id in the configured store (`config.reports`): its
    S3 bucket (read with `s3`, a client in `store.s3_region`) when it names one, else its
    directory (default: `default_directory()`)."""
    if store.s3_bucket:
        return read_json(workflow_id, s3=s3, bucket=store.s3_bucket, prefix=store.s3_prefix)
    folder = Path(store.directory) if store.directory else None
    return read_json(workflow_id, directory=folder)
