"""Leases: a run holds the resources it will write, and a second run that would write one of them
is refused with the holder's details.

What a run holds is its `FailoverResources` search attribute (a keyword list), set when it
starts: one short key per resource its mutating steps name (`StepType.resource()`: a Route 53
record, an Aurora global cluster, a Deployment in one region, ...), plus `runbook:<name>` for
each runbook it runs (one switch of a runbook at a time, wherever it was started). So a lease:

- is held exactly while the workflow runs, and released however it ends (completed, failed,
  cancelled, terminated, timed out): nothing to clean up, nothing to forget;
- survives worker and server restarts: it is the workflow's own record in the server's
  visibility store;
- names its holder: whoever is refused is told the holder's workflow, type, requester and start.

Keys are hashes (`key`), not the resources' names: Temporal limits a search attribute's value to
2 KB, and a key is 13 characters (up to `MAX_KEYS` per run).

Taking leases is atomic through workflow-id uniqueness: a start that holds leases first takes the
lease lock (a workflow `failover-lease-lock` on a task queue no worker polls, started with the FAIL
conflict policy, so only one start holds it; it times out by itself after `LOCK_TTL` if its taker
dies), asks visibility for running runs holding any of its keys, starts its run with its keys
only if there are none, and releases the lock once visibility lists the new run. A holder that
has ended and only writes its report (`ended_at` set in its progress) is waited for, not refused.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

from temporalio.client import Client
from temporalio.common import SearchAttributePair, WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from activities import registry
from activities.base import StepContext
from orchestrator import search_attributes as sa
from orchestrator.runs import PlannedStep, StepKind, SwitchInput

T = TypeVar("T")

#: Keys one run may hold: the value is a JSON list of 13-character strings, 16 n + 1 bytes, and
#: Temporal refuses one over 2,048 bytes (at start: so 128 keys would pass validation, then fail).
MAX_KEYS = 127
LOCK_ID = "failover-lease-lock"
LOCK_QUEUE = "failover-lease-lock"  # polled by no worker: the lock never runs, it only exists
LOCK_TTL = timedelta(seconds=30)
#: How long a start waits for holders that have ended but still write their report.
FINISHING_WAIT_S = 20.0
#: How long a start waits for visibility to list the run it started (then releases the lock).
VISIBLE_WAIT_S = 5.0


class LeaseConflictError(RuntimeError):
    """Another running run holds a resource this one would write (the message names it)."""

    def __init__(self, message: str, holders: list[Holder]) -> None:
        super().__init__(message)
        self.holders = holders


class LeaseLockError(RuntimeError):
    """The lease lock could not be taken in time."""


def runbook_key(runbook: str) -> str:
    """The lease every run of a runbook holds (one switch of a runbook at a time)."""
    return f"runbook:{runbook}"


def key(resource: str) -> str:
    """A resource's lease key: 12 base32 characters of its SHA-256, prefixed with `r`."""
    digest = hashlib.sha256(resource.encode()).digest()
    return "r" + base64.b32encode(digest).decode()[:12].lower()


def resources(inp: SwitchInput, holder: str) -> list[str]:
    """What a run writes: the resource of each of its mutating steps, and its runbook's lease.

    `holder` is the run's workflow id (the name of the objects a step creates per run, such as a
    smoke-test Job, depends on it)."""
    out = [runbook_key(inp.runbook)]
    for step in inp.steps:
        if step.kind == StepKind.MUTATE:
            out.append(step_resource(step, inp.from_region, inp.to_region, inp.mode, holder))
    return list(dict.fromkeys(out))


def step_resource(
    step: PlannedStep, from_region: str, to_region: str, mode: str, holder: str
) -> str:
    """The resource one mutating step writes, as its type names it."""
    stype, params = registry.bind(step.type, step.params)
    ctx = StepContext(
        run_id=holder,
        step_id=step.id,
        from_region=from_region,
        to_region=to_region,
        region=step.region,
        mode=mode,
        clients=cast(Any, None),  # resource() names; it calls nothing
    )
    return stype.resource(ctx, params)


def keyed(names: Iterable[str]) -> dict[str, str]:
    """Lease key -> resource name, for a run's resources (ValueError past MAX_KEYS)."""
    out = {key(n): n for n in names}
    if len(out) > MAX_KEYS:
        raise ValueError(
            f"a run can hold at most {MAX_KEYS} resources; this one writes {len(out)}: split it"
        )
    return out


def attribute(keys: Iterable[str]) -> SearchAttributePair[Sequence[str]]:
    """The `FailoverResources` search attribute holding these keys."""
    return SearchAttributePair(sa.RESOURCES, sorted(keys))


@dataclass
class Holder:
    """A running run that holds some of the leases asked for."""

    workflow_id: str
    run_id: str
    workflow_type: str
    started_at: datetime
    requester: str
    #: The resources asked for that it holds (names where the asker knows them, else keys).
    resources: list[str] = field(default_factory=list)
    #: It has ended and only writes its report: its leases go within seconds.
    finishing: bool = False

    def describe(self) -> str:
        shown = ", ".join(self.resources[:3])
        more = f" and {len(self.resources) - 3} more" if len(self.resources) > 3 else ""
        return (
            f"{shown}{more} held by {self.workflow_type} {self.workflow_id} (run {self.run_id}, "
            f"requested by {self.requester or '?'}, started {self.started_at:%Y-%m-%d %H:%M:%S}Z)"
        )


