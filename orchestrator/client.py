"""Connecting to Temporal: one place for the address, namespace, TLS, API key and data converter.

Temporal's own environment configuration wins when present (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE,
TEMPORAL_API_KEY, TEMPORAL_TLS*, TEMPORAL_PROFILE and its TOML file, TEMPORAL_CONFIG_FILE), as with
the `temporal` CLI and the SDKs; otherwise the orchestrator's config (file or sandbox).
"""

from __future__ import annotations

import os
from typing import Any

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.envconfig import ClientConfig

from orchestrator.config import TemporalConfig


class UnreachableError(RuntimeError):
    """Temporal (or another service) could not be reached: one line naming it."""


def env_config() -> dict[str, Any]:
    """Temporal's environment configuration, if any of it is set (else {})."""
    if not any(k.startswith("TEMPORAL_") for k in os.environ):
        return {}
    loaded = ClientConfig.load_client_connect_config(
        profile=os.environ.get("TEMPORAL_PROFILE"),
        config_file=os.environ.get("TEMPORAL_CONFIG_FILE"),
    )
    return dict(loaded)


async def connect(cfg: TemporalConfig) -> Client:
    """A Temporal client with the pydantic data converter (run data are pydantic models)."""
    kwargs: dict[str, Any] = {
        "target_host": cfg.address,
        "namespace": cfg.namespace,
        "api_key": cfg.api_key.get_secret_value() if cfg.api_key else None,
        "tls": cfg.tls,
    }
    kwargs |= env_config()
    try:
        return await Client.connect(**kwargs, data_converter=pydantic_data_converter)
    except RuntimeError as exc:  # the SDK's connection errors are RuntimeErrors
        raise UnreachableError(
            f"could not reach Temporal at {kwargs['target_host']} "
            f"(namespace {kwargs['namespace']}): {exc}"
        ) from None
