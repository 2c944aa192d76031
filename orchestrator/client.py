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

from orchestrator.codec import CodecError, CompressionCodec, EncryptionCodec
from orchestrator.config import ConfigError, TemporalConfig


def data_converter(cfg: TemporalConfig) -> DataConverter:
    """The pydantic data converter, its payloads over 512 kB compressed and, with `encryption`,
    every payload encrypted (ConfigError, one line, for a key that cannot be used)."""
    encryption = None
    if cfg.encryption is not None:
        try:
            encryption = EncryptionCodec(cfg.encryption)
        except CodecError as exc:
            raise ConfigError(f"temporal.encryption: {exc}") from None
    return dataclasses.replace(pydantic_data_converter, payload_codec=CompressionCodec(encryption))


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
        cfg: Where and how to connect (address, namespace, API key, TLS).
        runtime: The Temporal runtime (its metrics exporter); default: the SDK's default one.
        interceptors: Client interceptors; those that are also worker interceptors
            (`orchestrator.interceptors.MetricsInterceptor`, tracing) are used by every worker
            built from this client.

    Raises:
        ConfigError: The API key's variable is not set, or a TLS certificate or key cannot be
            read or used (one line naming the field and file).
        UnreachableError: No connection (one line naming the address, how it was secured and,
            for a TLS failure, what was wrong).
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
            f"could not reach Temporal at {cfg.address} {cfg.describe_tls()} "
            f"(namespace {cfg.namespace}): {why(str(exc), cfg)}"
        ) from None


def why(error: str, cfg: TemporalConfig) -> str:
    """The SDK's connection error (one line), led by what it most likely means where it is a
    TLS problem: a server certificate from an unknown CA or for another name, a server that
    closes the connection after the handshake (a client certificate it requires or refuses),
    TLS spoken to a plain server or the other way round."""
    error = " ".join(error.split())
    tls = cfg.tls
    hint = ""
    if "UnknownIssuer" in error and tls is not None:
        hint = (
            "the server's TLS certificate is not signed by a CA in "
            f"{tls.where('server_ca_cert')} (temporal.tls.server_ca_cert)"
        )
    elif "NotValidForName" in error and tls is not None:
        name = tls.verification_server_name or tls.server_name or cfg.address.rsplit(":", 1)[0]
        hint = (
            f"the server's TLS certificate is not valid for {name} "
            "(temporal.tls.server_name: a name the certificate is for)"
        )
    elif "Expired" in error and "Certificate" in error:
        hint = "the server's TLS certificate has expired (or is not valid yet)"
    elif "InvalidContentType" in error and tls is not None:
        hint = "the server does not speak TLS there (temporal.tls: false?)"
    elif _closed(error) and tls is not None:
        if tls.given("client_cert"):
            hint = (
                "the server closed the connection after the TLS handshake: it may not accept "
                f"the client certificate {tls.where('client_cert')}"
            )
        else:
            hint = (
                "the server closed the connection after the TLS handshake: it may require a "
                "client certificate (temporal.tls.client_cert and client_key)"
            )
    elif _closed(error):
        hint = "the server closed the connection: if it requires TLS, set temporal.tls"
    return f"{hint} [{error}]" if hint else error


def _closed(error: str) -> bool:
    """Whether the server closed the connection once it was made (the SDK's wordings)."""
    return "after connection" in error and any(
        s in error
        for s in ("UnexpectedEof", "BrokenPipe", "ConnectionReset", "close_notify", "closed")
    )
