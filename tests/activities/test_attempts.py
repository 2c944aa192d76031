"""One attempt at a time per step activity: a later attempt waits for an earlier one still in a
client call, so it observes what that one wrote instead of writing it again."""

from __future__ import annotations

import threading
import time

import pytest

from activities.attempts import AttemptLocks
from activities.errors import StepError

KEY = ("switch-shop", "run-1", "7")


def test_a_later_attempt_runs_only_after_the_earlier_one_returned() -> None:
    locks, order = AttemptLocks(), []
    first_in = threading.Event()

    def first() -> None:
        with locks.one_at_a_time(KEY, time.monotonic() + 10):
            first_in.set()
            time.sleep(0.3)  # the write still in flight
            order.append("first wrote")

    t = threading.Thread(target=first)
    t.start()
    first_in.wait(5)
    with locks.one_at_a_time(KEY, time.monotonic() + 10):
        order.append("second observes")
    t.join()
    assert order == ["first wrote", "second observes"]
    assert len(locks) == 0  # nothing kept once every attempt is done


def test_a_later_attempt_gives_up_at_its_deadline_with_a_retryable_error() -> None:
    locks = AttemptLocks()
    release, held = threading.Event(), threading.Event()

    def stuck() -> None:
        with locks.one_at_a_time(KEY, time.monotonic() + 10):
            held.set()
            release.wait(10)

    t = threading.Thread(target=stuck)
    t.start()
    held.wait(5)
    with pytest.raises(StepError) as raised, locks.one_at_a_time(KEY, time.monotonic() + 0.2):
        pytest.fail("ran beside the earlier attempt")
    assert raised.value.retryable and raised.value.kind == "Conflict"
    assert "earlier attempt of this step is still running" in str(raised.value)
    release.set()
    t.join()
    assert len(locks) == 0


def test_other_activities_do_not_wait() -> None:
    locks = AttemptLocks()
    with (
        locks.one_at_a_time(KEY, time.monotonic() + 10),
        locks.one_at_a_time(("switch-shop", "run-1", "8"), time.monotonic() + 0.1),
        locks.one_at_a_time(("switch-shop", "run-2", "7"), time.monotonic() + 0.1),
    ):
        assert len(locks) == 3
    assert len(locks) == 0
