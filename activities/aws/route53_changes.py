"""Route 53 changes sent together: the record changes that steps make to one hosted zone at the
same time go in one ChangeResourceRecordSets (a group commit), and the steps waiting for one
change share its GetChange answers.

Route 53's API takes 5 requests a second per account, and AWS advises batching changes. A write
to a zone no other write is being sent to is sent at once, alone: nothing waits for company.
The writes that arrive while one is being sent wait for it, then go together in the next change.
A batch is one transaction: Route 53 applies all of it or none. So:

- a batch it refuses for what it holds (`InvalidChangeBatch`, `InvalidInput`, access denied to
  one of its records, a parameter botocore rejects) is sent again one write at a time, and one
  step's bad record fails that step only;
- any other error (throttled past the client's retries, no answer, the zone gone) is each
  write's, as if it had been sent alone: each step observes and decides (`StateStep.drive`).

Two writes to one record set never share a change (Route 53 refuses a batch that names a set
twice), nor does a batch exceed Route 53's limits on the records and characters of a request.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from activities.errors import StepError

#: Errors that say a batch holds something Route 53 (or botocore) will not take: its writes are
#: then sent one at a time, so that only the one at fault fails.
ONE_AT_A_TIME = frozenset(
    {"InvalidChangeBatch", "InvalidInput", "AccessDenied", "AccessDeniedException"}
)
#: Route 53's limits on one ChangeResourceRecordSets: 1,000 ResourceRecord elements (an UPSERT
#: counts twice) and 32,000 characters of their values (UPSERT: twice too).
MAX_ELEMENTS = 1000
MAX_CHARACTERS = 32000
#: A comment longer than this is cut (Route 53's limit: 256).
MAX_COMMENT = 256
#: How long a PENDING answer of GetChange serves the other steps waiting on the same change.
STATUS_FRESH = 0.1
#: What a write whose send was cut short gets (it may have landed: the step decides again).
CUT_SHORT = "the change may not have been sent"
#: Seconds between two `beat`s of a write waiting for a change in flight.
BEAT = 1.0
#: Seconds a step waits for another's GetChange before it asks itself.
ASKER_PATIENCE = 30.0


@dataclass(eq=False)
class _Write:
    """One step's record sets to UPSERT, and what became of them."""

    records: list[dict[str, Any]]
    comment: str
    change: dict[str, Any] | None = None
    error: BaseException | None = None
    done: bool = False

    def sets(self) -> set[tuple[str, str, str]]:
        return {(r["Name"], r["Type"], r.get("SetIdentifier", "")) for r in self.records}

    def size(self) -> tuple[int, int]:
        """(ResourceRecord elements, characters of their values) in the request, UPSERT's twice."""
        values = [v.get("Value", "") for r in self.records for v in r.get("ResourceRecords", [])]
        elements = sum(max(1, len(r.get("ResourceRecords", []))) for r in self.records)
        return 2 * elements, 2 * sum(len(v) for v in values)

    def result(self) -> dict[str, Any]:
        if self.error is not None:
            raise _own(self.error) from self.error
        assert self.change is not None
        return self.change


def _own(exc: BaseException) -> BaseException:
    """A copy of an error several steps raise, each its own (a raise sets its traceback)."""
    try:
        if hasattr(exc, "response") and hasattr(exc, "operation_name"):  # botocore's, by class
            return type(exc)(exc.response, exc.operation_name)
        if isinstance(exc, StepError):
            return StepError(exc.kind, exc.message, exc.retryable)
        return copy.copy(exc)
    except Exception:  # (an error that cannot be copied is raised as it is)
        return exc


def _code(exc: BaseException) -> str | None:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code"))
    return None


def _batch_refused(exc: BaseException) -> bool:
    """Whether an error is about what a batch holds (then its writes go one at a time)."""
    return _code(exc) in ONE_AT_A_TIME or type(exc).__name__ == "ParamValidationError"


