"""Fill the gaps of moto 5.2.5 that a region switch depends on, inside moto's own backends.

Everything here answers through moto's serializers with botocore's shapes, so a client cannot
tell it from AWS except by endpoint URL:

- RDS: `SwitchoverGlobalCluster` and `FailoverGlobalCluster` (not implemented by moto) really swap
  the writer, with the global cluster passing through its in-flight states for a configurable time;
  `PromoteReadReplica` detaches the replica after a `modifying` time (a second call meanwhile is
  refused); `RemoveFromGlobalCluster` works for any member.
- Route 53: a hosted zone's id looks like AWS's (Z and 20 capitals and digits; moto leaves out
  the Z, so an id could not be told from a zone's name); a change batch is one transaction
  (moto keeps the changes before the one it refuses); every change gets its own id and is
  PENDING until DNS propagation time has passed;
  `GetHealthCheckStatus` really probes the checked endpoint (so a region whose app is down
  reports unhealthy), honouring Inverted, Disabled and CALCULATED checks.
- FIS: an experiment is initiating, then running for its actions' duration, then completed
  (moto completes it as soon as it is read); StopExperiment stops it after a short time.
- Route 53 health checks of type RECOVERY_CONTROL follow their ARC routing control (healthy while
  it is On), as on AWS.
- An unplanned Aurora failover (AllowDataLoss) leaves the old writer out of the global cluster.
- CloudWatch: replication-lag metrics for every Aurora global secondary
  (`AuroraGlobalDBReplicationLag`, ms) and every RDS read replica (`ReplicaLag`, s), published
  from a value the sandbox controls.
- EKS: a cluster created in a region is served by that region's Kubernetes stand-in: its
  `endpoint` is the stand-in's secure port and its `certificateAuthority` the sandbox's CA
  (moto makes up both), when the server was told where they are (`--kube-endpoint`, `--kube-ca`).
"""

from __future__ import annotations

import functools
import os
import random
import re
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import moto
import moto.ec2.models.amis as moto_amis
import moto.eks.models as moto_eks_models
import moto.route53.models as moto_route53_models
from moto.cloudwatch.models import cloudwatch_backends
from moto.core.responses import ActionResult
from moto.core.utils import utcnow
from moto.eks.exceptions import InvalidParameterException
from moto.eks.models import Cluster as EKSCluster
from moto.eks.models import EKSBackend
from moto.rds.models import DBCluster, GlobalCluster, RDSBackend, rds_backends
from moto.rds.responses import RDSResponse
from moto.route53.exceptions import InvalidInput
from moto.route53.models import HealthCheck, reverse_domain_name, route53_backends
from moto.route53.responses import Route53
from moto.route53.utils import validate_domain_name

from orchestrator.sandbox.aws.errors import SandboxError
from orchestrator.sandbox.latency import LatencyModel

ACCOUNT = "123456789012"


class _State:
    """Mutable sandbox state the patched handlers read (one per AWS server process)."""

    def __init__(self) -> None:
        self.latency = LatencyModel()
        self.lock = threading.RLock()
        # change id -> time it becomes INSYNC
        self.changes: dict[str, tuple[datetime, float]] = {}
        # global cluster id -> (done_at, target cluster)
        self.transitions: dict[str, tuple[float, DBCluster]] = {}
        # DB instance (replica being promoted) -> when the promotion is done
        self.promotions: dict[Any, float] = {}
        # Regions whose endpoint is down (no replication from there, no metrics about it).
        self.down_regions: set[str] = set()
        # What a RECOVERY_CONTROL health check follows: routing control ARN -> "On"/"Off"/None.
        self.routing_control_state: Callable[[str], str | None] = lambda arn: None
        # replication lag the sandbox reports, in seconds: "*" is the default
        self.lag_seconds: dict[str, float] = {"*": 0.05}
        # Where each region's Kubernetes API is served: region -> (https URL, base64 PEM CA).
        # Configuration, not state: a reset keeps it.
        self.kube_endpoints: dict[str, tuple[str, str]] = {}


STATE = _State()


# --------------------------------------------------------------------------------------- RDS
def _global_backend() -> Any:
    return rds_backends[ACCOUNT]["us-east-1"]


def _find_global(identifier: str) -> GlobalCluster:
    ident = identifier.rsplit(":", 1)[-1].lower()
    gc = _global_backend().global_clusters.get(ident)
    if gc is None:
        raise SandboxError("GlobalClusterNotFoundFault", f"Global cluster {ident} not found.")
    return gc


