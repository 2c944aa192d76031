"""Temporal over TLS: `temporal.tls` as a mapping (client certificate and key, server CA, server
name; files, inline PEM or environment variables), the API key from a variable, Temporal's
environment configuration over the file, one-line errors naming the field and file; and over a
real socket, a TLS proxy (client certificate required) in front of the sandbox's Temporal:
connecting with the client certificate works, without it, with a wrong CA or a wrong name it
fails in one line naming the address and TLS (`failover` exit 5), and `failover worker
--health-port` becomes ready through it."""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from pydantic import SecretStr
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.service import TLSConfig

from orchestrator import config as configuration
from orchestrator.client import UnreachableError, connect
from orchestrator.config import ConfigError, TemporalConfig
from orchestrator.sandbox.manager import SandboxEnv
from tests.cli import failover
from tests.tls import SERVER_NAME, Pki, TlsProxy, make_pki, tls_proxy
from tests.workflows.helpers import ROOT, run, sandbox_config


@pytest.fixture(autouse=True)
def no_temporal_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Temporal's environment configuration only where a test sets it."""
    for name in [k for k in os.environ if k.startswith("TEMPORAL_")]:
        monkeypatch.delenv(name)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def other(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """Another CA, and what it signed."""
    return make_pki(tmp_path_factory.mktemp("other-pki"), "other-")


def write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def load_temporal(tmp_path: Path, temporal: dict[str, Any]) -> TemporalConfig:
    return configuration.load(write(tmp_path / "failover.yaml", {"temporal": temporal})).temporal


def mtls(pki: Pki, **extra: Any) -> dict[str, Any]:
    return {"client_cert": str(pki.client_cert), "client_key": str(pki.client_key),
            "server_ca_cert": str(pki.ca_cert), **extra}  # fmt: skip


def config_error(tmp_path: Path, temporal: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        load_temporal(tmp_path, temporal)
    message = str(caught.value)
    assert "\n" not in message
    return message


# --------------------------------------------------------------------------- the settings
def test_tls_settings_from_files_build_the_sdks_tls_config(pki: Pki, tmp_path: Path) -> None:
    t = load_temporal(tmp_path, {"address": "temporal.example:7233",
                                 "tls": mtls(pki, server_name=SERVER_NAME)})  # fmt: skip
    args = t.connect_args()
    assert args["tls"] == TLSConfig(
        server_root_ca_cert=pki.ca_cert.read_bytes(),
        client_cert=pki.client_cert.read_bytes(),
        client_private_key=pki.client_key.read_bytes(),
        domain=SERVER_NAME,
    )
    assert args["target_host"] == "temporal.example:7233" and args["api_key"] is None
    assert t.describe_tls() == (
        f"over TLS (server CA: {pki.ca_cert}, server name {SERVER_NAME}, "
        f"client certificate {pki.client_cert})"
    )


def test_tls_true_false_and_absent_keep_their_meaning(tmp_path: Path) -> None:
    assert load_temporal(tmp_path, {"tls": True}).connect_args()["tls"] is True
    assert load_temporal(tmp_path, {"tls": False}).connect_args()["tls"] is False
    assert load_temporal(tmp_path, {}).connect_args()["tls"] is False
    # Shown as it was written.
    assert TemporalConfig(tls=True).model_dump(mode="json")["tls"] is True
    assert TemporalConfig(tls=False).model_dump(mode="json")["tls"] is False
    assert load_temporal(tmp_path, {"tls": {"server_name": "x.example"}}).connect_args()[
        "tls"
    ] == TLSConfig(domain="x.example")


def test_inline_pem_and_environment_variables(
    pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_CERT", pki.client_cert.read_text())
    monkeypatch.setenv("MY_KEY", pki.client_key.read_text())
    monkeypatch.setenv("MY_API_KEY", "key-from-the-environment")
    t = load_temporal(tmp_path, {
        "api_key_env": "MY_API_KEY",
        "tls": {"client_cert_env": "MY_CERT", "client_key_env": "MY_KEY",
                "server_ca_cert_data": pki.ca_cert.read_text()},
    })  # fmt: skip
    args = t.connect_args()
    assert args["api_key"] == "key-from-the-environment"
    assert args["tls"].client_private_key == pki.client_key.read_bytes()
    assert args["tls"].client_cert == pki.client_cert.read_bytes()
    assert args["tls"].server_root_ca_cert == pki.ca_cert.read_bytes()
    inline = load_temporal(tmp_path, {"tls": {"client_cert_data": pki.client_cert.read_text(),
                                              "client_key_data": pki.client_key.read_text()}})  # fmt: skip
    assert inline.connect_args()["tls"].client_private_key == pki.client_key.read_bytes()
    assert isinstance(inline.tls and inline.tls.client_key_data, SecretStr)
    assert "PRIVATE KEY" not in repr(inline) and "PRIVATE KEY" not in repr(inline.tls_material())


@pytest.mark.parametrize(
    ("temporal", "expected"),
    [
        ({"tls": {"client_cert": "{dir}/missing.crt", "client_key": "{key}"}},
         "{file}: temporal.tls.client_cert: {dir}/missing.crt: no such file"),
        ({"tls": {"client_cert": "{cert}", "client_key": "{dir}"}},
         "{file}: temporal.tls.client_key: {dir}: a directory, not a file"),
        ({"tls": {"client_cert": "{key}", "client_key": "{key}"}},
         "{file}: temporal.tls.client_cert: {key}: not a PEM certificate (-----BEGIN CERTIFICATE-----)"),
        ({"tls": {"client_cert": "{cert}", "client_key": "{cert}"}},
         "{file}: temporal.tls.client_key: {cert}: not a PEM private key (-----BEGIN PRIVATE KEY-----)"),
        ({"tls": {"client_cert": "{cert}", "client_key": "{other_key}"}},
         "{file}: temporal.tls.client_key: {other_key}: not the key of the client certificate {cert}"),
        ({"tls": {"server_ca_cert": "{garbage}"}},
         "{file}: temporal.tls.server_ca_cert: {garbage}: not a PEM certificate (-----BEGIN CERTIFICATE-----)"),
        ({"tls": {"server_ca_cert_data": "not a PEM"}},
         "{file}: temporal.tls.server_ca_cert_data: not a PEM certificate (-----BEGIN CERTIFICATE-----)"),
        ({"tls": {"client_key": "{key}"}},
         "{file}: temporal.tls: a client key without a client certificate: give client_cert too"),
        ({"tls": {"client_cert": "{cert}"}},
         "{file}: temporal.tls: a client certificate without its key: give client_key too"),
        ({"tls": {"client_cert": "{cert}", "client_cert_data": "x", "client_key": "{key}"}},
         "{file}: temporal.tls: client_cert: give one of client_cert, client_cert_data, client_cert_env (got client_cert, client_cert_data)"),
        ({"tls": {"client_cert": "{cert}", "client_key_env": "FAILOVER_TEST_UNSET_KEY"}},
         "{file}: temporal.tls.client_key_env ($FAILOVER_TEST_UNSET_KEY): the environment variable is not set"),
        ({"tls": {"verification_server_name": "x"}},
         "{file}: temporal.tls: verification_server_name needs server_ca_cert"),
        ({"tls": {"client_certificate": "{cert}"}},
         "{file}: temporal.tls.client_certificate: Extra inputs are not permitted"),
        ({"api_key_env": "FAILOVER_TEST_UNSET_KEY"},
         "{file}: temporal.api_key_env ($FAILOVER_TEST_UNSET_KEY): the environment variable is not set"),
        ({"api_key": "k", "api_key_env": "K"},
         "{file}: temporal: give one of api_key and api_key_env"),
    ],
)  # fmt: skip
def test_a_setting_that_cannot_be_used_is_one_line_naming_field_and_file(
    temporal: dict[str, Any], expected: str, pki: Pki, other: Pki, tmp_path: Path
) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text(
        "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n"
    )
    names = {"dir": str(tmp_path), "cert": str(pki.client_cert), "key": str(pki.client_key),
             "other_key": str(other.client_key), "garbage": str(garbage),
             "file": str(tmp_path / "failover.yaml")}  # fmt: skip

    def fill(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: fill(x) for k, x in v.items()}
        return v.format(**names) if isinstance(v, str) else v

    message = config_error(tmp_path, fill(temporal))
    assert message == expected.format(**names)
    assert "PRIVATE KEY-----\n" not in message


def test_an_encrypted_key_is_refused_and_never_quoted(pki: Pki, tmp_path: Path) -> None:
    key = serialization.load_pem_private_key(pki.client_key.read_bytes(), password=None)
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase")))  # fmt: skip
    message = config_error(tmp_path, {"tls": {"client_cert": str(pki.client_cert),
                                              "client_key": str(encrypted)}})  # fmt: skip
    assert message.endswith(
        f"temporal.tls.client_key: {encrypted}: an encrypted private key (give it unencrypted)"
    )
    body = pki.client_key.read_text().splitlines()[1]
    inline = config_error(tmp_path, {"tls": {"client_cert": str(pki.client_cert),
                                             "client_key_data": pki.client_key.read_text()[:-40]}})  # fmt: skip
    assert inline.endswith("temporal.tls.client_key_data: not a PEM private key "
                           "(-----BEGIN PRIVATE KEY-----)") and body not in inline  # fmt: skip


def test_the_cli_says_it_in_one_line_with_exit_2(pki: Pki, tmp_path: Path) -> None:
    path = write(tmp_path / "f.yaml", {"temporal": {"tls": {"client_cert": str(pki.client_cert),
                                                            "client_key": "/nope/tls.key"}}})  # fmt: skip
    ran = failover(None, "config", "show", "-c", str(path))
    assert ran.returncode == 2
    assert ran.stderr == f"error: {path}: temporal.tls.client_key: /nope/tls.key: no such file\n"


# ----------------------------------------------------- Temporal's environment configuration
def test_temporal_environment_configuration_overrides_the_file(
    pki: Pki, other: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path / "failover.yaml", {"temporal": {
        "address": "file:7233", "api_key_env": "NOT_USED",
        "tls": {"client_cert": str(pki.client_cert), "client_key": str(pki.client_key),
                "server_ca_cert": str(pki.ca_cert), "server_name": "from.file"}}})  # fmt: skip
    monkeypatch.setenv("TEMPORAL_ADDRESS", "env:7233")
    monkeypatch.setenv("TEMPORAL_API_KEY", "env-key")
    monkeypatch.setenv("TEMPORAL_TLS_CLIENT_CERT_PATH", str(other.client_cert))
    monkeypatch.setenv("TEMPORAL_TLS_CLIENT_KEY_DATA", other.client_key.read_text())
    cfg = configuration.load(path)
    t = cfg.temporal
    assert t.address == "env:7233" and t.api_key_value() == "env-key" and t.api_key_env is None
    assert t.tls is not None
    assert t.tls.client_cert == str(other.client_cert) and t.tls.client_key is None
    assert t.tls.server_ca_cert == str(pki.ca_cert) and t.tls.server_name == "from.file"
    tls = t.connect_args()["tls"]
    assert tls.client_private_key == other.client_key.read_bytes()
    assert tls.server_root_ca_cert == pki.ca_cert.read_bytes()
    assert cfg.source == f"{path} + Temporal environment configuration"
    # A file the environment names, missing: said so.
    monkeypatch.setenv("TEMPORAL_TLS_CLIENT_CERT_PATH", "/nope/client.crt")
    with pytest.raises(ConfigError) as caught:
        configuration.load(path)
    assert str(caught.value) == (
        f"{path} + Temporal environment configuration: temporal.tls.client_cert (from Temporal's "
        "environment configuration): /nope/client.crt: no such file"
    )
    # TLS off there is off; an API key there turns TLS on (as the SDKs do).
    monkeypatch.setenv("TEMPORAL_TLS", "false")
    assert configuration.load(path).temporal.connect_args()["tls"] is False
    monkeypatch.delenv("TEMPORAL_TLS")
    for name in ("TEMPORAL_TLS_CLIENT_CERT_PATH", "TEMPORAL_TLS_CLIENT_KEY_DATA"):
        monkeypatch.delenv(name)
    plain = write(tmp_path / "plain.yaml", {"temporal": {"tls": False}})
    assert configuration.load(plain).temporal.connect_args()["tls"] is True
    # Only a key there: the file's certificate has no key.
    monkeypatch.setenv("TEMPORAL_TLS_CLIENT_KEY_PATH", str(pki.client_key))
    with pytest.raises(ConfigError) as caught:
        configuration.load(plain)
    assert str(caught.value) == (
        "temporal.tls with Temporal's environment configuration: a client key without a client "
        "certificate: give client_cert too"
    )


def test_several_files_merge_later_ones_winning(pki: Pki, tmp_path: Path) -> None:
    base = write(tmp_path / "base.yaml", {"temporal": {"address": "t:7233", "tls": True},
                                          "dns": {"timeout": 3}})  # fmt: skip
    fragment = write(tmp_path / "tls.yaml", {"temporal": {"tls": mtls(pki)}})
    cfg = configuration.load(f"{base}{os.pathsep}{fragment}")
    assert cfg.temporal.address == "t:7233" and cfg.dns.timeout == 3
    assert cfg.temporal.connect_args()["tls"].client_cert == pki.client_cert.read_bytes()
    assert cfg.source == f"{base} + {fragment}"
    bad = write(tmp_path / "bad.yaml", {"temporal": {"tls": {"nope": 1}}})
    with pytest.raises(ConfigError) as caught:
        configuration.load(f"{base}{os.pathsep}{bad}")
    assert str(caught.value) == (
        f"{base} + {bad}: temporal.tls.nope: Extra inputs are not permitted"
    )


# --------------------------------------------------------------------------- over a socket
def config_file(env: SandboxEnv, path: Path, temporal: dict[str, Any]) -> Path:
    """The sandbox's configuration as a file (secrets and all), its temporal section updated."""

    def reveal(v: Any) -> Any:
        if isinstance(v, SecretStr):
            return v.get_secret_value()
        if isinstance(v, dict):
            return {k: reveal(x) for k, x in v.items() if x is not None}
        if isinstance(v, list):
            return [reveal(x) for x in v]
        return v

    data = reveal(sandbox_config(env).model_dump(exclude={"source"}))
    data["temporal"].update(temporal)
    return write(path, data)


@pytest.fixture
def proxy(env: SandboxEnv, pki: Pki) -> Iterator[TlsProxy]:
    with tls_proxy(pki, env.temporal_address) as p:
        yield p


async def reach(t: TemporalConfig) -> tuple[str, int]:
    """Describe the namespace and list workflows, through `connect`."""
    client = await connect(t)
    described = await client.workflow_service.describe_namespace(
        DescribeNamespaceRequest(namespace=t.namespace)
    )
    listed = [wf async for wf in client.list_workflows(limit=3)]
    return described.namespace_info.name, len(listed)


def refused_soon(proxy: TlsProxy) -> None:
    """The proxy counts a refused handshake once its side of it failed: maybe just after the
    client saw the connection close."""
    deadline = time.monotonic() + 5
    while proxy.refused < 1:
        assert time.monotonic() < deadline, "the proxy refused no handshake"
        time.sleep(0.02)


def unreachable(t: TemporalConfig) -> str:
    async def attempt() -> None:
        await connect(t)

    with pytest.raises(UnreachableError) as caught:
        run(attempt(), timeout=60)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_mtls_through_a_proxy_that_requires_a_client_certificate(
    env: SandboxEnv, proxy: TlsProxy, pki: Pki, tmp_path: Path
) -> None:
    path = config_file(env, tmp_path / "f.yaml", {"address": proxy.address, "tls": mtls(pki)})
    t = configuration.load(path).temporal
    name, _ = run(reach(t), timeout=60)
    assert name == env.temporal_namespace
    assert proxy.handshakes >= 1 and proxy.refused == 0
    # With the server's name (SNI and verification): the same; through the CLI too.
    named = config_file(env, tmp_path / "n.yaml",
                        {"address": proxy.address, "tls": mtls(pki, server_name=SERVER_NAME)})  # fmt: skip
    assert run(reach(configuration.load(named).temporal), timeout=60)[0] == env.temporal_namespace
    ran = failover(env, "list", "-c", str(named), "-o", "json")
    assert ran.returncode == 0, ran.stderr
    assert isinstance(json.loads(ran.stdout), list)
    assert proxy.refused == 0


def test_without_a_client_certificate_the_connection_is_refused_in_one_line(
    env: SandboxEnv, proxy: TlsProxy, pki: Pki, tmp_path: Path
) -> None:
    path = config_file(env, tmp_path / "f.yaml",
                       {"address": proxy.address, "tls": {"server_ca_cert": str(pki.ca_cert)}})  # fmt: skip
    message = unreachable(configuration.load(path).temporal)
    assert message.startswith(
        f"could not reach Temporal at {proxy.address} over TLS (server CA: {pki.ca_cert}, no "
        f"client certificate) (namespace {env.temporal_namespace}): the server closed the "
        "connection after the TLS handshake: it may require a client certificate"
    ), message
    refused_soon(proxy)
    assert proxy.handshakes == 0
    ran = failover(env, "list", "-c", str(path))
    assert ran.returncode == 5, ran.stderr
    lines = ran.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"error: could not reach Temporal at {proxy.address} over TLS"
    ), ran.stderr
    assert "Traceback" not in ran.stderr and ran.stdout == ""
    # Plain (no TLS at all) to the same port: it says TLS may be what is missing.
    plain = config_file(env, tmp_path / "p.yaml", {"address": proxy.address, "tls": False})
    message = unreachable(configuration.load(plain).temporal)
    assert message.startswith(f"could not reach Temporal at {proxy.address} without TLS"), message
    assert "if it requires TLS, set temporal.tls" in message


def test_a_client_certificate_of_another_ca_is_refused(
    env: SandboxEnv, proxy: TlsProxy, pki: Pki, other: Pki, tmp_path: Path
) -> None:
    tls = {"client_cert": str(other.client_cert), "client_key": str(other.client_key),
           "server_ca_cert": str(pki.ca_cert)}  # fmt: skip
    message = unreachable(TemporalConfig(address=proxy.address, tls=tls))
    assert (
        "the server closed the connection after the TLS handshake: it may not accept the "
        f"client certificate {other.client_cert}"
    ) in message
    refused_soon(proxy)
    assert proxy.handshakes == 0


def test_a_wrong_ca_or_name_fails_with_a_clear_error(proxy: TlsProxy, pki: Pki, other: Pki) -> None:
    wrong_ca = TemporalConfig(address=proxy.address,
                              tls=mtls(pki, server_ca_cert=str(other.ca_cert)))  # fmt: skip
    message = unreachable(wrong_ca)
    assert message.startswith(
        f"could not reach Temporal at {proxy.address} over TLS (server CA: {other.ca_cert}, "
        f"client certificate {pki.client_cert}) (namespace default): the server's TLS "
        f"certificate is not signed by a CA in {other.ca_cert} (temporal.tls.server_ca_cert)"
    ), message
    # The system's CAs do not know the test CA either.
    system = TemporalConfig(address=proxy.address, tls={"client_cert": str(pki.client_cert),
                                                        "client_key": str(pki.client_key)})  # fmt: skip
    assert "not signed by a CA in system CAs" in unreachable(system)
    wrong_name = TemporalConfig(address=proxy.address, tls=mtls(pki, server_name="nope.test"))
    assert "the server's TLS certificate is not valid for nope.test" in unreachable(wrong_name)
    verify = TemporalConfig(address=proxy.address,
                            tls=mtls(pki, verification_server_name="other.test"))  # fmt: skip
    assert "the server's TLS certificate is not valid for other.test" in unreachable(verify)
    assert proxy.handshakes == 0  # none got through


def test_failover_worker_becomes_ready_over_mtls(
    env: SandboxEnv, proxy: TlsProxy, pki: Pki, tmp_path: Path
) -> None:
    path = config_file(env, tmp_path / "f.yaml", {"address": proxy.address, "tls": mtls(pki)})
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path / "worker.log"
    penv = {k: v for k, v in os.environ.items() if not k.startswith("TEMPORAL_")}
    penv.update(FAILOVER_CONFIG=str(path), PYTHONPATH=str(ROOT))
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "orchestrator", "worker", "--task-queue",
             f"tls-{uuid.uuid4().hex[:6]}", "--health-port", str(port)],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=penv,
        )  # fmt: skip
    answer: tuple[int, str] = (0, "")
    try:
        deadline = time.monotonic() + 60
        while answer[0] != 200:
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, (answer, log.read_text()[-3000:])
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/readyz")
                resp = conn.getresponse()
                answer = (resp.status, resp.read().decode())
                conn.close()
            except OSError:
                pass
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    assert answer == (200, "ready\n")
    assert code == 0, log.read_text()[-3000:]
    assert proxy.handshakes >= 1 and proxy.refused == 0


def test_an_api_key_from_a_variable_reaches_the_server(
    env: SandboxEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dev server ignores API keys; what is checked is that the key read from the variable
    is the one sent (the SDK keeps it on the client) and that the connection works with it."""
    monkeypatch.setenv("FAILOVER_TEST_API_KEY", base64.b64encode(b"k" * 12).decode())
    path = config_file(env, tmp_path / "f.yaml", {"api_key_env": "FAILOVER_TEST_API_KEY"})
    t = configuration.load(path).temporal

    async def scenario() -> str | None:
        client = await connect(t)
        return client.api_key

    assert asyncio.run(scenario()) == os.environ["FAILOVER_TEST_API_KEY"]
