"""Payload encryption: AES-256-GCM payloads with key ids (rotation), KMS data keys on the
sandbox's KMS, a drill whose history holds no readable runbook data, and the codec server the
Temporal UI decrypts through."""

from __future__ import annotations

import base64
import json
import socket
import urllib.error
import urllib.request
from typing import Any

import pytest
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads

from orchestrator.client import connect, data_converter
from orchestrator.codec import DATA_KEY, ENCODING, KEY_ID, CodecError, EncryptionCodec, new_key
from orchestrator.codec_server import CodecServer
from orchestrator.config import ConfigError, EncryptionConfig, TemporalConfig
from orchestrator.runs import RunState
from orchestrator.sandbox.manager import SandboxEnv
from tests.sandbox.helpers import aws
from tests.workflows.helpers import drive, plan, run, sandbox_config, start, worker

SECRET_PARAM = b"/shop/flags/maintenance"  # a step's params in maintenance-drill.yaml


def enc(active: str = "k1", **keys: str) -> EncryptionConfig:
    return EncryptionConfig.model_validate(
        {"active": active, "keys": {k: {"key": v} for k, v in keys.items()}}
    )


def payload(text: str) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(text).encode())


K1, K2 = new_key(), new_key()


def test_payloads_round_trip_and_hide_their_data_and_metadata() -> None:
    codec = EncryptionCodec(enc(k1=K1))
    sealed = codec.encode_sync([payload("/shop/flags/maintenance"), payload("x")])
    for s in sealed:
        assert s.metadata["encoding"] == ENCODING and s.metadata[KEY_ID] == b"k1"
        assert b"maintenance" not in s.data and b"json/plain" not in s.data
    assert sealed[0].data[:12] != sealed[1].data[:12], "a fresh nonce per payload"
    assert codec.decode_sync(sealed) == [payload("/shop/flags/maintenance"), payload("x")]
    plain = payload("written before encryption")
    assert codec.decode_sync([plain]) == [plain]


def test_rotation_tampering_and_unknown_keys() -> None:
    old = EncryptionCodec(enc(k1=K1)).encode_sync([payload("old")])
    rotated = EncryptionCodec(enc("k2", k1=K1, k2=K2))
    new = rotated.encode_sync([payload("new")])
    assert new[0].metadata[KEY_ID] == b"k2"
    assert rotated.decode_sync([*old, *new]) == [payload("old"), payload("new")]
    with pytest.raises(CodecError, match="key 'k1', which is not configured"):
        EncryptionCodec(enc("k2", k2=K2)).decode_sync(old)
    tampered = Payload()
    tampered.CopyFrom(new[0])
    tampered.data = new[0].data[:-1] + bytes([new[0].data[-1] ^ 1])
    with pytest.raises(CodecError, match="does not decrypt with key 'k2'"):
        rotated.decode_sync([tampered])
    with pytest.raises(CodecError, match="key k1: 16 bytes, AES-256 needs 32"):
        EncryptionCodec(enc(k1=base64.b64encode(b"0" * 16).decode()))
    with pytest.raises(ValueError, match="active key 'k3' is not among keys"):
        enc("k3", k1=K1)
    bad = TemporalConfig(encryption=enc(k1="not base64!"))
    with pytest.raises(ConfigError, match=r"temporal\.encryption: key k1: not base64"):
        data_converter(bad)


