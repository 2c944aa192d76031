"""The Kubernetes stand-in's secure port: real TLS with the sandbox's CA, and authentication as an
API server (and EKS's authenticator, and STS behind it) does it, over sockets."""

from __future__ import annotations

import base64
import json
import ssl
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

from activities.kube_auth import AwsKeys, eks_token
from orchestrator.sandbox.control import SandboxControl
from orchestrator.sandbox.manager import SandboxEnv

EAST, WEST = "us-east-1", "us-west-2"
KEYS = AwsKeys("sandbox", "sandbox")
CONFIGMAP = "/api/v1/namespaces/shop/configmaps/shop-flags"


def https(env: SandboxEnv, region: str, path: str, token: str | None = None) -> tuple[int, dict]:
    """GET on a region's secure port, the server checked against the sandbox's CA."""
    req = urllib.request.Request(env.kube_secure[region] + path)
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    context = ssl.create_default_context(cafile=env.kube_ca)
    try:
        with urllib.request.urlopen(req, timeout=10, context=context) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def token_for(env: SandboxEnv, cluster: str, age: float = 0.0, keys: AwsKeys = KEYS) -> str:
    when = datetime.fromtimestamp(time.time() - age, UTC)
    return eks_token(keys, env.aws_endpoints[EAST], EAST, cluster, when)


def last_refusal(control: SandboxControl, region: str) -> str:
    decisions = control.kube_auth(region)["decisions"]
    assert decisions and decisions[-1]["status"] == 401, decisions[-1:]
    return str(decisions[-1]["reason"])


def test_anonymous_reads_version_only_and_the_plain_port_is_unchanged(env: SandboxEnv) -> None:
    status, body = https(env, EAST, "/version")
    assert status == 200 and body["gitVersion"].startswith("v1.")
    status, body = https(env, EAST, CONFIGMAP)
    assert (status, body["kind"], body["reason"]) == (403, "Status", "Forbidden")
    assert "system:anonymous" in body["message"]
    # The insecure port (the kubeconfig's) takes the same request as before.
    with urllib.request.urlopen(env.regions[EAST].kube_api + CONFIGMAP, timeout=10) as resp:
        assert json.loads(resp.read())["metadata"]["name"] == "shop-flags"


def test_a_token_that_does_not_authenticate_is_401_everywhere_and_never_kept(
    env: SandboxEnv, control: SandboxControl
) -> None:
    for path in ("/version", CONFIGMAP):
        status, body = https(env, EAST, path, token="not-a-token-anyone-issued")
        assert (status, body["reason"], body["message"]) == (401, "Unauthorized", "Unauthorized")
        assert last_refusal(control, EAST) == "not a known token"
    assert "not-a-token-anyone-issued" not in json.dumps(control.kube_auth(EAST))


def test_the_secure_port_is_real_tls_with_the_sandbox_ca(env: SandboxEnv) -> None:
    conf = k8s.Configuration(host=env.kube_secure[EAST])
    conf.api_key = {"authorization": "Bearer sandbox"}  # the kubeconfig's (static) token
    conf.ssl_ca_cert = env.kube_ca
    cm = k8s.CoreV1Api(k8s.ApiClient(conf)).read_namespaced_config_map("shop-flags", "shop")
    assert cm.data["region"] == EAST
    unknown = ssl.create_default_context()  # the system's CAs only: the server is not trusted
    with pytest.raises(urllib.error.URLError) as err:
        urllib.request.urlopen(env.kube_secure[EAST] + "/version", timeout=10, context=unknown)
    assert isinstance(err.value.reason, ssl.SSLCertVerificationError)


def test_each_region_serves_its_seeded_eks_cluster_after_a_reset_too(
    fresh: SandboxEnv, control: SandboxControl
) -> None:
    env = fresh  # reset: moto's clusters are seeded again, the stand-ins told their names
    for region in (EAST, WEST):
        cluster = env.topology["regions"][region]["eks_cluster"]
        assert cluster == f"shop-{region}"
        assert control.kube_auth(region)["eks_clusters"] == [cluster]
        status, body = https(env, region, CONFIGMAP, token=token_for(env, cluster))
        assert status == 200 and body["data"]["region"] == region
        user = control.kube_auth(region)["decisions"][-1]
        assert (user["method"], user["user"]) == ("eks", "arn:aws:iam::123456789012:user/sandbox")


