"""Connecting to Temporal: one place for the address, namespace, TLS, API key and data converter."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from orchestrator.config import TemporalConfig


class UnreachableError(RuntimeError):
    """Temporal (or another service) could not be reached: one line naming it."""


async def connect(cfg: TemporalConfig) -> Client:
    """A Temporal client with the pydantic data converter (run data are pydantic models)."""
    try:
        return await Client.connect(
            cfg.address,
            namespace=cfg.namespace,
            api_key=cfg.api_key.get_secret_value() if cfg.api_key else None,
            tls=cfg.tls,
            data_converter=pydantic_data_converter,
        )
    except RuntimeError as exc:  # the SDK's connection errors are RuntimeErrors
        raise UnreachableError(
            f"could not reach Temporal at {cfg.address} (namespace {cfg.namespace}): {exc}"
        ) from None
