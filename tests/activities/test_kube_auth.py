"""Kubernetes credentials for real clusters (`kubernetes.clusters`): a pod's ServiceAccount and EKS
tokens, against the sandbox's stand-ins on their secure (HTTPS, authenticating) port and its EKS
clusters in moto."""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
import yaml
from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

from activities.clients import Clients
from activities.errors import StepError, classify
from activities.kube_auth import (
    RENEW_AT,
    AwsKeys,
    EksTokens,
    eks_token,
    presigned_identity_url,
)
from orchestrator import config as configuration
from orchestrator.config import Config, KubeCluster, from_sandbox
from orchestrator.sandbox.control import SandboxControl
from orchestrator.sandbox.manager import SandboxEnv
from tests.cli import failover

EAST, WEST = "us-east-1", "us-west-2"
ROOT = Path(__file__).resolve().parents[2]
SA_USER = "system:serviceaccount:failover:failover-orchestrator"


def eks_config(env: SandboxEnv, **clusters: dict[str, Any]) -> Config:
    """The sandbox's configuration with `kubernetes.clusters` (region -> one way in)."""
    cfg = from_sandbox(env)
    cfg.kubernetes.contexts = {}
    cfg.kubernetes.clusters = {
        r.replace("_", "-"): KubeCluster.model_validate(c) for r, c in clusters.items()
    }
    return cfg


def configmap(api: Any) -> dict[str, str]:
    return dict(k8s.CoreV1Api(api).read_namespaced_config_map("shop-flags", "shop").data)


def token_date(api: Any) -> datetime:
    """X-Amz-Date of the EKS token a client sends now."""
    bearer = api.configuration.get_api_key_with_prefix("BearerToken", alias="authorization")
    body = bearer.removeprefix("Bearer k8s-aws-v1.")
    url = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()
    stamp = parse_qs(urlsplit(url).query)["X-Amz-Date"][0]
    return datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def last_decision(control: SandboxControl, region: str) -> dict[str, Any]:
    decision: dict[str, Any] = control.kube_auth(region)["decisions"][-1]
    return decision


# ------------------------------------------------------------------------- the EKS token
@pytest.mark.parametrize(
    ("endpoint", "session_token"),
    [
        (None, None),  # botocore's own STS endpoint for the region
        ("https://sts.amazonaws.com", None),
        ("http://127.0.0.1:5056", None),
        (None, "IQoJb3JpZ2luX2VjE/session+token=="),
    ],
)
def test_the_token_is_the_one_aws_eks_get_token_makes(
    endpoint: str | None, session_token: str | None
) -> None:
    """The presigned URL is byte for byte what botocore presigns, as `aws eks get-token` asks it
    (the x-k8s-aws-id header injected before signing, ExpiresIn 60, GET), for the same keys and
    time; the token is its unpadded base64url behind `k8s-aws-v1.`."""
    session = boto3.session.Session(
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        aws_session_token=session_token,
    )
    sts = session.client("sts", region_name=WEST, endpoint_url=endpoint)

    def take_id(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["x-k8s-aws-id"] = params.pop("x-k8s-aws-id")

    def add_header(request: Any, **_: Any) -> None:
        request.headers["x-k8s-aws-id"] = request.context["x-k8s-aws-id"]

    sts.meta.events.register("provide-client-params.sts.GetCallerIdentity", take_id)
    sts.meta.events.register("before-sign.sts.GetCallerIdentity", add_header)
    theirs = sts.generate_presigned_url(
        "get_caller_identity", Params={"x-k8s-aws-id": "shop-use1"}, ExpiresIn=60,
        HttpMethod="GET",
    )  # fmt: skip
    stamp = parse_qs(urlsplit(theirs).query)["X-Amz-Date"][0]
    when = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    keys = AwsKeys("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", session_token)
    ours = presigned_identity_url(keys, sts.meta.endpoint_url, WEST, "shop-use1", when)
    assert ours == theirs
    token = eks_token(keys, sts.meta.endpoint_url, WEST, "shop-use1", when)
    assert token.startswith("k8s-aws-v1.") and "=" not in token
    assert base64.urlsafe_b64decode(token[11:] + "=" * (-len(token[11:]) % 4)).decode() == theirs


def test_one_renewal_however_many_threads_find_the_token_old() -> None:
    now = [1_000_000.0]
    asked: list[int] = []

    def credentials() -> AwsKeys:
        asked.append(1)
        return AwsKeys("AKID", "secret")

    tokens = EksTokens("c", EAST, "https://sts.us-east-1.amazonaws.com", credentials,
                       clock=lambda: now[0])  # fmt: skip
    first = tokens.token()
    now[0] += RENEW_AT - 1
    assert tokens.token() == first and tokens.made == 1
    now[0] += 1
    seen: list[str] = []
    barrier = threading.Barrier(8)

    def ask() -> None:
        barrier.wait()
        seen.append(tokens.token())

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert tokens.made == 2 and len(asked) == 2
    assert len(set(seen)) == 1 and seen[0] != first


# ---------------------------------------------------------------------------- in-cluster
class ServiceAccountDir:
    """A ServiceAccount volume as the kubelet writes it: a timestamped directory, `..data`
    pointing at it, `token` and `ca.crt` through `..data`; a rotation writes a new directory
    and swaps `..data` in one rename (its AtomicWriter)."""

    def __init__(self, path: Path, ca: str) -> None:
        self.path, self.ca, self.n = path, ca, 0
        path.mkdir()
        for name in ("token", "ca.crt", "namespace"):
            (path / name).symlink_to(f"..data/{name}")

    def write(self, token: str) -> None:
        self.n += 1
        stamped = self.path / f"..2026_01_01_00_00_{self.n:02d}"
        stamped.mkdir()
        (stamped / "token").write_text(token)
        shutil.copy(self.ca, stamped / "ca.crt")
        (stamped / "namespace").write_text("failover")
        link = self.path / "..data_tmp"
        link.symlink_to(stamped.name)
        os.replace(link, self.path / "..data")


@pytest.fixture
def in_pod(
    env: SandboxEnv, control: SandboxControl, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ServiceAccountDir]:
    """This process as a pod of us-east-1's cluster: the service environment names the secure
    port, and a ServiceAccount directory (tokens listed with the stand-in by the test)."""
    secure = urlsplit(env.kube_secure[EAST])
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", str(secure.hostname))
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(secure.port))
    try:
        yield ServiceAccountDir(tmp_path / "serviceaccount", env.kube_ca)
    finally:
        control.set_kube_auth(EAST, service_account_tokens={})


