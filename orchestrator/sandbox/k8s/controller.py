"""A toy controller manager: moves each object's status toward its spec, over time.

- Deployments / StatefulSets: observedGeneration follows at once; ready and available replicas
  reach spec.replicas after the rollout time (latency model); conditions Available/Progressing;
  one Pod per replica (Running once ready), removed on scale-down.
- Jobs: active at once, then Complete or Failed after the job time; the annotation
  `sandbox.failover.dev/outcome: fail` (on the Job or its pod template) makes it fail, with
  `sandbox.failover.dev/reason` as the failure message.
- CloudNativePG Clusters in a distributed topology (1.24+): the cluster is the primary when
  `spec.replica.primary` names itself (`spec.replica.self`); a change takes the promotion time,
  during which the phase says so. A demoted primary publishes `status.demotionToken`; a replica
  promoted with `spec.replica.promotionToken` is promoted only if the token comes from the
  cluster it replicates from (else the phase says the promotion is refused, and it stays a
  replica); promoted without a token, it is promoted at once (an unplanned promotion). Each
  promotion starts a new timeline. (Older specs: `spec.replica.enabled`.)
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import time
from collections.abc import Callable
from typing import Any

from orchestrator.runbook.durations import parse_duration
from orchestrator.sandbox.k8s.resources import ResourceType
from orchestrator.sandbox.k8s.store import Store, now_rfc3339
from orchestrator.sandbox.latency import LatencyModel

OUTCOME = "sandbox.failover.dev/outcome"
REASON = "sandbox.failover.dev/reason"
HEALTHY = "Cluster in healthy state"


#: Seconds between two reconciles for reads while a change is in progress (a status is read at
#: most this late; the controller's own loop ticks every `interval`).
REQUEST_GAP = 0.01


class Controller:
    """Reconciles the store every `interval` seconds while a change is in progress (a rollout,
    a job, a promotion, a chaos experiment not yet over); when none is, its loop waits for the
    next write (`busy` and `on_busy`) instead of walking every object twenty times a second."""

    def __init__(self, store: Store, latency: LatencyModel, interval: float = 0.05) -> None:
        self.store = store
        self.latency = latency
        self.interval = interval
        #: Whether the last reconcile left a change in progress (its state depends on time).
        self.busy = False
        #: Called when a reconcile leaves a change in progress (wakes the controller's loop).
        self.on_busy: Callable[[], None] | None = None
        self._last = 0.0  # time.monotonic() of the last reconcile
        # (kind, ns, name) -> (generation or spec key, time the change was seen)
        self._seen: dict[tuple[str, str, str], tuple[Any, float]] = {}
        self._instant = False
        self._owned: dict[str, set[str]] = {}  # Pod names by owner uid (`_pods_by_owner`)
        self._owned_at = -1  # the store's `membership` when `_owned` was read
        self._gc_at = -1  # ... and when orphaned Pods were last looked for
        # (kind, ns, name) -> (resourceVersion, its Pods) of a workload left settled (every
        # replica ready): walked again only once either changes.
        self._settled: dict[tuple[str, str, str], tuple[Any, frozenset[str]]] = {}

    def for_request(self, wrote: bool) -> None:
        """Reconcile for an API request (before it, or after a write): always after a write (the
        change is seen when it is made); before a read only while a change is in progress (else
        nothing depends on time) and at most every `REQUEST_GAP` seconds (a reconcile walks every
        object: with hundreds of them, one per poll would starve the API)."""
        if wrote or (self.busy and time.monotonic() - self._last >= REQUEST_GAP):
            self.reconcile()

    def settle(self) -> None:
        """Reconcile once with every pending change treated as done (for freshly seeded state)."""
        self._instant = True
        try:
            self.reconcile()
        finally:
            self._instant = False

    def _types(self, kind: str) -> ResourceType | None:
        return self.store.registry.by_kind(kind)

    def _since(self, key: tuple[str, str, str], marker: Any) -> float:
        """Seconds since `marker` (a generation, a spec value) was first seen for this object."""
        seen = self._seen.get(key)
        if self._instant:
            self._seen[key] = (marker, time.monotonic() - 1e9)
            return 1e9
        if seen is None or seen[0] != marker:
            self._seen[key] = (marker, time.monotonic())
            return 0.0
        return time.monotonic() - seen[1]

    def _until(self, elapsed: float, duration: float) -> None:
        """A change `elapsed` seconds into its `duration`: in progress until then."""
        if elapsed < duration:
            self.busy = True

    def reconcile(self) -> None:
        self.busy = False
        self._last = time.monotonic()
        self._reconcile()
        if self.busy and self.on_busy is not None:
            self.on_busy()

    def _reconcile(self) -> None:
        if self._owned_at != self.store.membership:  # (Pods are read-only to clients: their
            self._owned_at = self.store.membership  # owners change only as they come and go)
            self._owned = self._pods_by_owner()
        for kind in ("Deployment", "StatefulSet"):
            rt = self._types(kind)
            if rt:
                for obj in self.store.live(rt):
                    self._workload(rt, obj)
        rt = self._types("Job")
        if rt:
            for obj in self.store.live(rt):
                self._job(rt, obj)
        for rt in self.store.registry.types:
            if rt.kind == "Cluster" and rt.group == "postgresql.cnpg.io":
                for obj in self.store.live(rt):
                    self._cnpg(rt, obj)
            elif rt.group == "chaos-mesh.org":
                for obj in self.store.live(rt):
                    self._chaos(rt, obj)
        self._gc_pods()

    # -------------------------------------------------------------------------- workloads
    def _workload(self, rt: ResourceType, obj: dict[str, Any]) -> None:
        meta, spec = obj["metadata"], obj.get("spec") or {}
        ns, name = meta["namespace"], meta["name"]
        gen = meta.get("generation", 1)
        desired = int(spec.get("replicas", 1))
        status = dict(obj.get("status") or {})
        key = (rt.kind, ns, name)
        if self._settled.get(key) == (meta.get("resourceVersion"), self._pods_of(meta)):
            return  # nothing to do until it, or one of its Pods, changes
        before = int(status.get("readyReplicas") or 0)
        elapsed = self._since(key, (gen, desired))
        duration = self.latency.seconds("rollout_ready")
        if desired > before:
            self._until(elapsed, duration)
        if desired <= before or duration <= 0 or elapsed >= duration:
            ready = desired
        else:
            ready = before + int((desired - before) * elapsed / duration)
        new = {
            "observedGeneration": gen,
            "replicas": desired,
            "updatedReplicas": desired,
            "readyReplicas": ready,
            "availableReplicas": ready,
        }
        if rt.kind == "StatefulSet":
            new["currentReplicas"] = desired
        if desired - ready > 0:
            new["unavailableReplicas"] = desired - ready
        available = ready >= desired
        transition = now_rfc3339()
        old_conds = {c["type"]: c for c in status.get("conditions") or []}

        def cond(ctype: str, ok: bool, reason: str, message: str) -> dict[str, Any]:
            prev = old_conds.get(ctype)
            value = "True" if ok else "False"
            changed = prev is None or prev.get("status") != value
            return {
                "type": ctype,
                "status": value,
                "reason": reason,
                "message": message,
                "lastUpdateTime": transition if changed else (prev or {}).get("lastUpdateTime"),
                "lastTransitionTime": (
                    transition if changed else (prev or {}).get("lastTransitionTime")
                ),
            }

        new["conditions"] = [
            cond(
                "Available",
                available,
                "MinimumReplicasAvailable" if available else "MinimumReplicasUnavailable",
                f"{rt.kind} has {'' if available else 'not '}minimum availability.",
            ),
            cond(
                "Progressing",
                True,
                "NewReplicaSetAvailable" if available else "ReplicaSetUpdated",
                f'{rt.kind} "{name}" '
                + ("has successfully progressed." if available else "is progressing."),
            ),
        ]
        if rt.kind == "StatefulSet":
            new.pop("conditions")
        written = self.store.set_status(rt, ns, name, new)
        pods = self._pods(obj, desired, ready)
        if ready >= desired:
            self._settled[key] = ((written or obj)["metadata"].get("resourceVersion"), pods)
        else:
            self._settled.pop(key, None)

    def _pods_of(self, meta: dict[str, Any]) -> frozenset[str]:
        """The names of a workload's Pods, as read at the start of this reconcile."""
        return frozenset(self._owned.get(meta.get("uid", ""), ()))

    def _pods_by_owner(self) -> dict[str, set[str]]:
        """Pod names by their owners' uids, read once per reconcile: looking up each workload's
        Pods in a list of every object made a reconcile quadratic in the objects (seconds at
        a few hundred Deployments, when the API answers nothing else)."""
        pod_rt = self._types("Pod")
        owned: dict[str, set[str]] = {}
        if pod_rt is None:
            return owned
        for obj in self.store.live(pod_rt):
            for ref in obj["metadata"].get("ownerReferences") or []:
                owned.setdefault(ref.get("uid"), set()).add(obj["metadata"]["name"])
        return owned

    def _pods(self, owner: dict[str, Any], desired: int, ready: int) -> frozenset[str]:
        """Create, update and delete a workload's Pods; the names of those it now has."""
        pod_rt = self._types("Pod")
        if pod_rt is None:
            return frozenset()
        meta = owner["metadata"]
        ns, name = meta["namespace"], meta["name"]
        template = (owner.get("spec") or {}).get("template") or {}
        tmpl_hash = hashlib.sha1(repr(template).encode()).hexdigest()[:10]
        existing = self._owned.get(meta["uid"], set())
        wanted = [f"{name}-{tmpl_hash}-{i}" for i in range(desired)]
        for pod_name in set(existing) - set(wanted):
            self.store.delete(pod_rt, ns, pod_name)
        for i, pod_name in enumerate(wanted):
            labels = dict((template.get("metadata") or {}).get("labels") or {})
            labels["pod-template-hash"] = tmpl_hash
            running = i < ready
            status = {
                "phase": "Running" if running else "Pending",
                "conditions": [{"type": "Ready", "status": "True" if running else "False"}],
            }
            if pod_name not in existing:
                self.store.create(
                    pod_rt,
                    ns,
                    {
                        "metadata": {
                            "name": pod_name,
                            "labels": labels,
                            "ownerReferences": [
                                {
                                    "apiVersion": owner["apiVersion"],
                                    "kind": owner["kind"],
                                    "name": name,
                                    "uid": meta["uid"],
                                    "controller": True,
                                }
                            ],
                        },
                        "spec": (template.get("spec") or {"containers": []}),
                    },
                )
            self.store.set_status(pod_rt, ns, pod_name, status)
        return frozenset(wanted)

    def _gc_pods(self) -> None:
        pod_rt = self._types("Pod")
        if pod_rt is None or self._gc_at == self.store.membership:
            return  # (a Pod is orphaned only when its owner goes)
        uids = {o["metadata"].get("uid") for o in self.store.objects.values()}
        for pod in self.store.live(pod_rt):
            refs = pod["metadata"].get("ownerReferences") or []
            if refs and not any(r.get("uid") in uids for r in refs):
                self.store.delete(pod_rt, pod["metadata"]["namespace"], pod["metadata"]["name"])
        self._gc_at = self.store.membership

    # ------------------------------------------------------------------------------- jobs
    def _job(self, rt: ResourceType, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        status = obj.get("status") or {}
        if status.get("succeeded") or status.get("failed"):
            return
        ns, name = meta["namespace"], meta["name"]
        annotations = dict(
            (((obj.get("spec") or {}).get("template") or {}).get("metadata") or {}).get(
                "annotations"
            )
            or {}
        )
        annotations.update(meta.get("annotations") or {})
        elapsed = self._since(("Job", ns, name), meta["uid"])
        self._until(elapsed, self.latency.seconds("job_run"))
        if elapsed < self.latency.seconds("job_run"):
            self.store.set_status(
                rt, ns, name, {"active": 1, "startTime": status.get("startTime") or now_rfc3339()}
            )
            return
        fail = annotations.get(OUTCOME, "").lower() == "fail"
        done = now_rfc3339()
        new: dict[str, Any] = {"startTime": status.get("startTime") or done}
        if fail:
            new["failed"] = int((obj.get("spec") or {}).get("backoffLimit", 6)) + 1
            new["conditions"] = [
                {
                    "type": "Failed",
                    "status": "True",
                    "reason": "BackoffLimitExceeded",
                    "message": annotations.get(
                        REASON, "Job has reached the specified backoff limit"
                    ),
                    "lastProbeTime": done,
                    "lastTransitionTime": done,
                }
            ]
        else:
            new["succeeded"] = 1
            new["completionTime"] = done
            new["conditions"] = [
                {
                    "type": "Complete",
                    "status": "True",
                    "lastProbeTime": done,
                    "lastTransitionTime": done,
                }
            ]
        self.store.set_status(rt, ns, name, new)

    # --------------------------------------------------------------------- CNPG clusters
    def _chaos(self, rt: ResourceType, obj: dict[str, Any]) -> None:
        """Chaos Mesh's part: selected and injected after a moment; recovered once its
        `spec.duration` (if any) is over."""
        meta, spec = obj["metadata"], obj.get("spec") or {}
        elapsed = self._since((rt.kind, meta["namespace"], meta["name"]), meta.get("uid"))
        duration = spec.get("duration")
        over = False
        self._until(elapsed, self.latency.seconds("chaos_injection"))
        if duration:
            with contextlib.suppress(ValueError):
                self._until(elapsed, parse_duration(duration).total_seconds())
                over = elapsed >= parse_duration(duration).total_seconds()
        injected = elapsed >= self.latency.seconds("chaos_injection") and not over
        self.store.set_status(rt, meta["namespace"], meta["name"], _chaos_status(injected, over))

    def _cnpg(self, rt: ResourceType, obj: dict[str, Any]) -> None:
        meta, spec = obj["metadata"], obj.get("spec") or {}
        ns, name = meta["namespace"], meta["name"]
        topology = spec.get("replica") or {}
        if "self" in topology:
            replica = topology.get("primary") != topology["self"]
        else:
            replica = bool(topology.get("enabled"))
        status = dict(obj.get("status") or {})
        was_replica = status.get("replicaCluster")
        timeline = int(status.get("timelineID") or 1)
        token = topology.get("promotionToken")
        if was_replica and not replica and token:
            # CloudNativePG checks the token against what this replica replayed: the sandbox,
            # that it is a demotion token of its source or of the primary it followed last.
            refused = _token_refusal(token, topology.get("source"), status.get("following"))
            if refused:
                new = status | {"phase": f"Promotion refused: {refused}"}
                self.store.set_status(rt, ns, name, new)
                return
        elapsed = self._since(("Cluster", ns, name), replica)
        if was_replica is not None and was_replica != replica:
            self._until(elapsed, self.latency.seconds("cnpg_promotion"))
        instances = int(spec.get("instances", 1))
        if (
            was_replica is not None
            and was_replica != replica
            and elapsed < self.latency.seconds("cnpg_promotion")
        ):
            phase = "Promoting to primary cluster" if not replica else "Demoting to replica cluster"
            new = status | {"phase": phase, "readyInstances": 0}
            new["conditions"] = [
                {
                    "type": "Ready",
                    "status": "False",
                    "reason": "SwitchoverInProgress",
                    "message": phase,
                }
            ]
            self.store.set_status(rt, ns, name, new)
            return
        if was_replica and not replica:
            timeline += 1  # a promotion starts a new timeline
        new = {
            "phase": HEALTHY,
            "instances": instances,
            "readyInstances": instances,
            "currentPrimary": f"{name}-1",
            "targetPrimary": f"{name}-1",
            "replicaCluster": replica,
            "timelineID": timeline,
            "conditions": [
                {"type": "Ready", "status": "True", "reason": "ClusterIsReady", "message": HEALTHY}
            ],
        }
        if replica:  # the sandbox's own record: whose writes this replica replays
            new["following"] = topology.get("primary") or topology.get("source")
        if replica and was_replica is False:
            new["demotionToken"] = _demotion_token(topology.get("self") or name, timeline)
        elif replica and status.get("demotionToken"):
            new["demotionToken"] = status["demotionToken"]
        self.store.set_status(rt, ns, name, new)


def _demotion_token(cluster: str, timeline: int) -> str:
    """What a demoted primary publishes: where its last write stands (base64 JSON, as
    CloudNativePG's token is)."""
    body = {"cluster": cluster, "timelineID": timeline, "lsn": f"0/{time.time_ns() % 2**32:08X}"}
    return base64.b64encode(json.dumps(body).encode()).decode()


def _token_refusal(token: str, source: str | None, following: str | None = None) -> str:
    """Why a promotion token is refused ("" if it is good): it must be a demotion token of the
    cluster this replica replicates from (its source, or the primary it followed last: with
    three regions, a replica repointed to a new primary keeps its source)."""
    try:
        body = json.loads(base64.b64decode(token, validate=True))
    except (ValueError, TypeError):
        return "the promotion token is not a demotion token"
    if not isinstance(body, dict) or "lsn" not in body:
        return "the promotion token is not a demotion token"
    if source and body.get("cluster") not in (source, following):
        return f"the promotion token is {body.get('cluster')!r}'s, not {source!r}'s"
    return ""


def _chaos_status(injected: bool, recovered: bool) -> dict[str, Any]:
    def cond(ctype: str, ok: bool) -> dict[str, Any]:
        return {"type": ctype, "status": "True" if ok else "False"}

    return {
        "conditions": [
            cond("Selected", True),
            cond("AllInjected", injected),
            cond("AllRecovered", recovered),
            cond("Paused", False),
        ],
        "experiment": {"desiredPhase": "Stop" if recovered else "Run"},
    }
