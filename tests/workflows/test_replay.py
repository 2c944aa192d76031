"""Recorded histories replay against the current workflow code without non-determinism.

The fixtures were recorded by `python -m tests.workflows.record_histories`; a workflow change
that alters the commands an old history issued must be guarded with `workflow.patched`, or this
fails.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.registry import WORKFLOWS

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def test_fixtures_cover_every_final_state() -> None:
    names = {p.stem.split("-", 1)[1] for p in HISTORIES}
    assert {"succeeded", "rolled-back", "rollback-failed-then-retried", "cancelled",
            "paused-then-skipped", "dry-run"} <= names  # fmt: skip


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
def test_history_replays(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, json.loads(path.read_text()))
    assert len(history.events) > 20
    replayer = Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter)
    result = asyncio.run(replayer.replay_workflow(history, raise_on_replay_failure=False))
    assert result.replay_failure is None, f"{path.name}: {result.replay_failure}"
