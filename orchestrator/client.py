"""Connecting to Temporal: one place for the address, namespace, TLS, API key and data converter.

The configuration (`orchestrator.config.load`) has already merged Temporal's own environment
configuration (TEMPORAL_ADDRESS, ...) into its `temporal` section; this module only connects.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from temporalio.client import Client, Interceptor
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter
from temporalio.runtime import Runtime

from orchestrator.codec import CodecError, EncryptionCodec
from orchestrator.config import ConfigError, TemporalConfig


def data_converter(cfg: TemporalConfig) -> DataConverter:
    """The pydantic data converter; with `encryption`, its payloads encrypted (ConfigError, one
    line, for a key that cannot be used)."""
    if cfg.encryption is None:
        return pydantic_data_converter
    try:
        codec = EncryptionCodec(cfg.encryption)
    except CodecError as exc:
        raise ConfigError(f"temporal.encryption: {exc}") from None
    return dataclasses.replace(pydantic_data_converter, payload_codec=codec)


class UnreachableError(RuntimeError):
    """Temporal (or another service) could not be reached: one line naming it."""


async def connect(
    cfg: TemporalConfig,
    *,
    runtime: Runtime | None = None,
    interceptors: Sequence[Interceptor] = (),
) -> Client:
    """A Temporal client with the pydantic data converter (run data are pydantic models).

    Args:
        cfg: Where and how to connect.
        runtime: The Temporal runtime (its metrics exporter); default: the SDK's default one.
        interceptors: Client interceptors; those that are also worker interceptors
            (`orchestrator.interceptors.MetricsInterceptor`, tracing) are used by every worker
            built from this client.
    """
    kwargs = cfg.connect_args()
    try:
        return await Client.connect(
            **kwargs,
            data_converter=data_converter(cfg),
            runtime=runtime,
            interceptors=interceptors,
        )
    except RuntimeError as exc:  # the SDK's connection errors are RuntimeErrors
        raise UnreachableError(
            f"could not reach Temporal at {kwargs['target_host']} "
            f"(namespace {kwargs['namespace']}): {exc}"
        ) from None
