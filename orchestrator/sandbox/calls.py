"""The record of every mutating call a sandbox server served (tests prove exactly-once with it,
and, from the access key id each AWS call was signed with, which credentials made it)."""

from __future__ import annotations

import threading
import time
from typing import Any

from pydantic import BaseModel, Field

from orchestrator.redact import redact


class Call(BaseModel):
    """One mutating call: which server, what operation, with which (redacted) parameters."""

    seq: int
    time: float = Field(default_factory=time.time)
    source: str  # "aws" or "k8s"
    region: str | None
    operation: str  # e.g. "rds:SwitchoverGlobalCluster" or "patch:deployments/scale"
    params: dict[str, Any] = Field(default_factory=dict)
    status: int
    fault: str | None = None
    #: AWS: the access key id of the request's signature (`Credential=AKID/...`): AKIA... for
    #: long-term keys, ASIA... for temporary ones (an assumed role's).
    access_key_id: str | None = None


class CallLog:
    """Append-only, thread-safe, bounded log of mutating calls."""

    def __init__(self, source: str, limit: int = 100_000) -> None:
        self.source = source
        self._calls: list[Call] = []
        self._lock = threading.Lock()
        self._seq = 0
        self._limit = limit

    def record(
        self,
        region: str | None,
        operation: str,
        params: dict[str, Any],
        status: int,
        fault: str | None = None,
        access_key_id: str | None = None,
    ) -> None:
        with self._lock:
            self._seq += 1
            self._calls.append(
                Call(
                    seq=self._seq,
                    source=self.source,
                    region=region,
                    operation=operation,
                    params=redact(params),
                    status=status,
                    fault=fault,
                    access_key_id=access_key_id,
                )
            )
            if len(self._calls) > self._limit:
                del self._calls[: len(self._calls) - self._limit]

    def list(self, since: float | None = None) -> list[Call]:
        with self._lock:
            return [c for c in self._calls if since is None or c.time >= since]

    def clear(self) -> None:
        with self._lock:
            self._calls.clear()
