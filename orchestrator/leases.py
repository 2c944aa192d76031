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
2 KB, and a key is 13 characters (up to `lease_shards.MAX_KEYS` per run). An evacuation may hold
more: the rest on lease shards, child workflows that end with it (`orchestrator.lease_shards`).

Taking leases is atomic through workflow-id uniqueness: a start that holds leases first takes the
lease lock (a workflow `failover-lease-lock` on a task queue no worker polls, started with the FAIL
conflict policy, so only one start holds it; it times out by itself after `LOCK_TTL` if its taker
dies), asks visibility for running runs holding any of its keys, starts its run with its keys
only if there are none, and releases the lock once visibility lists the new run (and its shards:
an evacuation waits for word that they are listed before it changes anything; one whose shards
are not listed in time is terminated and refused, having changed nothing). A holder that has
ended and only writes its report (`ended_at` set in its progress) is waited for, not refused.
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

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import SearchAttributePair, WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from activities import registry
from activities.base import StepContext
from orchestrator import lease_shards
from orchestrator import search_attributes as sa
from orchestrator.runs import PlannedStep, StepKind, SwitchInput

T = TypeVar("T")

LOCK_ID = "failover-lease-lock"
LOCK_TTL = timedelta(seconds=30)
#: How long a start waits for holders that have ended but still write their report.
FINISHING_WAIT_S = 20.0
#: How long a start waits for visibility to list the run it started (then releases the lock).
VISIBLE_WAIT_S = 5.0
#: How long a start waits for visibility to list the run's lease shards (its worker starts them
#: first thing; the run waits for word that they are listed before it changes anything): past
#: it, the run is terminated and refused. Within the lock's time to live, with `VISIBLE_WAIT_S`.
SHARDS_WAIT_S = 15.0


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


def keyed(names: Iterable[str], sharded: bool = False) -> dict[str, str]:
    """Lease key -> resource name, for a run's resources. ValueError past
    `lease_shards.MAX_KEYS`, unless `sharded` (the run holds the rest on lease shards)."""
    out = {key(n): n for n in names}
    if len(out) > lease_shards.MAX_KEYS and not sharded:
        raise ValueError(
            f"a run can hold at most {lease_shards.MAX_KEYS} resources; this one writes "
            f"{len(out)}: split it"
        )
    return out


def shards(names: Iterable[str]) -> list[list[str]]:
    """The lease keys of a run's resources that its lease shards hold (none for up to
    `lease_shards.MAX_KEYS`)."""
    return lease_shards.split(keyed(names, sharded=True))[1]


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
    found: dict[tuple[str, str], Holder] = {}
    own, rest = lease_shards.split(keys)  # one query per search attribute's worth of keys
    try:
        for chunk in [own, *rest]:
            values = ", ".join(f"'{k}'" for k in chunk) or "''"
            query = f"ExecutionStatus = 'Running' AND FailoverResources IN ({values})"
            async for wf in client.list_workflows(query, limit=1 if probe else None):
                if wf.id in skip or wf.parent_id in skip:
                    continue
                held = [keys[k] for k in wf.typed_search_attributes.get(sa.RESOURCES) or []
                        if k in keys]  # fmt: skip
                if wf.workflow_type == lease_shards.WORKFLOW_TYPE and wf.parent_id:
                    h = await _shard_holder(client, wf.parent_id, wf.parent_run_id or "", found)
                else:
                    h = found.setdefault((wf.id, wf.run_id), Holder(
                        workflow_id=wf.id,
                        run_id=wf.run_id,
                        workflow_type=wf.workflow_type,
                        started_at=wf.start_time,
                        requester=wf.typed_search_attributes.get(sa.REQUESTER) or "",
                    ))  # fmt: skip
                h.resources = sorted({*h.resources, *held})
            if probe:
                break
    except RPCError as exc:
        if exc.status == RPCStatusCode.UNIMPLEMENTED:
            return None
        raise
    out = list(found.values())
    for h in out:
        h.finishing = await _finishing(client, h)
    return out