def _find_member(gc: GlobalCluster, identifier: str) -> DBCluster:
    for member in gc.members:
        if identifier in (member.db_cluster_arn, member.db_cluster_identifier):
            return member
    raise SandboxError(
        "DBClusterNotFoundFault",
        f"The cluster {identifier} is not a member of global cluster "
        f"{gc.global_cluster_identifier}.",
    )


def tick() -> None:
    """Complete the in-flight transitions whose time has come (called on every request)."""
    now = time.monotonic()
    with STATE.lock:
        for gid, (done_at, target) in list(STATE.transitions.items()):
            gc = _global_backend().global_clusters.get(gid)
            if gc is None:
                del STATE.transitions[gid]
                continue
            state = gc.failover_state
            span = max(done_at - state["_started"], 1e-9)
            if now < done_at:
                if (now - state["_started"]) / span > 0.2:
                    state["Status"] = "failing-over"
                continue
            old = next((m for m in gc.members if m.is_writer), None)
            for member in gc.members:
                member.is_writer = member is target
            if state.get("IsDataLossAllowed") and old is not None and old is not target:
                # An unplanned failover leaves the old writer out: when its region comes back it
                # is a standalone cluster (with whatever it wrote last), until re-added.
                gc.members.remove(old)
                old.global_cluster_identifier = None
                old.is_writer = True
            gc.status = "available"
            gc.failover_state = None
            del STATE.transitions[gid]
        for db, done_at in list(STATE.promotions.items()):
            if now < done_at:
                continue
            _detach(db)
            db.status = "available"
            del STATE.promotions[db]


def _start_transition(gc: GlobalCluster, target: DBCluster, data_loss: bool, kind: str) -> None:
    with STATE.lock:
        tick()
        if gc.status != "available" or gc.global_cluster_identifier in STATE.transitions:
            raise SandboxError(
                "InvalidGlobalClusterStateFault",
                f"Global cluster {gc.global_cluster_identifier} is in state {gc.status}.",
            )
        writer = next((m for m in gc.members if m.is_writer), None)
        if target is writer:
            raise SandboxError(
                "InvalidDBClusterStateFault",
                f"Cluster {target.db_cluster_identifier} is already the primary cluster.",
            )
        started = time.monotonic()
        duration = STATE.latency.seconds(
            "aurora_failover" if kind == "failing-over" else "aurora_switchover"
        )
        gc.status = kind
        gc.failover_state = {  # type: ignore[attr-defined]
            "Status": "pending",
            "FromDbClusterArn": writer.db_cluster_arn if writer else None,
            "ToDbClusterArn": target.db_cluster_arn,
            "IsDataLossAllowed": data_loss,
            "_started": started,
        }
        STATE.transitions[gc.global_cluster_identifier] = (started + duration, target)


def _gc_result(gc: GlobalCluster) -> ActionResult:
    return ActionResult({"GlobalCluster": gc})


def switchover_global_cluster(self: RDSResponse) -> ActionResult:
    """Planned switchover: no data loss; the target becomes the writer after the switch time."""
    gc = _find_global(self.params["GlobalClusterIdentifier"])
    target = _find_member(gc, self.params["TargetDbClusterIdentifier"])
    _start_transition(gc, target, data_loss=False, kind="switching-over")
    return _gc_result(gc)


def failover_global_cluster(self: RDSResponse) -> ActionResult:
    """Unplanned failover (AllowDataLoss) or, with Switchover=true, a switchover."""
    gc = _find_global(self.params["GlobalClusterIdentifier"])
    target = _find_member(gc, self.params["TargetDbClusterIdentifier"])
    allow_loss = bool(self.params.get("AllowDataLoss"))
    switchover = bool(self.params.get("Switchover"))
    if allow_loss == switchover:
        raise SandboxError(
            "InvalidParameterCombination",
            "Specify exactly one of AllowDataLoss or Switchover.",
        )
    _start_transition(
        gc, target, data_loss=allow_loss, kind="failing-over" if allow_loss else "switching-over"
    )
    return _gc_result(gc)


def remove_from_global_cluster(self: RDSResponse) -> ActionResult:
    """Detach any member (the writer only when it is the last one); it becomes standalone."""
    with STATE.lock:
        tick()
        gc = _find_global(self.params["GlobalClusterIdentifier"])
        cluster = _find_member(gc, self.params["DbClusterIdentifier"])
        if cluster.is_writer and len(gc.members) > 1:
            raise SandboxError(
                "InvalidGlobalClusterStateFault",
                "The primary cluster can be removed only after every secondary cluster.",
            )
        gc.members.remove(cluster)
        cluster.global_cluster_identifier = None
        cluster.is_writer = True
        return _gc_result(gc)


