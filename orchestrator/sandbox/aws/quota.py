"""API request quotas, as AWS enforces them: so many requests a second per account and service.

Route 53's API, for one, takes 5 requests a second per account, shared by everything that uses
it there; past that it answers `Throttling` ("Rate exceeded", HTTP 400) and the client retries
later. The sandbox enforces none by default (tests and seeding make calls in bursts); a quota is
set per service (`PUT /_sandbox/quota`, `SandboxControl.set_quota`) and holds for each access
key (the account it stands for) with a token bucket: `rate` tokens a second, at most `burst`
saved up.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any


class Quotas:
    """The quotas set, and each account's bucket for each service."""

    def __init__(self) -> None:
        self._rules: dict[str, tuple[float, float]] = {}
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}
        self.throttled: Counter[str] = Counter()
        self.served: Counter[str] = Counter()
        self._lock = threading.Lock()

    def set(self, service: str, rate: float, burst: float | None = None) -> None:
        """Allow `rate` requests a second to `service` per account (0: no quota), in bursts of
        at most `burst` (default: one second's worth)."""
        if rate < 0 or (burst is not None and burst < 1):
            raise ValueError("rate must be 0 or more, burst 1 or more")
        with self._lock:
            for key in [k for k in self._buckets if k[0] == service]:
                del self._buckets[key]
            self.throttled.pop(service, None)
            self.served.pop(service, None)
            if rate == 0:
                self._rules.pop(service, None)
            else:
                self._rules[service] = (float(rate), float(burst or max(rate, 1.0)))

    def take(self, service: str, account: str) -> bool:
        """One request of `account` to `service`: True if the quota lets it through."""
        with self._lock:
            rule = self._rules.get(service)
            if rule is None:
                return True
            rate, burst = rule
            now = time.monotonic()
            tokens, then = self._buckets.get((service, account), (burst, now))
            tokens = min(burst, tokens + (now - then) * rate)
            if tokens < 1:
                self._buckets[(service, account)] = (tokens, now)
                self.throttled[service] += 1
                return False
            self._buckets[(service, account)] = (tokens - 1, now)
            self.served[service] += 1
            return True

    def clear(self) -> None:
        """No quota any more, and counts from zero (the sandbox's reset)."""
        with self._lock:
            self._rules.clear()
            self._buckets.clear()
            self.throttled.clear()
            self.served.clear()

    def state(self) -> dict[str, Any]:
        """The quotas set, and how many requests each let through and refused since set."""
        with self._lock:
            return {
                service: {
                    "rate": rate,
                    "burst": burst,
                    "served": self.served[service],
                    "throttled": self.throttled[service],
                }
                for service, (rate, burst) in self._rules.items()
            }
