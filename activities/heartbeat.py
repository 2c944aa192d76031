"""Heartbeats for long step activities: worker death and cancellation are noticed in seconds.

A step's client call can block (a slow API, an injected delay) longer than the heartbeat timeout,
so a background thread heartbeats on the activity's behalf while the step works; the step itself
adds what it is doing (the phase) through `Heartbeater.beat`.
"""

from __future__ import annotations

import contextvars
import threading
from datetime import timedelta
from types import TracebackType
from typing import Any

from temporalio import activity


class Heartbeater:
    """Heartbeats every `interval` seconds with the latest details until closed."""

    def __init__(self, interval: float | None = None) -> None:
        info = activity.info()
        timeout = info.heartbeat_timeout or timedelta(seconds=30)
        self.interval = interval or max(0.2, min(timeout.total_seconds() / 3, 5.0))
        self._details: tuple[Any, ...] = ()
        self._stop = threading.Event()
        self._ctx = contextvars.copy_context()
        self._thread = threading.Thread(target=self._loop, name="heartbeat", daemon=True)

    def beat(self, *details: Any) -> None:
        """Record what the step is doing now; the next heartbeat carries it.

        No RPC here: a quick step then costs no heartbeat at all (the SDK waits for a pending
        heartbeat before it reports an activity complete).
        """
        self._details = details

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._ctx.run(activity.heartbeat, *self._details)

    def __enter__(self) -> Heartbeater:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=1)
