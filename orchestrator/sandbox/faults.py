"""Fault rules served by the sandbox's servers: the client sees a real error response.

A rule names a target (`aws:<service>:<Operation>` or `k8s:<region>:<verb>:<resource>`, where any
part may be `*`), an error code, how many calls it hits and when: `before` the call is applied
(nothing changes) or `after` (the change lands but the client sees the error).
"""

from __future__ import annotations

import fnmatch
import threading
import time
import uuid
from typing import Literal

from pydantic import BaseModel, Field, field_validator

When = Literal["before", "after"]


class FaultRule(BaseModel):
    """One fault: which calls it hits and what they get back."""

    id: str = Field(default_factory=lambda: uuid.uuid4().hex[:8])
    target: str
    error: str = "ServiceUnavailable"
    count: int | None = Field(default=1, ge=1, description="calls to hit; None = until cleared")
    region: str | None = None
    delay: float = Field(default=0.0, ge=0, description="seconds to wait before answering")
    when: When = "before"
    message: str | None = None
    hits: int = 0
    created_at: float = Field(default_factory=time.time)

    @field_validator("target")
    @classmethod
    def _check_target(cls, v: str) -> str:
        parts = v.split(":")
        if parts[0] == "aws" and len(parts) == 3:
            return v
        if parts[0] == "k8s" and len(parts) == 4:
            return v
        raise ValueError(
            "target must be aws:<service>:<Operation> or k8s:<region>:<verb>:<resource> "
            f"(got {v!r})"
        )

    @property
    def exhausted(self) -> bool:
        return self.count is not None and self.hits >= self.count

    def matches(self, key: str, region: str | None) -> bool:
        if self.exhausted:
            return False
        if self.region and region and self.region != region:
            return False
        want = self.target.split(":")
        got = key.split(":")
        if len(want) != len(got):
            return False
        return all(
            fnmatch.fnmatchcase(g.lower(), w.lower()) for w, g in zip(want, got, strict=True)
        )


class FaultBook:
    """Thread-safe set of fault rules; `take` consumes one hit of the first matching rule."""

    def __init__(self) -> None:
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()

    def add(self, rule: FaultRule) -> FaultRule:
        with self._lock:
            self._rules.append(rule)
        return rule

    def list(self) -> list[FaultRule]:
        with self._lock:
            return [r.model_copy() for r in self._rules]

    def clear(self, rule_id: str | None = None) -> int:
        with self._lock:
            before = len(self._rules)
            self._rules = [r for r in self._rules if rule_id is not None and r.id != rule_id]
            return before - len(self._rules)

    def take(self, key: str, region: str | None, when: When) -> FaultRule | None:
        with self._lock:
            for rule in self._rules:
                if rule.when == when and rule.matches(key, region):
                    rule.hits += 1
                    return rule.model_copy()
        return None