def describe_global_clusters(self: RDSResponse) -> ActionResult:
    tick()
    ident = self.params.get("GlobalClusterIdentifier")
    clusters = list(_global_backend().global_clusters.values())
    if ident:
        clusters = [_find_global(ident)]
    return ActionResult({"GlobalClusters": clusters})


def promote_read_replica(self: RDSResponse) -> ActionResult:
    """Promote, as RDS does it: the replica is `modifying` for the promotion's time (a second
    PromoteReadReplica meanwhile is refused: InvalidDBInstanceState), then stands alone, writable,
    and its source forgets it."""
    ident = self.params["DBInstanceIdentifier"]
    with STATE.lock:
        tick()
        db = self.backend.databases.get(ident)
        if db is None:
            raise SandboxError("DBInstanceNotFound", f"DBInstance {ident} not found.")
        if db in STATE.promotions or db.status != "available":
            raise SandboxError(
                "InvalidDBInstanceState", f"DB Instance {ident} is not in available state."
            )
        if not db.is_replica:
            raise SandboxError(
                "InvalidDBInstanceState", f"DB Instance {ident} is not a read replica."
            )
        db.status = "modifying"
        STATE.promotions[db] = time.monotonic() + STATE.latency.seconds("replica_promotion")
        return ActionResult({"DBInstance": db})


def _detach(db: Any) -> None:
    """A promoted replica: no source any more, and its source no longer lists it."""
    for region_backend in rds_backends[ACCOUNT].values():
        for source in region_backend.databases.values():
            for ref in (db.db_instance_arn, db.db_instance_identifier):
                if source is not db and ref in source.replicas:
                    source.replicas.remove(ref)
    db.is_replica = False
    db.source_db_instance_identifier = None


# ---------------------------------------------------------------------------------- Route 53
def _new_change() -> dict[str, Any]:
    change_id = "C" + uuid.uuid4().hex[:13].upper()
    submitted = datetime.now(UTC)
    with STATE.lock:
        STATE.changes[change_id] = (
            submitted,
            time.monotonic() + STATE.latency.seconds("dns_propagation"),
        )
    return {"Id": f"/change/{change_id}", "Status": "PENDING", "SubmittedAt": submitted}


_orig_change_rrsets = Route53.change_resource_record_sets


def change_resource_record_sets(self: Route53) -> ActionResult:
    """Apply the batch (moto) as one transaction, as AWS does: a batch refused at any of its
    changes leaves the zone as it was (moto keeps the changes before the one it refuses); and
    hand out a change of its own that propagates over time."""
    try:
        zone = self.backend.get_hosted_zone(self._get_param("HostedZoneId"))
    except Exception:  # (moto's own handler answers for a zone that is not there)
        return _change_with_id(_orig_change_rrsets(self))
    with STATE.lock:  # (one batch at a time, so that a refused one undoes only its own)
        rrsets, journal = list(zone.rrsets), list(zone.rr_changes)
        try:
            result = _orig_change_rrsets(self)
        except Exception:
            zone.rrsets = rrsets
            zone.rr_changes[:] = journal
            raise
    return _change_with_id(result)


def _change_with_id(result: ActionResult) -> ActionResult:
    result.result["ChangeInfo"] = _new_change()  # type: ignore[index]
    return result


def get_change(self: Route53) -> ActionResult:
    change_id = self._get_param("Id").rsplit("/", 1)[-1]
    with STATE.lock:
        entry = STATE.changes.get(change_id)
    if entry is None:
        raise SandboxError(
            "NoSuchChange", f"A change with the specified change ID does not exist: {change_id}"
        )
    submitted, insync_at = entry
    status = "INSYNC" if time.monotonic() >= insync_at else "PENDING"
    return ActionResult(
        {"ChangeInfo": {"Id": f"/change/{change_id}", "Status": status, "SubmittedAt": submitted}}
    )


