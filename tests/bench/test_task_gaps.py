"""The evacuation benchmark's breakdown of a switch's tasks, read from a history."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from temporalio.api.common.v1 import Payload, Payloads
from temporalio.api.history.v1 import (
    ActivityTaskCompletedEventAttributes,
    ActivityTaskScheduledEventAttributes,
    ActivityTaskStartedEventAttributes,
    HistoryEvent,
    WorkflowTaskCompletedEventAttributes,
    WorkflowTaskScheduledEventAttributes,
    WorkflowTaskStartedEventAttributes,
)

from bench.evacuation import task_gaps

T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def _event(event_id: int, ms: float, **attributes: object) -> HistoryEvent:
    e = HistoryEvent(event_id=event_id, **attributes)  # type: ignore[arg-type]
    e.event_time.FromDatetime(T0 + timedelta(milliseconds=ms))
    return e


def _history() -> list[HistoryEvent]:
    """A workflow task (dispatched after 3 ms, run for 8 ms) that schedules a step's prepare
    (started at once, run for 40 ms), then the workflow task that follows it."""
    step = {"step": {"id": "flag", "type": "ssm_parameter"}}
    scheduled = ActivityTaskScheduledEventAttributes(
        input=Payloads(payloads=[Payload(data=json.dumps(step).encode())])
    )
    scheduled.activity_type.name = "step.prepare"
    return [
        _event(1, 0, workflow_task_scheduled_event_attributes=WorkflowTaskScheduledEventAttributes()),
        _event(2, 3, workflow_task_started_event_attributes=WorkflowTaskStartedEventAttributes(
            scheduled_event_id=1)),
        _event(3, 11, workflow_task_completed_event_attributes=WorkflowTaskCompletedEventAttributes(
            scheduled_event_id=1, started_event_id=2)),
        _event(4, 11, activity_task_scheduled_event_attributes=scheduled),
        _event(5, 11, activity_task_started_event_attributes=ActivityTaskStartedEventAttributes(
            scheduled_event_id=4)),
        _event(6, 51, activity_task_completed_event_attributes=ActivityTaskCompletedEventAttributes(
            scheduled_event_id=4, started_event_id=5)),
        _event(7, 51, workflow_task_scheduled_event_attributes=WorkflowTaskScheduledEventAttributes()),
        _event(8, 81, workflow_task_started_event_attributes=WorkflowTaskStartedEventAttributes(
            scheduled_event_id=7)),
    ]  # fmt: skip


def test_each_task_is_timed_from_its_own_events() -> None:
    gaps: dict[str, list[float]] = {}
    task_gaps(_history(), gaps)
    ms = {k: [round(v * 1000, 3) for v in vs] for k, vs in gaps.items()}
    assert ms == {
        "workflow_task_dispatch": [3.0, 30.0],
        "workflow_task_run": [8.0],
        "activity_dispatch": [0.0],
        "activity_run:step.prepare:ssm_parameter": [40.0],
    }


def test_gaps_add_up_over_histories_and_unknown_inputs_keep_the_activity_name() -> None:
    events = _history()
    events[3].activity_task_scheduled_event_attributes.input.payloads[0].data = b"not json"
    gaps: dict[str, list[float]] = {}
    task_gaps(events, gaps)
    task_gaps(_history(), gaps)
    assert len(gaps["workflow_task_dispatch"]) == 4
    assert [round(v * 1000) for v in gaps["activity_run:step.prepare"]] == [40]
    assert [round(v * 1000) for v in gaps["activity_run:step.prepare:ssm_parameter"]] == [40]