def test_in_cluster_uses_the_pod_token_and_reads_it_again_when_it_rotates(
    env: SandboxEnv, control: SandboxControl, in_pod: ServiceAccountDir
) -> None:
    first, second = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    control.set_kube_auth(EAST, service_account_tokens={first: SA_USER})
    in_pod.write(first)
    clients = Clients(eks_config(env, us_east_1={"in_cluster": {"token_dir": str(in_pod.path)}}))
    api = clients.kube(EAST)
    assert api.configuration.host == env.kube_secure[EAST]
    assert configmap(api)["region"] == EAST
    assert last_decision(control, EAST) | {"at": 0} == {
        "at": 0, "path": "/api/v1/namespaces/shop/configmaps/shop-flags", "user": SA_USER,
        "method": "serviceaccount", "status": 200, "reason": "",
    }  # fmt: skip
    # The API server now takes only the new token; the file still holds the old one.
    control.set_kube_auth(EAST, service_account_tokens={second: SA_USER})
    with pytest.raises(ApiException) as err:
        configmap(api)
    assert err.value.status == 401 and classify(err.value).kind == "AccessDenied"
    in_pod.write(second)  # the kubelet rotates it: the same client goes on
    assert configmap(api)["region"] == EAST
    assert clients.kube(EAST) is api
    assert k8s.VersionApi(clients.kube_probe(EAST)).get_code().git_version.startswith("v1.")
    assert last_decision(control, EAST)["method"] == "serviceaccount"