def test_eks_tokens_are_refused_as_eks_refuses_them(
    env: SandboxEnv, control: SandboxControl
) -> None:
    east, west = (env.topology["regions"][r]["eks_cluster"] for r in (EAST, WEST))
    assert https(env, EAST, CONFIGMAP, token_for(env, east, age=14 * 60 + 50))[0] == 200

    def refused(token: str) -> str:
        status, body = https(env, EAST, CONFIGMAP, token)
        assert (status, body["reason"]) == (401, "Unauthorized")
        return last_refusal(control, EAST)

    assert refused(token_for(env, west)).startswith("SignatureDoesNotMatch: not signed for this")
    assert refused(token_for(env, east, age=15 * 60 + 5)).startswith("the token expired")
    assert refused(token_for(env, east, age=-20 * 60)).startswith("X-Amz-Date is in the future")
    other_keys = AwsKeys("AKIDNOTKNOWN", "sandbox")
    assert refused(token_for(env, east, keys=other_keys)).startswith("InvalidClientTokenId")
    assert refused(token_for(env, east, keys=AwsKeys("sandbox", "wrong-secret"))).startswith(
        "SignatureDoesNotMatch"
    )

    def altered(**change: str) -> str:
        """A good token whose URL is changed (query parameters replaced or added)."""
        body = token_for(env, east)[len("k8s-aws-v1.") :]
        url = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query)) | change
        new = urlunsplit(parts._replace(query=urlencode(query)))
        return "k8s-aws-v1." + base64.urlsafe_b64encode(new.encode()).decode().rstrip("=")

    later = datetime.fromtimestamp(time.time() + 60, UTC).strftime("%Y%m%dT%H%M%SZ")
    assert refused(altered(**{"X-Amz-Date": later})).startswith("SignatureDoesNotMatch")
    assert refused(altered(**{"X-Amz-SignedHeaders": "host"})) == (
        "the x-k8s-aws-id header is not signed"
    )
    assert refused(altered(Action="AssumeRole")) == (
        "the presigned URL is not sts:GetCallerIdentity"
    )
    assert refused(altered(RoleArn="arn:aws:iam::1:role/x")) == (
        "query parameter 'RoleArn' is not allowed"
    )
    assert refused(altered(**{"X-Amz-Expires": "901"})) == "X-Amz-Expires is not within 0..900"
    # An URL to a host that is not STS (EKS would send the caller's identity check there).
    elsewhere = eks_token(KEYS, "https://sts.attacker.example", EAST, east, datetime.now(UTC))
    assert refused(elsewhere).startswith("unexpected STS endpoint https://sts.attacker.example")
    assert refused("k8s-aws-v1.%%%").startswith("token is not base64url")
    assert refused("k8s-aws-v1." + "A" * 5000) == "token is too large"


def test_service_account_tokens_are_accepted_while_listed(
    env: SandboxEnv, control: SandboxControl
) -> None:
    user = "system:serviceaccount:failover:failover-orchestrator"
    try:
        control.set_kube_auth(EAST, service_account_tokens={"sa-token-1": user})
        assert https(env, EAST, CONFIGMAP, "sa-token-1")[0] == 200
        assert control.kube_auth(EAST)["service_accounts"] == [user]
        assert https(env, WEST, CONFIGMAP, "sa-token-1")[0] == 401  # another cluster's
        control.set_kube_auth(EAST, service_account_tokens={"sa-token-2": user})
        assert https(env, EAST, CONFIGMAP, "sa-token-1")[0] == 401
        assert https(env, EAST, CONFIGMAP, "sa-token-2")[0] == 200
    finally:
        control.set_kube_auth(EAST, service_account_tokens={})


def test_a_bad_auth_configuration_is_refused_whole(
    env: SandboxEnv, control: SandboxControl
) -> None:
    before = control.kube_auth(EAST)
    with pytest.raises(urllib.error.HTTPError) as err:
        control.set_kube_auth(EAST, eks_clusters="not-a-list", static_tokens={"x": "y"})
    assert err.value.code == 400
    after = control.kube_auth(EAST)
    assert after["eks_clusters"] == before["eks_clusters"]
    assert after["static_users"] == before["static_users"]


def test_a_kubernetes_client_sees_the_refusal_as_401(env: SandboxEnv) -> None:
    conf = k8s.Configuration(host=env.kube_secure[EAST])
    conf.api_key = {"authorization": "Bearer " + token_for(env, "shop-elsewhere")}
    conf.ssl_ca_cert = env.kube_ca
    with pytest.raises(ApiException) as err:
        k8s.CoreV1Api(k8s.ApiClient(conf)).read_namespaced_config_map("shop-flags", "shop")
    assert err.value.status == 401


def test_a_full_outage_takes_the_secure_port_down_too(
    env: SandboxEnv, control: SandboxControl
) -> None:
    control.set_outage(EAST, "full")
    with pytest.raises(urllib.error.URLError) as err:
        https(env, EAST, "/version")
    assert isinstance(err.value.reason, ConnectionRefusedError)
    control.set_outage(EAST, None)
    assert https(env, EAST, "/version")[0] == 200
