"""`failover config show`: the effective configuration with every secret redacted. A known secret
is planted in each place a secret can be (the Temporal API key, directly and from Temporal's
environment configuration or a variable; the TLS client key, inline and from the environment;
encryption keys; AWS keys; notification URLs, routing keys and signing secrets; passwords in
URLs) and must be absent from both the YAML and the `-o json` output, while what is not secret
is shown. Every configuration field whose name says secret must be a SecretStr."""

from __future__ import annotations

import base64
import json
import os
import re
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, SecretStr

from orchestrator.config import Config
from tests.cli import failover
from tests.tls import Pki, make_pki

ENCRYPTION_KEY = base64.b64encode(b"planted-encryption-key-32-bytes!").decode()
PLANTED = {
    "temporal.api_key": "planted-temporal-api-key",
    "aws.access_key_id": "AKIAPLANTEDACCESSKEY",
    "aws.secret_access_key": "planted-aws-secret-access-key",
    "aws.endpoint_url password": "planted-aws-url-password",
    "endpoints password": "planted-endpoint-url-password",
    "slack url": "T0PLANTED/B0PLANTED/planted-slack-token",
    "pagerduty routing_key": "planted-pagerduty-routing-key",
    "pagerduty url": "planted-pagerduty-url-token",
    "webhook url": "planted-webhook-url-token",
    "webhook secret": "planted-webhook-signing-secret",
    "encryption key": ENCRYPTION_KEY,
}


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki")


@pytest.fixture(autouse=True)
def no_temporal_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [k for k in os.environ if k.startswith("TEMPORAL_")]:
        monkeypatch.delenv(name)


def key_lines(pem_file: Path) -> list[str]:
    """The base64 lines of a PEM key: none of them may be shown."""
    return [line for line in pem_file.read_text().splitlines() if not line.startswith("-----")]


def planted_config(pki: Pki) -> dict[str, Any]:
    p = PLANTED
    return {
        "temporal": {
            "address": "temporal.example:7233",
            "namespace": "payments",
            "api_key": p["temporal.api_key"],
            "tls": {"client_cert": str(pki.client_cert),
                    "client_key_data": pki.client_key.read_text(),
                    "server_ca_cert": str(pki.ca_cert), "server_name": "temporal.example"},
            "encryption": {"active": "k1", "keys": {"k1": {"key": p["encryption key"]},
                                                    "k2": {"key_env": "FAILOVER_KEY_2"}}},
        },
        "aws": {
            "endpoint_url": f"https://aws-user:{p['aws.endpoint_url password']}@aws.example",
            "access_key_id": p["aws.access_key_id"],
            "secret_access_key": p["aws.secret_access_key"],
        },
        "endpoints": {"app": {"us-east-1": f"https://app:{p['endpoints password']}@app.example/x"}},
        "notify": {"channels": {
            "chat": {"type": "slack", "url": f"https://hooks.slack.com/services/{p['slack url']}"},
            "pager": {"type": "pagerduty", "routing_key": p["pagerduty routing_key"],
                      "url": f"https://events.example/{p['pagerduty url']}"},
            "hook": {"type": "webhook", "url": f"https://hooks.example/{p['webhook url']}",
                     "secret": p["webhook secret"]},
            "topic": {"type": "sns", "topic_arn": "arn:aws:sns:us-east-1:111122223333:oncall"},
        }},
    }  # fmt: skip


def show(path: Path, *options: str, **env: str) -> tuple[str, str]:
    """`config show` as YAML and as JSON (both must succeed)."""
    outputs = []
    for fmt in ("yaml", "json"):
        ran = failover(None, "config", "show", "-c", str(path), "-o", fmt, *options, **env)
        assert ran.returncode == 0, ran.stderr
        outputs.append(ran.stdout)
    return outputs[0], outputs[1]


def test_every_planted_secret_is_absent_from_yaml_and_json(pki: Pki, tmp_path: Path) -> None:
    path = tmp_path / "failover.yaml"
    path.write_text(yaml.safe_dump(planted_config(pki)))
    as_yaml, as_json = show(path)
    for text in (as_yaml, as_json):
        for where, secret in PLANTED.items():
            assert secret not in text, f"{where} shown"
        for line in key_lines(pki.client_key):
            assert line not in text, "the client key shown"
        assert "PRIVATE KEY" not in text
    # What is not secret is there, and each secret is marked as hidden, not dropped.
    shown = json.loads(as_json)
    assert yaml.safe_load(as_yaml) == shown
    t = shown["temporal"]
    assert t["address"] == "temporal.example:7233" and t["namespace"] == "payments"
    assert t["api_key"] == "**********"
    assert t["tls"] == {"client_cert": str(pki.client_cert), "client_key_data": "**********",
                        "server_ca_cert": str(pki.ca_cert), "server_name": "temporal.example"}  # fmt: skip
    keys = t["encryption"]["keys"]
    assert keys["k1"]["key"] == "**********" and keys["k2"]["key_env"] == "FAILOVER_KEY_2"
    assert shown["aws"]["endpoint_url"] == "https://aws-user:**********@aws.example"
    assert shown["aws"]["access_key_id"] == shown["aws"]["secret_access_key"] == "**********"
    assert shown["endpoints"]["app"]["us-east-1"] == "https://app:**********@app.example/x"
    channels = shown["notify"]["channels"]
    assert channels["chat"]["url"] == channels["hook"]["secret"] == "**********"
    assert channels["pager"]["routing_key"] == channels["pager"]["url"] == "**********"
    assert channels["topic"]["topic_arn"] == "arn:aws:sns:us-east-1:111122223333:oncall"
    assert shown["source"] == str(path)


