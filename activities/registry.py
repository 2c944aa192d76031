"""The one place step types are registered: a new type is one class plus one line here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from activities.aws.autoscaling import AsgCapacity
from activities.aws.cloudwatch import AlarmState, MetricBelow, ReplicaLag
from activities.aws.ecs import EcsService
from activities.aws.elbv2 import ElbWeights
from activities.aws.fis import FisExperiment
from activities.aws.promote import RdsPromoteReplica
from activities.aws.rds import AuroraGlobalFailover, AuroraGlobalRejoin, AuroraGlobalSwitchover
from activities.aws.route53 import DnsView, Route53Failover, Route53Weighted
from activities.aws.ssm import SsmParameter
from activities.aws.traffic import (
    ArcRoutingControls,
    GaTrafficDial,
    Route53HealthCheck,
    Route53HealthStatus,
)
from activities.base import ParamsError, StepParams, StepType
from activities.builtin import Approval, Noop, Wait
from activities.chaos_mesh import ChaosMeshFault
from activities.dns import DnsAnswer
from activities.errors import StepError
from activities.http import HttpCheck, WriteDivergence
from activities.kubernetes import CnpgRole, ConfigMapFlag, K8sJob, K8sPatch, K8sScale
from activities.sandbox import RegionOutage, SandboxFault

STEP_TYPES: dict[str, StepType[Any]] = {
    t.name: t()
    for t in (
        Noop,
        Wait,
        Approval,
        HttpCheck,
        WriteDivergence,
        SsmParameter,
        ConfigMapFlag,
        K8sScale,
        CnpgRole,
        K8sJob,
        K8sPatch,
        Route53Weighted,
        Route53Failover,
        Route53HealthCheck,
        DnsView,
        DnsAnswer,
        GaTrafficDial,
        ArcRoutingControls,
        ElbWeights,
        AsgCapacity,
        AuroraGlobalSwitchover,
        AuroraGlobalFailover,
        AuroraGlobalRejoin,
        RdsPromoteReplica,
        EcsService,
        ReplicaLag,
        MetricBelow,
        AlarmState,
        Route53HealthStatus,
        SandboxFault,
        RegionOutage,
        FisExperiment,
        ChaosMeshFault,
    )
}


def get(name: str) -> StepType[Any] | None:
    """The registered step type with this name, or None."""
    return STEP_TYPES.get(name)


def bind(name: str, params: Mapping[str, Any]) -> tuple[StepType[Any], StepParams]:
    """A step type and its params, parsed: what every caller of a type's methods starts from
    (the engine's activities, plans, detectors). A resolved runbook's steps always bind; an
    unknown type or refused params mean a worker that differs from the one that resolved them,
    so both are non-retryable Validation errors."""
    stype = STEP_TYPES.get(name)
    if stype is None:
        raise StepError("Validation", f"unknown step type {name!r} on this worker", False)
    try:
        return stype, stype.parse(params)
    except ParamsError as exc:
        raise StepError("Validation", f"{name}: {exc}", False) from None