def list_resource_record_sets(self: Route53) -> ActionResult:
    """ListResourceRecordSets as AWS pages it: moto has no `StartRecordIdentifier` and no
    `NextRecordIdentifier`, so a page that ends inside one name and type (a weighted record's
    sets) could not be continued. Sets of one name and type are ordered by their identifiers."""
    start_name = self._get_param("StartRecordName")
    start_type = self._get_param("StartRecordType")
    start_id = self._get_param("StartRecordIdentifier")
    max_items = self._get_int_param("MaxItems", 300)
    if (start_type and not start_name) or (start_id and not start_type):
        raise InvalidInput("The input is not valid")
    if start_name:
        validate_domain_name(start_name)
    zone = self.backend.get_hosted_zone(self._get_param("HostedZoneId"))
    with STATE.lock:  # (never half of a batch being applied: see change_resource_record_sets)
        rrsets = list(zone.rrsets)
    keyed = sorted(
        ((reverse_domain_name(r.name), r.type, r.set_identifier or ""), r) for r in rrsets
    )
    if start_name:
        start = (reverse_domain_name(start_name), start_type or "", start_id or "")
        keyed = [(k, r) for k, r in keyed if k >= start]
    page, rest = keyed[:max_items], keyed[max_items:]
    nxt = rest[0][1] if rest else None
    return ActionResult(
        {
            "ResourceRecordSets": [r for _, r in page],
            "IsTruncated": nxt is not None,
            "NextRecordName": nxt.name if nxt else None,
            "NextRecordType": nxt.type if nxt else None,
            "NextRecordIdentifier": (nxt.set_identifier or None) if nxt else None,
            "MaxItems": max_items,
        }
    )


_orig_delete_db_cluster = RDSBackend.delete_db_cluster


def delete_db_cluster(self: RDSBackend, cluster_identifier: str, *args: Any, **kw: Any) -> Any:
    """moto's, and the cluster's automated snapshots go with it, as in AWS (moto keeps them, and
    names them by the minute: a cluster re-created under the same name within that minute, as a
    rejoin does, collided with its predecessor's)."""
    cluster = _orig_delete_db_cluster(self, cluster_identifier, *args, **kw)
    for sid, snap in list(self.cluster_snapshots.items()):
        if getattr(snap, "snapshot_type", "") == "automated" and sid.startswith(
            f"rds:{cluster_identifier}-"
        ):
            del self.cluster_snapshots[sid]
    return cluster


def route53_backend() -> Any:
    """The sandbox account's Route 53 backend (global)."""
    return route53_backends[ACCOUNT]["global"]


def probe(hc: Any, depth: int = 0) -> tuple[bool, str]:
    """Evaluate a health check the way Route 53's checkers would, from this machine."""
    if hc.disabled:
        return (not hc.inverted), "Success: health check is disabled"
    kind = (hc.type_ or "HTTP").upper()
    if kind == "CALCULATED":
        backend = route53_backend()
        children = [backend.health_checks.get(c) for c in (hc.children or [])]
        healthy = sum(1 for c in children if c is not None and probe(c, depth + 1)[0])
        ok = healthy >= int(hc.health_threshold or 0)
        detail = f"{healthy} of {len(children)} child health checks healthy"
    elif kind in ("HTTP", "HTTPS", "HTTP_STR_MATCH", "HTTPS_STR_MATCH", "TCP"):
        host = hc.ip_address or hc.fqdn or "127.0.0.1"
        scheme = "https" if kind.startswith("HTTPS") else "http"
        url = f"{scheme}://{host}:{hc.port}{hc.resource_path or '/'}"
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                body = resp.read(5120).decode(errors="replace")
                ok = 200 <= resp.status < 400
                if ok and "STR_MATCH" in kind and hc.search_string:
                    ok = hc.search_string in body
                detail = (
                    f"HTTP Status Code {resp.status}, OK"
                    if ok
                    else f"HTTP Status Code {resp.status}"
                )
        except urllib.error.HTTPError as e:
            ok, detail = False, f"HTTP Status Code {e.code}"
        except OSError as e:
            ok, detail = False, f"Connection failed: {e}"
    elif kind == "RECOVERY_CONTROL":
        state = STATE.routing_control_state(getattr(hc, "routing_control_arn", "") or "")
        ok, detail = state == "On", f"routing control is {state or 'missing'}"
    else:  # CLOUDWATCH_METRIC and others: no alarm evaluation here, report healthy
        ok, detail = True, "no checker for this type in the sandbox"
    if hc.inverted:
        ok = not ok
    return ok, ("Success: " if ok else "Failure: ") + detail


_orig_create_health_check = Route53.create_health_check


