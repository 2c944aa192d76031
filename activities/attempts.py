"""One attempt at a time per step activity in this worker.

When an attempt's heartbeats or completion are lost (the Temporal server restarted, a long client
call outlived the heartbeat timeout), Temporal starts the next attempt while the first one may
still be in a client call, its write not yet landed. The next attempt would then observe the world
before that write and send it again. So an attempt waits here until earlier attempts of the same
activity (same workflow run and activity id) in this worker have returned; then it observes what
they did and repeats nothing. Attempts on other workers are not seen: their writes are found by
observing, as for any write in flight (`StateStep.drive`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from activities.errors import StepError

#: (workflow id, run id, activity id): the attempts of one activity.
Key = tuple[str, str, str]


class AttemptLocks:
    """A lock per activity with attempts running, dropped when the last one is done."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[Key, tuple[threading.Lock, int]] = {}

    @contextmanager
    def one_at_a_time(self, key: Key, deadline: float) -> Iterator[None]:
        """Run the body once no earlier attempt of `key` is running here; a retryable StepError
        if one still is at `deadline` (time.monotonic())."""
        with self._guard:
            lock, users = self._locks.get(key, (threading.Lock(), 0))
            self._locks[key] = (lock, users + 1)
        try:
            if not lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
                raise StepError(
                    "Conflict",
                    "an earlier attempt of this step is still running in this worker",
                    retryable=True,
                )
            try:
                yield
            finally:
                lock.release()
        finally:
            with self._guard:
                lock, users = self._locks[key]
                if users == 1:
                    del self._locks[key]
                else:
                    self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        """Activities with an attempt running or waiting."""
        return len(self._locks)
