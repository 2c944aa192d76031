"""The kinds the Kubernetes API stand-in serves, and how each behaves."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


@dataclass(frozen=True)
class ResourceType:
    """One served resource: its group/version/kind and which behaviours apply to it."""

    group: str  # "" for the core group
    version: str
    kind: str
    plural: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    status: bool = False  # has a /status subresource (status ignored on main-resource writes)
    scale: bool = False  # has a /scale subresource (spec.replicas)
    generation: bool = False  # metadata.generation tracks spec changes
    builtin: bool = True  # strategic merge patch is accepted only for built-in kinds
    read_only: bool = False  # served for reading (Pods are made by the controller)
    merge_keys: dict[str, str] = field(default_factory=dict)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @cached_property
    def key(self) -> str:
        """Unique key: plural.group (core: plural)."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


# Strategic-merge keys for list fields the steps touch (by field name, as Kubernetes does).
POD_MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "ports": "containerPort",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "conditions": "type",
    "tolerations": "key",
    "imagePullSecrets": "name",
}

BUILTIN = [
    ResourceType(
        "", "v1", "Namespace", "namespaces", namespaced=False, short_names=("ns",), status=True
    ),
    ResourceType("", "v1", "Node", "nodes", namespaced=False, short_names=("no",), status=True),
    ResourceType("", "v1", "ConfigMap", "configmaps", short_names=("cm",)),
    ResourceType("", "v1", "Secret", "secrets"),
    ResourceType(
        "",
        "v1",
        "Service",
        "services",
        short_names=("svc",),
        status=True,
        merge_keys={"ports": "port"},
    ),
    ResourceType(
        "", "v1", "Pod", "pods", short_names=("po",), status=True, merge_keys=POD_MERGE_KEYS
    ),
    ResourceType(
        "apps",
        "v1",
        "Deployment",
        "deployments",
        short_names=("deploy",),
        status=True,
        scale=True,
        generation=True,
        merge_keys=POD_MERGE_KEYS,
    ),
    ResourceType(
        "apps",
        "v1",
        "StatefulSet",
        "statefulsets",
        short_names=("sts",),
        status=True,
        scale=True,
        generation=True,
        merge_keys=POD_MERGE_KEYS,
    ),
    ResourceType(
        "batch", "v1", "Job", "jobs", status=True, generation=True, merge_keys=POD_MERGE_KEYS
    ),
]

CNPG_CLUSTER = ResourceType(
    "postgresql.cnpg.io",
    "v1",
    "Cluster",
    "clusters",
    status=True,
    scale=True,
    generation=True,
    builtin=False,
)

#: Chaos Mesh's kinds (chaos-mesh.org/v1alpha1): the controller plays Chaos Mesh's part
#: (conditions Selected/AllInjected/AllRecovered); the shop app honours HTTPChaos.
CHAOS_MESH = [
    ResourceType("chaos-mesh.org", "v1alpha1", kind, plural, status=True, builtin=False)
    for kind, plural in (
        ("PodChaos", "podchaos"),
        ("NetworkChaos", "networkchaos"),
        ("HTTPChaos", "httpchaos"),
        ("StressChaos", "stresschaos"),
        ("IOChaos", "iochaos"),
        ("TimeChaos", "timechaos"),
        ("DNSChaos", "dnschaos"),
    )
]


class Registry:
    """The set of served resource types (built-ins plus registered custom resources)."""

    def __init__(self, types: list[ResourceType] | None = None) -> None:
        self.types: list[ResourceType] = list(types or BUILTIN)

    def register(self, rt: ResourceType) -> None:
        if rt not in self.types:
            self.types.append(rt)

    def find(self, group: str, version: str, plural: str) -> ResourceType | None:
        for rt in self.types:
            if rt.group == group and rt.version == version and rt.plural == plural:
                return rt
        return None

    def by_kind(self, kind: str) -> ResourceType | None:
        return next((rt for rt in self.types if rt.kind == kind), None)

    def groups(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for rt in self.types:
            if rt.group:
                versions = out.setdefault(rt.group, [])
                if rt.version not in versions:
                    versions.append(rt.version)
        return out

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        return [rt for rt in self.types if rt.group == group and rt.version == version]