def create_health_check(self: Route53) -> ActionResult:
    """moto's, keeping the routing control of a RECOVERY_CONTROL health check (ARC)."""
    result = _orig_create_health_check(self)
    config = self._get_param("HealthCheckConfig") or {}
    if str(config.get("Type", "")).upper() == "RECOVERY_CONTROL":
        result.result["HealthCheck"].routing_control_arn = config.get("RoutingControlArn")  # type: ignore[index]
    return result


def _health_check_config(self: Any) -> dict[str, Any]:
    """moto's HealthCheckConfig, and a RECOVERY_CONTROL one's as Route 53 shows it."""
    if str(self.type_ or "").upper() == "RECOVERY_CONTROL":
        return {
            "Type": "RECOVERY_CONTROL",
            "RoutingControlArn": getattr(self, "routing_control_arn", None),
            "Inverted": self.inverted,
            "Disabled": self.disabled,
        }
    config: dict[str, Any] = _orig_health_check_config.fget(self)  # type: ignore[attr-defined]
    return config


_orig_health_check_config = HealthCheck.health_check_config


def get_health_check_status(self: Route53) -> ActionResult:
    hc = self.backend.get_health_check(self._get_param("HealthCheckId"))
    _, report = probe(hc)
    now = datetime.now(UTC)
    observations = [
        {
            "Region": region,
            "IPAddress": "127.0.0.1",
            "StatusReport": {"Status": report, "CheckedTime": now},
        }
        for region in (hc.regions or ["us-east-1", "us-west-1", "eu-west-1"])
    ]
    return ActionResult({"HealthCheckObservations": observations})


# -------------------------------------------------------------------------------- CloudWatch
def lag_for(name: str) -> float:
    with STATE.lock:
        return STATE.lag_seconds.get(name, STATE.lag_seconds["*"])


def publish_lag_metrics() -> None:
    """Put one datapoint of replication lag for every global secondary and read replica."""
    now = utcnow()  # moto stores metric timestamps as naive UTC
    with STATE.lock:
        tick()
    gb = _global_backend()
    for gc in list(gb.global_clusters.values()):
        writer = next((m for m in gc.members if m.is_writer), None)
        if writer is not None and writer.region in STATE.down_regions:
            continue  # nothing replicates from a region that is down: the last lag stands
        for member in gc.members:
            if member.is_writer or member.region in STATE.down_regions:
                continue
            cloudwatch_backends[ACCOUNT][member.region].put_metric_data(
                "AWS/RDS",
                [
                    {
                        "MetricName": "AuroraGlobalDBReplicationLag",
                        "Dimensions": [
                            {"Name": "DBClusterIdentifier", "Value": member.db_cluster_identifier}
                        ],
                        "Value": lag_for(member.db_cluster_identifier) * 1000.0,
                        "Unit": "Milliseconds",
                        "Timestamp": now,
                    }
                ],
            )
    for region, backend in rds_backends[ACCOUNT].items():
        for db in list(backend.databases.values()):
            if not db.is_replica:
                continue
            cloudwatch_backends[ACCOUNT][region].put_metric_data(
                "AWS/RDS",
                [
                    {
                        "MetricName": "ReplicaLag",
                        "Dimensions": [
                            {"Name": "DBInstanceIdentifier", "Value": db.db_instance_identifier}
                        ],
                        "Value": lag_for(db.db_instance_identifier),
                        "Unit": "Seconds",
                        "Timestamp": now,
                    }
                ],
            )


# -------------------------------------------------------------------------------------- FIS
_ISO_PART = re.compile(r"(\d+(?:\.\d+)?)([DHMS])")
_ISO_SECONDS = {"D": 86400, "H": 3600, "M": 60, "S": 1}
FIS_DEFAULT_RUN = 3600.0  # an experiment whose actions name no duration runs an hour


def _iso_seconds(text: str) -> float:
    """PT10M, PT1H30M, P1D: seconds."""
    return sum(float(n) * _ISO_SECONDS[u] for n, u in _ISO_PART.findall(text.upper()))


def _fis_status(self: Any) -> str:
    """An experiment's status over time, as FIS runs one: initiating while its actions start
    (the injection time), running for its longest action's `duration` (an hour when none is
    given), then completed; stopping for the injection time after StopExperiment, then
    stopped. (moto advances it on every read, so it completes as soon as anyone looks.)"""
    now = time.monotonic()
    born = self.__dict__.setdefault("_sandbox_born", now)
    status: str = self._status or "pending"
    inject = STATE.latency.seconds("chaos_injection")
    if status == "stopping":
        since = self.__dict__.setdefault("_sandbox_stopping", now)
        if now - since >= inject:
            status = "stopped"
    elif status not in ("completed", "stopped", "failed", "cancelled"):
        durations = [
            _iso_seconds(str(a.get("parameters", {}).get("duration", "")))
            for a in (self.actions or {}).values()
        ]
        run = max([d for d in durations if d] or [FIS_DEFAULT_RUN]) * STATE.latency.time_scale
        age = now - born
        status = "initiating" if age < inject else "running" if age < inject + run else "completed"
    self._status = status
    return status


