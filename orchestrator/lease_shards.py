"""Lease shards: where a run holds more leases than its own search attribute takes.

A run's `FailoverResources` search attribute holds at most `MAX_KEYS` lease keys (Temporal
limits one value to 2 KB). An evacuation of many services writes more: it holds the first
`MAX_KEYS` keys (in sorted order) itself and the rest on shards, child workflows that hold
`MAX_KEYS` keys each. A shard never runs (no worker polls `QUEUE`): it only exists, with its
keys, for as long as its parent runs. The parent starts it with the TERMINATE parent close policy,
so the server ends it however the parent ends (completed, failed, cancelled, terminated, timed
out), and the lease is released with the parent's own.

Plain names and arithmetic only: workflow code imports this module.
"""

from __future__ import annotations

from collections.abc import Iterable

#: Keys one search attribute may hold: the value is a JSON list of 13-character strings, 16 n + 1
#: bytes, and Temporal refuses one over 2,048 bytes (at start: so 128 keys would pass
#: validation, then fail).
MAX_KEYS = 127
#: The task queue of the lease lock and of the shards: polled by no worker.
QUEUE = "failover-lease-lock"
WORKFLOW_TYPE = "FailoverLeaseShard"
#: The signal its starter sends a run with shards once visibility lists them: the run waits for
#: it before it changes anything (up to `CONFIRM_WAIT_S`, then it halts, having changed nothing).
LISTED_SIGNAL = "leases_listed"
CONFIRM_WAIT_S = 60


def shard_id(holder_id: str, run_id: str, number: int) -> str:
    """The workflow id of shard `number` (from 1) of one run of `holder_id`: unique to the run
    (the server ends a closed run's shards a moment later: a new run must not meet them), and
    never a service's switch in an evacuation (`<evacuation>.<service>[.failback]`: a service's
    name is a DNS label, with no dot)."""
    return f"{holder_id}.leases.{run_id}.{number}"


def split(keys: Iterable[str]) -> tuple[list[str], list[list[str]]]:
    """The keys a run holds itself and those its shards hold (`MAX_KEYS` each), sorted."""
    ordered = sorted(set(keys))
    own, rest = ordered[:MAX_KEYS], ordered[MAX_KEYS:]
    return own, [rest[i : i + MAX_KEYS] for i in range(0, len(rest), MAX_KEYS)]