def test_not_in_a_pod_or_no_token_is_one_line_naming_the_region(
    env: SandboxEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    cfg = eks_config(env, us_west_2={"in_cluster": {"token_dir": str(tmp_path)}})
    with pytest.raises(StepError) as err:
        Clients(cfg).kube(WEST)
    assert str(err.value) == (
        "Kubernetes in us-west-2: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not "
        "set, so this process does not run in a pod (kubernetes.clusters.us-west-2.in_cluster)"
    )
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    with pytest.raises(StepError) as err:
        Clients(cfg).kube(WEST)
    assert str(err.value) == (
        f"Kubernetes in us-west-2: no ServiceAccount token at {tmp_path}/token (is a "
        "ServiceAccount token mounted? kubernetes.clusters.us-west-2.in_cluster)"
    )
    assert not err.value.retryable and "\n" not in str(err.value)


# ----------------------------------------------------------------------------------- EKS
def test_eks_cluster_endpoint_ca_and_token_make_calls_that_succeed(
    env: SandboxEnv, control: SandboxControl
) -> None:
    east, west = (env.topology["regions"][r]["eks_cluster"] for r in (EAST, WEST))
    described = boto3.client(
        "eks", region_name=EAST, endpoint_url=env.aws_endpoint_url,
        aws_access_key_id="sandbox", aws_secret_access_key="sandbox",
    ).describe_cluster(name=east)["cluster"]  # fmt: skip
    assert described["endpoint"] == env.kube_secure[EAST]
    assert base64.b64decode(described["certificateAuthority"]["data"]).decode() == (
        Path(env.kube_ca).read_text()
    )
    clients = Clients(eks_config(env, us_east_1={"eks": {"name": east}},
                                 us_west_2={"eks": {"name": west, "region": WEST}}))  # fmt: skip
    warmed = clients.warm(["ssm"])
    assert warmed.kube == [EAST, WEST], warmed.failed
    for region in (EAST, WEST):
        api = clients.kube(region)
        assert api.configuration.host == env.kube_secure[region]
        assert configmap(api)["region"] == region
        decision = last_decision(control, region)
        assert (decision["method"], decision["status"]) == ("eks", 200)
    # A write, and the probe a planned switch asks first.
    core = k8s.CoreV1Api(clients.kube(EAST))
    core.patch_namespaced_config_map("shop-flags", "shop", {"data": {"eks-auth": "yes"}})
    try:
        assert configmap(clients.kube(EAST))["eks-auth"] == "yes"
    finally:
        core.patch_namespaced_config_map("shop-flags", "shop", {"data": {"eks-auth": None}})
    assert k8s.VersionApi(clients.kube_probe(WEST)).get_code().git_version.startswith("v1.")
    assert last_decision(control, WEST)["method"] == "eks"


def test_a_plan_runs_its_kubernetes_preflights_with_eks_tokens(
    env: SandboxEnv, control: SandboxControl, tmp_path: Path
) -> None:
    """`failover plan` from a configuration file that names the EKS clusters (no kubeconfig at
    all): every Kubernetes step's preflight and dry run read through the secure ports."""
    east, west = (env.topology["regions"][r]["eks_cluster"] for r in (EAST, WEST))
    path = config_file(env, tmp_path, {EAST: {"eks": {"name": east}},
                                       WEST: {"eks": {"name": west}}})  # fmt: skip
    before = {r: len(control.kube_auth(r)["decisions"]) for r in (EAST, WEST)}
    ran = failover(env, "plan", str(ROOT / "runbooks/maintenance-drill.yaml"), "--from", EAST,
                   "--to", WEST, "--config", str(path), "-o", "json")  # fmt: skip
    assert ran.returncode == 0, ran.stdout + ran.stderr
    for region in (EAST, WEST):
        new = control.kube_auth(region)["decisions"][before[region] :]
        assert new and all(d["method"] == "eks" and d["status"] == 200 for d in new), new


def config_file(env: SandboxEnv, tmp_path: Path, clusters: dict[str, Any]) -> Path:
    """A configuration file for the sandbox, as written for real infrastructure, whose
    Kubernetes section is `clusters` only."""
    data = from_sandbox(env).model_dump(
        mode="json", exclude={"notify", "reports", "sandbox", "source"}
    )
    data["aws"].update(access_key_id="sandbox", secret_access_key="sandbox")
    data["kubernetes"] = {"clusters": clusters}
    path = tmp_path / "failover.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_an_unknown_eks_cluster_or_missing_token_fails_the_plan_in_one_line_per_region(
    env: SandboxEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    sa = tmp_path / "sa"
    sa.mkdir()
    path = config_file(env, tmp_path, {EAST: {"eks": {"name": "shop-nowhere"}},
                                       WEST: {"in_cluster": {"token_dir": str(sa)}}})  # fmt: skip
    ran = failover(env, "plan", str(ROOT / "runbooks/maintenance-drill.yaml"), "--from", EAST,
                   "--to", WEST, "--config", str(path), "-o", "json")  # fmt: skip
    assert ran.returncode == 6, ran.stdout + ran.stderr
    assert "Traceback" not in ran.stdout + ran.stderr
    preflights = {row["id"]: row["preflight"] for row in json.loads(ran.stdout)["steps"]}
    east = ("Kubernetes in us-east-1: no EKS cluster 'shop-nowhere' in us-east-1 "
            "(kubernetes.clusters.us-east-1.eks)")  # fmt: skip
    clients = Clients(configuration.load(path))
    with pytest.raises(StepError) as err:
        clients.kube(EAST)
    assert str(err.value) == east and err.value.kind == "NotFound" and not err.value.retryable
    with pytest.raises(StepError) as err:
        clients.kube_probe(EAST)
    assert str(err.value) == east
    assert preflights["freeze-writes"] == east  # a Kubernetes step in each region
    assert preflights["target-maintenance-banner"] == (
        "Kubernetes in us-west-2: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not "
        "set, so this process does not run in a pod (kubernetes.clusters.us-west-2.in_cluster)"
    )
    assert preflights["source-maintenance-flag"] == "ok"  # AWS steps are unaffected


def test_tokens_are_renewed_before_they_expire(env: SandboxEnv, control: SandboxControl) -> None:
    """The clock tokens are dated and renewed by is injected: a token 16 minutes old is refused
    by the API server; the client renews it once it is 14 minutes old by that clock, not
    before, and the renewed one is taken."""
    east = env.topology["regions"][EAST]["eks_cluster"]
    clients = Clients(eks_config(env, us_east_1={"eks": {"name": east}}))
    now = [time.time() - 16 * 60]
    clients.clock = lambda: now[0]
    api = clients.kube(EAST)
    first = token_date(api)
    assert abs(first.timestamp() - now[0]) < 1
    with pytest.raises(ApiException) as err:
        configmap(api)
    assert err.value.status == 401
    assert last_decision(control, EAST)["reason"].startswith("the token expired")
    now[0] += RENEW_AT - 1  # 13:59 by the client's clock: not yet
    with pytest.raises(ApiException):
        configmap(api)
    assert token_date(api) == first
    now[0] += 1  # 14:00: renewed on the next request, dated by the same clock
    assert configmap(api)["region"] == EAST
    assert token_date(api).timestamp() == pytest.approx(now[0], abs=1)
    assert last_decision(control, EAST)["method"] == "eks"


def test_kubernetes_cluster_configuration_shapes(tmp_path: Path) -> None:
    def load(kubernetes: dict[str, Any]) -> Config:
        path = tmp_path / "c.yaml"
        path.write_text(yaml.safe_dump({"kubernetes": kubernetes}))
        return configuration.load(path)

    cfg = load({"kubeconfig": "/k", "contexts": {EAST: "prod-east"},
                "clusters": {WEST: {"in_cluster": True}, "eu-west-1": {"eks": {"name": "x"}},
                             "ap-south-1": {"context": "south"}}})  # fmt: skip
    k = cfg.kubernetes
    assert k.cluster(EAST).context == "prod-east"
    assert k.cluster("sa-east-1").context == "sa-east-1"  # not named: a context like the region
    in_cluster = k.cluster(WEST).in_cluster
    assert in_cluster is not None
    assert in_cluster.token_dir == "/var/run/secrets/kubernetes.io/serviceaccount"
    assert k.cluster("eu-west-1").describe() == "EKS cluster x"
    assert k.regions() == {EAST, WEST, "eu-west-1", "ap-south-1"}
    assert Clients(cfg).regions() == sorted(k.regions())
    bad = {
        "kubernetes.clusters.us-east-1: give exactly one of context, in_cluster, "
        "eks (not context and eks)": {"clusters": {EAST: {"context": "a", "eks": {"name": "b"}}}},
        "kubernetes.clusters.us-east-1: give exactly one of context, in_cluster, eks": {
            "clusters": {EAST: {"in_cluster": False}}
        },
        "kubernetes: region us-east-1 is in both contexts and clusters: give it in one of them": {
            "contexts": {EAST: "a"},
            "clusters": {EAST: {"in_cluster": True}},
        },
        "kubernetes.clusters.us-east-1.eks.name: String should match pattern "
        "'^[0-9A-Za-z][A-Za-z0-9\\-_]*$'": {"clusters": {EAST: {"eks": {"name": "no spaces"}}}},
        "kubernetes.clusters.us-east-1.eks.cluster: Extra inputs are not permitted": {
            "clusters": {EAST: {"eks": {"name": "a", "cluster": "b"}}}
        },
    }
    for message, kubernetes in bad.items():
        with pytest.raises(configuration.ConfigError) as err:
            load(kubernetes)
        assert str(err.value) == f"{tmp_path / 'c.yaml'}: {message}"
    ran = failover(None, "config", "show", "--config", str(tmp_path / "c.yaml"))
    assert ran.returncode == 2 and ran.stderr.count("\n") == 1, ran.stderr