def _set_fis_status(self: Any, value: str) -> None:
    self._status = value


# -------------------------------------------------------------------------------------- EKS
_EKS_CREATE = EKSBackend.create_cluster
AMIS_FILE = "ec2/resources/amis.json.gz"  # what moto_amis.AMIS was read from


def eks_create_cluster(self: EKSBackend, *args: Any, **kwargs: Any) -> EKSCluster:
    """moto's CreateCluster, the cluster served by its region's Kubernetes stand-in."""
    cluster = _EKS_CREATE(self, *args, **kwargs)
    served = STATE.kube_endpoints.get(self.region_name)
    if served is not None:
        cluster.endpoint = served[0]
        cluster.certificate_authority = {"data": served[1]}
    return cluster


@functools.lru_cache(maxsize=1)
def _partitions() -> frozenset[str]:
    return frozenset(boto3.Session().get_available_partitions())


def _validate_role_arn(arn: str) -> None:
    """moto's check of an EKS role ARN, with botocore's partitions read once: moto reads its
    endpoints file on every CreateCluster (a quarter of a second each)."""
    match = re.match(r"arn:(?P<partition>.+):iam::(?P<account_id>[0-9]{12}):role/.+", arn or "")
    if match is None or match.group("partition") not in _partitions():
        raise InvalidParameterException(message=f"Invalid Role Arn: '{arn}'")


def _hosted_zone_id(*_: Any, **__: Any) -> str:
    """A hosted zone's id as AWS makes them: Z, then capitals and digits (Z0812841XJ4ZJ1RMQBU8)."""
    return "Z" + "".join(random.choice(moto_route53_models.ROUTE53_ID_CHOICE) for _ in range(20))


def install() -> None:
    """Patch moto's handlers (idempotent; this process only)."""
    from moto.fis.models import Experiment

    # EC2's image catalog is moto's default sample (moto_amis.AMIS, read when it was imported),
    # not also its per-region "latest" lists, which moto skips when MOTO_AMIS_PATH is set: each
    # region's backend would build a thousand images (volumes, snapshots) on its first request.
    assert moto_amis.AMIS, "moto's default image catalog"
    os.environ.setdefault("MOTO_AMIS_PATH", str(Path(moto.__file__).parent / AMIS_FILE))
    moto_eks_models.validate_role_arn = _validate_role_arn

    Experiment.status = property(_fis_status, _set_fis_status)  # type: ignore[assignment,method-assign]
    GlobalCluster.failover_state = None  # type: ignore[attr-defined]
    RDSResponse.switchover_global_cluster = switchover_global_cluster  # type: ignore[attr-defined]
    RDSResponse.failover_global_cluster = failover_global_cluster  # type: ignore[attr-defined]
    RDSResponse.remove_from_global_cluster = remove_from_global_cluster  # type: ignore[method-assign]
    RDSResponse.describe_global_clusters = describe_global_clusters  # type: ignore[method-assign]
    RDSResponse.promote_read_replica = promote_read_replica  # type: ignore[method-assign]
    RDSBackend.delete_db_cluster = delete_db_cluster  # type: ignore[method-assign]
    moto_route53_models.create_route53_zone_id = _hosted_zone_id
    Route53.change_resource_record_sets = change_resource_record_sets  # type: ignore[method-assign]
    Route53.get_change = get_change  # type: ignore[method-assign]
    Route53.list_resource_record_sets = list_resource_record_sets  # type: ignore[method-assign]
    Route53.get_health_check_status = get_health_check_status  # type: ignore[method-assign]
    Route53.create_health_check = create_health_check  # type: ignore[method-assign]
    HealthCheck.health_check_config = property(_health_check_config)  # type: ignore[assignment,method-assign]
    EKSBackend.create_cluster = eks_create_cluster  # type: ignore[method-assign]


def reset() -> None:
    with STATE.lock:
        STATE.changes.clear()
        STATE.transitions.clear()
        STATE.promotions.clear()
        STATE.lag_seconds = {"*": 0.05}
