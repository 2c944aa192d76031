"""Test helpers: clients for the sandbox, and a check of responses against botocore's shapes."""

from __future__ import annotations

import contextlib
import datetime
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import botocore.session
from botocore.model import ListShape, MapShape, Shape, StructureShape
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from orchestrator.sandbox.aws.seed import client as aws_client
from orchestrator.sandbox.control import SandboxControl
from orchestrator.sandbox.latency import LatencyModel
from orchestrator.sandbox.manager import SandboxEnv

T = TypeVar("T")


def aws(env: SandboxEnv, service: str, region: str = "us-east-1") -> Any:
    return aws_client(env.aws_endpoint_url, service, region)


def kube(env: SandboxEnv, region: str) -> k8s.ApiClient:
    return k8s_config.new_client_from_config(config_file=env.kubeconfig, context=region)


@contextlib.contextmanager
def slower(control: SandboxControl, **durations: float) -> Iterator[None]:
    """Modelled durations (unscaled seconds) set for a block, back to the model's defaults
    after it: an operation long enough to be seen under way on a loaded machine."""
    control.set_latency(**durations)
    try:
        yield
    finally:
        defaults = LatencyModel()
        control.set_latency(**{name: getattr(defaults, name) for name in durations})


def wait_for(fn: Callable[[], T], timeout: float = 10.0, interval: float = 0.05) -> T:
    """Poll fn until it returns a truthy value; fail with its last value after timeout."""
    deadline = time.monotonic() + timeout
    value = fn()
    while not value:
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met after {timeout}s (last value {value!r})")
        time.sleep(interval)
        value = fn()
    return value


_PY_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "boolean": (bool,),
    "integer": (int,),
    "long": (int,),
    "double": (float, int),
    "float": (float, int),
    "timestamp": (datetime.datetime,),
    "blob": (bytes,),
}


def assert_shape(shape: Shape, value: Any, path: str = "") -> None:
    """Assert a parsed response matches the botocore shape: known members, right types, enums."""
    if isinstance(shape, StructureShape):
        assert isinstance(value, dict), f"{path or '<root>'}: expected structure, got {value!r}"
        for key, member in value.items():
            if key == "ResponseMetadata" and not path:
                continue
            assert key in shape.members, f"{path}.{key}: not a member of {shape.name}"
            assert_shape(shape.members[key], member, f"{path}.{key}")
        for required in shape.required_members:
            assert required in value, f"{path}: required member {required} missing"
    elif isinstance(shape, ListShape):
        assert isinstance(value, list), f"{path}: expected list"
        for i, item in enumerate(value):
            assert_shape(shape.member, item, f"{path}[{i}]")
    elif isinstance(shape, MapShape):
        assert isinstance(value, dict), f"{path}: expected map"
        for k, v in value.items():
            assert_shape(shape.value, v, f"{path}[{k}]")
    else:
        expected = _PY_TYPES.get(shape.type_name)
        if expected:
            assert isinstance(value, expected), f"{path}: {value!r} is not {shape.type_name}"
        enum = getattr(shape, "enum", None)
        if enum:
            assert value in enum, f"{path}: {value!r} not in enum {enum}"


def assert_response_shape(service: str, operation: str, response: dict[str, Any]) -> None:
    model = botocore.session.get_session().get_service_model(service)
    output = model.operation_model(operation).output_shape
    assert output is not None
    assert_shape(output, response)
