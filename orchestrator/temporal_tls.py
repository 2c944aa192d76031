"""`temporal.tls` given as a mapping: TLS to Temporal with a server CA, a server name and an mTLS
client certificate and key, each from a file, inline PEM, or an environment variable.

Every PEM is read and checked before a connection is tried (a certificate parses, a key parses
and belongs to the certificate), so a mistake is one line naming the field and the file instead
of a TLS failure later. The private key is a secret: it is never printed, in `config show` or in
an error.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, model_validator

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.types import (
        PrivateKeyTypes,
        PublicKeyTypes,
    )
    from cryptography.x509 import Certificate

Item = Literal["client_cert", "client_key", "server_ca_cert"]
#: Each PEM item and the ways it can be given (path, inline data, environment variable).
SOURCES: dict[Item, tuple[str, ...]] = {
    "client_cert": ("client_cert", "client_cert_data", "client_cert_env"),
    "client_key": ("client_key", "client_key_data", "client_key_env"),
    "server_ca_cert": ("server_ca_cert", "server_ca_cert_data"),
}


class TLSError(ValueError):
    """A TLS setting that cannot be used: one line naming the field (and file), never a key."""


class TemporalTLS(BaseModel):
    """TLS to Temporal, with certificates (`temporal.tls: {...}`); `temporal.tls: true` is this
    with nothing set (the system's CAs, no client certificate)."""

    model_config = ConfigDict(extra="forbid")

    #: The mTLS client certificate (PEM; a chain may follow it): a file, inline, or the name of
    #: an environment variable holding it.
    client_cert: str | None = Field(default=None, description="Client certificate file (PEM).")
    client_cert_data: str | None = Field(default=None, description="Client certificate PEM.")
    client_cert_env: str | None = Field(
        default=None, description="Environment variable holding the client certificate PEM."
    )
    #: Its private key (PEM, unencrypted): a file, inline (a secret), or an environment variable.
    client_key: str | None = Field(default=None, description="Client key file (PEM).")
    client_key_data: SecretStr | None = Field(default=None, description="Client key PEM.")
    client_key_env: str | None = Field(
        default=None, description="Environment variable holding the client key PEM."
    )
    #: The CA(s) the server's certificate must chain to (default: the system's).
    server_ca_cert: str | None = Field(default=None, description="Server CA file (PEM).")
    server_ca_cert_data: str | None = Field(default=None, description="Server CA PEM.")
    #: The name sent as SNI and checked against the server's certificate (default: the host of
    #: `address`).
    server_name: str | None = None
    #: Check the server's certificate against this name instead, while SNI stays the address's
    #: host (or server_name): for a proxy in front of Temporal. Needs server_ca_cert.
    verification_server_name: str | None = None
    #: The fields Temporal's environment configuration gave (named so in messages).
    _from_env: set[str] = PrivateAttr(default_factory=set)

    @model_validator(mode="after")
    def _consistent(self) -> TemporalTLS:
        for item, names in SOURCES.items():
            given = [n for n in names if getattr(self, n) is not None]
            if len(given) > 1:
                raise ValueError(f"{item}: give one of {', '.join(names)} (got {', '.join(given)})")
        cert, key = self.given("client_cert"), self.given("client_key")
        if key and not cert:
            raise ValueError("a client key without a client certificate: give client_cert too")
        if cert and not key:
            raise ValueError("a client certificate without its key: give client_key too")
        if self.verification_server_name and not self.given("server_ca_cert"):
            raise ValueError("verification_server_name needs server_ca_cert")
        return self

    def mark_from_environment(self, names: set[str]) -> None:
        """Say that Temporal's environment configuration gave these fields (for messages)."""
        self._from_env = set(names)

    def given(self, item: Item) -> str | None:
        """The field `item` is given by (e.g. client_key_env), None when it is not given."""
        return next((n for n in SOURCES[item] if getattr(self, n) is not None), None)

    def where(self, item: Item) -> str:
        """Where `item` comes from, for messages: a path, `client_key_data`, `$VAR`."""
        name = self.given(item)
        if name is None:
            return "system CAs" if item == "server_ca_cert" else "none"
        value = getattr(self, name)
        if name.endswith("_data"):
            return f"{name} (inline)"
        if name.endswith("_env"):
            return f"${value}"
        return str(value)

    def material(self, prefix: str = "temporal.tls") -> TLSMaterial:
        """Every PEM read and checked.

        Args:
            prefix: Where this section is in the configuration (for messages).

        Raises:
            TLSError: A file is missing or unreadable, a variable unset, a PEM does not parse, or
                the key is not the certificate's (one line naming the field and file).
        """
        ca = self._read("server_ca_cert", prefix)
        cert = self._read("client_cert", prefix)
        key = self._read("client_key", prefix)
        if ca is not None:
            _certificates(ca, self._label("server_ca_cert", prefix))
        if cert is not None and key is not None:
            leaf = _certificates(cert, self._label("client_cert", prefix))[0]
            private = _private_key(key, self._label("client_key", prefix))
            if _public(leaf.public_key()) != _public(private.public_key()):
                raise TLSError(
                    f"{self._label('client_key', prefix)}: not the key of the client "
                    f"certificate {self.where('client_cert')}"
                )
        return TLSMaterial(
            server_root_ca_cert=ca,
            client_cert=cert,
            client_private_key=key,
            domain=self.server_name,
            verification_server_name=self.verification_server_name,
        )

    def _label(self, item: Item, prefix: str) -> str:
        name = self.given(item) or item
        value = getattr(self, name)
        label = f"{prefix}.{name}"
        if name in self._from_env:
            label += " (from Temporal's environment configuration)"
        if name.endswith("_env"):
            return f"{label} (${value})"
        if name.endswith("_data"):
            return label
        return f"{label}: {value}"

    def _read(self, item: Item, prefix: str) -> bytes | None:
        name = self.given(item)
        if name is None:
            return None
        value = getattr(self, name)
        label = self._label(item, prefix)
        if name.endswith("_data"):
            text = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
            return text.encode()
        if name.endswith("_env"):
            text = os.environ.get(value, "")
            if not text.strip():
                raise TLSError(f"{label}: the environment variable is not set")
            return text.encode()
        path = Path(value).expanduser()
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise TLSError(f"{label}: no such file") from None
        except IsADirectoryError:
            raise TLSError(f"{label}: a directory, not a file") from None
        except OSError as exc:
            raise TLSError(f"{label}: cannot read: {exc.strerror or exc}") from None


@dataclass(frozen=True)
class TLSMaterial:
    """What `temporalio.service.TLSConfig` is built from (the key is left out of repr)."""

    server_root_ca_cert: bytes | None = None
    client_cert: bytes | None = None
    client_private_key: bytes | None = field(default=None, repr=False)
    domain: str | None = None
    verification_server_name: str | None = None


def _certificates(pem: bytes, label: str) -> list[Certificate]:
    from cryptography import x509

    try:
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError:
        certs = []
    if not certs:
        raise TLSError(f"{label}: not a PEM certificate (-----BEGIN CERTIFICATE-----)")
    return list(certs)


def _private_key(pem: bytes, label: str) -> PrivateKeyTypes:
    from cryptography.hazmat.primitives import serialization

    try:
        return serialization.load_pem_private_key(pem, password=None)
    except TypeError:  # encrypted: the SDK takes no passphrase
        raise TLSError(f"{label}: an encrypted private key (give it unencrypted)") from None
    except Exception:  # what it says may quote the input: say nothing of it
        raise TLSError(f"{label}: not a PEM private key (-----BEGIN PRIVATE KEY-----)") from None


def _public(key: PublicKeyTypes) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