def test_secrets_from_the_environment_are_absent_too(pki: Pki, tmp_path: Path) -> None:
    """The API key and the client key given by Temporal's environment configuration, and an
    API key read from a variable the file names."""
    path = tmp_path / "failover.yaml"
    path.write_text(yaml.safe_dump({"temporal": {"api_key_env": "MY_TEMPORAL_KEY",
                                                 "tls": {"client_cert_env": "MY_CERT",
                                                         "client_key_env": "MY_KEY"}}}))  # fmt: skip
    env = {"MY_TEMPORAL_KEY": "planted-key-from-a-variable",
           "MY_CERT": pki.client_cert.read_text(), "MY_KEY": pki.client_key.read_text()}  # fmt: skip
    as_yaml, as_json = show(path, **env)
    for text in (as_yaml, as_json):
        assert "planted-key-from-a-variable" not in text and "PRIVATE KEY" not in text
        assert all(line not in text for line in key_lines(pki.client_key))
    assert json.loads(as_json)["temporal"]["api_key_env"] == "MY_TEMPORAL_KEY"
    other = make_pki(tmp_path / "other")
    env_config = {"TEMPORAL_API_KEY": "planted-temporal-env-api-key",
                  "TEMPORAL_TLS_CLIENT_CERT_DATA": other.client_cert.read_text(),
                  "TEMPORAL_TLS_CLIENT_KEY_DATA": other.client_key.read_text(),
                  "TEMPORAL_ADDRESS": "from-env.example:7233"}  # fmt: skip
    as_yaml, as_json = show(path, **env, **env_config)
    for text in (as_yaml, as_json):
        assert "planted-temporal-env-api-key" not in text and "PRIVATE KEY" not in text
        assert all(line not in text for line in key_lines(other.client_key))
    t = json.loads(as_json)["temporal"]
    assert t["address"] == "from-env.example:7233"  # the effective configuration
    assert t["api_key"] == t["tls"]["client_key_data"] == "**********"
    assert t["api_key_env"] is None  # the environment's key replaced the variable


def test_the_sandbox_configuration_shows_no_secret(tmp_path: Path) -> None:
    """The sandbox's own configuration: its AWS keys and the notification sink's secret."""
    home = tmp_path / "sandbox"
    home.mkdir()
    (home / "env.json").write_text(json.dumps({
        "home": str(home), "temporal_address": "127.0.0.1:7233",
        "temporal_ui_url": "http://127.0.0.1:8233", "aws_endpoint_url": "http://127.0.0.1:5000",
        "kubeconfig": str(home / "kubeconfig"), "regions": {},
        "notify_url": "http://127.0.0.1:9", "notify_secret": "planted-sandbox-notify-secret",
    }))  # fmt: skip
    for fmt in ("yaml", "json"):
        ran = failover(None, "config", "show", "-o", fmt, FAILOVER_SANDBOX_HOME=str(home))
        assert ran.returncode == 0, ran.stderr
        assert "planted-sandbox-notify-secret" not in ran.stdout
        assert "/slack/sandbox-slack" not in ran.stdout  # a URL is a secret too
        assert "127.0.0.1:7233" in ran.stdout


_SECRET_NAME = re.compile(r"(^|_)(key|secret|password|passphrase|token|private|credentials?)(_|$)")
#: Names that look secret and are not: a file's path, a variable's name, a KMS key's id.
_NOT_SECRET = {"client_key", "kms_key_id", "token_dir"}  # (a path to the secret, a key id)


def _fields(model: type[BaseModel], prefix: str = "") -> list[tuple[str, str, Any]]:
    out = []
    for name, info in model.model_fields.items():
        out.append((f"{prefix}{name}", name, info.annotation))
        todo = [info.annotation]
        while todo:
            t = todo.pop()
            if isinstance(t, type) and issubclass(t, BaseModel):
                out += _fields(t, f"{prefix}{name}.")
            else:
                todo += list(typing.get_args(t))
    return out


def test_every_field_named_like_a_secret_is_a_secretstr() -> None:
    """A new field (an AWS session token, a password) cannot be added as plain text unseen."""
    fields = _fields(Config)
    checked = []
    for path, name, annotation in fields:
        if not _SECRET_NAME.search(name) or name in _NOT_SECRET or name.endswith("_env"):
            continue
        if path == "approvals.key":  # the path of the operator's private key file, not the key
            continue
        assert SecretStr in typing.get_args(annotation) or annotation is SecretStr, path
        checked.append(path)
    assert {"temporal.api_key", "temporal.tls.client_key_data", "aws.secret_access_key",
            "notify.channels.routing_key", "notify.channels.secret"} <= set(checked)  # fmt: skip