def conflict(holders: list[Holder], what: str) -> LeaseConflictError:
    """The error for a run refused because of `holders`."""
    return LeaseConflictError(
        f"{what} would write what another run holds: "
        + "; ".join(h.describe() for h in holders)
        + ": wait for it to end, or abort it",
        holders,
    )


async def holders(
    client: Client, keys: Mapping[str, str], exclude: Iterable[str] = (), probe: bool = False
) -> list[Holder] | None:
    """The running runs (other than the workflow ids in `exclude`) holding any of `keys`, asked
    of visibility; None where the server cannot tell (Temporal's time-skipping test server).
    `probe`: only whether it can tell ([] if so)."""
    if not keys and not probe:
        return []
    skip = set(exclude)
    values = ", ".join(f"'{k}'" for k in sorted(keys)) or "''"
    query = f"ExecutionStatus = 'Running' AND FailoverResources IN ({values})"
    out: list[Holder] = []
    try:
        async for wf in client.list_workflows(query, limit=1 if probe else None):
            if wf.id in skip or wf.parent_id in skip:
                continue
            held = wf.typed_search_attributes.get(sa.RESOURCES) or []
            out.append(
                Holder(
                    workflow_id=wf.id,
                    run_id=wf.run_id,
                    workflow_type=wf.workflow_type,
                    started_at=wf.start_time,
                    requester=wf.typed_search_attributes.get(sa.REQUESTER) or "",
                    resources=sorted(keys[k] for k in held if k in keys),
                )
            )
    except RPCError as exc:
        if exc.status == RPCStatusCode.UNIMPLEMENTED:
            return None
        raise
    for h in out:
        h.finishing = await _finishing(client, h)
    return out


async def _finishing(client: Client, h: Holder) -> bool:
    """Whether a holder has ended and only writes its report (its progress has `ended_at`)."""
    try:
        p = await client.get_workflow_handle(h.workflow_id, run_id=h.run_id).query(
            "progress", rpc_timeout=timedelta(seconds=3)
        )
    except Exception:  # no worker, or it does not answer: it is not finishing as far as we know
        return False
    return isinstance(p, dict) and p.get("ended_at") is not None


async def start_holding(
    client: Client,
    names: Iterable[str],
    workflow_id: str,
    start: Callable[[SearchAttributePair[Sequence[str]]], Awaitable[T]],
    what: str,
) -> T:
    """Start a run holding the leases of `names` (`start` gets the search attribute to add and
    starts the workflow `workflow_id`). LeaseConflictError when a running run holds one of them
    (a run with the same workflow id is left to `start` to refuse, in its own words)."""
    keys = keyed(names)
    if await holders(client, {}, probe=True) is None:  # a server with no visibility: no check
        return await start(attribute(keys))
    deadline = time.monotonic() + FINISHING_WAIT_S
    while True:
        async with lease_lock(client, workflow_id):
            found = await holders(client, keys, exclude=[workflow_id])
            if not found:
                started = await start(attribute(keys))
                await _visible(client, workflow_id)
                return started
        if any(not h.finishing for h in found) or time.monotonic() > deadline:
            raise conflict(found, what)
        await asyncio.sleep(0.25)  # they only write their reports: their leases go soon


async def _visible(client: Client, workflow_id: str) -> None:
    """Wait (a little) until visibility lists the running workflow: a start that asks after the
    lock is released must see its leases."""
    query = f"WorkflowId = '{workflow_id}'"
    deadline = time.monotonic() + VISIBLE_WAIT_S
    while time.monotonic() < deadline:
        async for wf in client.list_workflows(query, limit=1):
            if wf.typed_search_attributes.get(sa.RESOURCES):
                return
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def lease_lock(client: Client, who: str) -> AsyncIterator[None]:
    """Hold the lease lock (one start at a time checks and takes leases)."""
    deadline = time.monotonic() + LOCK_TTL.total_seconds() + 5
    while True:
        try:
            handle = await client.start_workflow(
                "FailoverLeaseLock",
                id=LOCK_ID,
                task_queue=LOCK_QUEUE,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
                execution_timeout=LOCK_TTL,
                memo={"holder": who},
                static_summary=f"lease lock, taken by {who}",
            )
            break
        except WorkflowAlreadyStartedError:
            if time.monotonic() > deadline:
                raise LeaseLockError(
                    f"the lease lock ({LOCK_ID}) stayed taken for {LOCK_TTL}: try again"
                ) from None
            await asyncio.sleep(0.05)
    try:
        yield
    finally:
        with contextlib.suppress(RPCError):  # timed out already: it is free anyway
            await client.get_workflow_handle(
                LOCK_ID, run_id=handle.first_execution_run_id
            ).terminate("released")
