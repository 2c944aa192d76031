"""What a step touches, for least-privilege policies: AWS resources as ARNs (IAM) and Kubernetes
objects by namespace (RBAC).

A step type says, from its params, which ARNs each of its actions acts on (`StepType.
iam_resources`, a list of `Grant`); an action it does not scope gets "*", which is also what AWS
requires for actions without resource-level permissions (List*, most Describe*, CloudWatch's
GetMetricData, ...). ARNs follow AWS's formats (the Service Authorization Reference) through
`Arns`, which knows the partition and the account, and can turn the names runbooks use into the
ids some ARNs need (a hosted zone's, a health check's) when asked to look them up; without an
id, the ARN keeps a wildcard for it and stays within its service, resource type and account.

`K8sRule`: the (apiGroup, resource, verbs) a step uses in one namespace (None: cluster-scoped),
with the object names when they are known (RBAC `resourceNames`: never for `create`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

#: Operator -> condition key -> values (an IAM policy's Condition block).
Condition = Mapping[str, Mapping[str, tuple[str, ...]]]

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@dataclass(frozen=True)
class Grant:
    """Some of a step type's IAM actions, allowed on these resources only (and, when given,
    only under this condition)."""

    actions: tuple[str, ...]
    resources: tuple[str, ...]
    condition: Condition | None = None


@dataclass(frozen=True)
class K8sRule:
    """Kubernetes verbs on one resource of one API group, in one namespace (None: a
    cluster-scoped resource); `names`: only these objects (None: any)."""

    namespace: str | None
    group: str
    resource: str
    verbs: tuple[str, ...]
    names: tuple[str, ...] | None = None


def no_lookup(name: str) -> str | None:
    """A lookup that knows nothing (offline): the ARN keeps a wildcard for the id."""
    return None


@dataclass(frozen=True)
class Arns:
    """ARNs in one partition and account ("*": any account, when it is not known).

    `zone_id` and `health_check_id` turn a hosted zone's name and a health check's Name tag
    into their ids (None: unknown); `failover iam --lookup` asks Route 53.
    """

    account: str = "*"
    partition: str = "aws"
    zone_id: Callable[[str], str | None] = field(default=no_lookup)
    health_check_id: Callable[[str], str | None] = field(default=no_lookup)

    def regional(self, service: str, region: str, resource: str) -> str:
        """arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE."""
        return f"arn:{self.partition}:{service}:{region}:{self.account}:{resource}"

    def account_wide(self, service: str, resource: str) -> str:
        """A resource of a global service in the account (no region): Global Accelerator,
        Route 53 ARC, an Aurora global cluster."""
        return f"arn:{self.partition}:{service}::{self.account}:{resource}"

    # ------------------------------------------------------------------------ Route 53
    def route53(self, kind: str, ident: str = "*") -> str:
        """A Route 53 resource: no region, no account (hostedzone, healthcheck, change)."""
        return f"arn:{self.partition}:route53:::{kind}/{ident}"

    def hosted_zone(self, zone: str) -> str:
        """A hosted zone, named by its name (`shop.example.`) or its id."""
        if is_zone_id(zone):
            return self.route53("hostedzone", zone)
        name = zone if zone.endswith(".") else zone + "."
        return self.route53("hostedzone", self.zone_id(name) or "*")

    def health_check(self, name: str) -> str:
        """A health check, named by its Name tag or its id."""
        ident = name if _UUID.match(name) else self.health_check_id(name)
        return self.route53("healthcheck", ident or "*")

    # ----------------------------------------------------------------------------- RDS
    def rds(self, region: str, kind: str, name: str) -> str:
        """An RDS resource: cluster, db, cluster-snapshot, cluster-pg, subgrp, og, ..."""
        return self.regional("rds", region, f"{kind}:{name}")

    def global_cluster(self, name: str) -> str:
        """An Aurora global cluster (no region in its ARN)."""
        return self.account_wide("rds", f"global-cluster:{name}")


def is_zone_id(zone: str) -> bool:
    """Whether a hosted zone is named by its id (Z0812841XJ4ZJ1RMQBU8), not its name."""
    return zone.startswith("Z") and "." not in zone


def record_name(record: str) -> str:
    """A DNS name as Route 53's `ChangeResourceRecordSetsNormalizedRecordNames` condition key
    compares it: lowercase, without the final dot."""
    return record.lower().rstrip(".")