def test_kms_data_keys_on_the_sandbox(env: SandboxEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    # The codec's KMS client uses the standard credential chain (IRSA, Pod Identity, ...).
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    kms = aws(env, "kms")
    key_id = kms.create_key(Description="failover payloads")["KeyMetadata"]["KeyId"]
    cfg = EncryptionConfig.model_validate({"active": "kms", "keys": {"kms": {
        "kms_key_id": key_id, "kms_region": "us-east-1",
        "kms_endpoint_url": env.aws_endpoint_url}}})  # fmt: skip
    codec = EncryptionCodec(cfg)
    a, b = codec.encode_sync([payload("a")]), codec.encode_sync([payload("b")])
    assert a[0].metadata[DATA_KEY] == b[0].metadata[DATA_KEY], "one data key per process"
    wrapped = base64.b64decode(a[0].metadata[DATA_KEY])
    assert kms.decrypt(CiphertextBlob=wrapped)["KeyId"].endswith(key_id)
    # Another process (a fresh codec) unwraps the data key through KMS to read them.
    assert EncryptionCodec(cfg).decode_sync([*a, *b]) == [payload("a"), payload("b")]


def _post(url: str, body: Any, origin: str | None = None) -> tuple[int, dict[str, Any], Any]:
    headers = {"Content-Type": "application/json", "X-Namespace": "default"}
    if origin:
        headers["Origin"] = origin
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read())


def test_an_encrypted_drill_leaves_no_readable_payload_and_the_codec_server_reads_it(
    fresh: SandboxEnv,
) -> None:
    config = sandbox_config(fresh)
    config.temporal.encryption = enc(k1=K1)

    async def scenario() -> tuple[Any, bytes, list[Payload]]:
        async with worker(config) as (client, queue):
            h = await start(client, queue, plan("maintenance-drill.yaml"))
            result = await drive(h)
        plain_client = await connect(sandbox_config(fresh).temporal)  # no key
        history = await plain_client.get_workflow_handle(h.id).fetch_history()
        raw = history.to_json().encode()
        started = history.events[0].workflow_execution_started_event_attributes
        return result, raw, list(started.input.payloads)

    result, raw, inputs = run(scenario())
    assert result.state == RunState.SUCCEEDED, result.reason  # the worker and client decrypt
    assert base64.b64encode(ENCODING).decode() in raw.decode()
    assert SECRET_PARAM not in raw and base64.b64encode(SECRET_PARAM) not in raw
    srv = CodecServer(EncryptionCodec(config.temporal.encryption), "127.0.0.1", 0,
                      ["http://127.0.0.1:8233"]).start()  # fmt: skip
    try:
        body = json_format.MessageToDict(Payloads(payloads=inputs))
        url = f"http://127.0.0.1:{srv.port}/default"
        status, headers, decoded = _post(f"{url}/decode", body, "http://127.0.0.1:8233")
        assert status == 200
        assert headers["Access-Control-Allow-Origin"] == "http://127.0.0.1:8233"
        data = base64.b64decode(decoded["payloads"][0]["data"])
        assert SECRET_PARAM in data  # the run's input, readable through the server only
        status, _, encoded = _post(f"{url}/encode", decoded)
        assert status == 200 and encoded["payloads"][0]["metadata"]["encoding"] == \
            base64.b64encode(ENCODING).decode()  # fmt: skip
        status, headers, _ = _post(f"{url}/decode", body, "http://evil.example")
        assert "Access-Control-Allow-Origin" not in headers
        status, _, err = _post(f"{url}/nope", body)
        assert status == 404 and "encode, decode" in err["error"]
        status, _, err = _post(f"{url}/decode", {"payloads": "no"})
        assert status == 400
    finally:
        srv.stop()


def test_keys_never_shown_and_the_cli_says_what_is_missing(env: SandboxEnv, tmp_path: Any) -> None:
    from orchestrator.config import Config
    from tests.cli import failover

    shown = json.dumps(Config(temporal=TemporalConfig(encryption=enc(k1=K1))).redacted())
    assert K1 not in shown and "k1" in shown
    key = failover(env, "codec", "new-key")
    assert key.returncode == 0 and len(base64.b64decode(key.stdout.strip())) == 32
    with socket.socket() as taken:  # (without encryption it serves decompression: it runs)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = failover(env, "codec", "server", "--port", str(port))
    assert busy.returncode == 2
    assert busy.stderr.strip().startswith(f"error: cannot serve on 127.0.0.1:{port}: ")
