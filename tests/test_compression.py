"""Payload compression: payloads over 512 kB are compressed (zlib) before they leave the
process, so a 200-service evacuation's input (2.2 MB of JSON) fits Temporal's default 2 MB
payload limit; smaller ones stay readable; encryption, when configured, seals the result."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError

from bench.evacuation import generate
from orchestrator.client import connect
from orchestrator.codec import (
    COMPRESS_ABOVE,
    COMPRESSED,
    ENCODING,
    CodecError,
    CompressionCodec,
    EncryptionCodec,
    new_key,
)
from orchestrator.config import EncryptionConfig
from orchestrator.evacuation.runs import EvacuationInput
from orchestrator.sandbox.manager import SandboxEnv
from tests.workflows.helpers import sandbox_config
from workflows.evacuation import EvacuationWorkflow


def payload(text: str) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(text).encode())


BIG = payload("step " * (COMPRESS_ABOVE // 4))  # over the line, and very compressible


def test_large_payloads_are_compressed_small_ones_left_readable() -> None:
    codec = CompressionCodec()
    small, big = codec.encode_sync([payload("x"), BIG])
    assert small == payload("x")
    assert big.metadata["encoding"] == COMPRESSED and len(big.data) < BIG.ByteSize() / 50
    assert codec.decode_sync([small, big]) == [payload("x"), BIG]
    with pytest.raises(CodecError, match="does not decompress"):
        codec.decode_sync([Payload(metadata={"encoding": COMPRESSED}, data=b"not zlib")])


def test_compressed_then_encrypted_and_back() -> None:
    key = new_key()
    enc = EncryptionConfig.model_validate({"active": "k1", "keys": {"k1": {"key": key}}})
    codec = CompressionCodec(EncryptionCodec(enc))
    sealed = codec.encode_sync([BIG, payload("x")])
    assert all(p.metadata["encoding"] == ENCODING for p in sealed)
    assert len(sealed[0].data) < BIG.ByteSize() / 50  # compressed before it was sealed
    assert codec.decode_sync(sealed) == [BIG, payload("x")]
    assert asyncio.run(codec.decode(asyncio.run(codec.encode([BIG])))) == [BIG]


def _input(tmp_path: Path) -> EvacuationInput:
    inp = generate(tmp_path, 200, 25, 1)
    assert len(inp.model_dump_json()) > 2 * 1024 * 1024  # over Temporal's default limit
    return inp


async def _start(client: Client, inp: EvacuationInput) -> str:
    """Start the evacuation on a queue no worker polls (nothing runs); its workflow id."""
    wid = f"compression-{uuid.uuid4().hex[:8]}"
    await client.start_workflow(EvacuationWorkflow.run, inp, id=wid, task_queue=wid)
    return wid


def test_a_200_service_evacuation_input_starts_on_a_default_server(
    env: SandboxEnv, tmp_path: Path
) -> None:
    """The sandbox's Temporal keeps the default 2 MB payload limit: the same input is refused
    without compression and accepted with it, and reads back whole."""
    inp = _input(tmp_path)

    async def scenario() -> tuple[str, int, EvacuationInput]:
        cfg = sandbox_config(env).temporal
        plain = await Client.connect(
            cfg.address, namespace=cfg.namespace, data_converter=pydantic_data_converter
        )
        refused = ""
        try:
            await _start(plain, inp)
        except RPCError as exc:
            refused = exc.message
        client = await connect(cfg)
        wid = await _start(client, inp)
        h = client.get_workflow_handle(wid)
        try:
            history = await h.fetch_history()
            started = history.events[0].workflow_execution_started_event_attributes
            [raw] = started.input.payloads
            [back] = await client.data_converter.decode([raw], [EvacuationInput])
        finally:
            await h.terminate("test")
        assert raw.metadata["encoding"] == COMPRESSED
        return refused, raw.ByteSize(), back

    refused, stored, back = asyncio.run(scenario())
    assert "size" in refused.lower() or "limit" in refused.lower(), refused
    assert stored < 512 * 1024  # 2.2 MB of JSON held in under 512 kB
    assert back == inp
