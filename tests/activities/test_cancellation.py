"""Cancelling a step activity while it works.

A worker cancels an attempt when Temporal asks it to, or when Temporal no longer knows the attempt
(its heartbeats were lost: the server restarted and timed it out). By default the SDK raises the
cancellation inside the activity's thread, at whatever line it is running: inside a client call,
botocore took it for a lost connection and sent the request again (two PutParameter calls in the
Temporal-server-restart crash test). A step activity stops at its next heartbeat instead, between
client calls, so a write in flight is answered and sent once; and it still stops soon.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from temporalio.activity import ActivityCancellationDetails
from temporalio.exceptions import CancelledError
from temporalio.testing import ActivityEnvironment

from activities import registry
from activities.base import State, StateStep, StepContext, StepParams
from activities.clients import Clients
from activities.errors import StepCancelled
from activities.steps import StepActivities
from orchestrator.config import Config, from_sandbox
from orchestrator.runs import PlannedStep, StepCall, StepKind, StepOutcome
from orchestrator.sandbox.control import SandboxControl
from orchestrator.sandbox.faults import FaultRule
from orchestrator.sandbox.manager import SandboxEnv
from tests.sandbox.helpers import aws, wait_for

#: What the worker's SDK says when the server answers a heartbeat "no such attempt".
LOST = ActivityCancellationDetails(not_found=True)
HOLD = 2.0  # the sandbox holds the write this long before applying it


def step_call(type_: str, params: dict[str, Any], kind: StepKind) -> StepCall:
    stype = registry.STEP_TYPES[type_]
    step = PlannedStep(id="s", type=type_, kind=kind,
                       params=stype.parse(params).model_dump(mode="json"),
                       timeout=timedelta(seconds=30))  # fmt: skip
    return StepCall(run_id="cancel/1", step=step, from_region="us-east-1",
                    to_region="us-west-2", mode="drill")  # fmt: skip


class Attempt:
    """One attempt of a step activity in a thread of its own, as a worker runs it (with the
    SDK's cancellation of a synchronous activity); cancellable from the test's thread."""

    def __init__(self, fn: Callable[[StepCall], StepOutcome], call: StepCall) -> None:
        self.env = ActivityEnvironment()
        now = datetime.now(UTC)
        self.env.info = dataclasses.replace(
            self.env.info, scheduled_time=now, started_time=now,
            current_attempt_scheduled_time=now, start_to_close_timeout=call.step.timeout,
            schedule_to_close_timeout=None, heartbeat_timeout=timedelta(seconds=2),
        )  # fmt: skip
        self.outcome: StepOutcome | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(fn, call), daemon=True)

    def _run(self, fn: Callable[[StepCall], StepOutcome], call: StepCall) -> None:
        try:
            self.outcome = self.env.run(fn, call)
        except BaseException as exc:  # what the worker would report
            self.error = exc

    def start(self) -> Attempt:
        self.thread.start()
        return self

    def ended(self, timeout: float) -> float:
        """Wait for the attempt to end; how long that took."""
        began = time.monotonic()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"still running after {timeout}s"
        return time.monotonic() - began


def test_an_apply_cancelled_while_its_write_is_in_flight_sends_the_write_once(
    fresh: SandboxEnv, control: SandboxControl
) -> None:
    acts = StepActivities(Clients(from_sandbox(fresh)))
    call = step_call("ssm_parameter", {"name": "/shop/flags/maintenance", "value": "true",
                                       "region": "us-east-1"}, StepKind.MUTATE)  # fmt: skip
    call.snapshot = ActivityEnvironment().run(acts.prepare, call).snapshot
    assert call.snapshot is not None and call.snapshot["value"] != "true"
    t0 = time.time()
    held = control.add_fault(FaultRule(target="aws:ssm:PutParameter", region="us-east-1",
                                       error="none", delay=HOLD))  # fmt: skip
    attempt = Attempt(acts.apply, call).start()
    wait_for(lambda: {f.id: f.hits for f in control.faults()}.get(held.id) == 1)
    attempt.env.cancel(LOST)  # the write is sent, not landed: its answer is on its way
    attempt.ended(timeout=30)
    puts = [c.status for c in control.calls(t0) if c.operation == "ssm:PutParameter"]
    assert puts == [200], f"the write was sent {len(puts)} times"
    assert attempt.error is None, repr(attempt.error)  # answered, verified: its outcome stands
    ssm = aws(fresh, "ssm", "us-east-1")
    assert ssm.get_parameter(Name="/shop/flags/maintenance")["Parameter"]["Value"] == "true"


def test_a_cancelled_step_activity_stops_at_its_next_heartbeat() -> None:
    acts = StepActivities(Clients(Config()))  # a noop calls no client
    call = step_call("noop", {"duration": "30s"}, StepKind.CHECK)
    attempt = Attempt(acts.check, call).start()
    time.sleep(0.3)
    attempt.env.cancel(LOST)
    took = attempt.ended(timeout=10)
    assert isinstance(attempt.error, CancelledError), repr(attempt.error)  # the SDK's own
    assert "not_found" in str(attempt.error)
    assert took < 5.0, f"stopped {took:.1f}s after it was cancelled (a noop of 30s)"


class _FlagParams(StepParams):
    value: str


class _Flags(StateStep[_FlagParams]):
    """Two objects written one after the other, heartbeating in between (as route53_weighted's
    increments do)."""

    name = "test_flags"

    def __init__(self) -> None:
        self.world: State = {"a": "0", "b": "0"}

    def observe(self, ctx: StepContext, params: _FlagParams) -> State:
        return dict(self.world)

    def desired(self, ctx: StepContext, params: _FlagParams, current: State) -> State:
        return {"a": params.value, "b": params.value}

    def write(self, ctx: StepContext, params: _FlagParams, state: State, current: State) -> None:
        self.world["a"] = state["a"]
        ctx.heartbeat("a written")
        self.world["b"] = state["b"]


def test_a_cancellation_between_two_writes_is_not_taken_for_a_failed_write() -> None:
    def cancelled(*_: Any) -> None:
        raise StepCancelled("cancel_requested")

    ctx = StepContext(run_id="r", step_id="s", from_region="us-east-1", to_region="us-west-2",
                      region=None, mode="drill", clients=None,  # type: ignore[arg-type]
                      heartbeat=cancelled)  # fmt: skip
    flags = _Flags()
    with pytest.raises(StepCancelled):
        flags.drive(ctx, _FlagParams(value="1"), {"a": "1", "b": "1"})
    assert flags.world == {"a": "1", "b": "0"}, "stopped where it was cancelled, not decided again"