async def _shard_holder(
    client: Client, workflow_id: str, run_id: str, found: dict[tuple[str, str], Holder]
) -> Holder:
    """The holder of a lease shard: the run that started it (its parent)."""
    if (workflow_id, run_id) not in found:
        desc = await client.get_workflow_handle(workflow_id, run_id=run_id or None).describe()
        run_id = desc.run_id
        found.setdefault((workflow_id, run_id), Holder(
            workflow_id=workflow_id,
            run_id=run_id,
            workflow_type=desc.workflow_type,
            started_at=desc.start_time,
            requester=desc.typed_search_attributes.get(sa.REQUESTER) or "",
        ))  # fmt: skip
    return found[(workflow_id, run_id)]


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
    sharded: bool = False,
) -> T:
    """Start a run holding the leases of `names` (`start` gets the search attribute to add and
    starts the workflow `workflow_id`). LeaseConflictError when a running run holds one of them
    (a run with the same workflow id is left to `start` to refuse, in its own words).

    `sharded`: the run may hold more than its search attribute takes; it starts the shards of
    `shards(names)` itself (an evacuation: `orchestrator.lease_shards`) and waits for word; the
    lock is held until visibility lists them, then the run is told (`start` returns a handle)."""
    keys = keyed(names, sharded=sharded)
    own, rest = lease_shards.split(keys)
    if await holders(client, {}, probe=True) is None:  # a server with no visibility: no check
        return await start(attribute(own))
    deadline = time.monotonic() + FINISHING_WAIT_S
    while True:
        async with lease_lock(client, workflow_id):
            taken = time.monotonic()
            found = await holders(client, keys, exclude=[workflow_id])
            if not found:
                started = await start(attribute(own))
                await _visible(client, workflow_id)
                if rest:
                    run_id = cast(Any, started).result_run_id
                    limit = min(
                        time.monotonic() + SHARDS_WAIT_S, taken + LOCK_TTL.total_seconds() - 5
                    )
                    await _shards_listed(client, workflow_id, run_id, len(rest), limit, what)
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


async def _shards_listed(
    client: Client, workflow_id: str, run_id: str, count: int, deadline: float, what: str
) -> None:
    """Wait until visibility lists the `count` lease shards of run `run_id` running, then tell
    the run (it changes nothing before). Past `deadline`, or if the run ended meanwhile,
    terminate it (it has changed nothing) and refuse it."""
    ids = [lease_shards.shard_id(workflow_id, run_id, n) for n in range(1, count + 1)]
    query = f"ExecutionStatus = 'Running' AND WorkflowId IN ({', '.join(map(repr, ids))})"
    run = client.get_workflow_handle(workflow_id, run_id=run_id)
    why = f"its worker did not start its {count} lease shards in time (is a worker running?)"
    checks = 0
    while time.monotonic() < deadline:
        listed = [wf async for wf in client.list_workflows(query) if wf.parent_run_id == run_id]
        if len(listed) == count and all(wf.typed_search_attributes.get(sa.RESOURCES)
                                        for wf in listed):  # fmt: skip
            await run.signal(lease_shards.LISTED_SIGNAL)
            return
        checks += 1
        if checks % 20 == 0 and (await run.describe()).status != WorkflowExecutionStatus.RUNNING:
            why = "it ended before its lease shards were listed (its report says why)"
            break
        await asyncio.sleep(0.05)
    with contextlib.suppress(RPCError):  # it ended already: nothing to stop
        await run.terminate(f"its {count} lease shards were not listed running in time")
    raise LeaseLockError(f"{what} was stopped before it changed anything: {why}")


@contextlib.asynccontextmanager
async def lease_lock(client: Client, who: str) -> AsyncIterator[None]:
    """Hold the lease lock (one start at a time checks and takes leases)."""
    deadline = time.monotonic() + LOCK_TTL.total_seconds() + 5
    while True:
        try:
            handle = await client.start_workflow(
                "FailoverLeaseLock",
                id=LOCK_ID,
                task_queue=lease_shards.QUEUE,
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