class ZoneChanges:
    """The worker's writes to hosted zones, grouped per zone (and per client: an account)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queues: dict[tuple[int, str], list[_Write]] = {}
        self._sending: set[tuple[int, str]] = set()

    def upsert(
        self,
        r53: Any,
        zone_id: str,
        records: list[dict[str, Any]],
        comment: str,
        beat: Callable[[], None] = lambda: None,
    ) -> dict[str, Any]:
        """UPSERT `records` in the zone, with the writes to it that wait meanwhile; returns the
        change's ChangeInfo (shared with the writes sent with it). While it waits for a change
        in flight, `beat()` is called every `BEAT` seconds: if it raises (the step was
        cancelled), the write is withdrawn if it is still queued, and the error raised."""
        key, mine = (id(r53), zone_id), _Write(records, comment)
        with self._cond:
            queue = self._queues.setdefault(key, [])
            queue.append(mine)
            beaten = time.monotonic()
            try:
                while not mine.done and (key in self._sending or queue[0] is not mine):
                    self._cond.wait(timeout=BEAT)
                    if time.monotonic() - beaten >= BEAT:  # (woken often in a busy zone)
                        beaten = time.monotonic()
                        beat()
            except BaseException:
                if mine in queue:  # (not taken yet: never sent)
                    queue.remove(mine)
                    if not queue and self._queues.get(key) is queue:
                        del self._queues[key]
                    self._cond.notify_all()
                raise
            if mine.done:
                return mine.result()
            batch = _take(queue)
            if not queue:
                del self._queues[key]
            self._sending.add(key)
        try:
            _send(r53, zone_id, batch)
        finally:
            with self._cond:
                self._sending.discard(key)
                for write in batch:
                    if write.change is None and write.error is None:  # (the send was cut short)
                        write.error = StepError("Interrupted", CUT_SHORT, retryable=True)
                    write.done = True
                self._cond.notify_all()
        return mine.result()


def _take(queue: list[_Write]) -> list[_Write]:
    """The writes at the head of `queue` that fit in one change, taken off it in order; the
    first always (a write too large alone is Route 53's to refuse). A write left for a later
    change holds back every later write that names one of its record sets: the last write to a
    set is the last sent."""
    batch: list[_Write] = []
    sets: set[tuple[str, str, str]] = set()
    held: set[tuple[str, str, str]] = set()
    elements = characters = 0
    for write in list(queue):
        more, chars = write.size()
        if batch and (
            write.sets() & (sets | held)
            or elements + more > MAX_ELEMENTS
            or characters + chars > MAX_CHARACTERS
        ):
            held |= write.sets()
            continue
        batch.append(write)
        queue.remove(write)
        sets |= write.sets()
        elements, characters = elements + more, characters + chars
    return batch


def _comment(batch: list[_Write]) -> str:
    if len(batch) == 1:
        return batch[0].comment[:MAX_COMMENT]
    text = f"{len(batch)} writes: " + "; ".join(w.comment for w in batch)
    return text if len(text) <= MAX_COMMENT else text[: MAX_COMMENT - 3] + "..."


def _send(r53: Any, zone_id: str, batch: list[_Write]) -> None:
    """Send `batch` as one change; each write gets its ChangeInfo or its error."""
    changes = [{"Action": "UPSERT", "ResourceRecordSet": r} for w in batch for r in w.records]
    try:
        change = r53.change_resource_record_sets(
            HostedZoneId=zone_id, ChangeBatch={"Comment": _comment(batch), "Changes": changes}
        )["ChangeInfo"]
    except Exception as exc:
        if len(batch) > 1 and _batch_refused(exc):
            for write in batch:
                _send(r53, zone_id, [write])
            return
        for write in batch:
            write.error = exc
        return
    for write in batch:
        write.change = change


class ChangeStatuses:
    """GetChange answers shared by the steps waiting on one change (a batch's): one of them
    asks, the others take its answer; an INSYNC answer is final, a PENDING one serves for
    `STATUS_FRESH` seconds."""

    def __init__(self, keep: int = 2000) -> None:
        self._lock = threading.Lock()
        self._seen: dict[str, tuple[str, float]] = {}
        self._asking: dict[str, threading.Event] = {}
        self._keep = keep

    def status(self, r53: Any, change_id: str) -> str:
        """The change's status (PENDING or INSYNC), asked of Route 53 unless another step just
        asked or is asking (then its answer; if it failed, one of the waiters asks)."""
        while True:
            with self._lock:
                seen = self._fresh(change_id)
                if seen is not None:
                    return seen
                asking = self._asking.get(change_id)
                if asking is None:
                    asking = self._asking[change_id] = threading.Event()
                    break
            if not asking.wait(timeout=ASKER_PATIENCE):
                asking = threading.Event()  # (the asker hangs: ask, unshared)
                break
        try:
            status = str(r53.get_change(Id=change_id)["ChangeInfo"]["Status"])
            with self._lock:
                self._seen.pop(change_id, None)  # (the newest answer last: the last evicted)
                self._seen[change_id] = (status, time.monotonic())
                while len(self._seen) > self._keep:
                    del self._seen[next(iter(self._seen))]
            return status
        finally:
            with self._lock:
                if self._asking.get(change_id) is asking:
                    del self._asking[change_id]
            asking.set()

    def _fresh(self, change_id: str) -> str | None:
        seen = self._seen.get(change_id)
        if seen is None:
            return None
        status, at = seen
        return status if status == "INSYNC" or time.monotonic() - at < STATUS_FRESH else None


#: The worker's writes to hosted zones and its changes' statuses (all its activities share them).
ZONE_CHANGES = ZoneChanges()
CHANGE_STATUSES = ChangeStatuses()
