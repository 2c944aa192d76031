"""Reports write themselves: a run that ends has its report (Markdown, JSON, HTML) written by the
worker to the configured store, a directory or an S3 bucket (the sandbox's, through real boto3),
named by its workflow id and run id, and readable back from there."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from orchestrator import report_store
from orchestrator.config import Config, ReportsConfig
from orchestrator.runs import RunState
from orchestrator.sandbox.manager import SandboxEnv
from tests.sandbox.helpers import aws
from tests.workflows.helpers import drive, plan, run, sandbox_config, start, worker


def _drill(config: Config) -> tuple[str, str, RunState, list[str]]:
    async def scenario() -> tuple[str, str, RunState, list[str]]:
        async with worker(config) as (client, queue):
            h = await start(client, queue, plan("maintenance-drill.yaml"))
            result = await drive(h)
            desc = await h.describe()
            return h.id, desc.run_id, result.state, result.report_files

    out: tuple[str, str, RunState, list[str]] = run(scenario())
    return out


def test_a_run_writes_its_report_to_the_directory(fresh: SandboxEnv, tmp_path: Path) -> None:
    config = sandbox_config(fresh).model_copy(
        update={"reports": ReportsConfig(directory=str(tmp_path / "store"))}
    )
    wid, rid, state, files = _drill(config)
    assert state == RunState.SUCCEEDED
    stem = report_store.stem(wid, rid)
    assert sorted(Path(f).name for f in files) == [f"{stem}.html", f"{stem}.json", f"{stem}.md"]
    data = json.loads((tmp_path / "store" / f"{stem}.json").read_text())
    assert (data["workflow_id"], data["run_id"], data["outcome"]) == (wid, rid, "SUCCEEDED")
    assert "maintenance-drill" in (tmp_path / "store" / f"{stem}.md").read_text()
    assert report_store.read_json(wid, rid, directory=tmp_path / "store") == data


def test_a_run_writes_its_report_to_s3(fresh: SandboxEnv) -> None:
    bucket = f"reports-{uuid.uuid4().hex[:8]}"
    s3 = aws(fresh, "s3", "us-west-2")
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    config = sandbox_config(fresh).model_copy(
        update={"reports": ReportsConfig(s3_bucket=bucket, s3_prefix="dr/", s3_region="us-west-2")}
    )
    wid, rid, state, files = _drill(config)
    assert state == RunState.SUCCEEDED
    stem = report_store.stem(wid, rid)
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == [f"dr/{stem}.html", f"dr/{stem}.json", f"dr/{stem}.md"]
    assert files == [f"s3://{bucket}/dr/{stem}.md", f"s3://{bucket}/dr/{stem}.json",
                     f"s3://{bucket}/dr/{stem}.html"]  # fmt: skip
    data = report_store.read_json(wid, rid, s3=s3, bucket=bucket, prefix="dr/")
    assert data is not None and data["run_id"] == rid and data["outcome"] == "SUCCEEDED"
    head = s3.head_object(Bucket=bucket, Key=f"dr/{stem}.html")
    assert head["ContentType"].startswith("text/html")


def test_a_report_that_cannot_be_written_does_not_fail_the_run(fresh: SandboxEnv) -> None:
    config = sandbox_config(
        fresh
    ).model_copy(  # no such bucket
        update={"reports": ReportsConfig(s3_bucket=f"missing-{uuid.uuid4().hex[:6]}")}
    )
    _, _, state, files = _drill(config)
    assert state == RunState.SUCCEEDED and files == []
