"""Payload encryption and compression. With encryption configured, what the orchestrator stores
in Temporal (runbooks, step params, snapshots, approvals) is encrypted with AES-256-GCM before it
leaves the process, so Temporal's history, visibility and UI hold ciphertext only. Always, a
payload over 512 kB is compressed first (`CompressionCodec`: a 200-service evacuation's input).

Keys: each encrypted payload names its key (`encryption-key-id`), so keys can be rotated (encode
with `active`, decode with any key still listed). A key is either given (base64 of 32 bytes, in
the configuration or an environment variable) or is a KMS data key (envelope encryption: the
worker asks KMS for a data key once, keeps it in memory, and stores its encrypted form beside the
ciphertext; decoding asks KMS to decrypt that form, once per data key).

The Temporal Web UI and the `temporal` CLI show such payloads through a codec server:
`failover codec-server` serves Temporal's remote codec protocol (`/encode`, `/decode`, JSON
Payloads) for them. Search attributes and workflow ids are not payloads: they stay readable (they
hold no secrets: runbook names, regions, states).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import os
import threading
import zlib
from collections.abc import Iterable, Sequence
from typing import Any

from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

from orchestrator.config import EncryptionConfig, EncryptionKey

ENCODING = b"binary/encrypted"
COMPRESSED = b"binary/zlib"
#: Payloads larger than this many bytes are compressed (`CompressionCodec`): the size above
#: which Temporal's SDK warns of a payload.
COMPRESS_ABOVE = 512 * 1024
KEY_ID = "encryption-key-id"
DATA_KEY = "encryption-data-key"
NONCE_BYTES = 12


class CodecError(ValueError):
    """A payload that cannot be decrypted (unknown key, tampered data): one line saying which."""


def _literal(key_id: str, k: EncryptionKey) -> bytes:
    if k.key is not None:
        text, where = k.key.get_secret_value(), f"key {key_id}"
    else:
        name = k.key_env or ""
        text, where = os.environ.get(name, ""), f"key {key_id} (${name})"
        if not text:
            raise CodecError(f"{where}: the variable is not set")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise CodecError(f"{where}: not base64") from None
    if len(raw) != 32:
        raise CodecError(f"{where}: {len(raw)} bytes, AES-256 needs 32")
    return raw


class EncryptionCodec(PayloadCodec):
    """AES-256-GCM over each whole serialized payload (its metadata too), with a fresh nonce per
    payload; the key id (and, for KMS keys, the wrapped data key) in the outer metadata."""

    def __init__(self, cfg: EncryptionConfig) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._aesgcm = AESGCM
        self.cfg = cfg
        self._given = {i: _literal(i, k) for i, k in cfg.keys.items() if not k.kms_key_id}
        self._lock = threading.Lock()
        self._data_key: tuple[bytes, bytes] | None = None  # (plaintext, wrapped) of `active`
        self._unwrapped: dict[bytes, bytes] = {}

    # ----------------------------------------------------------------------- keys
    def _kms(self, k: EncryptionKey) -> Any:
        import boto3

        return boto3.client("kms", region_name=k.kms_region, endpoint_url=k.kms_endpoint_url)

    def _encrypting_key(self) -> tuple[bytes, dict[str, bytes]]:
        active = self.cfg.active
        k = self.cfg.keys[active]
        meta = {KEY_ID: active.encode()}
        if not k.kms_key_id:
            return self._given[active], meta
        with self._lock:
            if self._data_key is None:
                out = self._kms(k).generate_data_key(KeyId=k.kms_key_id, KeySpec="AES_256")
                self._data_key = (out["Plaintext"], out["CiphertextBlob"])
                self._unwrapped[out["CiphertextBlob"]] = out["Plaintext"]
            plain, wrapped = self._data_key
        return plain, {**meta, DATA_KEY: base64.b64encode(wrapped)}

    def _decrypting_key(self, p: Payload) -> bytes:
        key_id = p.metadata.get(KEY_ID, b"").decode()
        k = self.cfg.keys.get(key_id)
        if k is None:
            raise CodecError(f"payload encrypted with key {key_id!r}, which is not configured")
        if not k.kms_key_id:
            return self._given[key_id]
        wrapped = base64.b64decode(p.metadata.get(DATA_KEY, b""))
        with self._lock:
            if wrapped not in self._unwrapped:
                out = self._kms(k).decrypt(CiphertextBlob=wrapped, KeyId=k.kms_key_id)
                self._unwrapped[wrapped] = out["Plaintext"]
            return self._unwrapped[wrapped]

    # -------------------------------------------------------------------- payloads
    def encode_sync(self, payloads: Iterable[Payload]) -> list[Payload]:
        """Encrypt (blocking: a KMS key may call KMS once)."""
        key, meta = self._encrypting_key()
        out = []
        for p in payloads:
            nonce = os.urandom(NONCE_BYTES)
            sealed = self._aesgcm(key).encrypt(nonce, p.SerializeToString(), None)
            out.append(Payload(metadata={"encoding": ENCODING, **meta}, data=nonce + sealed))
        return out

    def decode_sync(self, payloads: Iterable[Payload]) -> list[Payload]:
        """Decrypt what is encrypted; other payloads (written before encryption) pass as they
        are."""
        from cryptography.exceptions import InvalidTag

        out = []
        for p in payloads:
            if p.metadata.get("encoding") != ENCODING:
                out.append(p)
                continue
            key = self._decrypting_key(p)
            try:
                plain = self._aesgcm(key).decrypt(p.data[:NONCE_BYTES], p.data[NONCE_BYTES:], None)
            except InvalidTag:
                key_id = p.metadata.get(KEY_ID, b"").decode()
                raise CodecError(
                    f"a payload does not decrypt with key {key_id!r}: tampered, or another key "
                    "with that id"
                ) from None
            inner = Payload()
            inner.ParseFromString(plain)
            out.append(inner)
        return out

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        if any(k.kms_key_id for k in self.cfg.keys.values()):
            return await asyncio.to_thread(self.encode_sync, payloads)
        return self.encode_sync(payloads)

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        if any(k.kms_key_id for k in self.cfg.keys.values()):
            return await asyncio.to_thread(self.decode_sync, payloads)
        return self.decode_sync(payloads)


class CompressionCodec(PayloadCodec):
    """zlib over each whole serialized payload larger than `above` bytes, then `inner` (the
    encryption, when configured). What Temporal holds of a large run stays under its payload
    limit (2 MB by default, Temporal Cloud's too): a 200-service evacuation's input is 2.2 MB of
    JSON. Smaller payloads, nearly all, stay as they were: readable JSON in the Web UI and the
    `temporal` CLI without a codec server. Decoding lets uncompressed payloads through, so
    histories written before stay readable and replayable."""

    def __init__(self, inner: EncryptionCodec | None = None, above: int = COMPRESS_ABOVE) -> None:
        self.inner = inner
        self.above = above

    def _compress(self, p: Payload) -> Payload:
        if p.ByteSize() <= self.above:  # (the size without serializing: nearly every payload)
            return p
        return Payload(metadata={"encoding": COMPRESSED}, data=zlib.compress(p.SerializeToString()))

    @staticmethod
    def _decompress(p: Payload) -> Payload:
        if p.metadata.get("encoding") != COMPRESSED:
            return p
        try:
            raw = zlib.decompress(p.data)
        except zlib.error as exc:
            raise CodecError(f"a compressed payload does not decompress: {exc}") from None
        inner = Payload()
        inner.ParseFromString(raw)
        return inner

    def encode_sync(self, payloads: Iterable[Payload]) -> list[Payload]:
        """Compress what is large, then encrypt (blocking: the codec server's way)."""
        out = [self._compress(p) for p in payloads]
        return self.inner.encode_sync(out) if self.inner is not None else out

    def decode_sync(self, payloads: Iterable[Payload]) -> list[Payload]:
        """Decrypt, then decompress what is compressed."""
        plain = self.inner.decode_sync(payloads) if self.inner is not None else list(payloads)
        return [self._decompress(p) for p in plain]

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        out = [self._compress(p) for p in payloads]
        return await self.inner.encode(out) if self.inner is not None else out

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        plain = await self.inner.decode(payloads) if self.inner is not None else list(payloads)
        return [self._decompress(p) for p in plain]


def new_key() -> str:
    """A new key, base64 (for the configuration or a secret)."""
    return base64.b64encode(os.urandom(32)).decode()
